"""`bayes-l2l import` / `inspect`: the acceptance run on the paper's table, output formats, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.cli import main
from bayes_l2l.io.describe import describe
from bayes_l2l.table import LossTable

LM_EVAL = Path(__file__).parent / "fixtures" / "lm_eval"


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_acceptance_import_then_inspect_paper_table(shared, tmp_path: Path, capsys) -> None:
    src = shared.path("data", "llm_line", "latest_pm_hf.csv")
    out = tmp_path / "t.parquet"
    assert main(["import", "--format", "llm-line", str(src), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "129 checkpoints of 27 runs" in captured.out
    assert "warning:" in captured.err and "one measurement recorded twice" in captured.err
    assert main(["inspect", str(out), "--json"]) == 0
    info = _json(capsys)
    assert info["checkpoints"] == 129  # every row; the repeated measurement is reported, not dropped
    assert info["runs"] == 27
    metrics = {(m["metric"], m["unit"]) for m in info["metrics"]}
    for corpus in ("c4", "pile_uc", "refinedweb", "slimpajama", "fineweb_edu"):
        assert (f"val/{corpus}", "nats/token") in metrics and (f"val/{corpus}", "bits/byte") in metrics
    tasks = {m for m, u in metrics if m.startswith("test/") and u == "nats/token"}
    assert tasks == {
        "test/arc_challenge",
        "test/arc_easy",
        "test/hellaswag",
        "test/winogrande",
        "test/piqa",
        "test/social_iqa",
        "test/commonsense_qa",
        "test/copa",
        "test/openbookqa",
    }
    lv = {f: d["levels"] for f, d in info["factors"].items()}
    assert lv["architecture"] == {"Llama": 61, "olmo": 46, "GPT": 12, "Mamba": 5, "Mamba2": 5}
    assert lv["pretraining_data"] == {
        "Dolma": 46,
        "C4": 26,
        "The Pile": 22,
        "FineWeb-Edu": 18,
        "The Pile Deduped": 17,
    }
    assert lv["tokenizer"] == {"gpt2-HF": 65, "<unknown>": 46, "gpt-neox": 18}
    assert info["missing"]["tokenizer"] == 46 and info["missing"]["step"] == 71
    text = "\n".join(info["warnings"])
    for needle in (
        "duplicate measurement in run HuggingFaceFW/ablation-model-fineweb-edu: data row 26 "
        "(checkpoint 'final') and data row 69 (checkpoint 'step130000')",
        "fits (`bayes-l2l fit`) drop the repeated measurement",
        "16-token windows",
        "off-by-one",
        "HuggingFaceFW/ablation-model-c4 @ step20000, step135000",
        "allenai/OLMo-1B (19), allenai/OLMo-7B (27) record no revision",
    ):
        assert needle in text
    tok = {c["level"]: c for c in info["contrasts"]["tokenizer"]["levels"]}
    assert info["contrasts"]["tokenizer"]["base"] == "gpt2-HF"
    # GPT-Neo (gpt2-HF) vs Pythia (gpt-neox): both labelled GPT on The Pile in this table
    assert tok["gpt-neox"]["matched"] and tok["gpt-neox"]["matched_on"] == [
        {"pretraining_data": "The Pile", "architecture": "GPT"}
    ]
    arch = {c["level"]: c for c in info["contrasts"]["architecture"]["levels"]}
    assert not arch["Mamba"]["matched"] and "pretraining_data" in arch["Mamba"]["confounded_with"]
    # the base is the paper's recipe, as `fit` takes it (not the most common level, Dolma)
    data = info["contrasts"]["pretraining_data"]
    assert data["base"] == "FineWeb-Edu"
    c4 = {c["level"]: c for c in data["levels"]}["C4"]
    assert c4["matched"] and {"tokenizer": "gpt2-HF", "architecture": "Llama"} in c4["matched_on"]
    assert {
        "level": "The Pile Deduped",
        "versus": "C4",
        "matched_on": [{"tokenizer": "gpt2-HF", "architecture": "Llama"}],
    } in data["other_matched_pairs"]
    assert not any(f.startswith("flag_") for f in [*info["contrast_factors"], *info["factors"]])
    assert info["flags"]["flag_intervention_tokenizer"] == {"True": 129}


def test_import_json_and_human_inspect(tmp_path: Path, capsys) -> None:
    out = tmp_path / "lm.csv"
    code = main(
        ["import", "-f", "lm-eval", str(LM_EVAL / "output"), "--tokenizer", str(LM_EVAL / "tokenizer"),
         "--factor", "pretraining_data=toy", "-o", str(out), "--json"]
    )  # fmt: skip
    assert code == 0
    summary = _json(capsys)
    assert summary == {
        "rows": 4,
        "checkpoints": 1,
        "runs": 1,
        "metrics": ["test/toy_arc", "test/toy_qa"],
        "warnings": [],
        "output": str(out),
    }
    assert main(["inspect", str(out)]) == 0
    human = capsys.readouterr().out
    assert "1 checkpoints of 1 runs" in human and "test/toy_arc" in human and "toy (1)" in human
    assert "No factor has two or more levels" in human


def _two_factor_table(tmp_path: Path) -> Path:
    """Data x tokenizer crossed for two levels each, plus a third data level with its own tokenizer."""
    rows = []
    cells = [("C4", "a"), ("C4", "b"), ("Pile", "a"), ("Pile", "b"), ("Dolma", "c")]
    for i, (data, tok) in enumerate(cells):
        for ck in ("s1", "s2", "s3"):
            rows.append(
                dict(run=f"r{i}", checkpoint=ck, pretraining_data=data, tokenizer=tok, metric="val/c4",
                     kind="validation", value=3.0 + i / 10, unit="nats/token", estimator="e")
            )  # fmt: skip
    path = tmp_path / "crossed.parquet"
    LossTable.from_frame(pd.DataFrame(rows)).save(path)
    return path


def test_describe_matched_and_confounded(tmp_path: Path) -> None:
    info = describe(LossTable.read(_two_factor_table(tmp_path)))
    assert info["checkpoints"] == 15 and info["runs"] == 5
    assert info["factors"]["pretraining_data"]["levels"] == {"C4": 6, "Pile": 6, "Dolma": 3}
    data = {c["level"]: c for c in info["contrasts"]["pretraining_data"]["levels"]}
    assert info["contrasts"]["pretraining_data"]["base"] == "C4"  # most common, ties alphabetical
    assert data["Pile"]["matched"] and {"tokenizer": "a"} in data["Pile"]["matched_on"]
    assert not data["Dolma"]["matched"] and data["Dolma"]["confounded_with"] == ["tokenizer"]


def test_human_inspect_shows_contrasts(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(_two_factor_table(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "Pile vs C4" in out and "matched" in out
    assert "Dolma vs C4" in out and "confounded with tokenizer" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "-f", "nope", "x.csv", "-o", "{tmp}/o.parquet"], "unknown format 'nope'"),
        (["import", "-f", "gemstones", "{tmp}/missing.csv", "-o", "{tmp}/o.parquet"], "no such file"),
        (
            ["import", "-f", "gemstones", "{tmp}/missing.csv", "-o", "{tmp}/o.xlsx"],
            "unknown output format '.xlsx'",
        ),
        (
            ["import", "-f", "lm-eval", "{fixture}", "-o", "{tmp}/o.csv", "--factor", "oops"],
            "expected COLUMN=VALUE",
        ),
        (
            ["import", "-f", "gemstones", "{fixture}", "-o", "{tmp}/o.csv", "--run", "x"],
            "does not take --run",
        ),
        (["inspect", "{tmp}/missing.parquet"], "no such file"),
        (["import", "-f", "lm-eval", "-o", "{tmp}/o.csv"], "Missing argument 'paths'"),
        (["import", "{tmp}/x.csv", "-o", "{tmp}/o.csv"], "Missing option '--format'"),
        (["inspect", "{tmp}/t.parquet", "--bogus"], "No such option: --bogus"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["inspect", "{tmp}/[nats/token].parquet"], "[nats/token].parquet: no such file"),
    ],
)
def test_cli_errors_exit_2_without_traceback(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    args = [a.format(tmp=tmp_path, fixture=LM_EVAL / "output") for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_usage_errors_show_the_usage_line(capsys) -> None:
    assert main(["import", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "Usage: bayes-l2l import [OPTIONS]" in err and "No such option: --bogus" in err
    assert "Traceback" not in err


def test_import_refuses_to_overwrite_unless_told(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.parquet"
    out.write_bytes(b"user data")
    argv = ["import", "-f", "lm-eval", str(LM_EVAL / "output"), "-o", str(out)]
    assert main(argv) == 2
    assert "exists already; choose another output path or pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"user data"
    assert main([*argv, "--overwrite"]) == 0
    assert len(LossTable.read(out)) == 2
    assert LossTable.read(out).warnings  # the no-tokenizer warning travels with the parquet file


# ------------------------------------------------------------------------------------------ output paths
LADDER = Path(__file__).parents[1] / "examples" / "ladder"


def test_import_ladder_with_a_quoted_glob(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ladder.parquet"
    argv = [
        "import",
        "-f",
        "generic",
        str(LADDER / "runs" / "*" / "*.csv"),
        "-m",
        str(LADDER / "mapping.yaml"),
    ]
    assert main([*argv, "-o", str(out), "--json"]) == 0
    summary = _json(capsys)
    assert summary["checkpoints"] == 96 and summary["runs"] == 12
    assert summary["metrics"] == ["test/hellaswag", "val/c4"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{tmp}", "-o {tmp}: is a folder; name a file such as {tmp}/table.parquet"),
        (
            "{tmp}/newdir",
            "-o {tmp}/newdir: has no file suffix; name a file such as {tmp}/newdir/table.parquet",
        ),
        ("{tmp}/afile/x.parquet", "-o {tmp}/afile/x.parquet: {tmp}/afile is a file, not a folder"),
        ("{tmp}/afile/deeper/x.parquet", "{tmp}/afile is a file, not a folder"),
        ("/proc/x.parquet", "-o /proc/x.parquet: cannot create files in /proc"),
    ],
)
def test_import_checks_the_output_path_before_reading(
    tmp_path: Path, capsys, target: str, message: str
) -> None:
    (tmp_path / "afile").write_text("x")
    # the input does not exist: the output path is refused first
    argv = ["import", "-f", "generic", str(tmp_path / "missing.csv"), "-o", target.format(tmp=tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in " ".join(err.split()), err
    assert "Traceback" not in err


def test_check_writable(tmp_path: Path) -> None:
    from bayes_l2l.errors import UserInputError
    from bayes_l2l.output_paths import check_writable

    assert (
        check_writable(tmp_path / "new" / "deeper" / "t.parquet", "-o")
        == tmp_path / "new" / "deeper" / "t.parquet"
    )
    assert not (tmp_path / "new").exists()  # nothing is created
    existing = tmp_path / "t.csv"
    existing.write_text("x")
    assert check_writable(existing) == existing and existing.read_text() == "x"
    assert list(tmp_path.iterdir()) == [existing]  # the write test leaves no file behind
    with pytest.raises(UserInputError, match=r"^--posterior .*: is a folder"):
        check_writable(tmp_path, "--posterior")
