"""Planted effects are recovered across seeds: interval coverage of curve gaps and parameter effects.

20 simulated tables (seeds 0-19), each with a planted pretraining-data shift (E_y +0.1 nats, log K +0.1)
and a null architecture factor. Stated tolerances: the 90% intervals of the gaps contain the true gap in at
least 80% of the 40 (seed, contrast) cases (nominal 90%; 80% is > 2.5 binomial sd below 36/40); the planted
delta_Ey and delta_log_K intervals contain the truth in at least 75% of seeds; the null factor's gap and
parameter-effect intervals straddle zero in at least 80% of seeds, and it is never decided "shift" in more
than 2 of 20 seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayes_l2l.design import Question, build_design
from bayes_l2l.evidence import compare_factor
from bayes_l2l.infer import fit
from bayes_l2l.simulate import SimulationSpec, simulate_table

SPEC = SimulationSpec(
    factors={"pretraining_data": ["web", "code"], "architecture": ["llama", "gptneox"]},
    effects={"pretraining_data": {"code": {"E_y": 0.1, "log_K": 0.1}}},
    runs_per_condition=2,
    checkpoints_per_run=10,
    sizes=[160e6, 410e6],
)
SEEDS = range(20)


@pytest.fixture(scope="module")
def results():
    out = []
    for seed in SEEDS:
        table, truth = simulate_table(SPEC, seed)
        design = build_design(table, Question(x=SPEC.x_metric, y=SPEC.y_metric, factors=list(SPEC.factors)))
        post = fit(design, seed=seed, chains=2, draws=300, warmup=300)
        rows = {}
        for factor in SPEC.factors:
            (contrast,) = compare_factor(post, factor)
            rows[factor] = (contrast, truth.true_gap_summary(factor, contrast.level))
        out.append(rows)
    return out


def _inside(interval, value) -> bool:
    return interval[0] <= value <= interval[1]


@pytest.mark.slow
def test_gap_intervals_cover_the_truth(results) -> None:
    hits = [_inside(c.gap_hdi90, t["mean_gap"]) for r in results for c, t in r.values()]
    assert np.mean(hits) >= 0.80, f"gap coverage {np.mean(hits):.2f} over {len(hits)} intervals"


@pytest.mark.slow
def test_planted_parameter_effects_are_covered(results) -> None:
    ey = [_inside(r["pretraining_data"][0].params["delta_Ey"]["hdi90"], 0.1) for r in results]
    logk = [_inside(r["pretraining_data"][0].params["delta_log_K"]["hdi90"], 0.1) for r in results]
    assert np.mean(ey) >= 0.75, f"delta_Ey coverage {np.mean(ey):.2f}"
    assert np.mean(logk) >= 0.75, f"delta_log_K coverage {np.mean(logk):.2f}"


@pytest.mark.slow
def test_null_factor_straddles_zero(results) -> None:
    null = [r["architecture"][0] for r in results]
    gaps = [_inside(c.gap_hdi90, 0.0) for c in null]
    assert np.mean(gaps) >= 0.80, f"null gap intervals straddle 0 in {np.mean(gaps):.2f}"
    for name in ("delta_log_K", "delta_log_kappa", "delta_Ex", "delta_Ey"):
        share = np.mean([_inside(c.params[name]["hdi90"], 0.0) for c in null])
        assert share >= 0.80, f"{name} of the null factor straddles 0 in {share:.2f}"
    assert sum(c.decision == "shift" for c in null) <= 2
