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
