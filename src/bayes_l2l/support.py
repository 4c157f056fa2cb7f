"""What a contrast can support: common x support, run-level confounders, pooled factors.

Three checks that keep a decision honest on tables nobody here made (docs/evidence.md):

* **Common support.** A gap is measured on the x range both conditions cover. Too little of it (a
  sliver of x, or too few checkpoints of either side inside it) and the "gap" is an extrapolation of two
  curves: the decision is then ``not identifiable: too little common support``. Defaults: an overlap at
  least :data:`MIN_SUPPORT_FRACTION` of the narrower condition's x range (below it the overlap is a single
  point of the curves, in any unit), and :data:`MIN_SUPPORT_POINTS` checkpoints of each side that pin its
  curve there: those inside the overlap and the nearest one on either side of it (the overlap lies inside
  each condition's x range, so between two of its checkpoints at least; two are the fewest that pin a
  curve on an interval by interpolation).
* **Run-level confounders.** A column constant within runs (learning rate, batch size, params, an
  undeclared factor) whose values separate the two sides of a contrast cannot be told apart from the
  factor: the contrast names it in ``confounded_with``.
* **Pooled factors.** A table factor left out of the question while it varies across the selected runs
  is averaged over inside each condition: the design says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

MIN_SUPPORT_POINTS = 2
"""Checkpoints of each side that must pin its curve on the common x support (inside it, or the nearest one
below and above it)."""
MIN_SUPPORT_FRACTION = 0.1
"""Common x support as a share of the narrower of the two conditions' x ranges."""
NEARLY_CONFOUNDED = 0.8
"""Share of the contrast's runs whose value of a column is unique to their side, from which that column is
named "nearly" confounded (1.0: "fully")."""

NOT_RUN_LEVEL = {"run", "checkpoint", "step", "x", "y", "weight", "run_idx", "cond_idx", "condition"}
"""Point columns that are never run-level attributes."""
NOT_POOLED = {"seed"}
"""Factors that are expected to vary within a condition (replicates), so pooling them is not reported."""


def common_support(points: pd.DataFrame, c_level: int, c_base: int, support: list[float]) -> dict[str, Any]:
    """Width of the common x support (x's unit), its share of the narrower condition's x range, and per side
    the checkpoints inside it (``inside_level``, ``inside_base``) and those that pin the curve there
    (``n_level``, ``n_base``: inside, plus the nearest checkpoint below and above the support)."""
    lo, hi = support
    width = float(hi - lo) if np.isfinite(lo) and np.isfinite(hi) else float("nan")
    counts, inside, ranges = {}, {}, []
    for side, c in (("level", c_level), ("base", c_base)):
        x = points.loc[points["cond_idx"] == c, "x"].to_numpy(float)
        ranges.append(float(np.ptp(x)) if x.size else 0.0)
        if not width > 0:
            counts[side] = inside[side] = 0
            continue
        inside[side] = int(((x >= lo) & (x <= hi)).sum())
        counts[side] = inside[side] + int((x < lo).any()) + int((x > hi).any())
    narrower = min(ranges)
    return {
        "width": max(width, 0.0) if np.isfinite(width) else width,
        "fraction": (max(width, 0.0) / narrower) if narrower > 0 and np.isfinite(width) else 0.0,
        "n_level": counts["level"],
        "n_base": counts["base"],
        "inside_level": inside["level"],
        "inside_base": inside["base"],
    }


def too_little_support(
    info: dict[str, Any],
    *,
    min_points: int = MIN_SUPPORT_POINTS,
    min_fraction: float = MIN_SUPPORT_FRACTION,
) -> str | None:
    """The reason a common support cannot carry a decision, or None where it can."""
    reasons = []
    if not info["width"] > 0:
        return "the two conditions' x ranges do not overlap"
    if info["fraction"] < min_fraction:
        reasons.append(
            f"the overlap is {info['width']:.3g} wide, {info['fraction']:.0%} of the narrower x range "
            f"(minimum {min_fraction:.0%})"
        )
    short = [f"{info[f'n_{s}']} of the {s}'s" for s in ("level", "base") if info[f"n_{s}"] < min_points]
    if short:
        reasons.append(
            f"only {' and '.join(short)} checkpoints pin the curves there (inside it or nearest to it; minimum "
            f"{min_points} each)"
        )
    return "; ".join(reasons) or None


def run_attributes(points: pd.DataFrame, exclude: Iterable[str] = ()) -> list[str]:
    """Columns of ``points`` that are constant within every run (run-level attributes), but ``exclude``."""
    skip = NOT_RUN_LEVEL | set(exclude)
    cols = [
        c
        for c in points.columns
        if c not in skip and not c.startswith(("x_", "y_", "flag_")) and points[c].notna().any()
    ]
    if not cols:
        return []
    per_run = points.groupby("run")[cols].nunique(dropna=False)
    return [c for c in cols if (per_run[c] <= 1).all()]


def _fmt_values(values: pd.Series) -> str:
    uniq = list(dict.fromkeys(values.dropna().tolist()))
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in uniq[:3])
    return shown + (f", ... ({len(uniq)})" if len(uniq) > 3 else "")


