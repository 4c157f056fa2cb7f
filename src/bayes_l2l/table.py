"""The LossTable: one row per (checkpoint, metric), validated, with wide and xarray views.

Schema (long / tidy format, see docs/table.md):

* identity: ``run`` (str), ``checkpoint`` (str), ``step`` (float, NaN = unknown),
  ``tokens`` (float, tokens seen, NaN = unknown), ``params`` (float, parameter count, NaN = unknown)
* factors: ``pretraining_data``, ``tokenizer``, ``architecture``, ``context_length``, ``optimizer``,
  ``learning_rate``, ``weight_decay``, ``scheduler``, ``seed`` plus any extra factor column a source has
  (strings; missing = ``<NA>``); columns named ``flag_*`` are per-run annotations (e.g. the paper's
  study-membership flags), validated like factors but not listed as factors
* measurement: ``metric`` (``val/<corpus>`` or ``test/<task>``), ``kind`` (``validation`` | ``test``),
  ``value`` (float), ``unit`` (``nats/token`` | ``bits/byte``), ``estimator`` (str), optional ``n`` (items
  scored), ``stderr`` (standard error of ``value``, same unit) and ``stderr_independent`` (the part of
  ``stderr`` that is independent across checkpoints, once the shared documents' common effect is removed;
  the evaluator writes it from per-document losses; <= stderr).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_l2l.errors import LossTableError, check_output_file

IDENTITY_COLUMNS: tuple[str, ...] = ("run", "checkpoint", "step", "tokens", "params")
STANDARD_FACTORS: tuple[str, ...] = (
    "pretraining_data",
    "tokenizer",
    "architecture",
    "context_length",
    "optimizer",
    "learning_rate",
    "weight_decay",
    "scheduler",
    "seed",
)
MEASUREMENT_COLUMNS: tuple[str, ...] = ("metric", "kind", "value", "unit", "estimator")
OPTIONAL_COLUMNS: tuple[str, ...] = ("n", "stderr", "stderr_independent")
REQUIRED_COLUMNS: tuple[str, ...] = ("run", "checkpoint", *MEASUREMENT_COLUMNS)
NUMERIC_IDENTITY: tuple[str, ...] = ("step", "tokens", "params")

UNITS: tuple[str, ...] = ("nats/token", "bits/byte", "nats/byte", "bits/token")
KINDS: tuple[str, ...] = ("validation", "test")
KIND_OF_PREFIX = {"val": "validation", "test": "test"}
METRIC_PATTERN = re.compile(r"^(val|test)/[a-z0-9]+(?:_[a-z0-9]+)*$")
# Plausibility bounds per unit: a loss outside them is almost surely in the wrong unit (an accuracy, a
# percentage, a perplexity) rather than a real loss. Perplexities of small LMs reach ~1e4 -> ln = 9.2.
# nats/byte and bits/token: the same bounds converted (x ln 2, / ln 2).
PLAUSIBLE_RANGE = {
    "nats/token": (0.0, 25.0),
    "bits/byte": (0.0, 16.0),
    "nats/byte": (0.0, 11.1),
    "bits/token": (0.0, 36.1),
}

# Named averages (documented in docs/table.md). The paper's Figure-style axes: the mean of its 5 validation
# corpora and the mean of the 7 cloze tasks that lm-eval scores offline here.
NAMED_AVERAGES: dict[str, tuple[str, ...]] = {
    "val/avg5": ("val/c4", "val/fineweb_edu", "val/pile_uc", "val/refinedweb", "val/slimpajama"),
    "val/avg4": ("val/c4", "val/fineweb_edu", "val/pile_uc", "val/refinedweb"),
    "test/avg7": (
        "test/arc_challenge",
        "test/arc_easy",
        "test/hellaswag",
        "test/winogrande",
        "test/piqa",
        "test/copa",
        "test/openbookqa",
    ),
    "test/avg9": (
        "test/arc_challenge",
        "test/arc_easy",
        "test/hellaswag",
        "test/winogrande",
        "test/piqa",
        "test/social_iqa",
        "test/commonsense_qa",
        "test/copa",
        "test/openbookqa",
    ),
}
_MEAN_SPEC = re.compile(r"^mean\((?P<body>[^()]*)\)$")

PARQUET_META_KEY = b"bayes_l2l"
# Columns named flag_<...> are per-run annotations, not training factors (docs/table.md).
FLAG_PREFIX = "flag_"


def canonical_metric_id(kind_prefix: str, name: str) -> str:
    """Turn a human name ('The Pile UC', 'ARC-Easy') into a canonical id ('val/the_pile_uc')."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return f"{kind_prefix}/{slug}"


