"""Numbers from labels: '1.2B', '300M', '7b', '1.5T', '20K' -> 1.2e9, 3e8, 7e9, 1.5e12, 2e4.

Used by the generic mapping (``{column: size, parse: count}``, docs/mapping.md) for params, tokens or any
numeric column whose cells are written with a magnitude suffix.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from bayes_l2l.errors import UserInputError

# Suffix (case-insensitive) -> multiplier. G is accepted as a synonym of B (giga).
COUNT_SUFFIXES: dict[str, float] = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_COUNT = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([kmbgt]?)$", re.IGNORECASE)


def parse_count(label: object) -> float:
    """'1.2B' -> 1.2e9; plain numbers pass; empty / missing -> NaN; anything else raises ValueError.

    Thousands separators (``1,000`` / ``1_000``) and surrounding spaces are ignored.
    """
    if label is None or (isinstance(label, float) and math.isnan(label)) or label is pd.NA:
        return math.nan
    if isinstance(label, int | float) and not isinstance(label, bool):
        return float(label)
    text = str(label).strip().replace(",", "").replace("_", "")
    if not text:
        return math.nan
    match = _COUNT.match(text)
    if match is None:
        raise ValueError(f"{label!r} is not a count like 150M, 1.2B, 7b, 1.5T, 20K or 1000")
    number, suffix = match.groups()
    return float(number) * COUNT_SUFFIXES[suffix.lower()]


def parse_count_series(values: pd.Series, *, source: str, column: str, key: str) -> pd.Series:
    """:func:`parse_count` over a column; an unparseable cell raises naming the file, data row and column.

    ``values`` must be indexed by data row position (0-based, as read from the file), ``column`` names the
    source column (or template) and ``key`` the mapping key that asked for the parse.
    """
    out: list[float] = []
    for pos, (_, cell) in enumerate(values.items()):
        try:
            out.append(parse_count(cell))
        except ValueError as exc:
            raise UserInputError(
                f"{source}: column {column}, data row {pos + 1} (line {pos + 2} of the file): {exc} "
                f"({key}: parse: count); fix the cell or leave it empty"
            ) from exc
    return pd.Series(out, index=values.index, dtype=float)


PARSERS = {"count": parse_count_series}
