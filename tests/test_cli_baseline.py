"""`bayes-l2l simulate` and `bayes-l2l baseline` through bayes_l2l.cli.main (exit codes, files, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_baseline import llm_line_table

from bayes_l2l.cli import main
from bayes_l2l.cli.common import app
from bayes_l2l.simulate import SimulationSpec, read_truth
from bayes_l2l.table import LossTable


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def sim_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "sim.parquet"
    assert main(["simulate", "-o", str(out), "--seed", "3", "--json"]) == 0
    capsys.readouterr()
    return out


def test_simulate_writes_table_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.parquet"
    assert main(["simulate", "-o", str(out), "--seed", "1", "--json"]) == 0
    summary = _json(capsys)
    truth_file = tmp_path / "t.truth.json"
    assert summary["table"] == str(out) and summary["truth"] == str(truth_file)
    assert summary["n_runs"] == 12 and summary["n_checkpoints"] == 240
    table = LossTable.read(out)
    truth = read_truth(truth_file)
    assert truth.seed == 1 and len(table.df) == summary["n_rows"]
    assert {g["factor"] for g in summary["gaps"]} == {"pretraining_data", "architecture", "size"}
    # human-readable output names the files and the planted gaps
    out2 = tmp_path / "t2.csv"
    assert main(["simulate", "-o", str(out2)]) == 0
    text = capsys.readouterr().out
    assert "t2.truth.json" in text and "true gap" in text
    assert LossTable.read(out2).df["run"].nunique() == 12


def test_simulate_refuses_to_overwrite(sim_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sim_table.read_bytes()
    assert main(["simulate", "-o", str(sim_table), "--seed", "9"]) == 2
    err = capsys.readouterr().err
    assert "exists already" in err and "--overwrite" in err and "Traceback" not in err
    assert sim_table.read_bytes() == before
    # the truth file alone also blocks (nothing is written half-way)
    other = sim_table.with_name("other.parquet")
    other.with_name("other.truth.json").write_text("{}")
    assert main(["simulate", "-o", str(other)]) == 2
    assert not other.exists()
    assert main(["simulate", "-o", str(sim_table), "--seed", "9", "--overwrite", "--json"]) == 0
    assert _json(capsys)["seed"] == 9 and sim_table.read_bytes() != before


def test_simulate_spec_file_and_print_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        "factors:\n  pretraining_data: [web, code]\neffects:\n  pretraining_data:\n    code: {E_y: 0.2}\n"
        "runs_per_condition: 1\ncheckpoints_per_run: 6\nsizes: [1.6e8]\n"
    )
    out = tmp_path / "s.parquet"
    assert main(["simulate", "-o", str(out), "--spec", str(spec_path), "--json"]) == 0
    summary = _json(capsys)
    assert summary["n_runs"] == 2 and summary["n_checkpoints"] == 12
    assert summary["gaps"][0]["mean_gap"] == pytest.approx(0.2)
    assert main(["simulate", "--spec", str(spec_path), "--print-spec"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert SimulationSpec.from_dict(printed).effects == {"pretraining_data": {"code": {"E_y": 0.2}}}


@pytest.mark.parametrize(
    ("spec_text", "message"),
    [
        ("runs_per_conditon: 2\n", "unknown field(s) runs_per_conditon"),
        ("effects:\n  tokenizer:\n    gpt2: {E_y: 0.1}\n", "no such factor"),
        ("factors: [a, b]\n", "factors must map"),
        ("- not a mapping\n", "must be a mapping"),
        ("factors: {a: [x\n", "not valid YAML"),
    ],
)
def test_simulate_bad_spec_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_text: str, message: str
) -> None:
    spec_path = tmp_path / "bad.yaml"
    spec_path.write_text(spec_text)
    assert main(["simulate", "-o", str(tmp_path / "x.parquet"), "--spec", str(spec_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(spec_path) in err and "Traceback" not in err


def test_simulate_needs_output_and_known_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate"]) == 2
    assert "-o" in capsys.readouterr().err
    assert main(["simulate", "-o", str(tmp_path / "t.xlsx")]) == 2
    assert "use .parquet or .csv" in capsys.readouterr().err


def test_baseline_json_by_factor(sim_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["baseline", str(sim_table), "--x", "val/c4", "--y", "test/hellaswag", "--by", "pretraining_data"]
    assert main([*args, "--n-starts", "6", "--json"]) == 0
    out = _json(capsys)
    groups = {g["group"]: g for g in out["groups"]}
    assert set(groups) == {"web", "code", "books"}
    for g in groups.values():
        assert g["status"] == "ok" and set(g["fits"]) == {"free", "two_stage"}
        assert set(g["fits"]["free"]["params"]) == {"K", "kappa", "Ex", "Ey"}
    assert groups["web"]["n"] == 160


def test_baseline_where_method_and_rich_output(sim_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["baseline", str(sim_table), "--x", "val/c4", "--y", "test/hellaswag", "--by", "size"]
    assert (
        main([*args, "--where", "pretraining_data=web", "--where", "architecture=llama", "--method", "all"])
        == 0
    )
    text = capsys.readouterr().out
    for label in ("160M", "410M", "1B", "free", "two_stage", "power_law", "linear", "SSE"):
        assert label in text


def test_baseline_bad_input_exit_2(sim_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["baseline", str(sim_table), "--x", "val/c4", "--y", "test/hellaswag"]
    cases = [
        ([*base, "--where", "pretraining_data"], "expected COLUMN=VALUE"),
        ([*base, "--where", "pretraining_data=wiki"], "no rows match"),
        ([*base, "--by", "tokenizer"], "not a column"),
        ([*base, "--method", "mcmc"], "--method"),
        (["baseline", str(sim_table), "--x", "val/pile", "--y", "test/hellaswag"], "not in the table"),
        (
            ["baseline", str(sim_table.with_name("missing.parquet")), "--x", "val/c4", "--y", "test/a"],
            "no such file",
        ),
        ([*base, "--unit", "bits/byte"], "has no bits/byte values"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


# ------------------------------------------------------------------------------------------ the paper's table
def _paper_parquet(shared, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The paper's table as parquet, via `bayes-l2l import` where it exists, else the test reader."""
    csv = shared.path("data", "llm_line", "latest_pm_hf.csv")
    out = tmp_path / "t.parquet"
    if any(c.name == "import" for c in app.registered_commands):
        assert main(["import", "--format", "llm-line", str(csv), "-o", str(out)]) == 0
        capsys.readouterr()
    else:
        llm_line_table(csv).save(out)
    return out


