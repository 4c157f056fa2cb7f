"""Pieces of the generic YAML mapping for ladder-style files (docs/mapping.md).

* ``from_filename``: columns taken from the file name by a regex with named groups;
* templates: a value built from several columns, ``{template: "{size}-{budget}"}`` or ``[size, budget]``;
* ``fill``: forward-fill of sparse columns (within each run, or down the file);
* ``rename_levels``: relabel factor levels;
* separator sniffing for delimited text files.

Every error names the mapping file (or the data file) and the key, and says how to fix it.
"""

from __future__ import annotations

import csv
import math
import re
import string
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_l2l.errors import UserInputError

FILENAME_KEYS = {"pattern", "against"}
FILL_KEYS = {"forward", "within"}
SEPARATORS = {",": "comma", ";": ";", "\t": "tab", "|": "|"}


# ------------------------------------------------------------------------------------------ templates
def template_fields(template: str, key: str, mapping: Path) -> list[str]:
    """The field names of a ``str.format`` template; refuses positional fields like ``{}``."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise UserInputError(f"{mapping}: key '{key}': template {template!r} is not valid ({exc})") from exc
    if not names or any(not n or not n.isidentifier() for n in names):
        raise UserInputError(
            f"{mapping}: key '{key}': template {template!r} must name columns in braces, e.g. "
            "'{size}-{budget}'"
        )
    return names


def _label(value: object) -> str:
    """Cell -> text of a template: 10.0 -> '10', 'x' -> 'x'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _CellFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return _label(value) if not format_spec else format(value, format_spec)


def render_template(data: pd.DataFrame, template: str, fields: list[str]) -> pd.Series:
    """One string per row; rows where a field is empty give <NA>."""
    fmt = _CellFormatter()
    out: list[object] = []
    for _, row in data[fields].iterrows():
        cells = row.to_dict()
        empty = any(
            v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) for v in cells.values()
        )
        out.append(pd.NA if empty else fmt.format(template, **cells))
    return pd.Series(out, index=data.index, dtype="string")


