"""Importers: loss tables measured elsewhere -> validated :class:`~bayes_l2l.table.LossTable`.

``FORMATS`` maps a format name to a reader of ONE path; :func:`import_table` reads several paths of one
format (glob patterns such as ``runs/*.csv`` are expanded), concatenates them and validates the result. See docs/mapping.md for each format.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_l2l.errors import UserInputError
from bayes_l2l.io.gadre import read_gadre
from bayes_l2l.io.gemstones import read_gemstones
from bayes_l2l.io.generic import read_generic
from bayes_l2l.io.llm_line import read_llm_line
from bayes_l2l.io.lm_eval import read_lm_eval
from bayes_l2l.table import IDENTITY_COLUMNS, MEASUREMENT_COLUMNS, OPTIONAL_COLUMNS, LossTable

Reader = Callable[..., LossTable]

FORMATS: dict[str, Reader] = {
    "llm-line": read_llm_line,
    "gadre": read_gadre,
    "gemstones": read_gemstones,
    "lm-eval": read_lm_eval,
    "table": read_generic,
    "generic": read_generic,
}
# Options each reader accepts besides the path (anything else is a user error, not silently ignored).
OPTIONS: dict[str, frozenset[str]] = {
    "llm-line": frozenset(),
    "gadre": frozenset(),
    "gemstones": frozenset(),
    "lm-eval": frozenset({"tokenizer", "run", "checkpoint"}),
    "table": frozenset({"mapping"}),
    "generic": frozenset({"mapping"}),
}
_RESERVED = set(IDENTITY_COLUMNS) | set(MEASUREMENT_COLUMNS) | set(OPTIONAL_COLUMNS)
_GLOB_CHARS = set("*?[")


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Paths as given; a path that does not exist and holds ``*``, ``?`` or ``[`` is a glob pattern,
    replaced by the files it matches in sorted order (``runs/*.csv``, ``runs/**/*.csv``). A pattern that
    matches nothing raises :class:`UserInputError`."""
    out: list[Path] = []
    for p in paths:
        text = str(p)
        if Path(text).exists() or not (_GLOB_CHARS & set(text)):
            out.append(Path(text))
            continue
        found = sorted(glob.glob(text, recursive=True))
        if not found:
            raise UserInputError(f"{text}: no file matches this pattern")
        out.extend(Path(f) for f in found)
    return out


def import_table(
    fmt: str,
    paths: Sequence[str | Path],
    mapping: str | Path | None = None,
    *,
    factors: dict[str, str] | None = None,
    **options: Any,
) -> LossTable:
    """Read ``paths`` in format ``fmt`` into one validated LossTable.

    ``mapping`` is the YAML column mapping of the generic format; ``factors`` adds constant factor labels
    to every row (e.g. ``{"pretraining_data": "C4"}``); ``options`` are reader options (lm-eval: tokenizer,
    run, checkpoint). Unknown formats or options raise :class:`UserInputError`.
    """
    if fmt not in FORMATS:
        raise UserInputError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    if not paths:
        raise UserInputError(f"--format {fmt}: give at least one input path")
    given = {k: v for k, v in options.items() if v is not None}
    if mapping is not None:
        given["mapping"] = Path(mapping)
    unknown = sorted(set(given) - OPTIONS[fmt])
    if unknown:
        raise UserInputError(
            f"--format {fmt} does not take {', '.join('--' + u for u in unknown)}"
            + (f"; it takes {', '.join('--' + o for o in sorted(OPTIONS[fmt]))}" if OPTIONS[fmt] else "")
        )
    tables = [FORMATS[fmt](p, **given) for p in expand_paths(paths)]
    if len(tables) == 1 and not factors:
        return tables[0]
    source = ", ".join(t.source for t in tables)
    frame = pd.concat([t.df for t in tables], ignore_index=True)
    warnings = [w for t in tables for w in t.warnings]
    for key, value in (factors or {}).items():
        if key in _RESERVED:
            raise UserInputError(
                f"--factor {key}={value}: '{key}' is a table column, not a factor; pick another name"
            )
        if key in frame.columns and frame[key].notna().any():
            raise UserInputError(
                f"--factor {key}={value}: the imported table already has factor '{key}'; "
                "drop --factor or relabel it with a generic mapping"
            )
        frame[key] = value
    return LossTable.from_frame(frame, source=source, warnings=warnings)


__all__ = ["FORMATS", "OPTIONS", "Reader", "expand_paths", "import_table"]
