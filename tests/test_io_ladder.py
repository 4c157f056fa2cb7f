"""Generic mapping for ladder-style files: run-id templates, file-name fields, globs, forward-fill, level
renames, count labels, per-metric units, separator sniffing, and the ladder fixture."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.errors import LossTableError, UserInputError
from bayes_l2l.io import expand_paths, import_table
from bayes_l2l.io.labels import parse_count
from bayes_l2l.table import PLAUSIBLE_RANGE, UNITS, LossTable

LADDER = Path(__file__).parents[1] / "examples" / "ladder"
METRIC = "metrics: {val/c4: {column: loss, unit: nats/token, estimator: e}}\n"


def _sets(frame: pd.DataFrame, by: str, col: str) -> dict[str, set[object]]:
    return {str(k): set(g) for k, g in frame.groupby(by)[col]}


def _write(tmp_path: Path, files: dict[str, str], mapping: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    m = tmp_path / "map.yaml"
    m.write_text(mapping)
    return m


def test_run_id_from_a_template_or_a_list_of_columns(tmp_path: Path) -> None:
    data = "size,budget,step,loss\n150M,10B,1,3.0\n150M,10B,2,2.9\n1B,10B,1,2.8\n"
    m = _write(
        tmp_path, {"d.csv": data}, "identity: {run: {template: '{size}_x_{budget}'}, step: step}\n" + METRIC
    )
    assert import_table("generic", [tmp_path / "d.csv"], m).runs == ["150M_x_10B", "1B_x_10B"]
    m.write_text("identity: {run: [size, budget], step: step}\n" + METRIC)
    assert import_table("generic", [tmp_path / "d.csv"], m).runs == ["150M-10B", "1B-10B"]
    m.write_text("identity: {run: {template: '{size}-{nope}'}, step: step}\n" + METRIC)
    with pytest.raises(
        UserInputError, match=r"identity.run.template \(field \{nope\}\)' names column 'nope'"
    ):
        import_table("generic", [tmp_path / "d.csv"], m)
    m.write_text("identity: {run: {template: '{}-x'}, step: step}\n" + METRIC)
    with pytest.raises(UserInputError, match="must name columns in braces"):
        import_table("generic", [tmp_path / "d.csv"], m)


def test_empty_run_id_names_the_row_and_suggests_fill(tmp_path: Path) -> None:
    m = _write(
        tmp_path,
        {"d.csv": "model,step,loss\na,1,3.0\n,2,2.9\n"},
        "identity: {run: model, step: step}\n" + METRIC,
    )
    with pytest.raises(UserInputError, match=r"no run id in data row 2 \(line 3 of the file\).*fill.forward"):
        import_table("generic", [tmp_path / "d.csv"], m)


FILENAME_MAP = (
    "from_filename: {pattern: '(?P<size>[^_]+)_(?P<budget>[^_.]+)\\.csv'}\n"
    "identity: {run: {template: '{size}-{budget}'}, step: step, params: {column: size, parse: count}}\n"
    "factors: {size: size}\n" + METRIC
)


def test_fields_from_the_file_name_and_glob_paths(tmp_path: Path) -> None:
    files = {"runs/150M_10B.csv": "step,loss\n1,3.0\n2,2.9\n", "runs/1.2B_20B.csv": "step,loss\n1,2.7\n"}
    m = _write(tmp_path, files, FILENAME_MAP)
    t = import_table("generic", [str(tmp_path / "runs" / "*.csv")], m)
    assert t.runs == ["1.2B-20B", "150M-10B"]  # glob matches in sorted order
    ck = t.checkpoints().set_index("run")
    assert ck.loc["1.2B-20B", "params"] == pytest.approx(1.2e9)
    assert set(ck.loc["150M-10B", "params"]) == {1.5e8} and set(ck["size"]) == {"150M", "1.2B"}
    explicit = import_table("generic", sorted((tmp_path / "runs").glob("*.csv")), m)
    pd.testing.assert_frame_equal(explicit.df, t.df)
    with pytest.raises(UserInputError, match=r"runs/\*\.parquet: no file matches this pattern"):
        import_table("generic", [str(tmp_path / "runs" / "*.parquet")], m)


def test_expand_paths_keeps_existing_paths_with_glob_characters(tmp_path: Path) -> None:
    odd = tmp_path / "[x].csv"
    odd.write_text("x")
    assert expand_paths([odd]) == [odd]


@pytest.mark.parametrize(
    ("name", "mapping", "message"),
    [
        ("150M-10B.csv", FILENAME_MAP, "does not match from_filename.pattern"),
        (
            "150M_10B.csv",
            FILENAME_MAP.replace("(?P<size>", "(").replace("(?P<budget>", "("),
            "has no named group",
        ),
        ("150M_10B.csv", FILENAME_MAP.replace("size>", "step>"), "group(s) step are also columns"),
        ("150M_10B.csv", FILENAME_MAP.replace("pattern:", "patern:"), "must be a mapping with 'pattern'"),
        (
            "150M_10B.csv",
            FILENAME_MAP.replace("}\nidentity", ", against: dir}\nidentity"),
            "'name' or 'path'",
        ),
        ("150M_10B.csv", FILENAME_MAP.replace("\\.csv'", "\\.csv('"), "not a valid regex"),
    ],
)
def test_from_filename_errors(tmp_path: Path, name: str, mapping: str, message: str) -> None:
    m = _write(tmp_path, {name: "step,loss\n1,3.0\n"}, mapping)
    with pytest.raises(UserInputError) as info:
        import_table("generic", [tmp_path / name], m)
    assert message in str(info.value)


def test_from_filename_on_the_path(tmp_path: Path) -> None:
    mapping = FILENAME_MAP.replace(
        "pattern: '(?P<size>[^_]+)_(?P<budget>[^_.]+)\\.csv'",
        "pattern: '.*/(?P<size>[^/]+)/(?P<budget>[^/]+)/loss\\.csv', against: path",
    )
    m = _write(tmp_path, {"150M/10B/loss.csv": "step,loss\n1,3.0\n"}, mapping)
    assert import_table("generic", [tmp_path / "150M" / "10B" / "loss.csv"], m).runs == ["150M-10B"]


SPARSE = "model,step,lr,loss\na,1,0.1,3.0\na,2,,2.9\na,3,,2.8\nb,1,,3.1\nb,2,0.2,3.0\n"
SPARSE_MAP = "identity: {run: model, step: step}\nfactors: {learning_rate: lr}\n" + METRIC


def test_forward_fill_within_each_run(tmp_path: Path) -> None:
    files = {"d.csv": SPARSE.replace("b,1,,3.1", "b,1,0.2,3.1").replace("b,2,0.2", "b,2,")}
    m = _write(tmp_path, files, "fill: {forward: [lr]}\n" + SPARSE_MAP)
    ck = import_table("generic", [tmp_path / "d.csv"], m).checkpoints()
    assert _sets(ck, "run", "learning_rate") == {"a": {"0.1"}, "b": {"0.2"}}
    # without fill, the empty cells make the factor vary within the run
    m.write_text(SPARSE_MAP)
    with pytest.raises(
        UserInputError, match=r"factor 'learning_rate' of .* is empty in data row\(s\) 2, 3 of run 'a'"
    ):
        import_table("generic", [tmp_path / "d.csv"], m)


def test_forward_fill_does_not_cross_runs_unless_within_file(tmp_path: Path) -> None:
    data = "model,step,tok,loss\na,1,100,3.0\na,2,,2.9\nb,1,,3.1\nb,2,300,3.0\n"
    mapping = "fill: {forward: [tok]}\nidentity: {run: model, step: step, tokens: tok}\n" + METRIC
    m = _write(tmp_path, {"d.csv": data}, mapping)
    ck = import_table("generic", [tmp_path / "d.csv"], m).checkpoints().set_index(["run", "checkpoint"])
    assert ck.loc[("a", "step2"), "tokens"] == 100 and math.isnan(ck.loc[("b", "step1"), "tokens"])
    m.write_text(mapping.replace("[tok]}", "[tok], within: file}"))
    ck = import_table("generic", [tmp_path / "d.csv"], m).checkpoints().set_index(["run", "checkpoint"])
    assert ck.loc[("b", "step1"), "tokens"] == 100  # filled down the file, across the run boundary


def test_forward_fill_of_the_run_column_itself(tmp_path: Path) -> None:
    data = "model,step,lr,loss\na,1,0.1,3.0\n,2,,2.9\nb,1,0.2,3.1\n,2,,3.0\n"
    m = _write(tmp_path, {"d.csv": data}, "fill: {forward: [model, lr]}\n" + SPARSE_MAP)
    t = import_table("generic", [tmp_path / "d.csv"], m)
    assert t.runs == ["a", "b"] and len(t.checkpoints()) == 4


@pytest.mark.parametrize(
    ("fill", "message"),
    [
        ("fill: {forward: [learning]}\n", "key 'fill.forward' names column(s) 'learning'"),
        ("fill: {forwards: [lr]}\n", "unknown key(s) fill.forwards"),
        ("fill: {forward: [lr], within: checkpoint}\n", "'fill.within' must be 'run' or 'file'"),
        ("fill: [lr]\n", "key 'fill' must be a mapping"),
    ],
)
def test_fill_errors(tmp_path: Path, fill: str, message: str) -> None:
    m = _write(tmp_path, {"d.csv": SPARSE}, fill + SPARSE_MAP)
    with pytest.raises(UserInputError) as info:
        import_table("generic", [tmp_path / "d.csv"], m)
    assert str(info.value).startswith(str(m)) and message in str(info.value)


def test_rename_levels(tmp_path: Path) -> None:
    data = "model,step,data,loss\na,1,fineweb-edu,3.0\nb,1,dclm,3.1\nc,1,c4,3.2\n"
    mapping = (
        "identity: {run: model, step: step}\nfactors: {pretraining_data: data}\n"
        "rename_levels: {pretraining_data: {fineweb-edu: FineWeb-Edu, dclm: DCLM}}\n" + METRIC
    )
    m = _write(tmp_path, {"d.csv": data}, mapping)
    ck = import_table("generic", [tmp_path / "d.csv"], m).checkpoints().set_index("run")
    assert ck["pretraining_data"].to_dict() == {"a": "FineWeb-Edu", "b": "DCLM", "c": "c4"}
    m.write_text(mapping.replace("rename_levels: {pretraining_data:", "rename_levels: {corpus:"))
    with pytest.raises(
        UserInputError, match="'rename_levels.corpus': 'corpus' is not a factor of this mapping"
    ):
        import_table("generic", [tmp_path / "d.csv"], m)
    m.write_text(mapping.replace("{fineweb-edu: FineWeb-Edu, dclm: DCLM}", "[DCLM]"))
    with pytest.raises(UserInputError, match="must map old labels to new ones"):
        import_table("generic", [tmp_path / "d.csv"], m)


@pytest.mark.parametrize(
    ("label", "value"),
    [("1.2B", 1.2e9), ("300M", 3e8), ("7b", 7e9), ("1.5T", 1.5e12), ("20K", 2e4), ("1,000", 1e3),
     ("2e9", 2e9), (" 150 M ", 1.5e8), (42, 42.0), ("", math.nan), (None, math.nan), ("3G", 3e9)],
)  # fmt: skip
def test_parse_count(label: object, value: float) -> None:
    got = parse_count(label)
    assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value)


def test_unparseable_count_names_file_row_and_column(tmp_path: Path) -> None:
    data = "model,size,step,loss\na,150M,1,3.0\nb,big,1,3.1\n"
    mapping = "identity: {run: model, step: step, params: {column: size, parse: count}}\n" + METRIC
    m = _write(tmp_path, {"d.csv": data}, mapping)
    with pytest.raises(UserInputError) as info:
        import_table("generic", [tmp_path / "d.csv"], m)
    text = str(info.value)
    assert text.startswith(str(tmp_path / "d.csv"))
    assert "column 'size', data row 2 (line 3 of the file): 'big' is not a count like 150M" in text
    m.write_text(mapping.replace("parse: count", "parse: size"))
    with pytest.raises(
        UserInputError, match="'identity.params.parse': unknown parser 'size'; use one of count"
    ):
        import_table("generic", [tmp_path / "d.csv"], m)
    m.write_text(mapping.replace("{column: size, parse: count}", "{value: 1, parse: count}"))
    with pytest.raises(UserInputError, match="key 'identity.params' must be a column name"):
        import_table("generic", [tmp_path / "d.csv"], m)


def test_parse_count_on_a_template_and_tokens(tmp_path: Path) -> None:
    data = "model,n,mult,step,tok,loss\na,1.5,B,1,20B,3.0\n"
    mapping = (
        "identity: {run: model, step: step, tokens: {column: tok, parse: count},"
        " params: {template: '{n}{mult}', parse: count}}\n" + METRIC
    )
    m = _write(tmp_path, {"d.csv": data}, mapping)
    row = import_table("generic", [tmp_path / "d.csv"], m).df.iloc[0]
    assert row["params"] == pytest.approx(1.5e9) and row["tokens"] == pytest.approx(2e10)


def test_units_per_metric_wide(tmp_path: Path) -> None:
    data = "model,step,val,hs,hs_nb,val_bt\na,1,3.0,1.1,0.7,4.3\n"
    mapping = (
        "identity: {run: model, step: step}\nmetrics:\n"
        "  val/c4: {column: val, unit: nats/token, estimator: e}\n"
        "  test/hellaswag: {column: hs, unit: bits/byte, estimator: e}\n"
        "  test/piqa: {column: hs_nb, unit: nats/byte, estimator: e}\n"
        "  val/pile: {column: val_bt, unit: bits/token, estimator: e}\n"
    )
    m = _write(tmp_path, {"d.csv": data}, mapping)
    t = import_table("generic", [tmp_path / "d.csv"], m)
    assert dict(zip(t.df["metric"], t.df["unit"], strict=True)) == {
        "val/c4": "nats/token", "test/hellaswag": "bits/byte", "test/piqa": "nats/byte", "val/pile": "bits/token"
    }  # fmt: skip


def test_units_per_metric_long(tmp_path: Path) -> None:
    data = "model,step,task,v\na,1,val_loss,3.0\na,1,hellaswag_bpb,1.1\na,2,val_loss,2.9\na,2,hellaswag_bpb,1.0\n"
    mapping = (
        "identity: {run: model, step: step}\n"
        "long:\n  metric: task\n  value: v\n  estimator: e\n"
        "  rename: {val_loss: val/c4, hellaswag_bpb: test/hellaswag}\n"
        "  unit: nats/token\n  units: {test/hellaswag: bits/byte}\n"
        "  estimators: {hellaswag_bpb: cloze-bpb}\n"
    )
    m = _write(tmp_path, {"d.csv": data}, mapping)
    t = import_table("generic", [tmp_path / "d.csv"], m)
    got = t.df.groupby("metric")[["unit", "estimator"]].first().to_dict("index")
    assert got == {
        "test/hellaswag": {"unit": "bits/byte", "estimator": "cloze-bpb"},
        "val/c4": {"unit": "nats/token", "estimator": "e"},
    }
    m.write_text(mapping.replace("  unit: nats/token\n", ""))
    with pytest.raises(UserInputError, match="metric\\(s\\) val_loss have no unit; add them to long.units"):
        import_table("generic", [tmp_path / "d.csv"], m)
    m.write_text(mapping.replace("units: {test/hellaswag:", "units: {test/hellaswagg:"))
    with pytest.raises(UserInputError, match="'long.units.test/hellaswagg': no metric named"):
        import_table("generic", [tmp_path / "d.csv"], m)
    m.write_text(mapping.replace("units: {test/hellaswag: bits/byte}", "units: {test/hellaswag: bpb}"))
    with pytest.raises(UserInputError, match="gives unit 'bpb'; use one of nats/token"):
        import_table("generic", [tmp_path / "d.csv"], m)


def test_new_units_and_their_plausible_ranges() -> None:
    assert {"nats/byte", "bits/token"} <= set(UNITS) and set(UNITS) == set(PLAUSIBLE_RANGE)
    row = dict(run="r", checkpoint="c", metric="val/c4", kind="validation", value=30.0, estimator="e")
    assert (
        LossTable.from_frame(pd.DataFrame([{**row, "unit": "bits/token"}])).df["unit"].iloc[0] == "bits/token"
    )
    with pytest.raises(LossTableError, match="outside the plausible range"):
        LossTable.from_frame(pd.DataFrame([{**row, "unit": "nats/byte"}]))


@pytest.mark.parametrize(("sep", "suffix"), [(";", ".csv"), ("\t", ".csv"), ("|", ".txt"), (",", ".tsv")])
def test_separator_is_sniffed(tmp_path: Path, sep: str, suffix: str) -> None:
    data = "model,step,loss\na,1,3.0\na,2,2.9\n".replace(",", sep)
    m = _write(tmp_path, {"d" + suffix: data}, "identity: {run: model, step: step}\n" + METRIC)
    assert len(import_table("generic", [tmp_path / ("d" + suffix)], m)) == 2


def test_wrong_separator_says_which_one_to_set(tmp_path: Path) -> None:
    data = "model;step;loss\na;1;3,0\n"
    m = _write(tmp_path, {"d.csv": data}, "read: {sep: ','}\nidentity: {run: model, step: step}\n" + METRIC)
    with pytest.raises(UserInputError) as info:
        import_table("generic", [tmp_path / "d.csv"], m)
    text = str(info.value)
    assert text.startswith(str(tmp_path / "d.csv")) and "looks ;-separated; set read: {sep: ';'}" in text


# ------------------------------------------------------------------------------------------ the fixture
def test_ladder_fixture_imports_with_one_mapping(tmp_path: Path) -> None:
    t = import_table("generic", [str(LADDER / "runs" / "*" / "*.csv")], LADDER / "mapping.yaml")
    assert len(t) == 192 and len(t.runs) == 12 and len(t.checkpoints()) == 96
    assert _sets(t.df, "metric", "unit") == {
        "val/c4": {"nats/token"},
        "test/hellaswag": {"bits/byte"},
    }
    ck = t.checkpoints()
    assert set(ck["pretraining_data"]) == {"FineWeb-Edu", "DCLM"}
    per_size = {
        size: {c: set(g[c]) for c in ("params", "learning_rate", "batch_size")}
        for size, g in ck.groupby("size")
    }
    assert per_size == {
        "150M": {"params": {1.5e8}, "learning_rate": {"0.003"}, "batch_size": {"256"}},
        "400M": {"params": {4e8}, "learning_rate": {"0.002"}, "batch_size": {"512"}},
        "1.2B": {"params": {1.2e9}, "learning_rate": {"0.001"}, "batch_size": {"1024"}},
    }
    assert "dclm-1.2B-20B" in t.runs and (ck["tokens"] > 0).all()


def test_ladder_fixture_is_what_the_generator_writes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_ladder", LADDER / "make_ladder.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.main(tmp_path)
    assert len(written) == 12
    for path in written:
        committed = LADDER / "runs" / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), committed


def test_docs_worked_example_is_the_fixture_mapping() -> None:
    import yaml

    doc = (Path(__file__).parents[1] / "docs" / "mapping.md").read_text()
    block = doc.split("### Worked example")[1].split("```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(block) == yaml.safe_load((LADDER / "mapping.yaml").read_text())
