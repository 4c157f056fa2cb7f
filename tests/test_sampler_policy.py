"""The sampler policy (first attempt from the table's shape, retries from what failed) and the robust fit that
runs it: rules checked on small designs without sampling, the fit loop with a fake sampler, and the per-run
centred offsets against the model's other forms."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bayes_l2l import robust_fit
from bayes_l2l.design import Question, build_design
from bayes_l2l.sampler_policy import (
    LONE_RUN_DRAWS,
    PIN_CHECKPOINTS,
    Attempt,
    TableShape,
    UserSettings,
    first_attempt,
    next_attempt,
)
from bayes_l2l.simulate import SimulationSpec, simulate_table


def _design(runs_per_condition: int, checkpoints: int, seed: int = 0):
    spec = SimulationSpec(
        factors={"pretraining_data": ["A", "B"]},
        effects={"pretraining_data": {"B": {"E_y": 0.1}}},
        runs_per_condition=runs_per_condition,
        checkpoints_per_run=checkpoints,
        sizes=[1e8],
    )
    table, _ = simulate_table(spec, seed)
    return build_design(table, Question(x=spec.x_metric, y=spec.y_metric, factors=["pretraining_data"]))


def test_long_runs_get_centred_offsets_curvature_and_short_warmup() -> None:
    shape = TableShape.of(_design(3, PIN_CHECKPOINTS + 5))
    assert shape.offset_runs == 6 and shape.centering() == [1.0] * 6
    a = first_attempt(shape)
    assert (a.run_offsets, a.shape, a.mass, a.target_accept, a.warmup) == (
        "centred",
        "curvature",
        "laplace",
        0.97,
        500,
    )


def test_short_runs_keep_the_default_geometry() -> None:
    a = first_attempt(TableShape.of(_design(2, 15)))
    assert (a.run_offsets, a.shape, a.mass, a.target_accept, a.warmup, a.draws) == (
        "noncentred",
        "logkappa",
        "laplace",
        0.95,
        1000,
        1000,
    )


def test_lone_runs_are_not_centred_and_get_more_draws() -> None:
    """One run per condition: however long, its offset is confounded with the curve's height."""
    shape = TableShape.of(_design(1, PIN_CHECKPOINTS + 20))
    assert shape.lone_runs_only and shape.centering() == [0.0, 0.0]
    a = first_attempt(shape)
    assert (a.run_offsets, a.shape, a.target_accept, a.draws) == (
        "noncentred",
        "logkappa",
        0.99,
        LONE_RUN_DRAWS,
    )


def _shape(
    points: int, runs: int, conditions: int, checkpoints: list[int], in_condition: list[int]
) -> TableShape:
    """A table's shape without a table: ``checkpoints`` and ``in_condition`` per offset run; every other run
    has one checkpoint."""
    return TableShape(
        points=points,
        runs=runs,
        conditions=conditions,
        offset_runs=len(checkpoints),
        single_checkpoint_runs=runs - len(checkpoints),
        checkpoints_per_offset_run=checkpoints,
        offset_runs_in_condition=in_condition,
    )


def test_centering_is_per_run() -> None:
    """Runs of different lengths in one table: only the pinned runs are centred (LocScaleReparam array)."""
    shape = _shape(0, 4, 2, [100, 100, 10, 100], [2, 2, 1, 1])
    assert shape.centering() == [1.0, 1.0, 0.0, 0.0]
    a = first_attempt(shape)
    assert a.run_offsets == "mixed" and a.run_centering == [1.0, 1.0, 0.0, 0.0]
    assert a.label().startswith("curvature, 2/4 runs centred")


def test_single_checkpoint_runs_few_get_dense_mass_many_get_more_draws() -> None:
    shape = _shape(500, 500, 6, [], [])
    a = first_attempt(shape)  # hundreds of final models: the whitening, more draws
    assert (a.mass, a.target_accept, a.run_offsets, a.draws) == (
        "laplace",
        0.95,
        "noncentred",
        LONE_RUN_DRAWS,
    )
    few = first_attempt(
        TableShape(**{**shape.__dict__, "points": 18, "runs": 18, "single_checkpoint_runs": 18})
    )
    assert (few.mass, few.target_accept, few.draws) == ("dense", 0.99, 1000)