def _row_label(df: pd.DataFrame, idx: object) -> str:
    """'row 17 (run=..., checkpoint=...)' for error messages; rows are numbered from 1 as in a file."""
    pos = df.index.get_loc(idx) if idx in df.index else idx
    if isinstance(pos, slice | np.ndarray):
        pos = idx
    parts = []
    for col in ("run", "checkpoint", "metric"):
        if col in df.columns:
            parts.append(f"{col}={df.at[idx, col]!s}")
    return f"row {int(pos) + 1} ({', '.join(parts)})"


@dataclass
class LossTable:
    """A validated long-format loss table plus the warnings its importer raised.

    ``source`` names where the table came from (a path), used in every error message.
    """

    df: pd.DataFrame
    source: str = "<table>"
    warnings: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ construction and validation
    @classmethod
    def from_frame(cls, df: pd.DataFrame, source: str = "<table>", warnings: Iterable[str] = ()) -> LossTable:
        """Normalise dtypes, validate, and wrap a long-format frame."""
        table = cls(df=_normalise(df, source), source=source, warnings=list(warnings))
        table.validate()
        return table

    def validate(self) -> None:
        """Raise :class:`LossTableError` naming the file, row/column and fix for the first problem."""
        validate_frame(self.df, self.source)

    # ------------------------------------------------------------------ descriptive properties
    @property
    def factors(self) -> list[str]:
        """Factor columns present: the standard ones first, then extras, in column order (no ``flag_*``)."""
        known = set(IDENTITY_COLUMNS) | set(MEASUREMENT_COLUMNS) | set(OPTIONAL_COLUMNS)
        std = [c for c in STANDARD_FACTORS if c in self.df.columns]
        extra = [
            c
            for c in self.df.columns
            if c not in known and c not in STANDARD_FACTORS and not c.startswith(FLAG_PREFIX)
        ]
        return std + extra

    @property
    def flags(self) -> list[str]:
        """Per-run annotation columns (``flag_*``), in column order; constant within a run like factors."""
        return [c for c in self.df.columns if c.startswith(FLAG_PREFIX)]

    @property
    def metrics(self) -> list[str]:
        return sorted(self.df["metric"].unique().tolist())

    @property
    def runs(self) -> list[str]:
        return sorted(self.df["run"].unique().tolist())

    def checkpoints(self) -> pd.DataFrame:
        """One row per (run, checkpoint) with identity, factor and flag columns."""
        cols = [c for c in IDENTITY_COLUMNS if c in self.df.columns] + self.factors + self.flags
        return self.df[cols].drop_duplicates(["run", "checkpoint"]).reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.df)

    # ------------------------------------------------------------------ selection
    def where(self, **conditions: object) -> LossTable:
        """Rows that satisfy every condition COLUMN=SPEC: a value (equality; string comparison for factors),
        ``"!=V"``, a set ``"A,B"`` (or a list), ``">=N"`` / ``">N"`` / ``"<=N"`` / ``"<N"`` (see
        :mod:`bayes_l2l.where`)."""
        from bayes_l2l.where import condition_mask, parse_condition

        mask = pd.Series(True, index=self.df.index)
        parsed = []
        for col, spec in conditions.items():
            if col not in self.df.columns:
                raise LossTableError(
                    f"{self.source}: --where names column '{col}', which the table does not have; "
                    f"columns are: {', '.join(self.df.columns)}"
                )
            cond = parse_condition(col, spec)
            parsed.append(cond)
            mask &= condition_mask(self.df, cond, self.source)
        if not mask.any():
            raise LossTableError(
                f"{self.source}: no rows match {', '.join(c.text() for c in parsed)}; "
                f"check the spelling against `bayes-l2l inspect`"
            )
        return LossTable(self.df[mask].reset_index(drop=True), self.source, list(self.warnings))

    def select(self, where: Mapping[str, object] | None = None, **conditions: object) -> LossTable:
        """Rows that satisfy the conditions: ``table.select(where={"architecture": "Llama"})``,
        ``table.select(architecture="Llama")``, ``table.select(where={"tokens": ">=1e9", "size": ["150M",
        "300M"]})`` (as :meth:`where`; no condition keeps every row)."""
        merged = {**dict(where or {}), **conditions}
        return self.where(**merged) if merged else self

    # ------------------------------------------------------------------ metrics and averages
    def resolve_metric(self, spec: str) -> tuple[str, tuple[str, ...]]:
        """Return (name, component metrics) for a metric id, a named average or ``mean(a,b,...)``."""
        spec = spec.strip()
        if spec in NAMED_AVERAGES:
            return spec, NAMED_AVERAGES[spec]
        m = _MEAN_SPEC.match(spec)
        if m:
            parts = tuple(p.strip() for p in m.group("body").split(",") if p.strip())
            if len(parts) < 2:
                raise LossTableError(f"{spec}: a mean(...) needs at least two metrics, comma separated")
            return spec, parts
        return spec, (spec,)

    def metric_units(self, spec: str) -> list[str]:
        """Units a metric (or every component of an average) is stored in; LossTableError if it is absent."""
        name, parts = self.resolve_metric(spec)
        present = set(self.df["metric"])
        missing = [p for p in parts if p not in present]
        if missing:
            raise LossTableError(
                f"{self.source}: metric(s) {', '.join(missing)} not in the table (needed for '{name}'); "
                f"metrics present: {', '.join(self.metrics)}"
            )
        sub = self.df[self.df["metric"].isin(parts)]
        per_part = [set(g.astype(str)) for _, g in sub.groupby("metric")["unit"]]
        common = set.intersection(*per_part)
        return sorted(common) if common else sorted(set.union(*per_part))

    def metric_series(self, spec: str, *, allow_mixed: bool = False, unit: str | None = None) -> pd.DataFrame:
        """Per-checkpoint values of a metric or an average: columns run, checkpoint, value, unit, estimator.

        Averages need every component on a checkpoint (others are dropped, and the count is in
        ``self.warnings``); they refuse to mix units or estimators unless ``allow_mixed``.
        """
        name, parts = self.resolve_metric(spec)
        missing = [p for p in parts if p not in set(self.df["metric"])]
        if missing:
            raise LossTableError(
                f"{self.source}: metric(s) {', '.join(missing)} not in the table (needed for '{name}'); "
                f"metrics present: {', '.join(self.metrics)}"
            )
        sub = self.df[self.df["metric"].isin(parts)]
        if unit is not None:
            sub = sub[sub["unit"] == unit]
        if len(parts) > 1 and not allow_mixed:
            for col in ("unit", "estimator"):
                levels = sub.groupby("metric")[col].agg(lambda s: tuple(sorted(set(s.astype(str)))))
                flat = sorted({v for tup in levels for v in tup})
                if len(flat) > 1:
                    detail = "; ".join(f"{m}: {', '.join(v)}" for m, v in levels.items())
                    raise LossTableError(
                        f"{self.source}: refusing to average '{name}' across different {col}s ({detail}). "
                        f"Pick components with one {col}, or pass allow_mixed=True / --allow-mixed "
                        "if you accept that."
                    )
        if sub.groupby(["run", "checkpoint", "metric"]).size().max() > 1:
            raise LossTableError(
                f"{self.source}: metric '{name}' has several values per checkpoint (different units?); "
                "select one with unit=..."
            )
        wide = sub.pivot_table(index=["run", "checkpoint"], columns="metric", values="value", aggfunc="first")
        complete = wide.dropna()
        dropped = len(wide) - len(complete)
        if dropped and len(parts) > 1:
            self.warnings.append(
                f"'{name}': {dropped} checkpoint(s) lack one of its {len(parts)} components and were left out"
            )
        meta = sub.groupby(["run", "checkpoint"]).agg(
            unit=("unit", lambda s: "+".join(sorted(set(s)))),
            estimator=("estimator", lambda s: "+".join(sorted(set(s.astype(str))))),
        )
        out = complete.mean(axis=1).rename("value").to_frame().join(meta)
        for col in ("stderr", "stderr_independent"):
            out[col] = self._average_stderr(sub, col, complete.index, len(parts))
        return out.reset_index()

    @staticmethod
    def _average_stderr(sub: pd.DataFrame, col: str, index: pd.Index, k: int) -> pd.Series:
        """The standard error (column ``col``) of a mean over ``k`` metrics: sqrt(sum of squares) / k, the
        components' errors independent (different corpora or tasks, different documents); NaN where a
        component has none."""
        if col not in sub.columns:
            return pd.Series(np.nan, index=index)
        se = sub.pivot_table(index=["run", "checkpoint"], columns="metric", values=col, aggfunc="first")
        se = se.reindex(index)
        if se.shape[1] < k:
            return pd.Series(np.nan, index=index)
        return np.sqrt((se**2).sum(axis=1, min_count=k)) / k

    def with_average(self, spec: str, *, allow_mixed: bool = False) -> LossTable:
        """A copy with the average ``spec`` added as rows of its own metric (named as ``spec``)."""
        name, parts = self.resolve_metric(spec)
        if len(parts) == 1:
            return self
        vals = self.metric_series(spec, allow_mixed=allow_mixed)
        ident = self.checkpoints()
        rows = vals.merge(ident, on=["run", "checkpoint"], how="left")
        prefix = parts[0].split("/")[0]
        rows["metric"] = average_metric_id(name, parts)
        rows["kind"] = KIND_OF_PREFIX.get(prefix, "validation")
        rows["estimator"] = "mean(" + rows["estimator"] + ")"
        merged = pd.concat(
            [self.df, rows[[c for c in self.df.columns if c in rows.columns]]], ignore_index=True
        )
        return LossTable(_normalise(merged, self.source), self.source, list(self.warnings))

    # ------------------------------------------------------------------ views
    def wide(self, metrics: Sequence[str] | None = None, unit: str | None = None) -> pd.DataFrame:
        """One row per checkpoint (identity + factors), one column per metric (values in their unit).

        Without ``unit`` every selected metric must be stored in one unit only; a metric stored in two
        (the llm-line table has each in nats/token and bits/byte) raises :class:`LossTableError`.
        """
        sub = self.df if unit is None else self.df[self.df["unit"] == unit]
        if metrics is not None:
            sub = sub[sub["metric"].isin(list(metrics))]
        if unit is None:
            self._refuse_two_units(sub)
        values = sub.pivot_table(
            index=["run", "checkpoint"], columns="metric", values="value", aggfunc="first"
        )
        values.columns.name = None
        return self.checkpoints().merge(values.reset_index(), on=["run", "checkpoint"], how="right")

    def _refuse_two_units(self, sub: pd.DataFrame) -> None:
        units = sub.groupby("metric")["unit"].agg(lambda s: sorted(set(s.astype(str))))
        several = units[units.map(len) > 1]
        if len(several):
            listed = "; ".join(f"{m} ({', '.join(u)})" for m, u in several.items())
            raise LossTableError(
                f"{self.source}: {len(several)} metric(s) are stored in two units: {listed}; "
                f"pass unit= (one of {', '.join(UNITS)}) to choose which values to use"
            )

    def to_xarray(self, unit: str | None = None):  # -> xarray.Dataset
        """An ``xarray.Dataset``: variable ``value`` on dims (checkpoint_id, metric), identity as coords.

        ``unit`` selects one unit; it is required when a metric is stored in two (see :meth:`wide`).
        """
        import xarray as xr

        w = self.wide(unit=unit)
        metric_cols = [c for c in w.columns if METRIC_PATTERN.match(str(c))]
        ids = (w["run"].astype(str) + "@" + w["checkpoint"].astype(str)).to_numpy()
        coords: dict[str, object] = {"checkpoint_id": ids, "metric": metric_cols}
        for col in [c for c in w.columns if c not in metric_cols]:
            coords[col] = ("checkpoint_id", w[col].to_numpy())
        return xr.Dataset(
            {"value": (("checkpoint_id", "metric"), w[metric_cols].to_numpy(dtype=float))}, coords=coords
        )

    # ------------------------------------------------------------------ persistence
    def to_parquet(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write parquet (warnings kept in the file's metadata). Refuses to overwrite unless told to."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        _refuse_overwrite(path, overwrite)
        tbl = pa.Table.from_pandas(self.df, preserve_index=False)
        meta = dict(tbl.schema.metadata or {})
        meta[PARQUET_META_KEY] = json.dumps({"warnings": self.warnings, "source": self.source}).encode()
        tbl = tbl.replace_schema_metadata(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(tbl, tmp)
        tmp.replace(path)
        return path

    def to_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write CSV (warnings are not kept: CSV has no metadata; use parquet for that)."""
        path = Path(path)
        _refuse_overwrite(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self.df.to_csv(tmp, index=False)
        tmp.replace(path)
        return path

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write parquet or CSV by the file suffix."""
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            return self.to_csv(path, overwrite=overwrite)
        if suffix in (".parquet", ".pq"):
            return self.to_parquet(path, overwrite=overwrite)
        raise LossTableError(f"{path}: unknown output format '{suffix}'; use .parquet or .csv")

    @classmethod
    def read_store(cls, root: str | Path, namespace: str | None = None) -> LossTable:
        """The results of an evaluation store folder (``bayes-l2l eval``), validated."""
        from bayes_l2l.evaluate.store import store_frame  # no torch needed

        df, source = store_frame(root, namespace)
        return cls.from_frame(df, source=source)

    @classmethod
    def read(cls, path: str | Path) -> LossTable:
        """Read a LossTable written by :meth:`save` (parquet or CSV), or an evaluation store folder."""
        path = Path(path)
        if not path.exists():
            raise LossTableError(f"{path}: no such file; give the path of a .parquet or .csv loss table")
        if path.is_dir():
            if (path / "bayes-l2l-store.json").exists():
                return cls.read_store(path)
            raise LossTableError(
                f"{path}: is a folder, not a loss table or an evaluation store (no bayes-l2l-store.json in it)"
            )
        suffix = path.suffix.lower()
        warnings: list[str] = []
        source = str(path)
        try:
            if suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                tbl = pq.read_table(path)
                meta = (tbl.schema.metadata or {}).get(PARQUET_META_KEY)
                if meta:
                    warnings = list(json.loads(meta).get("warnings", []))
                df = tbl.to_pandas()
            elif suffix == ".csv":
                # Every cell as text, so factor labels come back verbatim ('3e-4', '0.10', 'NA');
                # _normalise converts the numeric columns. Only an empty cell is missing.
                df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            else:
                raise LossTableError(f"{path}: unknown table format '{suffix}'; expected .parquet or .csv")
        except LossTableError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader failure is a user-facing file problem
            raise LossTableError(
                f"{path}: could not be read as {suffix[1:]} ({exc}); is it a loss table?"
            ) from exc
        return cls.from_frame(df, source=source, warnings=warnings)


# ---------------------------------------------------------------------------------------------------
def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    check_output_file(path, overwrite, error=LossTableError)


def _normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Dtypes: identity strings, numeric step/tokens/params/value/n/stderr, factor columns as strings."""
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    for col in ("run", "checkpoint", "metric", "kind", "unit", "estimator"):
        if col in df.columns:
            df[col] = df[col].astype("string")
    for col in (*NUMERIC_IDENTITY, "value", "n", "stderr", "stderr_independent"):
        if col in df.columns:
            converted = pd.to_numeric(df[col], errors="coerce")
            bad = converted.isna() & df[col].notna()
            if bad.any():
                first = bad.idxmax()
                raise LossTableError(
                    f"{source}: column '{col}', {_row_label(df, first)}: '{df.at[first, col]}' is not a "
                    "number; "
                    f"fix the value (use an empty cell for unknown {col})"
                )
            df[col] = converted.astype(float)
    known = set(IDENTITY_COLUMNS) | set(MEASUREMENT_COLUMNS) | set(OPTIONAL_COLUMNS)
    for col in df.columns:
        if col not in known:
            df[col] = _factor_column(df[col])
    return df.reset_index(drop=True)


def _factor_column(series: pd.Series) -> pd.Series:
    """A factor column as strings (:func:`_factor_string`), each number in its column's own precision
    (pandas hands ``map`` a float32 as a Python float, whose text would show float32's rounding)."""
    values = series.to_numpy()
    if values.dtype.kind == "f" and values.dtype.itemsize < 8:
        return pd.Series([_factor_string(v) for v in values], index=series.index, dtype="string")
    return series.map(_factor_string).astype("string")


def _factor_string(v: object) -> object:
    """Factor levels are strings: text as written; a number as its shortest exact text in its own precision
    (2048.0 -> '2048', 3e8 -> '300000000', 0.0003 -> '0.0003', float32 1.5e-05 -> '1.5e-05', not
    '1.4999999621068127e-05'); NaN stays missing (docs/table.md, "Factor levels")."""
    if v is None or (isinstance(v, float | np.floating) and np.isnan(v)) or v is pd.NA:
        return pd.NA
    if isinstance(v, float | np.floating):
        if float(v).is_integer() and abs(float(v)) < 1e16:
            return str(int(v))
        return str(v) if isinstance(v, np.floating) else repr(float(v))
    if isinstance(v, np.integer):
        return str(int(v))
    s = str(v).strip()
    return s if s else pd.NA


def validate_frame(df: pd.DataFrame, source: str) -> None:
    """Check the schema; raise LossTableError naming file, row/column, what was expected, and the fix."""
    if len(df) == 0:
        raise LossTableError(
            f"{source}: the table has no rows; import at least one (checkpoint, metric) value"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise LossTableError(
            f"{source}: missing required column(s) {', '.join(missing)}; a loss table needs "
            f"{', '.join(REQUIRED_COLUMNS)} (see docs/table.md, or import with a column mapping)"
        )
    for col in ("run", "checkpoint", "metric", "kind", "unit", "estimator"):
        empty = df[col].isna() | (df[col].astype("string").str.strip() == "")
        if empty.any():
            first = empty.idxmax()
            raise LossTableError(
                f"{source}: column '{col}' is empty in {_row_label(df, first)}"
                f"{f' and {int(empty.sum()) - 1} more row(s)' if empty.sum() > 1 else ''}; "
                f"every row needs a {col}"
            )
    bad_metric = ~df["metric"].astype(str).str.match(METRIC_PATTERN)
    if bad_metric.any():
        first = bad_metric.idxmax()
        raise LossTableError(
            f"{source}: column 'metric', {_row_label(df, first)}: '{df.at[first, 'metric']}' is not a "
            "canonical metric id; use val/<corpus> or test/<task> in lowercase snake case, "
            "e.g. val/c4, test/arc_easy"
        )
    bad_kind = ~df["kind"].isin(KINDS)
    if bad_kind.any():
        first = bad_kind.idxmax()
        raise LossTableError(
            f"{source}: column 'kind', {_row_label(df, first)}: '{df.at[first, 'kind']}' is not one of "
            f"{', '.join(KINDS)}"
        )
    prefix_kind = df["metric"].astype(str).str.split("/").str[0].map(KIND_OF_PREFIX)
    mismatch = prefix_kind != df["kind"]
    if mismatch.any():
        first = mismatch.idxmax()
        raise LossTableError(
            f"{source}: {_row_label(df, first)}: metric '{df.at[first, 'metric']}' has kind "
            f"'{df.at[first, 'kind']}'; val/* metrics are kind 'validation', test/* are kind 'test'"
        )
    bad_unit = ~df["unit"].isin(UNITS)
    if bad_unit.any():
        first = bad_unit.idxmax()
        raise LossTableError(
            f"{source}: column 'unit', {_row_label(df, first)}: '{df.at[first, 'unit']}' is not a known "
            "unit; "
            f"use one of {', '.join(UNITS)} (convert accuracies/perplexities to losses first)"
        )
    nan_value = df["value"].isna()
    if nan_value.any():
        first = nan_value.idxmax()
        raise LossTableError(
            f"{source}: column 'value' is missing (NaN) in {_row_label(df, first)}"
            f"{f' and {int(nan_value.sum()) - 1} more row(s)' if nan_value.sum() > 1 else ''}; "
            "drop rows without a measurement instead of storing NaN"
        )
    inf_value = ~np.isfinite(df["value"].to_numpy(dtype=float))
    if inf_value.any():
        first = df.index[inf_value][0]
        raise LossTableError(
            f"{source}: column 'value', {_row_label(df, first)}: value is infinite; fix or drop it"
        )
    for unit, (lo, hi) in PLAUSIBLE_RANGE.items():
        sel = df["unit"] == unit
        out = sel & ((df["value"] <= lo) | (df["value"] > hi))
        if out.any():
            first = out.idxmax()
            raise LossTableError(
                f"{source}: column 'value', {_row_label(df, first)}: {float(df.at[first, 'value']):g} {unit} is "
                f"outside the plausible range ({lo}, {hi}] for a loss; is it an accuracy, a percentage or a "
                "perplexity, or in another unit? Convert it to a loss in nats/token or bits/byte"
            )
    for col in NUMERIC_IDENTITY:
        if col in df.columns:
            neg = df[col] < 0
            if col == "params":
                neg = df[col] <= 0
            if neg.any():
                first = neg.idxmax()
                raise LossTableError(
                    f"{source}: column '{col}', {_row_label(df, first)}: {df.at[first, col]!r} must be "
                    f"{'positive' if col == 'params' else 'non-negative'} (leave it empty if unknown)"
                )
    for col in ("stderr", "stderr_independent"):
        if col in df.columns:
            neg = df[col] < 0
            if neg.any():
                first = neg.idxmax()
                raise LossTableError(f"{source}: column '{col}', {_row_label(df, first)}: must be >= 0")
    if "stderr_independent" in df.columns:
        total = df["stderr"] if "stderr" in df.columns else pd.Series(np.nan, index=df.index)
        bad = df["stderr_independent"].notna() & ~(df["stderr_independent"] <= total * (1 + 1e-9))
        if bad.any():
            first = bad.idxmax()
            raise LossTableError(
                f"{source}: column 'stderr_independent', {_row_label(df, first)}: must not exceed 'stderr' "
                "(it is the part of the standard error independent across checkpoints); give stderr too"
            )
    if "n" in df.columns:
        bad_n = df["n"].notna() & ((df["n"] < 1) | (df["n"] % 1 != 0))
        if bad_n.any():
            first = bad_n.idxmax()
            raise LossTableError(
                f"{source}: column 'n', {_row_label(df, first)}: {df.at[first, 'n']!r} must be a positive "
                "count"
            )
    key = ["run", "checkpoint", "metric", "unit"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        first = df.index[dup][0]
        same = (df[key] == df.loc[first, key]).all(axis=1)
        rows = df.index[same][:2]  # the first duplicate and its own twin (not another pair's row)
        raise LossTableError(
            f"{source}: duplicate checkpoint rows: {_row_label(df, rows[0])} and {_row_label(df, rows[1])} "
            f"have the same {', '.join(key)}; drop one, or give them distinct checkpoint ids"
        )
    # Identity and factor labels must be constant within a checkpoint, factor labels within a run.
    factor_cols = [
        c
        for c in df.columns
        if c not in set(IDENTITY_COLUMNS) | set(MEASUREMENT_COLUMNS) | set(OPTIONAL_COLUMNS)
    ]
    for col in [c for c in NUMERIC_IDENTITY if c in df.columns]:
        n_levels = df.groupby(["run", "checkpoint"])[col].nunique(dropna=False)
        if (n_levels > 1).any():
            run, ckpt = n_levels[n_levels > 1].index[0]
            raise LossTableError(
                f"{source}: checkpoint run={run}, checkpoint={ckpt} has different '{col}' values on "
                "different rows; a checkpoint's identity must be the same on all its metric rows"
            )
    for col in factor_cols:
        n_levels = df.groupby("run")[col].nunique(dropna=False)
        if (n_levels > 1).any():
            run = n_levels[n_levels > 1].index[0]
            values = df.loc[df["run"] == run, col].unique()
            levels = sorted({"(empty)" if pd.isna(v) else str(v) for v in values})
            fix = (
                "fill the empty cells (a mapping's fill: {forward: [...]}, docs/mapping.md)"
                if "(empty)" in levels
                else "split it into separate runs"
            )
            raise LossTableError(
                f"{source}: run '{run}' has several values of factor '{col}' ({', '.join(levels)}); "
                f"factor labels must be constant within a run: {fix}"
            )


def average_metric_id(name: str, parts: Sequence[str]) -> str:
    """Canonical id of an average: a named one keeps its name, mean(val/a,val/b) -> val/mean_a_b."""
    if METRIC_PATTERN.match(name):
        return name
    prefix = parts[0].split("/")[0]
    return canonical_metric_id(prefix, "mean_" + "_".join(p.split("/")[-1] for p in parts))


def read_table(path: str | Path) -> LossTable:
    """Read a LossTable from parquet or CSV (see :meth:`LossTable.read`)."""
    return LossTable.read(path)


def read_store(root: str | Path, namespace: str | None = None) -> LossTable:
    """The results of an evaluation store folder (``bayes-l2l eval``) as a validated LossTable."""
    return LossTable.read_store(root, namespace)
