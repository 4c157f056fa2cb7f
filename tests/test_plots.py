"""Figures: every plot draws from a posterior and writes non-empty PNG + SVG files.

The posterior here is synthetic (draws scattered around a simulated table's true curve parameters) so
that the figure code is tested in seconds, without MCMC; the CLI tests use real fits.
"""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_l2l import evidence, plots
from bayes_l2l.design import Question, build_design
from bayes_l2l.errors import UserInputError
from bayes_l2l.infer import Posterior, diagnose
from bayes_l2l.model import ModelConfig
from bayes_l2l.simulate import SimulationSpec, simulate_table

FACTORS = {"pretraining_data": ["web", "code"], "architecture": ["llama", "gptneox"]}


def synthetic_posterior(
    chains: int = 4, draws: int = 500, seed: int = 0, sizes: tuple[float, ...] = (160e6,)
) -> Posterior:
    """A Posterior whose draws scatter around the true parameters of a small simulated table.

    Ex and Ey of every condition are flagged 'not identified' (to exercise hollow markers and caveats).
    """
    spec = SimulationSpec(
        factors=FACTORS,
        effects={"pretraining_data": {"code": {"E_y": 0.2}}},
        runs_per_condition=2,
        checkpoints_per_run=6,
        sizes=list(sizes),
    )
    table, truth = simulate_table(spec, seed=3)
    design = build_design(
        table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data", "architecture"])
    )
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    true = truth.conditions.set_index("condition").loc[design.conditions["condition"].astype(str)]
    n_c = design.n_conditions

    def around(values: np.ndarray, sd: float) -> np.ndarray:
        return np.asarray(values, dtype=float)[None, None, :] + rng.normal(0, sd, (*shape, n_c))

    ex = np.minimum(around(true["E_x"], 0.01), design.cond_min_x - 0.01)
    post_vars = {
        "K": true["K"].to_numpy()[None, None, :] * np.exp(rng.normal(0, 0.02, (*shape, n_c))),
        "kappa": true["kappa"].to_numpy()[None, None, :] * np.exp(rng.normal(0, 0.02, (*shape, n_c))),
        "Ex": ex,
        "Ey": around(true["E_y"], 0.005),
        "sigma": np.abs(rng.normal(0.02, 0.002, shape)),
        "sigma_run": np.abs(rng.normal(0.02, 0.005, shape)),
        "nu": rng.gamma(20.0, 0.5, shape),
        **{f"base_{p}": rng.normal(0, 1, shape) for p in ("h", "logs", "logkappa", "u")},
    }
    runs = list(getattr(design, "offset_runs", design.runs))
    post_vars["run_offset"] = rng.normal(0, 0.01, (*shape, len(runs)))
    c = design.cond_idx
    mu = (
        post_vars["K"][..., c] * (design.x - post_vars["Ex"][..., c]) ** post_vars["kappa"][..., c]
        + post_vars["Ey"][..., c]
    )
    ll = stats.t.logpdf(design.y, post_vars["nu"][..., None], mu, post_vars["sigma"][..., None])
    points = [f"{r}@{k}" for r, k in zip(design.points["run"], design.points["checkpoint"], strict=True)]
    dt = az.from_dict(
        {
            "posterior": post_vars,
            "log_likelihood": {"y": ll},
            "observed_data": {"y": design.y},
            "sample_stats": {"diverging": np.zeros(shape, dtype=bool)},
        },
        coords={
            "condition": design.conditions["condition"].astype(str).tolist(),
            "run": runs,
            "point": points,
        },
        dims={
            **{v: ["condition"] for v in ("K", "kappa", "Ex", "Ey")},
            "run_offset": ["run"],
            "y": ["point"],
        },
    )
    names = design.conditions["condition"].astype(str)
    ident = pd.DataFrame(
        {
            "contraction": 0.9,
            "identified": "identified",
        },
        index=[f"{v}[{n}]" for v in ("K", "kappa", "Ex", "Ey") for n in names],
    )
    ident.loc[ident.index.str.startswith(("Ex[", "Ey[")), ["contraction", "identified"]] = [
        0.1,
        "not identified",
    ]
    post = Posterior(
        dt=dt,
        design=design,
        config=ModelConfig(),
        method="nuts",
        settings={"chains": chains, "draws": draws, "warmup": 0, "seed": seed},
        identification=ident,
        wall_time_s=1.0,
    )
    post.diagnostics = diagnose(post)
    return post


@pytest.fixture(scope="module")
def post() -> Posterior:
    return synthetic_posterior()


@pytest.fixture(scope="module")
def compares(post: Posterior) -> dict[str, list[evidence.ContrastResult]]:
    return {f: evidence.compare_factor(post, f) for f in FACTORS}


def _check_written(paths: list, tmp_path) -> None:
    assert sorted(p.suffix for p in paths) == [".png", ".svg"]
    for p in paths:
        assert p.parent == tmp_path and p.stat().st_size > 5_000
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()[:2000]