def test_explicit_settings_are_the_first_attempt_and_retries_leave_them() -> None:
    user = UserSettings(target_accept=0.9, mass="diag", shape="logkappa", run_offsets="centred", warmup=200)
    a = first_attempt(TableShape.of(_design(3, PIN_CHECKPOINTS + 5)), user)
    assert (a.target_accept, a.mass, a.shape, a.run_offsets, a.warmup) == (
        0.9,
        "diag",
        "logkappa",
        "centred",
        200,
    )
    failed = {"ok": False, "divergences": 4, "problems": ["4 divergent transitions"]}
    nxt = next_attempt([(a, failed)], user)
    # target accept, mass and offsets are the user's, warm-up given: nothing left to change
    assert nxt is None


def _attempt(**kw) -> Attempt:
    base = dict(
        run_offsets="centred",
        run_centering=None,
        shape="curvature",
        mass="laplace",
        target_accept=0.97,
        warmup=500,
        draws=1000,
    )
    return Attempt(**{**base, **kw})


def test_retry_after_divergences_raises_acceptance_then_changes_parametrisation() -> None:
    div = {"ok": False, "divergences": 3, "problems": ["3 divergent transitions"]}
    a1 = _attempt()
    a2 = next_attempt([(a1, div)])
    assert (
        a2.target_accept == 0.99 and a2.run_offsets == "centred" and "higher target acceptance" in a2.reason
    )
    a3 = next_attempt([(a1, div), (a2, div)])
    assert a3.target_accept == 0.995 and a3.run_offsets == "centred"
    a4 = next_attempt([(a1, div), (a2, div), (a3, div)])
    assert a4.run_offsets == "noncentred" and a4.warmup == 1000 and a4.target_accept == 0.995


def test_ladder_climbs_two_steps_above_the_first_attempt() -> None:
    """A first attempt at 0.99 (small tables of final models) climbs to 0.995 and 0.999; one at 0.97 stops at
    0.995 and then changes the parametrisation."""
    div = {"ok": False, "divergences": 1, "problems": ["1 divergent transitions"]}
    a1 = _attempt(run_offsets="noncentred", shape="logkappa", mass="dense", target_accept=0.99, warmup=1000)
    a2 = next_attempt([(a1, div)])
    a3 = next_attempt([(a1, div), (a2, div)])
    a4 = next_attempt([(a1, div), (a2, div), (a3, div)])
    assert (a2.target_accept, a3.target_accept) == (0.995, 0.999)
    assert a4.mass == "laplace" and a4.target_accept == 0.999


def test_retry_after_mixing_lengthens_once_then_changes_mass() -> None:
    mix = {"ok": False, "divergences": 0, "problems": ["bulk ESS 350 < 400"]}
    a1 = _attempt(run_offsets="noncentred", shape="logkappa", target_accept=0.95, warmup=1000)
    a2 = next_attempt([(a1, mix)])
    assert (a2.warmup, a2.draws) == (2000, 2000)
    a3 = next_attempt([(a1, mix), (a2, mix)])
    assert a3.mass == "dense" and a3.draws == 2000


def test_retry_after_tree_depth_saturation_changes_parametrisation() -> None:
    sat = {"ok": False, "divergences": 0, "tree_depth_saturation": 0.4, "problems": ["R-hat 1.05 > 1.01"]}
    a2 = next_attempt([(_attempt(), sat)])
    assert a2.run_offsets == "noncentred"


