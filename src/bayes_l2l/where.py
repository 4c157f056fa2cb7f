"""Row filters (``--where``, ``where=``): equality, inequality, sets and numeric comparisons.

A filter is COLUMN -> SPEC, where SPEC is a string that carries its operator (the form saved in a
posterior's question, so that older posteriors, whose specs are plain values, read as before):

* ``"Llama"``: the column equals the value (as today);
* ``"150M,300M"``: the column is one of the comma-separated values (a set), unless the whole string is
  itself a value of the column (a level with a comma keeps matching as before);
* ``"!=150M"``: the column differs from the value, or from every value of a set (``"!=150M,300M"``); rows
  with an unknown value are kept (they are not 150M);
* ``">=1e9"``, ``">1e9"``, ``"<=1e9"``, ``"<1e9"``: a numeric comparison, on a numeric column
  (step, tokens, params) or a factor whose every level is a number (``learning_rate``); rows with an unknown
  value are dropped.

The command line writes them ``--where COLUMN=VALUE``, ``COLUMN!=VALUE``, ``COLUMN=A,B``, ``COLUMN>=N``
(also ``>``, ``<``, ``<=``); the Python API takes the same specs, or a list / tuple / set for a set and a
number for equality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from bayes_l2l.errors import LossTableError, UserInputError

COMPARISONS = (">=", "<=", ">", "<")
"""Numeric comparisons, two-character ones first (so that '>=' is not read as '>' then '=...')."""
PREFIXES = ("!=", *COMPARISONS)
"""Operators a spec can start with; no prefix = equality (one value, or a comma-separated set)."""
CLI_OPERATORS = ("!=", ">=", "<=", "=", ">", "<")
"""Operators of ``--where COLUMN<op>VALUE``, longest first at the same position."""
_FOLDER_WORDS = {"!=": "_ne_", ">=": "_ge_", "<=": "_le_", ">": "_gt_", "<": "_lt_"}


@dataclass(frozen=True)
class Condition:
    """One parsed filter: ``column`` ``op`` ``values`` (op '=' or '!=' take one value or several)."""

    column: str
    op: str
    values: tuple[str, ...]

    def text(self) -> str:
        """The filter as the command line writes it: 'size!=150M', 'tokens>=1e9', 'size=150M,300M'."""
        return f"{self.column}{self.op}{','.join(self.values)}"


def spec_of(value: object) -> str:
    """The saved string form of one API filter value: a string as given, a number as its shortest text,
    a list / tuple / set as a comma-separated set."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, Iterable):
        items = [spec_of(v) for v in value]
        if not items:
            raise UserInputError("a where= set is empty; give at least one value")
        return ",".join(sorted(items) if isinstance(value, set | frozenset) else items)
    return str(value).strip()


def format_number(value: float | int) -> str:
    """A number as its shortest exact text: 3.0 -> '3', 1.5e-05 -> '1.5e-05', 300000000.0 -> '300000000'."""
    v = float(value)
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def normalise_where(where: Mapping[str, object] | None) -> dict[str, str]:
    """``where`` with every value in its saved string form (:func:`spec_of`), each spec checked."""
    out = {str(k).strip(): spec_of(v) for k, v in (where or {}).items()}
    for column, spec in out.items():
        parse_condition(column, spec)
    return out


def parse_condition(column: str, spec: object) -> Condition:
    """The :class:`Condition` of ``column`` -> ``spec`` (see the module docstring)."""
    text = spec_of(spec)
    op = next((p for p in PREFIXES if text.startswith(p)), "=")
    body = text[len(op) :].strip() if op != "=" else text
    if op in COMPARISONS:
        if not body or "," in body:
            raise UserInputError(
                f"--where {column}{text}: a comparison takes one number, e.g. --where {column}{op}1e9"
            )
        _number(body, column, op)
        return Condition(column, op, (body,))
    if not body:
        raise UserInputError(f"--where {column}{op}: the value after '{op}' is empty")
    return Condition(column, op, (body,))


