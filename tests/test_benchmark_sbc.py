"""benchmarks/sbc.py: prior-drawn truths, fixed prior centres, ranks and their summary (smoke-sized)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np

from bayes_l2l.model import ModelConfig, ModelData

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sbc.py"
spec = importlib.util.spec_from_file_location("sbc_benchmark", SCRIPT)
sbc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sbc)


def test_fixed_prior_centres_make_the_prior_independent_of_y() -> None:
    design = sbc.design_for(runs=2, checkpoints=6)
    shifted = dataclasses.replace(design, points=design.points.assign(y=design.points["y"] * 2 + 1))
    default = ModelConfig()
    assert ModelData.from_design(design, default).h_center != ModelData.from_design(shifted, default).h_center
    fixed = sbc.fixed_centre_config(design)
    for d in (design, shifted):
        data = ModelData.from_design(d, fixed)
        assert (data.h_center, data.logs_center) == fixed.prior_centres
    assert ModelConfig.from_dict(fixed.to_dict()).prior_centres == fixed.prior_centres


def test_one_prior_draw_is_fitted_and_ranked() -> None:
    design = sbc.design_for(runs=2, checkpoints=6)
    config = sbc.fixed_centre_config(design)
    draws = sbc.prior_draws(design, config, 3, seed=0)
    assert draws["y"].shape == (3, len(design.points)) and np.isfinite(draws["y"]).all()
    assert draws["K"].shape == (3, design.n_conditions)
    from bayes_l2l.sampler_policy import UserSettings

    sampler = {"user": UserSettings(chains=2, draws=60, warmup=60), "retry": False}
    rec = sbc.one_sim(design, config, draws, 0, sampler)
    q = rec["quantities"]
    assert len(q) == 5 * (design.n_conditions - 1) + 2
    for v in q.values():
        assert 0 <= v["rank"] <= sbc.RANK_DRAWS and v["interval"][0] <= v["interval"][1]
        assert v["covered"] == (v["interval"][0] <= v["truth"] <= v["interval"][1])
    assert q["sigma"]["truth"] == float(draws["sigma"][0])


def test_summary_counts_ranks_coverage_and_failures() -> None:
    rng = np.random.default_rng(0)

    def rec(i: int, ok: bool) -> dict:
        quantities = {
            f"c{c}: {k}": {"rank": int(rng.integers(0, 100)), "covered": bool(rng.random() < 0.9)}
            for c in (1, 2)
            for k in sbc.CONTRAST_QUANTITIES
        }
        quantities |= {k: {"rank": int(rng.integers(0, 100)), "covered": True} for k in sbc.GLOBAL_QUANTITIES}
        return {"sim": i, "wall_s": 1.0, "diagnostics": {"ok": ok}, "quantities": quantities}

    records = [rec(i, ok=i % 4 != 0) for i in range(40)] + [
        {"sim": 40, "failed": "the prior draw of y is not finite"}
    ]
    s = sbc.summarise(records)
    assert (s["sims"], s["fitted"], s["passing_gate"], len(s["failed"])) == (41, 40, 30, 1)
    gap = s["kinds"]["mean_gap"]
    assert gap["all"]["n"] == 80 and sum(gap["all"]["rank_counts"]) == 80 and gap["passing"]["n"] == 60
    assert 0 <= gap["all"]["uniformity_p"] <= 1 and s["kinds"]["sigma"]["all"]["coverage"] == 1.0
