"""benchmarks/accuracy.py: the leave-late-out split (no fits)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
spec = importlib.util.spec_from_file_location("accuracy_benchmark", SCRIPT)
accuracy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(accuracy)


def test_split_fits_the_highest_x_70_percent_of_each_run() -> None:
    pts = pd.DataFrame(
        {
            "run": ["a"] * 10 + ["b"] * 17,
            "x": [*range(10, 0, -1), *[4.0 - 0.1 * i for i in range(17)]],
        }
    ).sample(frac=1.0, random_state=0)
    split = accuracy.split_runs(pts)
    for run, n_fit in (("a", 7), ("b", 12)):  # round(0.7 * 10), round(0.7 * 17)
        g = split[split["run"] == run]
        assert g["fit"].sum() == n_fit
        assert g.loc[g["fit"], "x"].min() > g.loc[~g["fit"], "x"].max()  # held out = the lowest x (latest)


def test_the_fit_is_the_library_robust_fit_with_every_attempt_recorded() -> None:
    from bayes_l2l.design import Question
    from bayes_l2l.model import ModelConfig
    from bayes_l2l.sampler_policy import UserSettings
    from bayes_l2l.simulate import SimulationSpec, simulate_table

    spec = SimulationSpec(factors={}, effects={}, runs_per_condition=3, checkpoints_per_run=10, sizes=[160e6])
    table, _ = simulate_table(spec, 0)
    q = Question(x=spec.x_metric, y=spec.y_metric, factors=[])
    # one chain: R-hat cannot be checked, so the gate fails every time and the policy retries (the user's
    # chains, draws, warm-up and acceptance stay; the mass matrix is what is left to change)
    user = UserSettings(chains=1, draws=60, warmup=60, target_accept=0.9)
    sampler = {"user": user, "config": ModelConfig()}
    res = accuracy.evaluate("tiny", table, q, sampler, lambda msg: None)
    assert len(res["attempts"]) >= 2 and not any(a["ok"] for a in res["attempts"])
    assert all(a["target_accept"] == 0.9 for a in res["attempts"])
    assert "mass dense" in res["attempts"][1]["settings"]
    assert len(res["runs"]) == 3 and all(r["bayes_mae"] >= 0 for r in res["runs"])
    md = accuracy.markdown([res], "# tiny")
    assert "attempt 1 (" in md and "failed (R-hat needs at least 2 chains" in md
    no_retry = accuracy.evaluate("tiny", table, q, {**sampler, "retry": False}, lambda msg: None)
    assert len(no_retry["attempts"]) == 1


def test_paired_difference_separates_a_real_difference_from_noise() -> None:
    rng = np.random.default_rng(1)
    base = np.abs(rng.normal(0.05, 0.02, size=7))
    better = accuracy.paired_difference(base - 0.02 + rng.normal(0, 0.002, size=7), base)
    assert (
        better["verdict"] == "better" and better["hi"] < 0 and better["lo"] <= better["diff"] <= better["hi"]
    )
    worse = accuracy.paired_difference(base + 0.02 + rng.normal(0, 0.002, size=7), base)
    assert worse["verdict"] == "worse" and worse["lo"] > 0
    same = accuracy.paired_difference(base + rng.normal(0, 0.02, size=7), base)
    assert same["lo"] < same["diff"] < same["hi"]
    one = accuracy.paired_difference(np.array([0.03]), np.array([0.05]))  # one point: no interval to draw
    assert one["lo"] == one["hi"] == pytest.approx(-0.02)


def test_paired_difference_interval_covers_the_true_difference_about_95_percent() -> None:
    """Known truth: iid absolute errors whose means differ by 0.01 nats; 200 simulated comparisons of 30."""
    rng = np.random.default_rng(2)
    covered = 0
    for i in range(200):
        a, b = rng.exponential(0.05, size=30), rng.exponential(0.04, size=30)
        d = accuracy.paired_difference(a, b, seed=i)
        covered += d["lo"] <= 0.01 <= d["hi"]
    assert 0.88 <= covered / 200 <= 0.99


def test_pooled_difference_resamples_whole_runs_and_needs_enough_of_them() -> None:
    rng = np.random.default_rng(3)

    def run(shift: float) -> dict:
        base = np.abs(rng.normal(0.05, 0.02, size=5))
        return {"n_test": 5, "bayes_abs_err": (base + shift).tolist(), "linear_abs_err": base.tolist()}

    assert accuracy.pooled_difference([run(-0.01) for _ in range(4)], "linear") is None
    rows = [run(-0.01) for _ in range(12)]
    rows[0]["linear_abs_err"] = None  # undefined there: left out, not counted as zero
    d = accuracy.pooled_difference(rows, "linear")
    assert d["runs"] == 11 and d["diff"] == pytest.approx(-0.01) and d["verdict"] == "better"