def confounders(
    points: pd.DataFrame, level_rows: pd.Series, base_rows: pd.Series, columns: Iterable[str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(confounded, held_fixed) for one contrast between the runs of the points ``level_rows`` and those of
    ``base_rows`` (boolean masks over ``points``): the run-level ``columns`` whose values separate the two
    sides (fully: no run shares its value, or numeric ranges that do not overlap; nearly: at least
    :data:`NEARLY_CONFOUNDED` of the runs), and those constant across both sides."""
    runs = (
        points[level_rows | base_rows]
        .assign(_level=level_rows[level_rows | base_rows])
        .drop_duplicates("run")
    )
    side = runs["_level"].astype(bool)
    confounded, fixed = [], {}
    for col in columns:
        vals = runs[col]
        if vals.isna().all():
            continue
        if vals.nunique(dropna=False) == 1:
            fixed[col] = _fmt_values(vals)
            continue
        a, b = vals[side], vals[~side]
        if pd.api.types.is_numeric_dtype(vals) and a.notna().any() and b.notna().any():
            inside = ((vals >= max(a.min(), b.min())) & (vals <= min(a.max(), b.max()))).mean()
            unique_share = 1.0 - float(inside)
        else:
            shared = set(a.astype(str)) & set(b.astype(str))
            unique_share = float((~vals.astype(str).isin(shared)).mean())
        if unique_share >= NEARLY_CONFOUNDED:
            confounded.append(
                {
                    "column": col,
                    "degree": "fully" if unique_share >= 1.0 else "nearly",
                    "level_values": _fmt_values(a),
                    "base_values": _fmt_values(b),
                }
            )
    return confounded, fixed


def describe_confounders(confounded: list[dict[str, Any]]) -> str:
    """'learning_rate (fully: 0.003 vs 0.001), batch_size (nearly: ...)'."""
    return ", ".join(
        f"{c['column']} ({c['degree']}: {c['level_values']} vs {c['base_values']})" for c in confounded
    )


def factor_confounding(points: pd.DataFrame, factor_levels: dict[str, list[str]]) -> list[str]:
    """Warnings for the fit: per factor, the run-level columns (not themselves factors of the question)
    that are fully or nearly confounded with some level against the base, over the whole selection."""
    columns = run_attributes(points, exclude=factor_levels)
    out = []
    for f, levels in factor_levels.items():
        found: dict[str, str] = {}
        for level in levels[1:]:
            confounded, _ = confounders(points, points[f] == level, points[f] == levels[0], columns)
            for c in confounded:
                if c["degree"] == "fully" or c["column"] not in found:
                    found[c["column"]] = c["degree"]
        if found:
            named = ", ".join(f"{col} ({deg})" for col, deg in found.items())
            out.append(
                f"{f} is confounded with {named}: those columns change with {f}'s levels across runs, so a gap "
                f"between levels may be theirs as much as {f}'s (compare says which contrasts)"
            )
    return out


def pooled_factors(
    points: pd.DataFrame, table_factors: Iterable[str], question_factors: Iterable[str]
) -> str | None:
    """A warning naming the table factors the question leaves out while they vary across the runs of one
    condition (those that change only between conditions are confounders, named by :func:`confounders`)."""
    asked = set(question_factors)
    pooled = []
    for f in table_factors:
        if f in asked or f in NOT_POOLED or f not in points.columns:
            continue
        runs = points.drop_duplicates("run")
        levels = runs[f].dropna().astype(str).unique()
        if (runs.groupby("cond_idx")[f].nunique(dropna=False) > 1).any():
            shown = ", ".join(sorted(levels)[:4]) + (f", ... ({len(levels)})" if len(levels) > 4 else "")
            pooled.append(f"{f} ({shown})")
    if not pooled:
        return None
    return (
        f"pooled over {'; '.join(pooled)}: these factors vary across the runs of a condition but are not in "
        "the question, so each condition's curve averages over them; add them with --factor (or fix them with "
        "--where) to hold them fixed"
    )


def reconcile(decision: str, elpd_diff: float | None, elpd_se: float | None, elpd_note: str | None) -> str:
    """One statement that puts the decision and the out-of-sample comparison (separate curves for the
    factor's levels vs one shared curve, elpd in favour of separate curves) side by side."""
    if decision.startswith("not identifiable") or decision.startswith("in doubt"):
        return f"no decision ({decision}); the predictive comparison cannot stand in for one"
    if elpd_diff is None or elpd_se is None or not np.isfinite(elpd_diff):
        if not elpd_note:
            return "the out-of-sample comparison was not run (--no-loo / loo=False); the decision rests on the gap"
        return "the out-of-sample comparison is not available (why: above); the decision rests on the posterior gap"
    unreliable = (
        " (but the shared-curve fit was unreliable)" if elpd_note and "UNRELIABLE" in elpd_note else ""
    )
    if abs(elpd_diff) <= 2 * elpd_se:
        return (
            f"the predictive comparison does not tell separate curves from one shared curve (|elpd diff| "
            f"{abs(elpd_diff):.1f} <= 2 SE {2 * elpd_se:.1f}){unreliable}; the decision rests on the gap"
        )
    if elpd_diff > 0:
        return {
            "shift": "separate curves predict held-out runs better and the gap exceeds the ROPE: a real, "
            "practically relevant shift",
            "no practical shift": "separate curves predict held-out runs better, but the gap stays inside the "
            "ROPE: a real, practically negligible difference",
        }.get(
            decision,
            "separate curves predict held-out runs better; whether the gap exceeds the ROPE is undecided",
        ) + unreliable
    return {
        "shift": "one shared curve predicts held-out runs better, yet the gap exceeds the ROPE: the shift is not "
        "borne out out of sample; treat it with caution",
        "no practical shift": "one shared curve predicts held-out runs as well or better and the gap is inside "
        "the ROPE: consistent, no practical shift",
    }.get(decision, "one shared curve predicts held-out runs better; the gap is undecided") + unreliable
