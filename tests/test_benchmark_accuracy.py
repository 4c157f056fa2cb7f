"""benchmarks/accuracy.py: the leave-late-out split (no fits)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

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


def test_a_fit_failing_the_gate_is_refitted_once_and_both_attempts_are_recorded() -> None:
    from bayes_l2l.design import Question
    from bayes_l2l.simulate import SimulationSpec, simulate_table

    spec = SimulationSpec(factors={}, effects={}, runs_per_condition=3, checkpoints_per_run=10, sizes=[160e6])
    table, _ = simulate_table(spec, 0)
    q = Question(x=spec.x_metric, y=spec.y_metric, factors=[])
    # one chain: R-hat cannot be checked, so the gate fails every time and the retry happens
    sampler = {"chains": 1, "draws": 60, "warmup": 60, "target_accept": 0.9}
    res = accuracy.evaluate("tiny", table, q, sampler, lambda msg: None, retry_target_accept=0.99)
    assert [a["target_accept"] for a in res["attempts"]] == [0.9, 0.99]
    assert not res["attempts"][0]["ok"] and res["diagnostics"] == {
        k: v for k, v in res["attempts"][-1].items() if k in res["diagnostics"]
    }
    assert len(res["runs"]) == 3 and all(r["bayes_mae"] >= 0 for r in res["runs"])
    md = accuracy.markdown([res], "# tiny")
    assert "first fit at target accept 0.9 failed" in md and "(target accept 0.99)" in md
    no_retry = accuracy.evaluate("tiny", table, q, sampler, lambda msg: None)
    assert len(no_retry["attempts"]) == 1
