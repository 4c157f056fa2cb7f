"""Matched factor contrasts: which levels of a factor can be compared with its base level.

A *condition* is one combination of factor levels. A contrast of level L against base B of factor F is
*matched* when some condition with F=L and some condition with F=B agree on every other factor of
interest. Where no such pair exists, the contrast is *confounded* with the factors that always differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

MISSING_LEVEL = "<unknown>"


@dataclass
class Contrast:
    """One level of a factor against the base level."""

    factor: str
    level: str
    base: str
    matched_pairs: list[tuple[dict[str, str], str, str]] = field(default_factory=list)
    """(shared levels of the other factors, condition id of level, condition id of base)."""
    confounded_with: list[str] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.matched_pairs)

    def to_dict(self) -> dict[str, object]:
        return {
            "factor": self.factor,
            "level": self.level,
            "base": self.base,
            "matched": self.matched,
            "matched_on": [dict(shared) for shared, _, _ in self.matched_pairs],
            "confounded_with": self.confounded_with,
        }


def condition_labels(frame: pd.DataFrame, factors: Sequence[str]) -> pd.Series:
    """A readable condition id per row: 'pretraining_data=C4|architecture=Llama'."""
    if not factors:
        return pd.Series("all", index=frame.index, dtype="string")
    parts = [f + "=" + frame[f].astype("string").fillna(MISSING_LEVEL) for f in factors]
    out = parts[0]
    for p in parts[1:]:
        out = out + "|" + p
    return out.astype("string")


PAPER_BASE: dict[str, tuple[str, ...]] = {
    "pretraining_data": ("FineWeb-Edu",),
    "architecture": ("Llama", "GPT"),
    "tokenizer": ("gpt2-HF",),
}
"""The paper's base recipe: the default base level of these factors where present in the selected data."""


def choose_base(factor: str, levels: pd.Series) -> str:
    """The default base level of ``factor``: the paper's base recipe where present (:data:`PAPER_BASE`),
    else the most common level (:func:`default_base`). ``fit`` and ``inspect`` both use it."""
    present = set(levels.astype("string").fillna(MISSING_LEVEL).tolist())
    return next((b for b in PAPER_BASE.get(factor, ()) if b in present), None) or default_base(levels)


def default_base(levels: pd.Series) -> str:
    """The most common level (by rows of the checkpoint frame given); ties broken alphabetically."""
    counts = levels.astype("string").fillna(MISSING_LEVEL).value_counts()
    top = counts[counts == counts.max()].index
    return sorted(str(v) for v in top)[0]


def matched_contrasts(
    checkpoints: pd.DataFrame, factor: str, factors: Sequence[str], base: str | None = None
) -> list[Contrast]:
    """Contrasts of every non-base level of ``factor``, matched on the other ``factors``.

    ``checkpoints`` has one row per checkpoint (or run) with the factor columns.
    """
    frame = checkpoints.copy()
    all_factors = list(dict.fromkeys([factor, *factors]))
    for f in all_factors:
        frame[f] = frame[f].astype("string").fillna(MISSING_LEVEL)
    others = [f for f in all_factors if f != factor]
    base = base if base is not None else default_base(frame[factor])
    conds = frame[all_factors].drop_duplicates()
    conds = conds.assign(_cid=condition_labels(conds, all_factors))
    base_rows = conds[conds[factor] == base]
    out: list[Contrast] = []
    for level in sorted(set(conds[factor]) - {base}):
        contrast = Contrast(factor=factor, level=level, base=base)
        lvl_rows = conds[conds[factor] == level]
        if others:
            pairs = lvl_rows.merge(base_rows, on=others, suffixes=("_lvl", "_base"))
        else:
            pairs = lvl_rows.assign(_k=1).merge(base_rows.assign(_k=1), on="_k", suffixes=("_lvl", "_base"))
        for _, row in pairs.iterrows():
            shared = {f: str(row[f]) for f in others}
            contrast.matched_pairs.append((shared, str(row["_cid_lvl"]), str(row["_cid_base"])))
        if not contrast.matched:
            contrast.confounded_with = [
                f for f in others if set(lvl_rows[f]).isdisjoint(set(base_rows[f]))
            ] or [f for f in others if set(lvl_rows[f]) != set(base_rows[f])]
        out.append(contrast)
    return out
