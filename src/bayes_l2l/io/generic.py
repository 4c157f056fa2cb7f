"""Generic CSV/parquet importer driven by a YAML column mapping (schema: docs/mapping.md).

Without a mapping the file must already be a LossTable (the columns of docs/table.md) and is read as is.
With a mapping, source columns are mapped to identity, factor and metric columns, for wide input (one
column per metric, section ``metrics``) or long input (a metric-name column and a value column, section
``long``). Ladder-style extras (file-name fields, templates, forward-fill, level renames, count labels such
as '1.2B') live in :mod:`bayes_l2l.io.mapping_extras` and :mod:`bayes_l2l.io.labels`. Every mapping error
names the mapping file and the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bayes_l2l.errors import UserInputError
from bayes_l2l.io import mapping_extras as extras
from bayes_l2l.io.common import MetricSpec, finish, kind_of, missing_cells_warning, wide_to_long
from bayes_l2l.io.labels import PARSERS
from bayes_l2l.table import IDENTITY_COLUMNS, METRIC_PATTERN, UNITS, LossTable, canonical_metric_id


def _log_positive(v: pd.Series) -> pd.Series:
    if (v.dropna() <= 0).any():
        raise ValueError("perplexity_to_nats needs perplexities > 0")
    return np.log(v)


TRANSFORMS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "none": lambda v: v,
    "bits_to_nats": lambda v: v * math.log(2.0),
    "nats_to_bits": lambda v: v / math.log(2.0),
    "negate": lambda v: -v,
    "perplexity_to_nats": _log_positive,
}
TOP_KEYS = {"identity", "factors", "metrics", "long", "read", "from_filename", "fill", "rename_levels"}
IDENTITY_KEYS = set(IDENTITY_COLUMNS)
WIDE_KEYS = {"column", "unit", "estimator", "transform", "n", "stderr"}
LONG_KEYS = {
    "metric",
    "value",
    "unit",
    "units",
    "estimator",
    "estimators",
    "transform",
    "n",
    "stderr",
    "kind",
    "rename",
    "drop",
}
ENTRY_KEYS = {"value", "column", "template", "parse"}
READ_KEYS = {"sep"}


def read_generic(path: Path, *, mapping: Path | None = None) -> LossTable:
    """Read a LossTable file as is, or any CSV/parquet through a YAML column ``mapping``."""
    path = Path(path)
    if mapping is None:
        return LossTable.read(path)
    spec = _load_mapping(Path(mapping))
    data = _read_data(path, spec.get("read", {}), Path(mapping))
    data = _factor_columns_as_text(data, path, spec)
    return _apply(data, spec, path, Path(mapping))


# ----------------------------------------------------------------------------------------- mapping file
def _load_mapping(mapping: Path) -> dict[str, Any]:
    if not mapping.exists():
        raise UserInputError(f"{mapping}: no such mapping file")
    try:
        spec = yaml.safe_load(mapping.read_text())
    except yaml.YAMLError as exc:
        raise UserInputError(f"{mapping}: not valid YAML ({exc})") from exc
    if not isinstance(spec, dict):
        raise UserInputError(f"{mapping}: must be a YAML mapping with keys {', '.join(sorted(TOP_KEYS))}")
    _check_keys(spec, TOP_KEYS, mapping, "")
    if ("metrics" in spec) == ("long" in spec):
        raise UserInputError(
            f"{mapping}: give exactly one of 'metrics' (wide input: one column per metric) or 'long' "
            "(long input: a metric column and a value column); see docs/mapping.md"
        )
    if "identity" not in spec or not isinstance(spec["identity"], dict) or "run" not in spec["identity"]:
        raise UserInputError(
            f"{mapping}: key 'identity.run' is required (the column naming each training run)"
        )
    _check_keys(spec["identity"], IDENTITY_KEYS, mapping, "identity")
    if "checkpoint" not in spec["identity"] and "step" not in spec["identity"]:
        raise UserInputError(
            f"{mapping}: 'identity' needs 'checkpoint' or 'step' (or checkpoint: {{value: final}} for one "
            "checkpoint per run)"
        )
    if "factors" in spec and not isinstance(spec["factors"], dict):
        raise UserInputError(f"{mapping}: key 'factors' must map factor names to columns or {{value: ...}}")
    if "read" in spec:
        _check_keys(spec["read"], READ_KEYS, mapping, "read")
    return spec


def _check_keys(section: object, allowed: set[str], mapping: Path, where: str) -> None:
    if not isinstance(section, dict):
        raise UserInputError(f"{mapping}: key '{where}' must be a mapping of keys to values")
    unknown = sorted(set(map(str, section)) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserInputError(
            f"{mapping}: unknown key(s) {', '.join(prefix + k for k in unknown)}; allowed here: "
            f"{', '.join(sorted(allowed))}"
        )


def _read_data(path: Path, read: dict[str, Any], mapping: Path) -> pd.DataFrame:
    if not path.exists():
        raise UserInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            sep = read.get("sep") or extras.sniff_sep(path, "\t" if suffix == ".tsv" else ",")
            frame = pd.read_csv(path, sep=sep)
            extras.one_column_hint(frame, sep, path, mapping)
            return frame
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is a problem with the user's file
        raise UserInputError(f"{path}: could not be read ({exc}); check read.sep in {mapping}") from exc
    raise UserInputError(f"{path}: unknown file type '{suffix}'; use .csv, .tsv or .parquet")


def _factor_columns_as_text(data: pd.DataFrame, path: Path, spec: dict[str, Any]) -> pd.DataFrame:
    """The factor columns of a CSV as the file wrote them ('3.0', '1e-3', '0.10'), not as the floats pandas
    parsed (3 -> '3', 0.001); an empty cell stays missing (docs/table.md, "Factor levels")."""
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return data
    entries = (spec.get("factors") or {}).values() if isinstance(spec.get("factors"), dict) else []
    named = {e if isinstance(e, str) else e.get("column") if isinstance(e, dict) else None for e in entries}
    cols = [c for c in data.columns if c in named and not pd.api.types.is_string_dtype(data[c])]
    if not cols:
        return data
    sep = (spec.get("read") or {}).get("sep", "\t" if path.suffix.lower() == ".tsv" else ",")
    text = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], usecols=cols)
    return data.assign(**{c: text[c].str.strip().to_numpy() for c in cols})


# ----------------------------------------------------------------------------------------- application
class _Resolver:
    """Turns mapping entries (column name or {value: ...} / {column: ...}) into Series over the data."""

    def __init__(self, data: pd.DataFrame, path: Path, mapping: Path) -> None:
        self.data, self.path, self.mapping = data, path, mapping

    def column(self, name: object, key: str) -> pd.Series:
        if not isinstance(name, str) or name not in self.data.columns:
            raise UserInputError(
                f"{self.mapping}: key '{key}' names column {name!r}, which {self.path} does not have; "
                f"its columns are: {', '.join(map(str, self.data.columns))}"
            )
        return self.data[name]

    def template(self, template: object, key: str) -> pd.Series:
        """``{template: "{size}-{budget}"}``: fields name columns (or from_filename groups)."""
        if not isinstance(template, str):
            raise UserInputError(f"{self.mapping}: key '{key}' must be a string like '{{size}}-{{budget}}'")
        fields = extras.template_fields(template, key, self.mapping)
        for f in fields:
            self.column(f, f"{key} (field {{{f}}})")
        return extras.render_template(self.data, template, fields)

    def field(self, entry: object, key: str, *, bare_is_column: bool) -> pd.Series:
        """Bare strings are columns (identity, factors) or constants (unit, estimator, kind).

        Where bare strings are columns, a list ``[a, b]`` joins columns with '-' and a mapping may be
        ``{column: C}``, ``{template: "{a}_{b}"}`` (with optional ``parse: count``) or ``{value: X}``.
        """
        if isinstance(entry, dict):
            unknown = sorted(set(map(str, entry)) - ENTRY_KEYS)
            sources = [k for k in ("value", "column", "template") if k in entry]
            if unknown or len(sources) != 1 or ("parse" in entry and sources == ["value"]):
                raise UserInputError(
                    f"{self.mapping}: key '{key}' must be a column name, {{value: X}}, {{column: C}} or "
                    "{template: '{a}-{b}'}" + (" (with optional parse: count)" if bare_is_column else "")
                )
            if sources == ["value"]:
                return pd.Series([entry["value"]] * len(self.data), index=self.data.index)
            if sources == ["column"]:
                out = self.column(entry["column"], f"{key}.column")
                what = repr(entry["column"])
            else:
                out = self.template(entry["template"], f"{key}.template")
                what = f"template {entry['template']!r}"
            if "parse" in entry:
                if entry["parse"] not in PARSERS:
                    raise UserInputError(
                        f"{self.mapping}: key '{key}.parse': unknown parser {entry['parse']!r}; use one of "
                        f"{', '.join(PARSERS)}"
                    )
                out = PARSERS[entry["parse"]](out, source=str(self.path), column=what, key=key)
            return out
        if bare_is_column and isinstance(entry, list) and entry and all(isinstance(c, str) for c in entry):
            return self.template("-".join(f"{{{c}}}" for c in entry), key)
        if bare_is_column:
            return self.column(entry, key)
        if entry is None or isinstance(entry, list):
            raise UserInputError(f"{self.mapping}: key '{key}' needs a value")
        return pd.Series([entry] * len(self.data), index=self.data.index)


def _transform(name: object, key: str, mapping: Path) -> Callable[[pd.Series], pd.Series] | None:
    if name is None:
        return None
    if name not in TRANSFORMS:
        raise UserInputError(
            f"{mapping}: key '{key}': unknown transform {name!r}; use one of {', '.join(TRANSFORMS)}"
        )
    fn = TRANSFORMS[str(name)]

    def safe(v: pd.Series) -> pd.Series:
        try:
            return fn(v)
        except ValueError as exc:
            raise UserInputError(f"{mapping}: key '{key}': {exc}") from exc

    return safe


def _unit(entry: object, key: str, mapping: Path) -> str:
    if entry not in UNITS:
        raise UserInputError(f"{mapping}: key '{key}': unit {entry!r} is not one of {', '.join(UNITS)}")
    return str(entry)


def _prepare(data: pd.DataFrame, spec: dict[str, Any], path: Path, mapping: Path) -> pd.DataFrame:
    """Add the file-name columns, then forward-fill (columns of the run id down the file, others per run)."""
    data = data.reset_index(drop=True)
    if "from_filename" in spec:
        data = extras.add_filename_fields(data, path, spec["from_filename"], mapping)
    if "fill" not in spec:
        return data
    cols, within = extras.fill_spec(spec["fill"], mapping)
    extras.check_fill_columns(data, cols, path, mapping)
    run_cols = set(extras.entry_columns(spec["identity"]["run"], "identity.run", mapping))
    first = [c for c in cols if within == "file" or c in run_cols]
    data = extras.forward_fill(data, first, None)
    rest = [c for c in cols if c not in first]
    if rest:
        runs = _Resolver(data, path, mapping).field(
            spec["identity"]["run"], "identity.run", bare_is_column=True
        )
        data = extras.forward_fill(data, rest, runs.astype("string"))
    return data


def _apply(data: pd.DataFrame, spec: dict[str, Any], path: Path, mapping: Path) -> LossTable:
    data = _prepare(data, spec, path, mapping)
    res = _Resolver(data, path, mapping)
    source = str(path)
    frame = pd.DataFrame(index=data.index)
    ident = spec["identity"]
    for key in ("run", "step", "tokens", "params"):
        if key in ident:
            frame[key] = res.field(ident[key], f"identity.{key}", bare_is_column=True)
    no_run = frame["run"].isna() | (frame["run"].astype("string").str.strip() == "")
    if no_run.any():
        row = int(no_run.to_numpy().argmax()) + 1
        raise UserInputError(
            f"{source}: identity.run of {mapping} gives no run id in data row {row} (line {row + 1} of the "
            f"file) and {int(no_run.sum()) - 1} more row(s): a column it reads is empty there; fill it in, "
            "list it under fill.forward, or build the run id from other columns"
        )
    warnings: list[str] = []
    if "checkpoint" in ident:
        frame["checkpoint"] = res.field(
            ident["checkpoint"], "identity.checkpoint", bare_is_column=True
        ).astype("string")
    else:
        step = pd.to_numeric(frame["step"], errors="coerce")
        frame["checkpoint"] = step.map(
            lambda s: f"step{int(s)}" if pd.notna(s) and float(s).is_integer() else pd.NA
        )
        unknown = frame["checkpoint"].isna()
        if unknown.any():
            frame.loc[unknown, "checkpoint"] = "final"
            warnings.append(f"{source}: {int(unknown.sum())} row(s) without a step got checkpoint id 'final'")
    factor_cols: list[str] = []
    for name, entry in (spec.get("factors") or {}).items():
        if name in IDENTITY_COLUMNS or name in (
            "metric",
            "kind",
            "value",
            "unit",
            "estimator",
            "n",
            "stderr",
        ):
            raise UserInputError(f"{mapping}: key 'factors.{name}': '{name}' is a table column, not a factor")
        frame[str(name)] = res.field(entry, f"factors.{name}", bare_is_column=True)
        factor_cols.append(str(name))
    if "rename_levels" in spec:
        extras.rename_levels(frame, spec["rename_levels"], factor_cols, mapping)
    extras.check_sparse_factors(frame, factor_cols, source, mapping)
    keep = [c for c in ("run", "checkpoint", "step", "tokens", "params") if c in frame.columns] + factor_cols
    if "metrics" in spec:
        long, missing = _wide(data, frame, spec["metrics"], keep, res, mapping)
        warnings += missing_cells_warning(missing, frame["checkpoint"], frame["run"], source)
    else:
        long, notes = _long(frame, spec["long"], keep, res, mapping, source)
        warnings += notes
    if long.empty:
        raise UserInputError(f"{source}: the mapping {mapping} produced no loss values (all cells empty?)")
    return finish(long, source, warnings)


def _wide(
    data: pd.DataFrame,
    frame: pd.DataFrame,
    metrics: object,
    keep: list[str],
    res: _Resolver,
    mapping: Path,
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    if not isinstance(metrics, dict) or not metrics:
        raise UserInputError(
            f"{mapping}: key 'metrics' must map metric ids (val/<corpus>, test/<task>) to columns"
        )
    specs: list[MetricSpec] = []
    work = frame.copy()
    for metric, entry in metrics.items():
        key = f"metrics.{metric}"
        if not METRIC_PATTERN.match(str(metric)):
            raise UserInputError(
                f"{mapping}: key '{key}': '{metric}' is not a canonical metric id; use val/<corpus> or "
                "test/<task> in lowercase snake case, e.g. val/c4, test/arc_easy"
            )
        if not isinstance(entry, dict):
            raise UserInputError(f"{mapping}: key '{key}' must be a mapping with column, unit and estimator")
        _check_keys(entry, WIDE_KEYS, mapping, key)
        for needed in ("column", "unit", "estimator"):
            if needed not in entry:
                raise UserInputError(f"{mapping}: key '{key}.{needed}' is required")
        col = f"__value_{len(specs)}"
        work[col] = res.column(entry["column"], f"{key}.column")
        n_col = se_col = None
        if "n" in entry:
            n_col = f"__n_{len(specs)}"
            work[n_col] = res.column(entry["n"], f"{key}.n")
        if "stderr" in entry:
            se_col = f"__se_{len(specs)}"
            work[se_col] = res.column(entry["stderr"], f"{key}.stderr")
        specs.append(
            MetricSpec(
                col,
                str(metric),
                _unit(entry["unit"], f"{key}.unit", mapping),
                str(entry["estimator"]),
                n_col,
                se_col,
                _transform(entry.get("transform"), f"{key}.transform", mapping),
            )
        )
    try:
        return wide_to_long(work, keep, specs)
    except UserInputError as exc:
        names = {s.column: m for s, m in zip(specs, metrics, strict=True)}
        msg = str(exc)
        for tmp, metric in names.items():
            msg = msg.replace(f"'{tmp}'", f"'{metrics[metric]['column']}' (metric {metric})")
        raise UserInputError(f"{res.path}: {msg}") from exc


def _long(
    frame: pd.DataFrame,
    section: object,
    keep: list[str],
    res: _Resolver,
    mapping: Path,
    source: str,
) -> tuple[pd.DataFrame, list[str]]:
    _check_keys(section, LONG_KEYS, mapping, "long")
    assert isinstance(section, dict)
    for needed in ("metric", "value", "unit", "estimator"):
        if needed not in section and not (needed in ("unit", "estimator") and f"{needed}s" in section):
            raise UserInputError(
                f"{mapping}: key 'long.{needed}' is required"
                + (f" (or long.{needed}s per metric)" if needed in ("unit", "estimator") else "")
            )
    out = frame[keep].copy()
    names = res.column(section["metric"], "long.metric").astype("string").str.strip()
    rename = section.get("rename") or {}
    if not isinstance(rename, dict):
        raise UserInputError(f"{mapping}: key 'long.rename' must map source metric names to metric ids")
    drop = set(map(str, section.get("drop") or []))
    kind = section.get("kind")
    if kind is not None and kind not in ("validation", "test"):
        raise UserInputError(f"{mapping}: key 'long.kind' must be 'validation' or 'test', not {kind!r}")
    prefix = {"validation": "val", "test": "test"}.get(str(kind))

    def canonical(name: str) -> str | None:
        if name in rename:
            return str(rename[name])
        if METRIC_PATTERN.match(name):
            return name
        return canonical_metric_id(prefix, name) if prefix else None

    out["metric"] = names.map(lambda s: canonical(str(s)) if pd.notna(s) else None)
    keep_rows = ~names.isin(drop)
    unresolved = keep_rows & out["metric"].isna() & names.notna()
    if unresolved.any():
        bad = sorted(set(names[unresolved].astype(str)))[:5]
        raise UserInputError(
            f"{mapping}: metric name(s) {', '.join(bad)} in column '{section['metric']}' are not canonical "
            "ids; "
            "add them to long.rename (e.g. arcc: test/arc_challenge) or set long.kind: validation|test"
        )
    bad_ids = keep_rows & ~out["metric"].fillna("").str.match(METRIC_PATTERN)
    if bad_ids.any():
        first = bad_ids.idxmax()
        raise UserInputError(
            f"{mapping}: key 'long.rename' maps {names[first]!r} to {out.at[first, 'metric']!r}, which is "
            "not a "
            "canonical metric id (val/<corpus> or test/<task>, lowercase snake case)"
        )
    raw = pd.to_numeric(res.column(section["value"], "long.value"), errors="coerce")
    values = (_transform(section.get("transform"), "long.transform", mapping) or (lambda v: v))(raw)
    out["value"] = values
    for col in ("unit", "estimator"):
        base = res.field(section[col], f"long.{col}", bare_is_column=False) if col in section else None
        per = section.get(f"{col}s")
        out[col] = extras.per_metric(
            base, per, col, names, out["metric"], keep_rows, section["metric"], mapping
        )
    bad_unit = keep_rows & ~out["unit"].isin(UNITS)
    if bad_unit.any():
        raise UserInputError(
            f"{mapping}: key 'long.unit' / 'long.units' gives unit {out['unit'][bad_unit].iloc[0]!r}; use "
            f"one of {', '.join(UNITS)}"
        )
    for opt in ("n", "stderr"):
        if opt in section:
            out[opt] = pd.to_numeric(res.column(section[opt], f"long.{opt}"), errors="coerce")
    out = out[keep_rows]
    notes: list[str] = []
    if drop:
        notes.append(f"{source}: {int((~keep_rows).sum())} row(s) of metric(s) listed in long.drop skipped")
    empty = out["value"].isna()
    if empty.any():
        notes.append(f"{source}: {int(empty.sum())} row(s) with an empty value left out (not stored as NaN)")
    out = out[~empty].copy()
    out["kind"] = out["metric"].map(kind_of)
    return out, notes
