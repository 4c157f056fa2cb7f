"""benchmarks/speed.py at smoke size: the timed fits run, compile into a temporary cache, and leave the
process's own compilation cache as it was."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import jax

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
spec = importlib.util.spec_from_file_location("speed_benchmark", SCRIPT)
speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(speed)


def test_speed_benchmark_smoke(tmp_path: Path) -> None:
    before = jax.config.jax_compilation_cache_dir
    argv = ["--checkpoints", "8", "--skip-nutpie", "--skip-growth", "--no-retry", "--out", str(tmp_path)]
    assert speed.main([*argv, "--shape", "curvature", "--run-offsets", "centred"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["points"] == 480
    assert results["numpyro"]["divergences"] >= 0 and math.isfinite(results["numpyro"]["max_rhat"])
    for label in ("approx", "approx_warm_cache"):  # timed twice: compiling, then loading from the cache
        assert results[label]["wall_s"] > 0
        assert math.isfinite(results[label]["max_mean_err_in_sd"])
    assert jax.config.jax_compilation_cache_dir == before
