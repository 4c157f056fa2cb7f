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
