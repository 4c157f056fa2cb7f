"""`bayes-l2l survey` / `bl.survey` (issue 26): every loss pair of a table, one posterior each, resumable,
a grid figure, a ranking of the factor's levels across pairs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bayes_l2l as bl
from bayes_l2l.cli import main
from bayes_l2l.errors import UserInputError
from bayes_l2l.simulate import SimulationSpec, simulate_table
from bayes_l2l.surveys import PairResult, default_pairs, pair_folder, ranking, read_survey
from bayes_l2l.table import LossTable


@pytest.fixture(scope="module")
def table() -> LossTable:
    """A simulated table (code shifts E_y by +0.2) with a second validation corpus and a second task, each
    an affine transform of the simulated ones (so every pair follows the law)."""
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"]},
        effects={"pretraining_data": {"code": {"E_y": 0.2}}},
        runs_per_condition=2,
        checkpoints_per_run=8,
        sizes=[160e6],
    )
    t, _ = simulate_table(spec, seed=5)
    rng = np.random.default_rng(0)
    extra = []
    for source, target, scale, shift in (
        ("val/c4", "val/wiki", 1.1, 0.1),
        ("test/hellaswag", "test/piqa", 0.9, 0.3),
    ):
        rows = t.df[t.df["metric"] == source].copy()
        rows["metric"] = target
        rows["value"] = rows["value"] * scale + shift + rng.normal(0, 0.003, len(rows))
        extra.append(rows)
    return LossTable.from_frame(pd.concat([t.df, *extra], ignore_index=True), "sim_survey")


def test_default_pairs_every_validation_metric_against_every_other_metric(table):
    pairs = default_pairs(table)
    assert ("val/c4", "val/wiki") in pairs and ("val/wiki", "val/c4") in pairs
    assert ("val/c4", "test/piqa") in pairs and all(x.startswith("val/") for x, _ in pairs)
    assert all(x != y for x, y in pairs) and len(pairs) == 2 * 3
    assert default_pairs(table, x=["val/c4"], y=["test/piqa"]) == [("val/c4", "test/piqa")]
    with pytest.raises(UserInputError, match="val/nowhere"):
        default_pairs(table, x=["val/nowhere"])


def test_survey_fits_each_pair_once_and_resumes(table, tmp_path):
    out = tmp_path / "survey"
    lines: list[str] = []
    res = bl.survey(table, "pretraining_data", out, y=["test/hellaswag", "test/piqa"], method="approx",
                    progress=lines.append)  # fmt: skip
    assert res["n_pairs"] == 4 and len(res["pairs"]) == 4
    for p in res["pairs"]:
        assert p["x_unit"] == "nats/token" and p["contrasts"] and p["contrasts"][0]["level"] == "web"
        assert (pair_folder(out, p["x"], p["y"]) / "fit.json").exists() and not p["reused"]
    assert (out / "survey.json").exists() and (out / "grid.png").stat().st_size > 10_000
    html = (out / "report.html").read_text()
    assert "Ranking across pairs" in html and "Every pair" in html and "data:image/png;base64" in html
    assert read_survey(out)["pairs"] == json.loads(json.dumps(res["pairs"]))
    (code,) = res["ranking"]
    assert code["level"] == "web" and code["pairs"] == 4
    assert any(line.startswith("[4/4]") for line in lines)
    again = bl.survey(table, "pretraining_data", out, y=["test/hellaswag", "test/piqa"], method="approx")
    assert all(p["reused"] for p in again["pairs"])
    assert [c["gap_mean"] for p in again["pairs"] for c in p["contrasts"]] == pytest.approx(
        [c["gap_mean"] for p in res["pairs"] for c in p["contrasts"]], rel=1e-9, nan_ok=True
    )
    one = bl.load(pair_folder(out, "val/c4", "test/piqa"))
    page = one.report(tmp_path / "one.html", loo=False).read_text()
    assert "Across the survey of pretraining_data" in page and "This pair in the survey" in page
    assert "<code>test/piqa</code>" in page.split("This pair in the survey")[1]


def test_pairs_that_cannot_be_fitted_are_shown_not_dropped(table, tmp_path):
    flat = table.df.copy()
    flat.loc[flat["metric"] == "test/piqa", "value"] = 0.9  # a constant y: refused for that pair only
    res = bl.survey(LossTable.from_frame(flat, "flat"), "pretraining_data", tmp_path / "s", x=["val/c4"],
                    y=["test/hellaswag", "test/piqa"], method="approx")  # fmt: skip
    status = {p["y"]: p["status"] for p in res["pairs"]}
    assert status["test/piqa"] == "error" and status["test/hellaswag"] in ("ok", "in doubt")
    assert "constant" in next(p["error"] for p in res["pairs"] if p["y"] == "test/piqa")


def test_a_mean_gap_outside_its_own_interval_puts_the_pair_in_doubt():
    from bayes_l2l.surveys import heavy_tailed

    ok = {"level": "L", "gap_mean": 0.1, "gap_hdi90": [0.0, 0.2]}
    assert heavy_tailed([ok]) is None
    assert "heavy-tailed" in heavy_tailed([ok, {"level": "M", "gap_mean": -1176.0, "gap_hdi90": [-0.2, 1.5]}])


def test_ranking_counts_only_standing_decisions():
    pairs = [
        PairResult("a", "b", "f", "ok", [{"level": "L", "decision": "shift", "gap_mean": 0.1}], y_unit="nats/token"),
        PairResult("a", "c", "f", "ok", [{"level": "L", "decision": "undecided", "gap_mean": 0.0}], y_unit="nats/token"),
        PairResult("a", "d", "f", "ok", [{"level": "L", "decision": "in doubt (sampler)", "gap_mean": 0.5}]),
    ]  # fmt: skip
    (row,) = ranking(pairs).to_dict(orient="records")
    assert row["pairs"] == 3 and row["decided"] == 2 and row["share_shift"] == 0.5
    assert row["median_gap"] == pytest.approx(0.05)


def test_survey_command_prints_the_ranking_and_writes_json(table, tmp_path, capsys):
    path = table.save(tmp_path / "t.parquet")
    out = tmp_path / "sv"
    argv = ["survey", str(path), "--factor", "pretraining_data", "--x", "val/c4", "--y", "test/piqa",
            "--method", "approx", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "levels ranked across pairs" in text and "web" in text
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"][0]["reused"]
    assert main(["survey", str(path), "--factor", "nope", "-o", str(out)]) == 2
    two = [*argv[:-1], str(tmp_path / "two"), "--y", "test/hellaswag", "--jobs", "2", "--json"]
    assert main(two) == 0  # two spawned worker processes
    assert len(json.loads(capsys.readouterr().out)["pairs"]) == 2


def test_the_job_array_path_gives_the_inline_results(table, tmp_path):
    """--executor local runs the pairs as a submitit job array (what --executor slurm submits); the pairs
    land in the same folders, so an inline call afterwards reuses every one."""
    pytest.importorskip("submitit")
    out = tmp_path / "array"
    kw = {"x": ["val/c4"], "y": ["test/hellaswag", "test/piqa"], "method": "approx"}
    res = bl.survey(table, "pretraining_data", out, executor="local", jobs=2, **kw)
    assert res["executor"] == "local" and len(res["pairs"]) == 2
    assert all(p["status"] in ("ok", "in doubt") and p["contrasts"] for p in res["pairs"])
    assert (out / "_jobs").is_dir() and (out / "grid.png").exists()
    again = bl.survey(table, "pretraining_data", out, **kw)
    assert all(p["reused"] for p in again["pairs"])
    assert [c["gap_mean"] for p in again["pairs"] for c in p["contrasts"]] == pytest.approx(
        [c["gap_mean"] for p in res["pairs"] for c in p["contrasts"]], rel=1e-9, nan_ok=True
    )
    queued = bl.survey(table, "pretraining_data", tmp_path / "queued", executor="local", wait=False, **kw)
    assert queued["n_pairs"] == 2 and len(queued["job_ids"]) == 1 and "pairs" not in queued


def test_slurm_needs_a_partition_and_the_cli_forwards_fit_options(table, tmp_path, capsys):
    path = table.save(tmp_path / "t.parquet")
    argv = ["survey", str(path), "--factor", "pretraining_data", "--x", "val/c4", "--y", "test/piqa",
            "-o", str(tmp_path / "sv")]  # fmt: skip
    assert main([*argv, "--executor", "slurm"]) == 2
    assert "--partition" in capsys.readouterr().err
    assert main([*argv, "--executor", "k8s"]) == 2
    assert main([*argv, "--method", "approx", "--min-fraction", "0.2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fit_options"]["min_fraction"] == 0.2 and res["pairs"][0]["status"] != "error"
