"""Generic CSV/parquet import with a YAML column mapping, and the format registry (import_table)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.io import FORMATS, import_table
from bayes_l2l.table import LossTable

WIDE_CSV = """model,rev,step,c4_bits,c4_n,c4_se,arc,data
m1,s1,100,5.0,1000,0.01,2.1,C4
m1,s2,200,4.6,1000,0.01,,C4
m2,final,,4.4,1000,0.02,1.9,Pile
"""
WIDE_YAML = """
identity:
  run: model
  checkpoint: rev
  step: step
factors:
  pretraining_data: data
  tokenizer: {value: gpt2}
metrics:
  val/c4:
    column: c4_bits
    unit: nats/token
    estimator: "mylab:ctx2048;token-pooled"
    transform: bits_to_nats
    n: c4_n
    stderr: c4_se
  test/arc_easy:
    column: arc
    unit: nats/token
    estimator: "mylab:cloze-correct;sum-nll/tokens"
"""
LONG_CSV = """model,step,task,loglik,n
m1,100,arcc,-2.0,100
m1,100,piqa,-1.5,50
m1,200,arcc,-1.8,100
m1,200,mmlu_x,-1.2,10
m1,200,piqa,,50
"""
LONG_YAML = """
identity: {run: model, step: step}
factors: {architecture: {value: Llama}}
long:
  metric: task
  value: loglik
  transform: negate
  unit: nats/token
  estimator: "x:y"
  n: n
  kind: test
  rename: {arcc: test/arc_challenge}
  drop: [mmlu_x]
