"""Measurement error on both axes (issue 27): the known noise of each point, when the model uses it, the
first-order likelihood, the independent part of a standard error from per-document losses, and a fit."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayes_l2l.design import Question, build_design
from bayes_l2l.errors import LossTableError, UserInputError
from bayes_l2l.measurement import choose, independent_share, known_scale
from bayes_l2l.model import ModelConfig
from bayes_l2l.robust_fit import FitOptions, fit_design_with
from bayes_l2l.simulate import SimulationSpec, simulate_table
from bayes_l2l.table import LossTable


def _noisy_table(seed: int, se: float, shared: float, independent_column: bool) -> LossTable:
    """A simulated table (code shifts E_y by +0.1) whose x and y carry measurement noise of standard error
    ``se``, a share ``shared`` of its variance common to every checkpoint."""
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"]},
        effects={"pretraining_data": {"code": {"E_y": 0.1}}},
        runs_per_condition=2,
        checkpoints_per_run=10,
        sizes=[160e6],
        x_noise_sd=0.0,
        noise_sd=0.003,
    )
    t, _ = simulate_table(spec, seed=seed)
    df = t.df.copy()
    rng = np.random.default_rng(seed)
    df["stderr"] = se
    for metric in ("val/c4", "test/hellaswag"):
        rows = df["metric"] == metric
        z = rng.normal()
        df.loc[rows, "value"] += se * (
            np.sqrt(shared) * z + np.sqrt(1 - shared) * rng.normal(size=rows.sum())
        )
    if independent_column:
        df["stderr_independent"] = se * np.sqrt(1 - shared)
    return LossTable.from_frame(df, "noisy")


def _design(table: LossTable):
    return build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))


def test_the_likelihood_scale_is_the_effective_variance():
    """sqrt(sigma^2 + s_y^2 + f'(x)^2 s_x^2), f' the curve's slope at x (checked by finite differences)."""
    amp, kappa, ex, g = 0.8, 1.3, 1.5, 2.0
    f = lambda x: amp * (((x - ex) / g) ** kappa - 1.0)  # noqa: E731 - the model's curve above h
    x = 3.1
    slope = (f(x + 1e-6) - f(x - 1e-6)) / 2e-6
    got = known_scale(0.01, amp, kappa, g, (x - ex) / g, 0.02**2, 0.05**2)
    assert float(got) == pytest.approx(np.sqrt(0.01**2 + 0.05**2 + slope**2 * 0.02**2), rel=1e-6)
    assert float(
        known_scale(0.01, amp, kappa, g, jnp.asarray((x - ex) / g), 0.0, 0.0, xp=jnp)
    ) == pytest.approx(0.01)


def test_auto_uses_the_error_model_only_where_the_independent_part_is_known_and_matters():
    stated_only = choose(_design(_noisy_table(0, 0.03, 0.8, independent_column=False)).points, "auto")
    assert not stated_only.used and "stderr_independent" in stated_only.reason
    on = choose(_design(_noisy_table(0, 0.03, 0.8, independent_column=False)).points, "on")
    assert on.used and on.sources == {"x": "stderr", "y": "stderr"} and "conservative" in on.reason
    known = choose(_design(_noisy_table(0, 0.03, 0.0, independent_column=True)).points, "auto")
    assert known.used and known.sources == {"x": "stderr_independent", "y": "stderr_independent"}
    tiny = choose(_design(_noisy_table(0, 0.0005, 0.0, independent_column=True)).points, "auto")
    assert not tiny.used and "negligible" in tiny.reason
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"]}, effects={}, checkpoints_per_run=6, sizes=[160e6]
    )
    plain, _ = simulate_table(spec, seed=1)
    assert not choose(_design(plain).points, "auto").used
    with pytest.raises(UserInputError, match="needs standard errors"):
        choose(_design(plain).points, "on")
    assert choose(_design(plain).points, "off").reason.startswith("off")


def test_the_independent_share_from_per_document_losses():
    """Documents have a common difficulty (the shared part) plus checkpoint-specific noise: the share
    recovered is the independent part's share of each checkpoint's variance."""
    rng = np.random.default_rng(3)
    n_ck, n_docs = 12, 4000
    tokens = rng.integers(50, 200, size=n_docs).astype(float)
    difficulty = rng.normal(0, 1.0, n_docs)  # per-token deviation common to every checkpoint
    own = rng.normal(0, 0.5, (n_ck, n_docs))  # independent part: variance 0.25 against 1.0 shared
    level = np.linspace(4.0, 3.0, n_ck)[:, None]
    nll = (level + difficulty[None, :] + own) * tokens[None, :]
    share = independent_share(nll, np.broadcast_to(tokens, nll.shape))
    assert share == pytest.approx(np.full(n_ck, 0.25 / 1.25), abs=0.03)
    per_doc = independent_share(nll, np.broadcast_to(tokens, nll.shape), pooled=False)
    assert per_doc == pytest.approx(np.full(n_ck, 0.25 / 1.25), abs=0.03)


