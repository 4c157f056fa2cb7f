"""What is in a LossTable: runs, checkpoints, metrics, factor levels, missing values, matched contrasts.

:func:`describe` returns a JSON-able dict; ``bayes-l2l inspect`` renders it. Counts of factor levels are
counts of CHECKPOINTS. Columns whose names start with ``flag_`` are per-run annotations (e.g. the paper's
study-membership flags): not factors (:attr:`LossTable.factors` leaves them out), listed under ``flags`` and
left out of contrasts.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bayes_l2l.contrasts import MISSING_LEVEL, choose_base, matched_contrasts
from bayes_l2l.table import NUMERIC_IDENTITY, LossTable


def describe(table: LossTable) -> dict[str, Any]:
    """Summary of ``table`` as plain Python data (see the module docstring)."""
    ckpts = table.checkpoints()
    factors = table.factors
    levels = {f: _levels(ckpts[f]) for f in factors}
    contrast_factors = [f for f in factors if len(levels[f]) >= 2]
    return {
        "source": table.source,
        "rows": len(table),
        "runs": int(ckpts["run"].nunique()),
        "checkpoints": len(ckpts),
        "checkpoints_per_run": {str(k): int(v) for k, v in ckpts.groupby("run").size().items()},
        "metrics": _metrics(table),
        "factors": {f: {"levels": levels[f], "n_levels": len(levels[f])} for f in factors},
        "flags": {f: _levels(ckpts[f]) for f in table.flags},
        "missing": _missing(ckpts, factors),
        "warnings": list(table.warnings),
        "contrast_factors": contrast_factors,
        "contrasts": _contrasts(ckpts, contrast_factors),
    }


def _levels(series: pd.Series) -> dict[str, int]:
    """Checkpoints per level, most common first; missing labels counted as '<unknown>'."""
    counts = series.astype("string").fillna(MISSING_LEVEL).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _metrics(table: LossTable) -> list[dict[str, Any]]:
    df = table.df
    out = []
    for (metric, unit), sub in df.groupby(["metric", "unit"], sort=True):
        out.append(
            {
                "metric": str(metric),
                "unit": str(unit),
                "kind": str(sub["kind"].iloc[0]),
                "estimators": sorted(set(sub["estimator"].astype(str))),
                "checkpoints": int(sub[["run", "checkpoint"]].drop_duplicates().shape[0]),
                "runs": int(sub["run"].nunique()),
                "min": float(sub["value"].min()),
                "max": float(sub["value"].max()),
            }
        )
    return out


def _missing(ckpts: pd.DataFrame, factors: list[str]) -> dict[str, int]:
    """Checkpoints with an unknown value, per identity and factor column (only columns with any)."""
    cols = [c for c in NUMERIC_IDENTITY if c in ckpts.columns] + factors
    counts = {c: int(ckpts[c].isna().sum()) for c in cols}
    return {c: n for c, n in counts.items() if n}


def _contrasts(ckpts: pd.DataFrame, factors: list[str]) -> dict[str, Any]:
    """Per factor: each level against the base (:func:`choose_base`, as `fit` takes it), matched on the other
    factors or not."""
    out: dict[str, Any] = {}
    for factor in factors:
        others = [f for f in factors if f != factor]
        base = choose_base(factor, ckpts[factor])
        contrasts = matched_contrasts(ckpts, factor, others, base=base)
        out[factor] = {
            "base": base,
            "others": others,
            "levels": [c.to_dict() for c in contrasts],
            "other_matched_pairs": _other_pairs(ckpts, factor, others, base),
        }
    return out


def _other_pairs(ckpts: pd.DataFrame, factor: str, others: list[str], base: str) -> list[dict[str, Any]]:
    """Matched pairs of two non-base levels (e.g. C4 vs FineWeb-Edu when the base is another corpus)."""
    levels = sorted(set(ckpts[factor].astype("string").fillna(MISSING_LEVEL)) - {base})
    pairs = []
    for i, a in enumerate(levels):
        for c in matched_contrasts(ckpts, factor, others, base=a):
            if c.matched and c.level in levels[i + 1 :]:
                pairs.append({"level": c.level, "versus": a, "matched_on": c.to_dict()["matched_on"]})
    return pairs