def test_synthetic_posterior_recovers_the_planted_shift(compares) -> None:
    (code,) = compares["pretraining_data"]
    (arch,) = compares["architecture"]
    assert code.decision == "shift" and 0.15 < code.gap_mean < 0.25
    assert abs(arch.gap_mean) < 0.05


@pytest.mark.parametrize(
    "name",
    ["curves", "gaps", "effects", "ranking", "rank", "ppc"],
)
def test_each_figure_is_written_as_png_and_svg(post, compares, tmp_path, name: str) -> None:
    makers = {
        "curves": lambda: plots.plot_curves(post),
        "gaps": lambda: plots.plot_gap_forest(compares, 0.02),
        "effects": lambda: plots.plot_param_effects(compares),
        "ranking": lambda: plots.plot_factor_ranking(compares, 0.02),
        "rank": lambda: plots.plot_rank(post),
        "ppc": lambda: plots.plot_ppc(post),
    }
    fig = makers[name]()
    try:
        _check_written(plots.save_figure(fig, tmp_path, name), tmp_path)
    finally:
        plt.close(fig)


def test_curves_have_one_panel_per_factor_with_labelled_axes(post) -> None:
    fig = plots.plot_curves(post)
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in axes] == ["pretraining data", "architecture"]
        for ax in axes:
            assert ax.get_xlabel() == "val/c4 loss (nats/token)"
            assert ax.get_ylabel() == "test/hellaswag loss (nats/token)"
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            assert labels[0].endswith("(base)") and "50% / 90% band" in labels
    finally:
        plt.close(fig)


def test_bands_are_nested_and_contain_the_median(post) -> None:
    grid = np.linspace(post.design.cond_min_x[0], post.design.conditions["max_x"][0], 30)
    draws = plots.condition_curve_draws(post, 0, grid)
    bands = plots.central_bands(draws)
    med = np.nanmedian(draws, axis=0)
    assert np.all(bands[0.9][0] <= bands[0.5][0]) and np.all(bands[0.5][1] <= bands[0.9][1])
    assert np.all((bands[0.5][0] <= med) & (med <= bands[0.5][1]))


def test_ppc_coverage_is_measured_from_the_draws(post) -> None:
    cover = plots.ppc_coverage(post)
    assert set(cover) == {0.5, 0.9}
    assert 0.0 <= cover[0.5] <= cover[0.9] <= 1.0
    # the synthetic draws sit on the true curves with the true noise: the 90% interval holds most points
    assert cover[0.9] > 0.7


def test_effects_plot_marks_not_identified_parameters_hollow(compares) -> None:
    fig = plots.plot_param_effects(compares)
    try:
        ex_ax = fig.axes[2]
        markers = [ln for ln in ex_ax.get_lines() if ln.get_marker() == "o"]
        assert markers and all(ln.get_markerfacecolor() == "white" for ln in markers)
        k_ax = fig.axes[0]
        assert all(ln.get_markerfacecolor() != "white" for ln in k_ax.get_lines() if ln.get_marker() == "o")
    finally:
        plt.close(fig)


def test_rank_plot_refuses_a_single_chain() -> None:
    one = synthetic_posterior(chains=1, draws=100)
    with pytest.raises(UserInputError, match="several chains"):
        plots.plot_rank(one)
    figs = plots.make_figures(one, {}, 0.02)
    try:
        assert "rank" not in figs and {"curves", "ppc"} <= set(figs)
    finally:
        for f in figs.values():
            plt.close(f)


def test_write_figures_refuses_to_overwrite(post, compares, tmp_path) -> None:
    figs = plots.make_figures(post, compares, 0.02)
    try:
        paths = plots.write_figures(figs, tmp_path)
        assert len(paths) == 2 * len(figs) == 12
        with pytest.raises(UserInputError, match="--overwrite"):
            plots.write_figures(figs, tmp_path)
        assert len(plots.write_figures(figs, tmp_path, overwrite=True)) == 12
    finally:
        for f in figs.values():
            plt.close(f)


def test_unknown_factor_is_a_user_error(post) -> None:
    with pytest.raises(UserInputError, match="not in this fit"):
        plots.plot_curves(post, ["tokenizer"])


def test_rank_plot_wraps_long_panel_titles(post) -> None:
    labels = [str(v) for v in post.dt["posterior"]["Ex"].coords["condition"].values]
    names = ["sigma", f"Ex[{labels[-1]}]", f"Ey[{labels[1]}]"]
    fig = plots.plot_rank(post, names)
    try:
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()][:3]
        assert titles[0] == "sigma" and "\n" in titles[1]
        assert all(len(line) <= plots.RANK_TITLE_CHARS for t in titles for line in t.split("\n"))
        assert titles[1].replace("\n", "") == names[1]
    finally:
        plt.close(fig)


def test_curve_size_markers_have_a_titled_legend() -> None:
    fig = plots.plot_curves(synthetic_posterior(draws=100, sizes=(70e6, 160e6, 410e6)))
    try:
        (legend,) = fig.legends
        assert legend.get_title().get_text() == plots.SIZE_LEGEND_TITLE
        assert [t.get_text() for t in legend.get_texts()] == ["70M", "160M", "410M"]
    finally:
        plt.close(fig)
