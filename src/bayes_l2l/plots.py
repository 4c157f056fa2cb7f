"""Figures of a fitted posterior and its evidence (matplotlib; PNG + SVG).

* :func:`plot_curves` — loss-to-loss curves per condition with 50% / 90% credible bands and the data
  (one panel per factor: the base condition and the conditions that change only that factor).
* :func:`plot_gap_forest` — mean curve gap and max |gap| per contrast, 90% HDI, ROPE shaded.
* :func:`plot_param_effects` — Δ log K, Δ log kappa, Δ Ex, Δ Ey per contrast; hollow = not identified.
* :func:`plot_factor_ranking` — factors sorted by their largest max |gap| (the paper's Figure 1 with
  uncertainty).
* :func:`plot_rank` — rank histograms of the main parameters per chain (sampler diagnostics).
* :func:`plot_ppc` — posterior-predictive check: residuals vs x with 50% / 90% predictive intervals.

Every function returns a matplotlib Figure; :func:`save_figure` writes it as PNG and SVG.
x in the question's x unit, y, gaps and ROPEs in its y unit (each as the table stores it).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy import stats  # noqa: E402

from bayes_l2l.errors import UserInputError  # noqa: E402
from bayes_l2l.evidence import ContrastResult, gap_unit, rank_factors  # noqa: E402
from bayes_l2l.model import curve  # noqa: E402
from bayes_l2l.posterior import Posterior  # noqa: E402

# Okabe-Ito: distinguishable for the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MAX_SIZE_MARKERS = 6
"""More model sizes than this are shown by marker area, not shape (a legend entry per size would swamp the
figure)."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
DECISION_COLOURS = {"shift": "#D55E00", "no practical shift": "#009E73", "undecided": "#666666"}
ROPE_COLOUR = "#BBBBBB"
BAND_PROBS = (0.5, 0.9)
MAX_DRAWS = 2000
"""Posterior draws used for bands and predictive checks (thinned evenly beyond this, for speed)."""
RC = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
    "savefig.dpi": 200,
}


@contextmanager
def _style():
    with plt.rc_context(RC):
        yield


def save_figure(fig: Figure, folder: str | Path, stem: str, *, overwrite: bool = False) -> list[Path]:
    """Write ``fig`` as ``folder/stem.png`` and ``folder/stem.svg``; refuse to replace files unless
    ``overwrite``. Returns the two paths."""
    folder = Path(folder)
    paths = [folder / f"{stem}.png", folder / f"{stem}.svg"]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise UserInputError(
            f"{existing[0]}: exists already; choose another figures folder or pass --overwrite"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with _style():
        for p in paths:
            fig.savefig(p, bbox_inches="tight", metadata={"Date": None} if p.suffix == ".svg" else None)
    return paths


# ------------------------------------------------------------------------------------------- helpers
def _axis_labels(post: Posterior) -> tuple[str, str]:
    """Axis labels 'metric loss (unit)'; the unit goes on a second line when the label is long."""
    q = post.design.question

    def label(metric: str, unit: str | None) -> str:
        unit = unit or "nats/token"
        sep = "\n" if len(metric) + len(unit) > 24 else " "
        return f"{metric} loss{sep}({unit})"

    return label(q.x, q.x_unit), label(q.y, q.y_unit)


def _thin(n: int, max_draws: int = MAX_DRAWS) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, max_draws)).astype(int))


def condition_curve_draws(post: Posterior, c: int, grid: np.ndarray) -> np.ndarray:
    """Draws of condition c's curve on ``grid``: (S, len(grid)) in nats; NaN where x <= Ex."""
    p = post.condition_params()
    idx = _thin(p["K"].shape[0])
    return curve(grid, *(p[k][idx, c] for k in ("K", "kappa", "Ex", "Ey")))


def central_bands(draws: np.ndarray, probs: Sequence[float] = BAND_PROBS) -> dict[float, np.ndarray]:
    """Equal-tailed credible bands per column of ``draws`` (S, G): prob -> (2, G) lower/upper."""
    out = {}
    for prob in probs:
        tail = (1.0 - prob) / 2.0
        out[prob] = np.nanquantile(draws, [tail, 1.0 - tail], axis=0)
    return out


