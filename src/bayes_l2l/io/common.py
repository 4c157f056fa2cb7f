"""Shared pieces of the importers: wide -> long conversion, missing-cell accounting, checks, file reading."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bayes_l2l.errors import UserInputError
from bayes_l2l.table import KIND_OF_PREFIX, STANDARD_FACTORS, LossTable

LN2 = math.log(2.0)
Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class MetricSpec:
    """One source column that holds a loss: where it goes in the LossTable and how it was measured.

    ``n_column`` / ``stderr_column`` name source columns with the item count and standard error;
    ``transform`` maps the source value to the stored unit (e.g. bits -> nats).
    """

    column: str
    metric: str
    unit: str
    estimator: str
    n_column: str | None = None
    stderr_column: str | None = None
    transform: Callable[[pd.Series], pd.Series] | None = None


def snake(name: str) -> str:
    """'Layer Norm' -> 'layer_norm', '# Layers' -> 'layers' (column names of factors)."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def kind_of(metric: str) -> str:
    """'val/c4' -> 'validation', 'test/piqa' -> 'test'."""
    return KIND_OF_PREFIX[metric.split("/", 1)[0]]


def wide_to_long(
    frame: pd.DataFrame,
    keep: Sequence[str],
    specs: Iterable[MetricSpec],
    *,
    source: str | None = None,
    line_offset: int | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Melt metric columns into LossTable rows, dropping empty cells (never storing NaN).

    ``keep`` are the identity and factor columns copied onto every row. Returns the long frame and, per
    metric id, a boolean Series over ``frame``'s index marking the rows whose cell was empty. ``source`` and
    ``line_offset`` (file line of data row 1, minus 1) let an error name the file and the line of a bad cell.
    """
    parts: list[pd.DataFrame] = []
    missing: dict[str, pd.Series] = {}
    for spec in specs:
        raw = pd.to_numeric(frame[spec.column], errors="coerce")
        bad = (
            raw.isna() & frame[spec.column].notna() & (frame[spec.column].astype("string").str.strip() != "")
        )
        if bad.any():
            first = bad.idxmax()
            row = int(frame.index.get_loc(first)) + 1
            where = f"data row {row}" + (f" (line {row + line_offset} of the file)" if line_offset else "")
            raise UserInputError(
                f"{source + ': ' if source else ''}column '{spec.column}', {where}: "
                f"'{frame.at[first, spec.column]}' is not a number; fix the cell or leave it empty"
            )
        values = spec.transform(raw) if spec.transform is not None else raw
        empty = values.isna()
        key = f"{spec.metric} ({spec.unit})"
        missing[key] = empty
        sub = frame.loc[~empty, list(keep)].copy()
        sub["metric"] = spec.metric
        sub["kind"] = kind_of(spec.metric)
        sub["value"] = values[~empty].astype(float)
        sub["unit"] = spec.unit
        sub["estimator"] = spec.estimator
        if spec.n_column is not None:
            sub["n"] = pd.to_numeric(frame.loc[~empty, spec.n_column], errors="coerce")
        if spec.stderr_column is not None:
            sub["stderr"] = pd.to_numeric(frame.loc[~empty, spec.stderr_column], errors="coerce")
        parts.append(sub)
    if not parts:
        return pd.DataFrame(columns=[*keep, "metric", "kind", "value", "unit", "estimator"]), missing
    return pd.concat(parts, ignore_index=True), missing


def missing_cells_warning(
    missing: dict[str, pd.Series], labels: pd.Series, runs: pd.Series, source: str, max_listed: int = 3
) -> list[str]:
    """One warning per metric with empty cells: how many checkpoints lack it and in which runs.

    ``missing`` maps 'metric (unit)' to a mask of empty cells; metrics whose masks are identical (e.g. the
    same corpus in nats/token and bits/byte) share one warning. ``labels`` are checkpoint ids and ``runs``
    run names, indexed like the masks. Metrics empty in every row are summarised in one note.
    """
    out: list[str] = []
    all_empty = [key for key, mask in missing.items() if len(mask) and mask.all()]
    if all_empty:
        out.append(f"{source}: {', '.join(all_empty)} empty in every row; not imported")
    groups: dict[tuple[bool, ...], list[str]] = {}
    for key, mask in missing.items():
        if mask.any() and not mask.all():
            groups.setdefault(tuple(mask.to_numpy(dtype=bool)), []).append(key)
    for keys in groups.values():
        mask = missing[keys[0]]
        per_run: list[str] = []
        for run, sub in mask.groupby(runs, sort=False):
            n_missing = int(sub.sum())
            if not n_missing:
                continue
            if n_missing == len(sub) and len(sub) > 1:
                per_run.append(f"{run} (all {len(sub)} checkpoints)")
            elif len(sub) == 1:
                per_run.append(str(run))
            else:
                ids = labels[sub.index[sub.to_numpy()]].astype(str).tolist()
                shown = ", ".join(ids[:max_listed]) + (
                    f", ... ({len(ids)} of {len(sub)})" if len(ids) > max_listed else ""
                )
                per_run.append(f"{run} @ {shown}")
        out.append(
            f"{source}: {', '.join(keys)}: no value for {int(mask.sum())} checkpoint(s), left out (not "
            "stored "
            "as NaN): " + "; ".join(per_run)
        )
    return out


def constant_per_run(frame: pd.DataFrame, run_col: str, col: str) -> bool:
    """True when ``col`` takes one value (missing counts as a value) within every run."""
    return bool((frame.groupby(run_col)[col].nunique(dropna=False) <= 1).all())


def ensure_standard_factors(frame: pd.DataFrame) -> pd.DataFrame:
    """Add missing standard factor columns as all-missing (documented: a missing label is ``<NA>``)."""
    for col in STANDARD_FACTORS:
        if col not in frame.columns and col != "seed":
            frame[col] = pd.NA
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: str, what: str) -> None:
    """Raise naming the file and the missing columns, listing those the file has."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserInputError(
            f"{source}: missing column(s) {', '.join(repr(c) for c in missing)} expected in {what}; "
            f"the file has: {', '.join(map(str, frame.columns))}"
        )


def read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    """pandas.read_csv with a user-facing error naming the file."""
    if not path.exists():
        raise UserInputError(f"{path}: no such file")
    if path.is_dir():
        raise UserInputError(f"{path}: is a folder; this format reads a CSV file")
    try:
        return pd.read_csv(path, **kwargs)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any parser failure is a problem with the user's file
        raise UserInputError(f"{path}: could not be read as CSV ({exc})") from exc


def finish(long: pd.DataFrame, source: str, warnings: list[str]) -> LossTable:
    """Validate the long frame into a LossTable (errors name ``source``)."""
    return LossTable.from_frame(long.reset_index(drop=True), source=source, warnings=warnings)