def _fake_fit(outcomes: list[dict]):
    calls = []

    def fit(design, config, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append({"config": config, **kw})
        dg = {"problems": [], "divergences": 0, "max_rhat": 1.0, **outcomes[len(calls) - 1]}
        return SimpleNamespace(diagnostics=dg, settings={"chains": kw.get("chains")}, wall_time_s=2.0)

    return fit, calls


def test_robust_fit_stops_at_the_first_pass_and_records_every_attempt(monkeypatch) -> None:
    fit, calls = _fake_fit(
        [{"ok": False, "divergences": 2, "problems": ["2 divergent transitions"]}, {"ok": True}]
    )
    monkeypatch.setattr(robust_fit.infer, "fit", fit)
    lines = []
    post = robust_fit.fit_robust(_design(2, 15), progress=lines.append)
    assert len(calls) == 2 and calls[1]["target_accept"] == 0.99
    rec = post.settings["attempts"]
    assert [r["diagnostics"]["ok"] for r in rec] == [False, True] and post.settings["kept_attempt"] == 2
    assert post.diagnostics["attempts"].startswith("attempt 2 of 2 passed")
    assert post.wall_time_s == 4.0 and any("attempt 2: 2 s, diagnostics passed" in ln for ln in lines)


def test_robust_fit_keeps_the_best_failed_attempt_and_respects_no_retry(monkeypatch) -> None:
    bad = {"ok": False, "problems": ["R-hat 1.2 > 1.01", "bulk ESS 10 < 400"], "max_rhat": 1.2}
    less_bad = {"ok": False, "problems": ["R-hat 1.02 > 1.01"], "max_rhat": 1.02}
    fit, calls = _fake_fit([bad, less_bad, bad, bad])
    monkeypatch.setattr(robust_fit.infer, "fit", fit)
    post = robust_fit.fit_robust(_design(2, 15))
    assert len(calls) >= 3 and post.settings["kept_attempt"] == 2
    assert post.diagnostics["attempts"].startswith(f"all {len(calls)} attempt(s) failed")
    fit, calls = _fake_fit([bad])
    monkeypatch.setattr(robust_fit.infer, "fit", fit)
    robust_fit.fit_robust(_design(2, 15), retry=False)
    assert len(calls) == 1


def test_robust_fit_does_not_start_an_attempt_past_the_budget(monkeypatch) -> None:
    bad = {"ok": False, "problems": ["bulk ESS 10 < 400"]}
    fit, calls = _fake_fit([bad, bad])
    monkeypatch.setattr(robust_fit.infer, "fit", fit)
    post = robust_fit.fit_robust(_design(2, 15), budget_s=3.0)  # next: 2x the iterations -> ~4 s, over 3 s
    assert len(calls) == 1 and "next_skipped" in post.settings["attempts"][0]


@pytest.mark.slow
def test_mixed_offsets_are_the_same_posterior_as_the_other_forms() -> None:
    """Per-run centeredness only moves the sampler's coordinates: at the same offsets, sigma_run and curve,
    the model's log joint (with the reparametrisation's Jacobian) matches the centred form's."""
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    from bayes_l2l.model import ModelConfig, ModelData, l2l_model

    design = _design(2, 12)
    n = len(design.offset_runs)
    rng = np.random.default_rng(0)
    b = rng.normal(0, 0.02, n)
    sigma_run = 0.03
    common = {"base_h": 3.0, "base_logs": 0.0, "base_logkappa": 0.1, "base_u": -0.5, "sigma": 0.02, "nu": 8.0}
    common |= {f"d_{p}": jnp.zeros(design.effect_matrix.shape[1]) for p in ("h", "logs", "logkappa", "u")}
    common["sigma_run"] = sigma_run

    def logp(config, sites):  # noqa: ANN001, ANN202
        data = ModelData.from_design(design, config)
        return float(log_density(l2l_model, (data, config), {}, {**common, **sites})[0])

    centred = logp(ModelConfig(run_offsets="centred"), {"run_offset": jnp.asarray(b)})
    c = np.array([1.0, 0.0] * (n // 2) + [1.0] * (n % 2))
    z = np.where(c == 1.0, b, b / sigma_run)
    mixed = logp(
        ModelConfig(run_offsets="mixed", run_centering=list(c)), {"run_offset_decentered": jnp.asarray(z)}
    )
    # the density of z differs from that of b by the Jacobian of b = sigma_run^(1-c) z
    assert mixed == pytest.approx(centred + np.sum((1 - c) * np.log(sigma_run)), rel=1e-10, abs=1e-8)