def test_acceptance_paper_table_llama(shared, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _paper_parquet(shared, tmp_path, capsys)
    args = ["baseline", str(table), "--x", "val/fineweb_edu", "--y", "val/c4", "--by", "pretraining_data"]
    assert main([*args, "--where", "architecture=Llama", "--json"]) == 0
    groups = _json(capsys)["groups"]
    assert len(groups) == 3
    assert all(len(g["runs"]) == 1 and g["fits"]["free"]["at_bounds"] for g in groups)
    assert main([*args, "--where", "architecture=Llama"]) == 0
    text = capsys.readouterr().out
    assert "*" in text and "upper bound" in text


def test_acceptance_paper_table_everything(
    shared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --where: every pretraining-data group is fitted or skipped with its reason, nothing crashes;
    by run, the single-checkpoint hub models are skipped with the reason."""
    table = _paper_parquet(shared, tmp_path, capsys)
    base = ["baseline", str(table), "--x", "val/fineweb_edu", "--y", "val/c4", "--n-starts", "4"]
    assert main([*base, "--by", "pretraining_data", "--json"]) == 0
    groups = _json(capsys)["groups"]
    assert len(groups) >= 4 and all(g["status"] in ("ok", "partial", "skipped") for g in groups)
    assert main([*base, "--by", "run", "--method", "linear", "--json"]) == 0
    by_run = {g["group"]: g for g in _json(capsys)["groups"]}
    pythia = by_run["EleutherAI/pythia-160m"]
    assert pythia["status"] == "skipped" and "1 point(s)" in pythia["skipped"]["linear"]
    assert by_run["HuggingFaceFW/ablation-model-c4"]["status"] == "ok"
    assert main([*base, "--by", "run", "--method", "linear"]) == 0
    assert "skipped" in capsys.readouterr().out


def test_paper_table_averages_need_allow_mixed(
    shared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """val/avg5 mixes SlimPajama's 16-token windows with 50-token windows: refused unless --allow-mixed."""
    table = _paper_parquet(shared, tmp_path, capsys)
    args = ["baseline", str(table), "--x", "val/avg5", "--y", "test/avg7", "--where", "architecture=Llama"]
    assert main(args) == 2
    assert "--allow-mixed" in capsys.readouterr().err
    assert main([*args, "--by", "pretraining_data", "--allow-mixed", "--n-starts", "6", "--json"]) == 0
    groups = _json(capsys)["groups"]
    assert len(groups) == 3 and all(g["fits"]["free"]["warnings"] for g in groups)