def _levels_label(levels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in levels.items())


def _panel_conditions(post: Posterior, factor: str) -> list[int]:
    """Conditions whose factors other than ``factor`` are at their base levels (base condition first)."""
    d = post.design
    mask = np.ones(d.n_conditions, dtype=bool)
    for f, levels in d.factor_levels.items():
        if f != factor:
            mask &= (d.conditions[f].astype(str) == levels[0]).to_numpy()
    order = {lvl: i for i, lvl in enumerate(d.factor_levels[factor])}
    idx = np.flatnonzero(mask).tolist()
    return sorted(idx, key=lambda c: order[str(d.conditions[factor].iloc[c])])


def short_condition_labels(post: Posterior) -> list[str]:
    """Condition names by their non-base levels ('architecture=GPT'); 'base (pretraining_data=FineWeb-Edu)'
    for the all-base condition."""
    d = post.design
    base = "base (" + ", ".join(f"{f}={levels[0]}" for f, levels in d.factor_levels.items()) + ")"
    out = []
    for c in range(d.n_conditions):
        row = d.conditions.iloc[c]
        parts = [f"{f}={row[f]}" for f, levels in d.factor_levels.items() if str(row[f]) != levels[0]]
        out.append(", ".join(parts) if parts else (base if d.factor_levels else "all data"))
    return out


def _size_label(n: float) -> str:
    for suffix, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