def test_table_checks_and_averages_of_standard_errors():
    t = _noisy_table(0, 0.03, 0.5, independent_column=True)
    bad = t.df.copy()
    bad.loc[0, "stderr_independent"] = 0.5
    with pytest.raises(LossTableError, match="must not exceed 'stderr'"):
        LossTable.from_frame(bad, "bad")
    df = t.df.copy()
    extra = df[df["metric"] == "test/hellaswag"].assign(metric="test/piqa", stderr=0.04)
    two = LossTable.from_frame(pd.concat([df, extra], ignore_index=True), "two")
    avg = two.metric_series("mean(test/hellaswag,test/piqa)")
    assert avg["stderr"].to_numpy() == pytest.approx(np.sqrt(0.03**2 + 0.04**2) / 2)


def test_saved_configs_of_before_load_without_the_error_model():
    cfg = ModelConfig().to_dict()
    cfg.pop("measurement_error")
    assert ModelConfig.from_dict(cfg).measurement_error == "off"
    with pytest.raises(UserInputError, match="auto, on or off"):
        FitOptions(measurement_error="maybe")


def test_the_fit_attributes_independent_measurement_noise_to_the_known_errors(tmp_path):
    """Independent noise of 0.03 nats on both axes over a residual of 0.003: without the error model sigma
    absorbs it; with it, sigma shrinks towards the residual and the choice is recorded."""
    design = _design(_noisy_table(4, 0.03, 0.0, independent_column=True))
    off = fit_design_with(design, FitOptions(method="approx", measurement_error="off"))
    on = fit_design_with(design, FitOptions(method="approx"))
    assert on.settings["measurement_error"]["used"] and not off.settings["measurement_error"]["used"]
    assert float(np.median(on.draws("sigma"))) < 0.5 * float(np.median(off.draws("sigma")))
    from bayes_l2l.plots import ppc_coverage

    assert ppc_coverage(on)[0.9] == pytest.approx(0.9, abs=0.12)
    from bayes_l2l.posterior import load

    on.save(tmp_path / "post")
    again = load(tmp_path / "post")
    assert again.settings["measurement_error"]["used"] and again.config.measurement_error == "auto"
    assert ppc_coverage(again) == ppc_coverage(on)


def test_new_checkpoints_count_their_own_measurement_noise():
    """Where the fit used the error model, `test` and `predict --from-table` add each new checkpoint's own
    stderr: wider predictive sd and gap interval than for the same checkpoints stated without stderr."""
    import bayes_l2l as bl
    from bayes_l2l.comparisons import test_against_curve

    post = fit_design_with(
        _design(_noisy_table(4, 0.03, 0.0, independent_column=True)), FitOptions(method="approx")
    )
    assert post.settings["measurement_error"]["used"]
    new = _noisy_table(9, 0.03, 0.0, independent_column=True).where(pretraining_data="web")
    bare = LossTable.from_frame(new.df.drop(columns=["stderr", "stderr_independent"]), "bare")
    with_se, without = test_against_curve(post, new), test_against_curve(post, bare)
    width = lambda r: r["gap_hdi90"][1] - r["gap_hdi90"][0]  # noqa: E731
    assert width(with_se) > width(without)
    sd = lambda r: np.array([c["predictive_sd"] for c in r["checkpoints"]])  # noqa: E731
    assert (sd(with_se) > sd(without)).all()
    fit = bl.Fit(post)
    p_se, p_bare = fit.predict(table=new).frame, fit.predict(table=bare).frame
    assert list(p_se["checkpoint"]) == list(p_bare["checkpoint"])
    assert (p_se["sd"].to_numpy() > p_bare["sd"].to_numpy()).all()
    assert np.isfinite(p_se["residual_z"]).all()
    off = fit_design_with(
        _design(_noisy_table(4, 0.03, 0.0, independent_column=True)),
        FitOptions(method="approx", measurement_error="off"),
    )
    assert test_against_curve(off, new)["gap_hdi90"] == test_against_curve(off, bare)["gap_hdi90"]


def test_the_choice_is_made_once_per_design_and_kept_by_its_folds():
    from bayes_l2l.model import measurement_choice

    design = _design(_noisy_table(0, 0.03, 0.0, independent_column=True))
    first = measurement_choice(design, ModelConfig())
    assert measurement_choice(design, ModelConfig()) is first
    fold = design.without_runs({design.runs[0]})
    assert measurement_choice(fold, ModelConfig()) is first
    assert measurement_choice(design, ModelConfig(measurement_error="off")).used is False
