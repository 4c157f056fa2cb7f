"""The survey's grid figure: rows x, columns y, one panel per level of the factor; each cell coloured by the
decision and labelled with the mean gap (y's unit) and its 90% HDI."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from bayes_l2l.plots import DECISION_COLOURS  # noqa: E402

OTHER_COLOURS = {
    "not identifiable": "#FFFFFF",
    "in doubt (sampler)": "#CC79A7",
    "error": "#000000",
    "not compared": "#EEEEEE",
}
"""Colours of the cells that carry no decision (shift / no practical shift / undecided are the plots')."""


def _cell(pair: dict[str, Any], level: str) -> tuple[str, str]:
    """(decision key, label) of one pair for one level."""
    if pair["status"] == "error":
        return "error", "error"
    match = [c for c in pair["contrasts"] if c["level"] == level]
    if not match:
        return "not compared", ""
    c = match[0]
    decision = "not identifiable" if c["decision"].startswith("not identifiable") else c["decision"]
    if c["gap_mean"] is None or c["gap_mean"] != c["gap_mean"]:
        return decision, "—"
    lo, hi = c["gap_hdi90"]
    return decision, f"{c['gap_mean']:+.3f}\n[{lo:+.3f}, {hi:+.3f}]"


def plot_survey_grid(survey: dict[str, Any]) -> Figure:
    """The grid of a survey (the JSON of :func:`bayes_l2l.survey.run_survey`)."""
    pairs = survey["pairs"]
    xs = list(dict.fromkeys(p["x"] for p in pairs))
    ys = list(dict.fromkeys(p["y"] for p in pairs))
    levels = list(dict.fromkeys(c["level"] for p in pairs for c in p["contrasts"])) or ["(none)"]
    bases = sorted({c["base"] for p in pairs for c in p["contrasts"]})
    by_pair = {(p["x"], p["y"]): p for p in pairs}
    cell_w, cell_h = 1.05, 0.62
    width = max(6.0, 1.8 + cell_w * len(ys))
    height = 1.2 + len(levels) * (0.9 + cell_h * len(xs))
    fig, axes = plt.subplots(len(levels), 1, figsize=(width, height), squeeze=False, layout="constrained")
    colours = {**DECISION_COLOURS, **OTHER_COLOURS}
    for ax, level in zip(axes[:, 0], levels, strict=True):
        for i, x in enumerate(xs):
            for j, y in enumerate(ys):
                pair = by_pair.get((x, y))
                key, label = ("not compared", "") if pair is None else _cell(pair, level)
                face = colours.get(key, "#999999")
                ax.add_patch(
                    plt.Rectangle(
                        (j, i),
                        1,
                        1,
                        facecolor=face,
                        edgecolor="#BBBBBB",
                        lw=0.6,
                        hatch="//" if key == "not identifiable" else None,
                    )  # fmt: skip
                )
                dark = key in ("shift", "error", "no practical shift", "undecided")
                ax.text(j + 0.5, i + 0.5, label, ha="center", va="center", fontsize=6.5,
                        color="white" if dark else "black")  # fmt: skip
        ax.set_xlim(0, len(ys))
        ax.set_ylim(len(xs), 0)
        ax.set_xticks([j + 0.5 for j in range(len(ys))], ys, rotation=40, ha="right", fontsize=7.5)
        ax.set_yticks([i + 0.5 for i in range(len(xs))], xs, fontsize=7.5)
        ax.set_aspect("auto")
        units = sorted({p.get("y_unit") or "" for p in pairs if p.get("y_unit")})
        ax.set_title(
            f"{survey['factor']} = {level} vs {', '.join(bases) or 'base'}: mean gap [90% HDI] "
            f"({', '.join(units) or 'y unit'})",
            fontsize=9,
        )
        ax.set_ylabel("x")
    axes[-1, 0].set_xlabel("y")
    shown = [k for k in (*DECISION_COLOURS, *OTHER_COLOURS) if k != "not compared"]
    handles = [
        Patch(
            facecolor=colours[k],
            edgecolor="#888888",
            hatch="//" if k == "not identifiable" else None,
            label=k,
        )
        for k in shown
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7.5, frameon=False,
               title="decision (ROPE per y unit)", title_fontsize=8)  # fmt: skip
    return fig


def plot_factor_summary(surveys: dict[str, dict[str, Any]]) -> Figure:
    """Several factors' surveys side by side (the paper's Figure-1 question: data vs architecture vs
    tokenizer): one row per (factor, level); per pair its mean gap with the 90% HDI, coloured by the
    decision (a pair in doubt: its mean only); the ROPE as a grey band where every pair has the same one; per row the share of standing
    decisions that are "shift". ``surveys``: label -> survey JSON (:func:`bayes_l2l.surveys.run_survey`)."""
    import numpy as np

    rows: list[tuple[str, str, list[dict[str, Any]]]] = []
    ropes: set[float] = set()
    units: set[str] = set()
    for label, survey in surveys.items():
        levels = list(dict.fromkeys(c["level"] for p in survey["pairs"] for c in p["contrasts"]))
        for level in levels:
            cells = []
            for p in survey["pairs"]:
                for c in p["contrasts"]:
                    if c["level"] == level:
                        decision = c["decision"] if p["status"] == "ok" else "in doubt (sampler)"
                        cells.append({**c, "decision": decision, "y_unit": p.get("y_unit")})
                        if p.get("rope") is not None:
                            ropes.add(round(float(p["rope"]), 6))
                        units.add(p.get("y_unit") or "y unit")
            base = cells[0]["base"] if cells else "base"
            rows.append((label, f"{level} vs {base}", cells))
    colours = {**DECISION_COLOURS, **OTHER_COLOURS}
    fig, ax = plt.subplots(figsize=(8.5, 1.6 + 0.8 * max(1, len(rows))), layout="constrained")
    if len(ropes) == 1:
        (r,) = ropes
        ax.axvspan(-r, r, color="#DDDDDD", zorder=0, label=f"ROPE ±{r:g}")
    ax.axvline(0, color="#888888", lw=0.8, zorder=1)
    rng = np.random.default_rng(0)
    for i, (_label, _name, cells) in enumerate(rows):
        standing = [c for c in cells if c["decision"] in ("shift", "no practical shift", "undecided")]
        for c in cells:
            mean = c["gap_mean"]
            if mean is None or mean != mean:
                continue
            key = "not identifiable" if c["decision"].startswith("not identifiable") else c["decision"]
            yj = i + rng.uniform(-0.28, 0.28)
            lo, hi = c["gap_hdi90"]
            colour = "#999999" if key == "not identifiable" else colours.get(key, "#999999")
            if key != "in doubt (sampler)":  # its interval is not to be read (heavy tails, failed sampler)
                ax.plot([lo, hi], [yj, yj], color=colour, lw=0.8, alpha=0.6, zorder=2)
            ax.plot([mean], [yj], "o", ms=3.2, color=colour, mec="none" if key != "not identifiable" else "#555555",
                    zorder=3)  # fmt: skip
        share = (
            f"{sum(c['decision'] == 'shift' for c in standing)}/{len(standing)} shift"
            if standing
            else "none standing"
        )
        ax.annotate(share, (1.01, i), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ends = [v for _l, _n, cells in rows for c in cells if c["decision"] != "in doubt (sampler)"
            for v in c["gap_hdi90"] if v == v]  # fmt: skip
    if ends:  # the pairs in doubt (heavy-tailed draws) must not set the scale
        lo, hi = min(ends), max(ends)
        pad = 0.05 * (hi - lo or 1.0)
        ax.set_xlim(min(lo, -max(ropes, default=0)) - pad, max(hi, max(ropes, default=0)) + pad)
    ax.set_yticks(range(len(rows)), [f"{label}: {name}" for label, name, _ in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    for i in range(1, len(rows)):
        if rows[i][0] != rows[i - 1][0]:
            ax.axhline(i - 0.5, color="#BBBBBB", lw=0.6)
    ax.set_xlabel(
        f"curve gap, level minus base: mean and 90% HDI per (x, y) pair ({', '.join(sorted(units))})"
    )
    ax.set_title("Which interventions shift the loss-to-loss curves? One dot per loss pair", fontsize=10)
    shown = [k for k in (*DECISION_COLOURS, "not identifiable", "in doubt (sampler)")]
    handles = [Patch(facecolor=colours[k], edgecolor="#888888", label=k) for k in shown]
    if len(ropes) == 1:
        handles.append(Patch(facecolor="#DDDDDD", label=f"ROPE ±{next(iter(ropes)):g}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7.5, frameon=False)
    return fig