"""


def _files(tmp_path: Path, data: str, mapping: str, name: str = "data.csv") -> tuple[Path, Path]:
    d, m = tmp_path / name, tmp_path / "map.yaml"
    d.write_text(data)
    m.write_text(mapping)
    return d, m


def test_wide_mapping(tmp_path: Path) -> None:
    d, m = _files(tmp_path, WIDE_CSV, WIDE_YAML)
    t = import_table("generic", [d], m)
    c4 = t.df[t.df["metric"] == "val/c4"].set_index("checkpoint")
    assert c4.loc["s1", "value"] == pytest.approx(5.0 * math.log(2))
    assert c4.loc["s1", "n"] == 1000 and c4.loc["final", "stderr"] == 0.02
    assert set(t.df["tokenizer"]) == {"gpt2"}
    assert set(t.df.loc[t.df["run"] == "m2", "pretraining_data"]) == {"Pile"}
    assert t.df["value"].notna().all()
    assert any(
        "test/arc_easy (nats/token): no value for 1 checkpoint(s)" in w and "m1 @ s2" in w for w in t.warnings
    )


def test_long_mapping(tmp_path: Path) -> None:
    d, m = _files(tmp_path, LONG_CSV, LONG_YAML)
    t = import_table("generic", [d], m)
    assert sorted(t.metrics) == ["test/arc_challenge", "test/piqa"]
    assert sorted(t.df["checkpoint"].unique()) == ["step100", "step200"]
    arc = t.df[(t.df["metric"] == "test/arc_challenge") & (t.df["checkpoint"] == "step200")].iloc[0]
    assert arc["value"] == pytest.approx(1.8) and arc["architecture"] == "Llama"
    assert any("listed in long.drop skipped" in w for w in t.warnings)
    assert any("1 row(s) with an empty value left out" in w for w in t.warnings)


def test_long_mapping_with_unit_and_estimator_columns(tmp_path: Path) -> None:
    data = "run,ckpt,metric,value,u,e\nr,c,val/c4,3.0,nats/token,a\nr,c,val/c4,1.0,bits/byte,b\n"
    mapping = (
        "identity: {run: run, checkpoint: ckpt}\n"
        "long: {metric: metric, value: value, unit: {column: u}, estimator: {column: e}}\n"
    )
    d, m = _files(tmp_path, data, mapping)
    t = import_table("table", [d], m)
    assert sorted(zip(t.df["unit"], t.df["estimator"], strict=True)) == [
        ("bits/byte", "b"),
        ("nats/token", "a"),
    ]


def test_perplexity_transform_and_parquet_input(tmp_path: Path) -> None:
    src = tmp_path / "ppl.parquet"
    pd.DataFrame({"run": ["r"], "ckpt": ["c"], "ppl": [20.0]}).to_parquet(src)
    m = tmp_path / "map.yaml"
    m.write_text(
        "identity: {run: run, checkpoint: ckpt}\n"
        "metrics:\n  val/wikitext:\n"
        "    {column: ppl, unit: nats/token, estimator: e, transform: perplexity_to_nats}\n"
    )
    t = import_table("generic", [src], m)
    assert t.df["value"].iloc[0] == pytest.approx(math.log(20.0))


def test_without_mapping_reads_a_loss_table_as_is(tmp_path: Path) -> None:
    d, m = _files(tmp_path, WIDE_CSV, WIDE_YAML)
    t = import_table("generic", [d], m)
    out = t.save(tmp_path / "t.csv")
    again = import_table("table", [out])
    pd.testing.assert_frame_equal(again.df, t.df, check_dtype=False)
    with pytest.raises(UserInputError, match=r"missing required column\(s\) run, checkpoint"):
        import_table("table", [d])


MAPPING_ERRORS = [
    ("not yaml", "identity: [unclosed", "not valid YAML"),
    ("not a mapping", "- a\n- b\n", "must be a YAML mapping"),
    ("typo at top", WIDE_YAML.replace("factors:", "factor:"), "unknown key(s) factor; allowed here"),
    (
        "typo in metric",
        WIDE_YAML.replace("transform:", "transfrom:"),
        "unknown key(s) metrics.val/c4.transfrom",
    ),
    ("no run", WIDE_YAML.replace("  run: model\n", ""), "key 'identity.run' is required"),
    (
        "no checkpoint or step",
        WIDE_YAML.replace("  checkpoint: rev\n  step: step\n", ""),
        "needs 'checkpoint' or 'step'",
    ),
    (
        "both metrics and long",
        WIDE_YAML + LONG_YAML.split("factors:")[1].split("\n", 1)[1],
        "exactly one of 'metrics'",
    ),
    (
        "missing column",
        WIDE_YAML.replace("column: arc", "column: arc_loss"),
        "key 'metrics.test/arc_easy.column' names column 'arc_loss'",
    ),
    (
        "bad unit",
        WIDE_YAML.replace(
            'unit: nats/token\n    estimator: "mylab:cloze', 'unit: nats\n    estimator: "mylab:cloze'
        ),
        "unit 'nats' is not one of nats/token, bits/byte",
    ),
    (
        "bad transform",
        WIDE_YAML.replace("bits_to_nats", "bits2nats"),
        "unknown transform 'bits2nats'; use one of none, bits_to_nats",
    ),
    (
        "non-canonical metric id",
        WIDE_YAML.replace("val/c4:", "C4 loss:"),
        "key 'metrics.C4 loss': 'C4 loss' is not a canonical metric id",
    ),
    (
        "missing estimator",
        WIDE_YAML.replace('    estimator: "mylab:cloze-correct;sum-nll/tokens"\n', ""),
        "key 'metrics.test/arc_easy.estimator' is required",
    ),
    (
        "factor named like a column",
        WIDE_YAML.replace("pretraining_data: data", "value: data"),
        "'value' is a table column, not a factor",
    ),
]


@pytest.mark.parametrize(("case", "mapping", "message"), MAPPING_ERRORS, ids=[e[0] for e in MAPPING_ERRORS])
def test_mapping_errors_name_the_mapping_file_and_key(
    tmp_path: Path, case: str, mapping: str, message: str
) -> None:
    d, m = _files(tmp_path, WIDE_CSV, mapping)
    with pytest.raises(UserInputError) as info:
        import_table("generic", [d], m)
    text = str(info.value)
    assert text.startswith(str(m)), text
    assert message in text, text


def test_long_mapping_errors(tmp_path: Path) -> None:
    d, m = _files(
        tmp_path, LONG_CSV, LONG_YAML.replace("  kind: test\n", "").replace("  drop: [mmlu_x]\n", "")
    )
    with pytest.raises(
        UserInputError, match="metric name\\(s\\) mmlu_x, piqa in column 'task' are not canonical ids"
    ):
        import_table("generic", [d], m)
    d, m = _files(tmp_path, LONG_CSV, LONG_YAML.replace("arcc: test/arc_challenge", "arcc: ARC"))
    with pytest.raises(UserInputError, match="maps 'arcc' to 'ARC', which is not a canonical metric id"):
        import_table("generic", [d], m)


def test_data_file_errors(tmp_path: Path) -> None:
    d, m = _files(tmp_path, WIDE_CSV, WIDE_YAML)
    with pytest.raises(UserInputError, match="no such mapping file"):
        import_table("generic", [d], tmp_path / "none.yaml")
    with pytest.raises(UserInputError, match="no such file"):
        import_table("generic", [tmp_path / "none.csv"], m)
    xls = tmp_path / "data.xlsx"
    xls.write_text("x")
    with pytest.raises(UserInputError, match="unknown file type '.xlsx'"):
        import_table("generic", [xls], m)
    bad = tmp_path / "bad.csv"
    bad.write_text(WIDE_CSV.replace("4.6", "4.6 bits"))
    with pytest.raises(
        UserInputError, match=r"column 'c4_bits' \(metric val/c4\), data row 2: '4.6 bits' is not a number"
    ):
        import_table("generic", [bad], m)


# ------------------------------------------------------------------------------------------- registry
def test_registry_lists_formats_on_unknown_format() -> None:
    assert {"llm-line", "gadre", "gemstones", "lm-eval", "table", "generic"} <= set(FORMATS)
    with pytest.raises(UserInputError, match="unknown format 'csv'; choose one of: llm-line, gadre"):
        import_table("csv", ["x.csv"])
    with pytest.raises(UserInputError, match="give at least one input path"):
        import_table("generic", [])


def test_registry_refuses_options_a_format_does_not_take(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="--format gemstones does not take --tokenizer"):
        import_table("gemstones", [tmp_path / "x.csv"], tokenizer="tok")
    with pytest.raises(UserInputError, match="--format llm-line does not take --mapping"):
        import_table("llm-line", [tmp_path / "x.csv"], mapping=tmp_path / "m.yaml")


def test_several_paths_are_concatenated_and_factors_added(tmp_path: Path) -> None:
    d1, m = _files(tmp_path, WIDE_CSV, WIDE_YAML, "a.csv")
    d2 = tmp_path / "b.csv"
    d2.write_text(WIDE_CSV.replace("m1", "m3").replace("m2", "m4"))
    t = import_table("generic", [d1, d2], m, factors={"seed": "0"})
    assert t.runs == ["m1", "m2", "m3", "m4"]
    assert set(t.df["seed"]) == {"0"}
    assert str(d1) in t.source and str(d2) in t.source
    with pytest.raises(UserInputError, match="duplicate checkpoint rows"):
        import_table("generic", [d1, d1], m)
    with pytest.raises(UserInputError, match="--factor value=x: 'value' is a table column"):
        import_table("generic", [d1], m, factors={"value": "x"})
    with pytest.raises(UserInputError, match="already has factor 'pretraining_data'"):
        import_table("generic", [d1], m, factors={"pretraining_data": "C4"})


def test_result_is_a_loss_table(tmp_path: Path) -> None:
    d, m = _files(tmp_path, WIDE_CSV, WIDE_YAML)
    assert isinstance(import_table("generic", [d], m), LossTable)