# ------------------------------------------------------------------------------------------- curves
def plot_curves(post: Posterior, factors: Sequence[str] | None = None, *, extend: float = 0.03) -> Figure:
    """Loss-to-loss curves with 50% / 90% credible bands (median line) and the observed checkpoints.

    One panel per factor: the base condition and the conditions that change only that factor, one colour
    per level; marker shape = model size where up to MAX_SIZE_MARKERS sizes differ, marker area (log
    parameters) where more do, else one marker. ``extend`` stretches each
    curve beyond its condition's observed x range by that fraction of the range (dashed: extrapolation).
    """
    d = post.design
    factors = list(factors) if factors else list(d.factor_levels)
    unknown = [f for f in factors if f not in d.factor_levels]
    if unknown:
        raise UserInputError(f"factor(s) {', '.join(unknown)} not in this fit: {', '.join(d.factor_levels)}")
    panels: list[tuple[str, list[int]]] = (
        [(f, _panel_conditions(post, f)) for f in factors] if factors else [("", [0])]
    )
    xlabel, ylabel = _axis_labels(post)
    sizes = d.points["params"].to_numpy(dtype=float)
    size_levels = sorted(set(sizes[np.isfinite(sizes)].tolist()))
    use_size = 1 < len(size_levels) <= MAX_SIZE_MARKERS
    size_marker = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(size_levels)}
    # Many sizes (e.g. a family of final models): marker area grows with log parameters instead of shape.
    by_area = len(size_levels) > MAX_SIZE_MARKERS
    log_n = np.log(sizes)
    lo_n, hi_n = (float(np.nanmin(log_n)), float(np.nanmax(log_n))) if by_area else (0.0, 1.0)

    def area(n_params: np.ndarray) -> np.ndarray:
        return 6.0 + 50.0 * (np.log(n_params) - lo_n) / max(hi_n - lo_n, 1e-9)

    with _style():
        n = len(panels)
        ncol = min(n, 3)
        nrow = int(np.ceil(n / ncol))
        fig, axes = plt.subplots(
            nrow, ncol, figsize=(max(3.4 * ncol, 4.2), 3.3 * nrow), squeeze=False, layout="constrained"
        )
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        for ax, (factor, conds) in zip(axes.ravel(), panels, strict=False):
            handles = []
            for j, c in enumerate(conds):
                colour = PALETTE[j % len(PALETTE)]
                row = d.conditions.iloc[c]
                lo, hi = float(row["min_x"]), float(row["max_x"])
                pad = extend * (hi - lo)
                grid = np.linspace(lo - pad, hi + pad, 120)
                draws = condition_curve_draws(post, c, grid)
                bands = central_bands(draws)
                for prob, alpha in zip(BAND_PROBS, (0.35, 0.15), strict=True):
                    ax.fill_between(grid, *bands[prob], color=colour, alpha=alpha, lw=0)
                med = np.nanmedian(draws, axis=0)
                inside = (grid >= lo) & (grid <= hi)
                ax.plot(grid[inside], med[inside], color=colour, lw=1.4)
                ax.plot(grid[grid <= lo], med[grid <= lo], color=colour, lw=1.0, ls="--")
                ax.plot(grid[grid >= hi], med[grid >= hi], color=colour, lw=1.0, ls="--")
                sel = d.cond_idx == c
                px, py, ps = d.x[sel], d.y[sel], sizes[sel]
                for s in size_levels if use_size else [None]:
                    m = sel[sel] if s is None else ps == s
                    ax.scatter(
                        px[m],
                        py[m],
                        s=area(ps[m]) if by_area else 14,
                        marker=size_marker.get(s, "o"),
                        facecolor=colour,
                        edgecolor="white",
                        linewidth=0.4,
                        alpha=0.9,
                        zorder=3,
                    )
                label = str(row[factor]) if factor else "all data"
                if factor and j == 0:
                    label += " (base)"
                handles.append(Line2D([], [], color=colour, marker="o", ms=4, lw=1.4, label=label))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(factor.replace("_", " ") if factor else "loss-to-loss curve")
            handles.append(Patch(color="#555555", alpha=0.35, lw=0, label="50% / 90% band"))
            ax.legend(
                handles=handles,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.28),
                ncol=2,
                frameon=False,
                handletextpad=0.4,
                columnspacing=1.0,
            )
        size_handles: list[Line2D] = []
        if use_size:
            size_handles = [
                Line2D([], [], color="#555555", marker=size_marker[s], ls="", ms=4, label=_size_label(s))
                for s in size_levels
            ]
        if by_area:
            size_handles = [
                Line2D(
                    [],
                    [],
                    color="#555555",
                    marker="o",
                    ls="",
                    ms=float(np.sqrt(area(np.array([s]))[0])),
                    label=_size_label(s),
                )
                for s in (size_levels[0], size_levels[len(size_levels) // 2], size_levels[-1])
            ]
        if size_handles:  # the same sizes in every panel: one legend, titled with what the marker encodes
            fig.legend(
                handles=size_handles,
                title=SIZE_LEGEND_TITLE,
                loc="outside right upper",
                frameon=False,
                handletextpad=0.4,
            )
        title = f"{d.question.y} vs {d.question.x}: posterior curves"
        if len(title) > 11 * max(3.4 * ncol, 4.2):  # about 11 characters per inch at this size
            title = title.replace(": ", ":\n")
        fig.suptitle(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------- forests
def _contrast_rows(compares: Mapping[str, Sequence[ContrastResult]]) -> list[ContrastResult]:
    rows = [c for contrasts in compares.values() for c in contrasts]
    if not rows:
        raise UserInputError("no contrasts to plot: every factor has a single level in this fit")
    return rows


def _row_label(c: ContrastResult) -> str:
    return f"{c.factor}: {c.level} vs {c.base}"


def _forest_axes(
    n_rows: int, n_panels: int, width: float, labels: Sequence[str] = ()
) -> tuple[Figure, np.ndarray]:
    """One row of panels sharing y; ``width`` (inches) grows with labels longer than 30 characters so that
    long row labels do not squeeze the panels."""
    height = max(1.6, 0.42 * n_rows + 1.1)
    longest = max((len(s) for s in labels), default=0)
    width += 0.07 * max(0, longest - 30)
    fig, axes = plt.subplots(
        1, n_panels, figsize=(width, height), sharey=True, squeeze=False, layout="constrained"
    )
    return fig, axes[0]


def _interval(
    ax: Any, y: float, mean: float, lohi: Sequence[float], colour: str, filled: bool = True
) -> None:
    lo, hi = lohi
    ls = "-" if filled else (0, (2, 1.5))
    ax.plot([lo, hi], [y, y], color=colour, lw=1.6, ls=ls, solid_capstyle="butt")
    ax.plot(
        [mean], [y], marker="o", ms=5.5, color=colour, mfc=colour if filled else "white", mew=1.3, zorder=3
    )


def plot_gap_forest(compares: Mapping[str, Sequence[ContrastResult]], rope: float) -> Figure:
    """Mean gap Δ̄ and max |Δ| (nats) of every contrast with 90% HDI; the ROPE shaded; decision at right."""
    rows = _contrast_rows(compares)
    with _style():
        labels = [_row_label(c) for c in rows]
        fig, (ax_mean, ax_max) = _forest_axes(len(rows), 2, 7.2, labels)
        ys = np.arange(len(rows))[::-1]
        ax_mean.axvspan(-rope, rope, color=ROPE_COLOUR, alpha=0.45, lw=0)
        ax_max.axvspan(0, rope, color=ROPE_COLOUR, alpha=0.45, lw=0)
        ax_mean.axvline(0, color="#333333", lw=0.7)
        for y, c in zip(ys, rows, strict=True):
            colour = DECISION_COLOURS.get(c.decision, "#999999")
            if np.isfinite(c.gap_mean):
                _interval(ax_mean, y, c.gap_mean, c.gap_hdi90, colour)
                _interval(ax_max, y, c.gap_maxabs, c.gap_maxabs_hdi90, colour)
                text = c.decision if np.isnan(c.p_shift) else f"{c.decision}  (P(shift) {c.p_shift:.2f})"
            else:
                text = "not identifiable (confounded)" if c.decision.startswith("not") else c.decision
            ax_max.text(
                1.03, y, text, transform=ax_max.get_yaxis_transform(), va="center", fontsize=8, color=colour
            )
        ax_mean.set_yticks(ys, labels)
        ax_mean.set_ylim(-0.7, len(rows) - 0.3)
        unit = gap_unit(compares)
        ax_mean.set_xlabel(f"mean gap ({unit})")
        ax_max.set_xlabel(f"max |gap| ({unit})")
        ax_max.set_xlim(left=0)
        fig.suptitle("curve gap level − base over the common x range (90% HDI)", fontsize=10)
        fig.legend(
            handles=[Patch(color=ROPE_COLOUR, alpha=0.45, lw=0, label=f"ROPE ±{rope:g} {unit}")],
            loc="outside lower center",
            frameon=False,
        )
        fig.get_layout_engine().set(w_pad=0.08)
    return fig


PARAM_PANELS = (
    ("delta_log_K", "Δ log K"),
    ("delta_log_kappa", "Δ log κ"),
    ("delta_Ex", "Δ Ex (x's unit)"),
    ("delta_Ey", "Δ Ey (y's unit)"),
)


def plot_param_effects(compares: Mapping[str, Sequence[ContrastResult]]) -> Figure:
    """Δ log K, Δ log kappa, Δ Ex, Δ Ey per contrast with 90% HDI; filled = identified, hollow = weakly
    identified, hollow grey dashed = not identified (the prior sets that interval)."""
    rows = [c for c in _contrast_rows(compares) if c.params]
    if not rows:
        raise UserInputError(
            "no matched contrasts: parameter effects need at least one identifiable contrast"
        )
    with _style():
        labels = [_row_label(c) for c in rows]
        fig, axes = _forest_axes(len(rows), len(PARAM_PANELS), 8.6, labels)
        ys = np.arange(len(rows))[::-1]
        for ax, (key, label) in zip(axes, PARAM_PANELS, strict=True):
            ax.axvline(0, color="#333333", lw=0.7)
            for y, c in zip(ys, rows, strict=True):
                eff = c.params.get(key)
                if eff is None:
                    continue
                flag = eff.get("identified", "unknown")
                filled = flag in ("identified", "fixed")
                colour = "#0072B2" if flag not in ("not identified", "not physical") else "#888888"
                _interval(ax, y, eff["mean"], eff["hdi90"], colour, filled=filled)
            ax.set_xlabel(label)
            ax.locator_params(axis="x", nbins=4)
        axes[0].set_yticks(ys, labels)
        axes[0].set_ylim(-0.7, len(rows) - 0.3)
        handles = [
            Line2D([], [], color="#0072B2", marker="o", lw=1.6, label="identified"),
            Line2D([], [], color="#0072B2", marker="o", mfc="white", lw=1.6, ls=(0, (2, 1.5)), label="weak"),
            Line2D(
                [],
                [],
                color="#888888",
                marker="o",
                mfc="white",
                lw=1.6,
                ls=(0, (2, 1.5)),
                label="not identified",
            ),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
        fig.suptitle("parameter effects of each contrast (level − base), 90% HDI", fontsize=10)
    return fig


def plot_factor_ranking(compares: Mapping[str, Sequence[ContrastResult]], rope: float) -> Figure:
    """Factors sorted by their largest max |gap| (nats) with 90% HDI, the ROPE shaded, decision coloured."""
    table = rank_factors(dict(compares))
    with _style():
        labels = [
            f"{row.factor} ({row.level})" if row.level is not None else str(row.factor)
            for row in table.itertuples()
        ]
        fig, (ax,) = _forest_axes(len(table), 1, 5.6, labels)
        ys = np.arange(len(table))[::-1]
        ax.axvspan(0, rope, color=ROPE_COLOUR, alpha=0.45, lw=0)
        for y, row in zip(ys, table.itertuples(), strict=True):
            colour = DECISION_COLOURS.get(str(row.decision), "#999999")
            if np.isfinite(row.gap_maxabs):
                _interval(ax, y, row.gap_maxabs, (row.lo, row.hi), colour)
            ax.text(
                1.03,
                y,
                str(row.decision),
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize=8,
                color=colour,
            )
        ax.set_yticks(ys, labels)
        ax.set_ylim(-0.7, len(table) - 0.3)
        ax.set_xlim(left=0)
        unit = gap_unit(compares)
        ax.set_xlabel(f"largest curve gap max |Δ| ({unit}), 90% HDI")
        ax.set_title("which factors shift the loss-to-loss curve")
        fig.legend(
            handles=[Patch(color=ROPE_COLOUR, alpha=0.45, lw=0, label=f"ROPE {rope:g} {unit}")],
            loc="outside lower center",
            frameon=False,
        )
    return fig


# ------------------------------------------------------------------------------------------- diagnostics
def default_rank_vars(post: Posterior) -> list[str]:
    """Main scalar parameters for rank plots: the base of each linear predictor, noise scales, nu, and the
    quantity with the worst R-hat (when the fit recorded it)."""
    names = [f"base_{p}" for p in post.config.params] + ["sigma", "sigma_run", "nu"]
    names = [n for n in names if n in post.dt["posterior"]]
    worst = post.diagnostics.get("worst_rhat")
    if worst and worst not in names:
        names.append(worst)
    return names


def _select(post: Posterior, name: str) -> np.ndarray:
    """(chain, draw) draws of a scalar name or an element 'var[label]'."""
    var, _, label = name.partition("[")
    da = post.dt["posterior"][var]
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if label:
        da = da.sel({extra[0]: label.rstrip("]")})
    elif extra:
        da = da.isel({d: 0 for d in extra})
    return np.asarray(da.values, dtype=float)


RANK_TITLE_CHARS = 26
"""Characters per line of a rank-plot panel title (a 2.2-inch panel at 8 pt); longer names wrap."""
SIZE_LEGEND_TITLE = "model size (parameters)"
"""Title of the curve figure's legend of marker shapes / areas (they encode the ``params`` column)."""


def wrap_label(text: str, width: int) -> str:
    """``text`` on lines of at most ``width`` characters, broken after '|', ',' or ']' and before '[' (a
    name such as 'delta_Ex[pretraining_data=C4|architecture=Llama]'), a piece longer than a line cut."""
    pieces = [p for p in re.split(r"(?<=[|,\]])|(?=\[)", text) if p]
    chunks = [piece[k : k + width] for piece in pieces for k in range(0, len(piece), width)]
    lines: list[str] = []
    for chunk in chunks:
        if lines and len(lines[-1]) + len(chunk) <= width:
            lines[-1] += chunk
        else:
            lines.append(chunk)
    return "\n".join(lines)


def plot_rank(post: Posterior, var_names: Iterable[str] | None = None, bins: int = 20) -> Figure:
    """Rank histograms per chain (Vehtari et al. 2021): ranks of all draws pooled over chains, one
    histogram per chain; flat within the grey 99% band when the chains mix."""
    n_chains = int(post.dt["posterior"].sizes["chain"])
    if n_chains < 2:
        raise UserInputError(
            "rank plots need several chains; this posterior has one (approximate fit): refit with --method nuts"
        )
    names = list(var_names) if var_names is not None else default_rank_vars(post)
    with _style():
        ncol = min(len(names), 4)
        nrow = int(np.ceil(len(names) / ncol))
        fig, axes = plt.subplots(
            nrow, ncol, figsize=(2.2 * ncol, 1.9 * nrow + 0.4), squeeze=False, layout="constrained"
        )
        for ax in axes.ravel()[len(names) :]:
            ax.set_visible(False)
        for ax, name in zip(axes.ravel(), names, strict=False):
            draws = _select(post, name)
            n_draws = draws.shape[1]
            ranks = stats.rankdata(draws.ravel()).reshape(draws.shape)
            edges = np.linspace(0.5, draws.size + 0.5, bins + 1)
            expected = n_draws / bins
            lo, hi = stats.binom.ppf([0.005, 0.995], n_draws, 1.0 / bins)
            ax.axhspan(lo, hi, color=ROPE_COLOUR, alpha=0.5, lw=0)
            ax.axhline(expected, color="#333333", lw=0.7)
            for ch in range(n_chains):
                counts, _ = np.histogram(ranks[ch], bins=edges)
                ax.stairs(counts, edges, baseline=None, color=PALETTE[ch % len(PALETTE)], lw=1.1)
            ax.set_title(wrap_label(name, RANK_TITLE_CHARS), fontsize=8)
            ax.set_yticks([])
            ax.set_xticks([])
            ax.set_xlabel("rank", fontsize=7.5)
        handles = [
            Line2D([], [], color=PALETTE[c % len(PALETTE)], lw=1.2, label=f"chain {c}")
            for c in range(n_chains)
        ]
        handles.append(Patch(color=ROPE_COLOUR, alpha=0.5, lw=0, label="99% band if mixed"))
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False)
        dg = post.diagnostics
        status = (
            "diagnostics ok" if dg.get("ok") else "diagnostic problems:\n" + "; ".join(dg.get("problems", []))
        )
        width = int(2.2 * ncol * 14)  # about 14 characters per inch at 9 pt
        status = "\n".join(textwrap.fill(line, width) for line in status.split("\n"))
        fig.suptitle(f"rank plots, {n_chains} chains — {status}", fontsize=9)
    return fig


def offset_index(post: Posterior) -> np.ndarray:
    """Per checkpoint, its column in :func:`run_offsets` (runs with one checkpoint share a zero column)."""
    d = post.design
    return np.asarray(getattr(d, "offset_idx", d.run_idx))


def run_offsets(post: Posterior) -> np.ndarray:
    """Run offset draws (S, n_offsets + 1) in nats, the last column zero (runs without an offset)."""
    s = post.draws("sigma").shape[0]
    off = post.draws("run_offset") if "run_offset" in post.dt["posterior"] else np.zeros((s, 0))
    return np.concatenate([off.reshape(s, -1), np.zeros((s, 1))], axis=1)


def posterior_predictive(post: Posterior, seed: int = 0) -> np.ndarray:
    """Replicated y (S, n_points) of the observed checkpoints: curve + fitted run offset + Student-t noise
    (with each point's known measurement noise where the fit used the error model)."""
    from bayes_l2l.measurement import draws_scale

    d = post.design
    rng = np.random.default_rng(seed)
    p = post.condition_params()
    idx = _thin(p["K"].shape[0])
    c, r = d.cond_idx, offset_index(post)
    gap = d.x[None, :] - p["Ex"][idx][:, c]
    with np.errstate(invalid="ignore"):
        mu = p["K"][idx][:, c] * np.power(gap, p["kappa"][idx][:, c]) + p["Ey"][idx][:, c]
    mu = mu + run_offsets(post)[idx][:, r]
    sigma = post.draws("sigma")[idx][:, None]
    nu = (
        post.draws("nu")[idx][:, None]
        if "nu" in post.dt["posterior"]
        else np.full_like(sigma, post.config.nu)
    )
    scale = draws_scale(post, d.points, sigma, p["K"][idx][:, c], p["kappa"][idx][:, c], p["Ex"][idx][:, c])
    return mu + scale * rng.standard_t(np.broadcast_to(nu, mu.shape))


def ppc_coverage(post: Posterior, seed: int = 0) -> dict[float, float]:
    """Share of observed checkpoints inside their 50% and 90% posterior-predictive intervals."""
    bands = central_bands(posterior_predictive(post, seed))
    y = post.design.y
    return {prob: float(np.mean((y >= b[0]) & (y <= b[1]))) for prob, b in bands.items()}


def plot_ppc(post: Posterior, seed: int = 0) -> Figure:
    """Residuals y − median(y_rep) vs x per checkpoint, with the 50% and 90% posterior-predictive intervals
    (grey bars) and the share of points inside them."""
    d = post.design
    rep = posterior_predictive(post, seed)
    med = np.nanmedian(rep, axis=0)
    bands = central_bands(rep)
    y = d.y
    cover = {prob: float(np.mean((y >= b[0]) & (y <= b[1]))) for prob, b in bands.items()}
    xlabel, _ = _axis_labels(post)
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 3.6 + 0.16 * len(d.conditions)), layout="constrained")
        ax.axhline(0, color="#333333", lw=0.7)
        ax.vlines(d.x, bands[0.9][0] - med, bands[0.9][1] - med, color="#CCCCCC", lw=1.0, zorder=1)
        ax.vlines(d.x, bands[0.5][0] - med, bands[0.5][1] - med, color="#888888", lw=2.0, zorder=2)
        handles = []
        for c, label in enumerate(short_condition_labels(post)):
            sel = d.cond_idx == c
            # past the palette's 8 colours, conditions differ by marker shape too (9 share no colour+shape)
            colour, marker = PALETTE[c % len(PALETTE)], MARKERS[(c // len(PALETTE)) % len(MARKERS)]
            ax.scatter(
                d.x[sel],
                y[sel] - med[sel],
                s=12,
                color=colour,
                marker=marker,
                zorder=3,
                edgecolor="white",
                lw=0.3,
            )
            handles.append(Line2D([], [], color=colour, marker=marker, ls="", ms=4, label=label))
        handles += [
            Line2D([], [], color="#888888", lw=2.0, label=f"50% PI ({cover[0.5]:.0%} of points inside)"),
            Line2D([], [], color="#CCCCCC", lw=1.0, label=f"90% PI ({cover[0.9]:.0%} of points inside)"),
        ]
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"y − predicted median ({d.question.y_unit})")
        ax.set_title("posterior-predictive check (observed checkpoints)")
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig


# ------------------------------------------------------------------------------------------- all of them
def make_figures(
    post: Posterior, compares: Mapping[str, Sequence[ContrastResult]], rope: float
) -> dict[str, Figure]:
    """Every figure that applies to this posterior, by name (curves, gaps, effects, ranking, rank, ppc).

    Skips the ones that do not apply (no contrasts; a one-chain approximate posterior has no rank plot).
    """
    figs: dict[str, Figure] = {"curves": plot_curves(post)}
    has_rows = any(len(v) for v in compares.values())
    if has_rows:
        figs["gaps"] = plot_gap_forest(compares, rope)
        if any(c.params for v in compares.values() for c in v):
            figs["effects"] = plot_param_effects(compares)
        if len(compares) > 1:
            figs["ranking"] = plot_factor_ranking(compares, rope)
    if int(post.dt["posterior"].sizes["chain"]) > 1:
        figs["rank"] = plot_rank(post)
    figs["ppc"] = plot_ppc(post)
    return figs


def write_figures(figs: Mapping[str, Figure], folder: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Save every figure as PNG and SVG in ``folder`` (checked for existing files before writing any)."""
    folder = Path(folder)
    if not overwrite:
        for name in figs:
            for ext in ("png", "svg"):
                if (folder / f"{name}.{ext}").exists():
                    raise UserInputError(
                        f"{folder / f'{name}.{ext}'}: exists already; choose another figures folder or pass --overwrite"
                    )
    paths: list[Path] = []
    for name, fig in figs.items():
        paths += save_figure(fig, folder, name, overwrite=True)
    return paths