def entry_columns(entry: object, key: str, mapping: Path) -> list[str]:
    """Source columns a mapping entry reads (a bare column, a list, {column: C} or {template: T})."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [str(c) for c in entry]
    if isinstance(entry, dict):
        if "column" in entry:
            return [str(entry["column"])]
        if "template" in entry:
            return template_fields(str(entry["template"]), f"{key}.template", mapping)
    return []


# ------------------------------------------------------------------------------------------ file names
def filename_fields(path: Path, section: object, mapping: Path) -> dict[str, str]:
    """Named groups of ``from_filename.pattern`` matched (whole) against the file name, or the path."""
    if not isinstance(section, dict) or "pattern" not in section:
        raise UserInputError(
            f"{mapping}: key 'from_filename' must be a mapping with 'pattern' (a regex with named groups, "
            "e.g. pattern: '(?P<size>[^_]+)_(?P<budget>[^_.]+)\\.csv')"
        )
    unknown = sorted(set(map(str, section)) - FILENAME_KEYS)
    if unknown:
        raise UserInputError(
            f"{mapping}: unknown key(s) {', '.join('from_filename.' + k for k in unknown)}; allowed here: "
            f"{', '.join(sorted(FILENAME_KEYS))}"
        )
    on = section.get("against", "name")
    if on not in ("name", "path"):
        raise UserInputError(f"{mapping}: key 'from_filename.against' must be 'name' or 'path', not {on!r}")
    try:
        regex = re.compile(str(section["pattern"]))
    except re.error as exc:
        raise UserInputError(f"{mapping}: key 'from_filename.pattern' is not a valid regex ({exc})") from exc
    if not regex.groupindex:
        raise UserInputError(
            f"{mapping}: key 'from_filename.pattern' has no named group; write (?P<name>...) for each "
            "column to take from the file name"
        )
    text = path.name if on == "name" else path.as_posix()
    match = regex.fullmatch(text)
    if match is None:
        raise UserInputError(
            f"{path}: the file {on} {text!r} does not match from_filename.pattern {regex.pattern!r} of "
            f"{mapping} (the whole {on} must match); rename the file or fix the pattern"
        )
    return {k: v for k, v in match.groupdict().items() if v is not None}


def add_filename_fields(data: pd.DataFrame, path: Path, section: object, mapping: Path) -> pd.DataFrame:
    """Copy of ``data`` with one constant column per named group of the file name."""
    fields = filename_fields(path, section, mapping)
    clash = [f for f in fields if f in data.columns]
    if clash:
        raise UserInputError(
            f"{mapping}: key 'from_filename.pattern': group(s) {', '.join(clash)} are also columns of {path}; "
            "rename the group(s)"
        )
    out = data.copy()
    for name, value in fields.items():
        out[name] = value
    return out


# ------------------------------------------------------------------------------------------ fill
def fill_spec(section: object, mapping: Path) -> tuple[list[str], str]:
    """``fill: {forward: [cols], within: run|file}`` -> (columns, within)."""
    if not isinstance(section, dict):
        raise UserInputError(
            f"{mapping}: key 'fill' must be a mapping, e.g. fill: {{forward: [learning_rate]}}"
        )
    unknown = sorted(set(map(str, section)) - FILL_KEYS)
    if unknown:
        raise UserInputError(
            f"{mapping}: unknown key(s) {', '.join('fill.' + k for k in unknown)}; allowed here: "
            f"{', '.join(sorted(FILL_KEYS))}"
        )
    cols = section.get("forward", [])
    if isinstance(cols, str):
        cols = [cols]
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise UserInputError(f"{mapping}: key 'fill.forward' must be a list of column names")
    within = section.get("within", "run")
    if within not in ("run", "file"):
        raise UserInputError(f"{mapping}: key 'fill.within' must be 'run' or 'file', not {within!r}")
    return cols, str(within)


def check_fill_columns(data: pd.DataFrame, cols: list[str], path: Path, mapping: Path) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise UserInputError(
            f"{mapping}: key 'fill.forward' names column(s) {', '.join(map(repr, missing))}, which {path} does "
            f"not have; its columns are: {', '.join(map(str, data.columns))}"
        )


def forward_fill(data: pd.DataFrame, cols: list[str], runs: pd.Series | None) -> pd.DataFrame:
    """Fill empty cells of ``cols`` with the last value above, within each run (``runs``) or the file."""
    out = data.copy()
    for col in cols:
        blank = out[col].astype("string").str.strip() == ""
        series = out[col].mask(blank.fillna(False))
        out[col] = series.groupby(runs, sort=False).ffill() if runs is not None else series.ffill()
    return out


# ------------------------------------------------------------------------------------------ levels
def rename_levels(frame: pd.DataFrame, section: object, factors: list[str], mapping: Path) -> None:
    """``rename_levels: {factor: {old: new}}`` applied in place to the factor columns of ``frame``."""
    if not isinstance(section, dict):
        raise UserInputError(
            f"{mapping}: key 'rename_levels' must map factor names to {{old label: new label}}, e.g. "
            "rename_levels: {pretraining_data: {fineweb-edu: FineWeb-Edu}}"
        )
    for factor, renames in section.items():
        if factor not in factors:
            raise UserInputError(
                f"{mapping}: key 'rename_levels.{factor}': '{factor}' is not a factor of this mapping; "
                f"its factors are: {', '.join(factors) or '(none)'}"
            )
        if not isinstance(renames, dict):
            raise UserInputError(
                f"{mapping}: key 'rename_levels.{factor}' must map old labels to new ones (old: new)"
            )
        table = {_label(k): v for k, v in renames.items()}
        frame[factor] = frame[factor].map(lambda v, t=table: t.get(_label(v), v) if pd.notna(v) else v)


# ------------------------------------------------------------------------------------------ separators
def sniff_sep(path: Path, default: str) -> str:
    """The separator of a delimited text file: ``default`` when its header has it, else sniffed."""
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            sample = fh.read(65536)
    except OSError:
        return default
    header = sample.splitlines()[0] if sample else ""
    if default in header:
        return default
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        counts = {s: header.count(s) for s in SEPARATORS if header.count(s)}
        return max(counts, key=counts.__getitem__) if counts else default


def one_column_hint(frame: pd.DataFrame, sep: str, path: Path, mapping: Path) -> None:
    """Raise when a file read as one column has another separator in its header."""
    if frame.shape[1] != 1:
        return
    header = str(frame.columns[0])
    others = [s for s in SEPARATORS if s != sep and s in header]
    if others:
        s = others[0]
        shown = "\\t" if s == "\t" else s
        raise UserInputError(
            f"{path}: read as one column with sep={sep!r}, but the file looks {SEPARATORS[s]}-separated; "
            f"set read: {{sep: '{shown}'}} in {mapping}"
        )


def check_sparse_factors(frame: pd.DataFrame, factors: list[str], source: str, mapping: Path) -> None:
    """Refuse a factor that is empty on some rows of a run and set on others (a sparse column not filled)."""
    for col in factors:
        empty = frame[col].isna() | (frame[col].astype("string").str.strip() == "").fillna(False)
        partial = empty.groupby(frame["run"], sort=False).agg(lambda s: bool(s.any() and not s.all()))
        if partial.any():
            run = partial.index[partial.to_numpy().argmax()]
            rows = [int(i) + 1 for i in frame.index[(frame["run"] == run) & empty][:3]]
            raise UserInputError(
                f"{source}: factor '{col}' of {mapping} is empty in data row(s) {', '.join(map(str, rows))} of "
                f"run '{run}' but set on its other rows; list its column under fill: {{forward: [...]}} "
                "(values logged once per run) or fill the cells"
            )


def per_metric(
    base: pd.Series | None,
    per: object,
    col: str,
    names: pd.Series,
    metrics: pd.Series,
    keep_rows: pd.Series,
    metric_column: str,
    mapping: Path,
) -> pd.Series:
    """Long input: ``long.unit`` / ``long.estimator`` (``base``, or None) overridden per metric by
    ``long.units`` / ``long.estimators`` (``per``; keys: source metric names or canonical ids)."""
    key = f"long.{col}s"
    out = base.astype(object) if base is not None else pd.Series([None] * len(names), index=names.index)
    per = per or {}
    if not isinstance(per, dict):
        raise UserInputError(f"{mapping}: key '{key}' must map metric names or ids to a {col}")
    for name, value in per.items():
        hit = (names == str(name)).fillna(False) | (metrics == str(name)).fillna(False)
        if not hit.any():
            raise UserInputError(
                f"{mapping}: key '{key}.{name}': no metric named {name!r} in column '{metric_column}' "
                "(give the source name or the canonical id)"
            )
        out[hit] = value
    unset = keep_rows & out.isna()
    if unset.any():
        bad = sorted(set(names[unset].astype(str)))[:5]
        raise UserInputError(
            f"{mapping}: metric(s) {', '.join(bad)} have no {col}; add them to {key} or set long.{col}"
        )
    return out