def parse_where_item(item: str, option: str = "--where") -> tuple[str, str]:
    """One ``--where`` argument -> (column, saved spec): 'size!=150M' -> ('size', '!=150M'),
    'tokens>=1e9' -> ('tokens', '>=1e9'), 'arch=Llama' -> ('arch', 'Llama')."""
    hits = [(item.find(op), -len(op), op) for op in CLI_OPERATORS if op in item]
    if not hits:
        raise UserInputError(
            f"{option} {item!r}: expected COLUMN=VALUE (or !=, >=, >, <=, <; A,B for a set), "
            f"e.g. {option} architecture=Llama"
        )
    pos, _, op = min(hits)
    column, value = item[:pos].strip(), item[pos + len(op) :].strip()
    if not column:
        raise UserInputError(f"{option} {item!r}: the column name before '{op}' is empty")
    spec = value if op == "=" else op + value
    parse_condition(column, spec)
    return column, spec


def parse_where(items: Sequence[str] | None, option: str = "--where") -> dict[str, str]:
    """Repeated ``--where`` arguments -> {column: spec}; a column given twice is refused (use a set)."""
    out: dict[str, str] = {}
    for item in items or []:
        column, spec = parse_where_item(item, option)
        if column in out:
            raise UserInputError(
                f"{option}: column '{column}' is filtered twice ({out[column]!r}, {spec!r}); give one "
                f"condition per column (a set: {option} {column}=A,B)"
            )
        out[column] = spec
    return out


def condition_text(column: str, spec: object) -> str:
    """A filter as the command line writes it (for messages and reports)."""
    return parse_condition(column, spec).text()


def folder_label(column: str, spec: object) -> str:
    """A filter in a folder name: 'size=150M' as before, 'size_ne_150M', 'tokens_ge_1e9'."""
    cond = parse_condition(column, spec)
    value = ",".join(cond.values)
    return f"{column}{_FOLDER_WORDS[cond.op]}{value}" if cond.op in _FOLDER_WORDS else f"{column}={value}"


def condition_mask(df: pd.DataFrame, cond: Condition, source: str) -> pd.Series:
    """Rows of ``df`` that satisfy ``cond`` (a boolean Series, no missing values)."""
    series = df[cond.column]
    numeric_column = pd.api.types.is_numeric_dtype(series)
    if cond.op in COMPARISONS:
        numbers = series if numeric_column else _numeric_levels(series, cond, source)
        bound = _number(cond.values[0], cond.column, cond.op)
        compare = {">=": numbers >= bound, "<=": numbers <= bound, ">": numbers > bound, "<": numbers < bound}
        return compare[cond.op].fillna(False).astype(bool)
    if numeric_column:
        wanted = [_number(v, cond.column, cond.op, numeric_column=True) for v in _values(series, cond)]
        hit = series.isin(wanted)
    else:
        hit = series.astype("string").isin(_values(series, cond)).fillna(False)
    hit = hit.astype(bool)
    if cond.op == "!=":
        return ~hit
    return hit & series.notna()


def _values(series: pd.Series, cond: Condition) -> list[str]:
    """The values of an (in)equality: a comma-separated set, unless the whole text is itself a level."""
    text = cond.values[0]
    if "," not in text or (
        not pd.api.types.is_numeric_dtype(series) and (series.astype("string") == text).any()
    ):
        return [text]
    return [v.strip() for v in text.split(",") if v.strip()]


def _number(text: str, column: str, op: str, *, numeric_column: bool = False) -> float:
    try:
        return float(text)
    except ValueError:
        kind = f"column '{column}' is numeric" if numeric_column else f"'{op}' compares numbers"
        raise UserInputError(f"--where {column}{op}{text}: '{text}' is not a number ({kind})") from None


def _numeric_levels(series: pd.Series, cond: Condition, source: str) -> pd.Series:
    """A text column as numbers, when every known level is one; else a LossTableError naming the others."""
    numbers = pd.to_numeric(series, errors="coerce")
    bad = sorted(set(series[numbers.isna() & series.notna()].astype(str)))
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad)} in all)" if len(bad) > 5 else "")
        raise LossTableError(
            f"{source}: --where {cond.text()}: column '{cond.column}' is not numeric (levels such as {shown}); "
            f"compare it with = or != (a set: {cond.column}=A,B)"
        )
    return numbers
