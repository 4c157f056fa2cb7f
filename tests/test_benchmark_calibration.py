"""Smoke-sized run of benchmarks/calibration.py: one seed end to end, the truth it scores against, resuming."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"


@pytest.fixture(scope="module")
def calibration():
    spec = importlib.util.spec_from_file_location("calibration_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rank_among_draws_counts_draws_below_the_truth(calibration) -> None:
    draws = calibration.np.linspace(0.0, 1.0, 1000)
    assert calibration.rank_among_draws(-1.0, draws) == 0
    assert calibration.rank_among_draws(2.0, draws) == calibration.RANK_DRAWS
    assert 45 <= calibration.rank_among_draws(0.5, draws) <= 54


def test_one_seed_smoke_run_and_resume(calibration, tmp_path: Path, capsys) -> None:
    args = [
        "--seeds",
        "1",
        "--gap",
        "0.05",
        "--no-retry",
        "--chains",
        "1",
        "--draws",
        "100",
        "--warmup",
        "100",
    ]
    assert calibration.main([*args, "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    data = summary["factors"]["pretraining_data"]
    assert data["true_mean_gap"] == pytest.approx(0.05)  # a pure E_y shift: the gap is the shift
    assert summary["factors"]["architecture"]["true_max_abs_gap"] == 0.0
    assert data["params"]["delta_Ey"]["truth"] == pytest.approx(0.05)
    assert (tmp_path / "rank_histograms.png").stat().st_size > 10_000
    # the ROPE threshold comes from the same draws: at the run's own ROPE it gives compare_factor's decision
    contrasts = json.loads((tmp_path / "seed_000.json").read_text())["contrasts"]
    for c in contrasts.values():
        assert (0.02 < c["shift_if_rope_below"]) == (c["decision"] == "shift")
    curve = summary["rope_curve"]
    assert curve["seeds"] == 1 and set(curve["factors"]) == set(summary["factors"])
    assert "ROPE 0.005" in (tmp_path / "summary.md").read_text()
    record = (tmp_path / "seed_000.json").read_text()
    # resumed: the seed is read back, not refitted
    assert calibration.main([*args, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "seed_000.json").read_text() == record
    # other settings in the same folder are refused
    assert calibration.main([*args[:-1], "200", "--out", str(tmp_path)]) == 2
    assert "other settings" in capsys.readouterr().err
