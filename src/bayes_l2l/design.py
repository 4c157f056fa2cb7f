"""From a LossTable and a question to the arrays the model needs.

A *question* names the x metric, the y metric (a single metric or an average), the factors of interest
and their base levels, and the filters. A *condition* is one combination of levels of the factors of
interest; runs are nested in conditions; checkpoints (points) are nested in runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l.contrasts import MISSING_LEVEL, choose_base, condition_labels
from bayes_l2l.errors import UserInputError
from bayes_l2l.support import factor_confounding, pooled_factors
from bayes_l2l.table import LossTable
from bayes_l2l.units import choose_unit, conversion_factor

MIN_POINTS_PER_CONDITION = 3


@dataclass
class Question:
    """What to fit: axes, factors, base levels, filters. JSON round-trippable."""

    x: str
    y: str
    factors: list[str] = field(default_factory=list)
    base: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    unit: str | None = None
    """Unit of both axes (shorthand for x_unit and y_unit; saved fits of before issue 25 set it)."""
    x_unit: str | None = None
    """x's unit; None takes the one the table stores x in (the first of units.PREFERENCE if several)."""
    y_unit: str | None = None
    """y's unit, the unit of every gap, ROPE and interval; None as for x_unit."""
    convert_units: bool = False
    """Read a requested unit from its exact partner (nats <-> bits of the same denominator)."""
    allow_mixed: bool = False
    max_x: float | None = None
    """Paper's early-checkpoint filter by loss threshold: drop checkpoints with x above this (nats)."""
    min_fraction: float | None = None
    """Drop checkpoints before this fraction of their run's training (by tokens, else step)."""
    early_fraction: float = 0.0
    """Checkpoints before this fraction of their run's training get likelihood weight ``early_weight``."""
    early_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.unit is not None:
            self.x_unit = self.x_unit or self.unit
            self.y_unit = self.y_unit or self.unit

    def units_label(self) -> str:
        """'nats/token' when both axes share a unit, else 'x in U, y in V'."""
        if self.x_unit == self.y_unit:
            return str(self.y_unit)
        return f"x in {self.x_unit}, y in {self.y_unit}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Question:
        return cls(**d)


@dataclass
class Design:
    """Model-ready arrays and the index maps that give them meaning."""

    question: Question
    points: pd.DataFrame
    """One row per point: run, checkpoint, step, tokens, params, factor levels, x, y, weight, run_idx, cond_idx."""
    factor_levels: dict[str, list[str]]
    """Levels of each factor of interest, base first."""
    conditions: pd.DataFrame
    """One row per condition: condition label, factor levels, n_points, n_runs, min/max x and y."""
    runs: list[str]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_import_warnings: int = 0
    """The first this many of ``warnings`` came with the table (its import); the rest are the design's."""
    measurement_choices: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The error model's choice per mode (:func:`bayes_l2l.model.measurement_choice`), computed once."""

    # ---------------------------------------------------------------- arrays
    @property
    def x(self) -> np.ndarray:
        return self.points["x"].to_numpy(dtype=float)

    @property
    def y(self) -> np.ndarray:
        return self.points["y"].to_numpy(dtype=float)

    @property
    def weight(self) -> np.ndarray:
        return self.points["weight"].to_numpy(dtype=float)

    @property
    def run_idx(self) -> np.ndarray:
        return self.points["run_idx"].to_numpy(dtype=np.int32)

    @property
    def cond_idx(self) -> np.ndarray:
        return self.points["cond_idx"].to_numpy(dtype=np.int32)

    @property
    def n_conditions(self) -> int:
        return len(self.conditions)

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def cond_min_x(self) -> np.ndarray:
        return self.conditions["min_x"].to_numpy(dtype=float)

    @property
    def cond_min_y(self) -> np.ndarray:
        return self.conditions["min_y"].to_numpy(dtype=float)

    @property
    def x_ref(self) -> float:
        """Reference x (nats) where the model's height and slope parameters live: max over conditions of
        min x, so that x_ref > Ex_c for every condition (and it sits inside the common support, if any)."""
        return float(self.cond_min_x.max())

    @property
    def slope_center(self) -> float:
        """Log of the pooled least-squares slope dy/dx (prior centre of the log slope); 0 if not positive."""
        x, y = self.x, self.y
        slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 1.0
        return float(np.log(slope)) if slope > 0 else 0.0

    @property
    def offset_idx(self) -> np.ndarray:
        """Per point, the index of its run's offset; runs with a single checkpoint share a zero slot
        (index :attr:`n_offsets`), because their offset cannot be told apart from checkpoint noise."""
        multi = self._offset_run_idx
        slot = {r: i for i, r in enumerate(multi)}
        return np.array([slot.get(int(r), len(multi)) for r in self.run_idx], dtype=np.int32)

    @property
    def _offset_run_idx(self) -> list[int]:
        """run_idx of the runs with at least two checkpoints, ascending: the offset index order."""
        counts = self.points.groupby("run_idx").size()
        return [int(i) for i in sorted(counts[counts > 1].index)]

    @property
    def offset_runs(self) -> list[str]:
        """Runs that get a run offset (those with at least two checkpoints), in offset-index order."""
        return [self.runs[i] for i in self._offset_run_idx]

    @property
    def offset_run_cond_idx(self) -> np.ndarray:
        """Condition of each run that gets an offset, in offset-index order."""
        return self.run_cond_idx[self._offset_run_idx]

    @property
    def run_cond_idx(self) -> np.ndarray:
        """Condition of each run."""
        first = self.points.drop_duplicates("run_idx").sort_values("run_idx")
        return first["cond_idx"].to_numpy(dtype=np.int32)

    @property
    def effect_names(self) -> list[tuple[str, str]]:
        """(factor, level) of each non-base level, the columns of :attr:`effect_matrix`."""
        return [(f, lvl) for f, levels in self.factor_levels.items() for lvl in levels[1:]]

    @property
    def effect_factor_idx(self) -> np.ndarray:
        """Index (into the factors of interest) of the factor of each effect column."""
        names = list(self.factor_levels)
        return np.array([names.index(f) for f, _ in self.effect_names], dtype=np.int32)

    @property
    def effect_matrix(self) -> np.ndarray:
        """(n_conditions, n_effects) one-hot indicators of the non-base levels of each condition."""
        cols = self.effect_names
        mat = np.zeros((self.n_conditions, len(cols)))
        for j, (f, lvl) in enumerate(cols):
            mat[:, j] = (self.conditions[f].astype(str) == lvl).to_numpy(dtype=float)
        return mat

    @property
    def params(self) -> np.ndarray:
        return self.points["params"].to_numpy(dtype=float)

    @property
    def tokens(self) -> np.ndarray:
        return self.points["tokens"].to_numpy(dtype=float)

    @property
    def has_compute(self) -> bool:
        """True when N and D are known for every point and N or D varies (needed to inform E_x)."""
        n, d = self.params, self.tokens
        return bool(np.isfinite(n).all() and np.isfinite(d).all() and (d > 0).all())

    def without_factor(self, factor: str) -> Design:
        """The same points with ``factor`` dropped from the question: its levels share one curve."""
        from dataclasses import replace

        factors = [f for f in self.question.factors if f != factor]
        question = replace(
            self.question, factors=factors, base={k: v for k, v in self.question.base.items() if k != factor}
        )
        return self._reindexed(question, self.points)

    def without_runs(self, runs: set[str]) -> Design:
        """The same question without the checkpoints of ``runs`` (conditions re-indexed, levels kept)."""
        out = self._reindexed(self.question, self.points[~self.points["run"].isin(runs)])
        out.measurement_choices = dict(
            self.measurement_choices
        )  # a K-fold refit keeps the full table's choice
        return out

    def _reindexed(self, question: Question, points: pd.DataFrame) -> Design:
        """A design of ``question``'s factors on ``points`` (a subset of this design's), indexed anew."""
        levels = {f: list(self.factor_levels[f]) for f in question.factors}
        pts, conditions, runs = index_conditions(points.drop(columns=["condition"]), question.factors, levels)
        return Design(question, pts, levels, conditions, runs, list(self.dropped), list(self.warnings))

    def condition_of(self, levels: dict[str, str]) -> int:
        """Index of the condition with the given factor levels (unspecified factors at base)."""
        full = {f: str(levels.get(f, lv[0])) for f, lv in self.factor_levels.items()}
        mask = np.ones(self.n_conditions, dtype=bool)
        for f, v in full.items():
            mask &= (self.conditions[f].astype(str) == v).to_numpy()
        if not mask.any():
            raise UserInputError(
                f"no condition with {', '.join(f'{k}={v}' for k, v in full.items())} in this fit; conditions are: "
                + "; ".join(self.conditions["condition"].astype(str))
            )
        return int(np.flatnonzero(mask)[0])

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> str:
        return json.dumps(
            {
                "question": self.question.to_dict(),
                "points": json.loads(self.points.to_json(orient="records")),
                "factor_levels": self.factor_levels,
                "conditions": json.loads(self.conditions.to_json(orient="records")),
                "runs": self.runs,
                "dropped": self.dropped,
                "warnings": self.warnings,
                "n_import_warnings": self.n_import_warnings,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Design:
        d = json.loads(text)
        points = pd.DataFrame(d["points"])
        for col in ("step", "tokens", "params"):
            if col in points:
                points[col] = pd.to_numeric(points[col], errors="coerce").astype(float)
        conditions = pd.DataFrame(d["conditions"])
        return cls(
            question=Question.from_dict(d["question"]),
            points=points,
            factor_levels=d["factor_levels"],
            conditions=conditions,
            runs=d["runs"],
            dropped=d["dropped"],
            warnings=d["warnings"],
            n_import_warnings=d.get("n_import_warnings", 0),
        )


def _training_fraction(points: pd.DataFrame) -> pd.Series:
    """Fraction of the run's (last seen) training per point, by tokens where known else by step."""
    progress = points["tokens"].where(points["tokens"].notna(), points["step"])
    last = progress.groupby(points["run"]).transform("max")
    return (progress / last).astype(float)


def drop_repeated_measurements(pts: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Drop checkpoints whose x and y equal another checkpoint's of the same run (one measurement recorded
    twice, e.g. the paper's FineWeb-Edu 'final' row); keep the copy with a known step. Returns the note."""
    pts = pts.sort_values("step", na_position="last", kind="stable") if "step" in pts else pts
    repeated = pts.duplicated(["run", "x", "y"], keep="first")
    if not repeated.any():
        return pts, None
    note = {
        "reason": "the same measurement recorded twice in a run (x and y equal another checkpoint's)",
        "count": int(repeated.sum()),
        "checkpoints": [
            f"{r}@{c}" for r, c in pts.loc[repeated, ["run", "checkpoint"]].itertuples(index=False)
        ],
    }
    return pts[~repeated], note


def index_conditions(
    pts: pd.DataFrame, factors: list[str], factor_levels: dict[str, list[str]]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Label and order conditions (base levels first), index points by condition and run, and summarise
    each condition (n_points, n_runs, min/max x and y). Returns (points, conditions, runs)."""
    pts = pts.assign(condition=condition_labels(pts, factors))
    first = pts.drop_duplicates("condition")
    keys = {
        row[0]: tuple(factor_levels[f].index(str(v)) for f, v in zip(factors, row[1:], strict=True))
        for row in first[["condition", *factors]].itertuples(index=False)
    }
    cond_order = sorted(keys, key=lambda c: keys[c])
    pts["cond_idx"] = pts["condition"].map({c: i for i, c in enumerate(cond_order)}).astype(int)
    pts = pts.sort_values(["cond_idx", "run", "x"], ascending=[True, True, False]).reset_index(drop=True)
    runs = list(dict.fromkeys(pts["run"].astype(str)))
    pts["run_idx"] = pts["run"].astype(str).map({r: i for i, r in enumerate(runs)}).astype(int)
    grouped = pts.groupby("cond_idx")
    conditions = pd.DataFrame(
        {
            "condition": cond_order,
            **{f: grouped[f].first().astype(str).to_numpy() for f in factors},
            "n_points": grouped.size().to_numpy(),
            "n_runs": grouped["run"].nunique().to_numpy(),
            "min_x": grouped["x"].min().to_numpy(),
            "max_x": grouped["x"].max().to_numpy(),
            "min_y": grouped["y"].min().to_numpy(),
            "max_y": grouped["y"].max().to_numpy(),
        }
    )
    return pts, conditions, runs


def check_distinct_axes(x: str, y: str, source: str) -> None:
    """Refuse a question whose x and y are the same metric (the curve would be the identity)."""
    if x.strip() == y.strip():
        raise UserInputError(
            f"{source}: --x and --y are both {x}; a loss-to-loss curve relates two different metrics "
            "(e.g. --x val/c4 --y test/hellaswag)"
        )


def axis_unit(table: LossTable, question: Question, axis: str) -> tuple[str, str, str]:
    """(metric, unit to use, unit to read from the table) of ``axis`` ("x" or "y"), chosen by
    :func:`bayes_l2l.units.choose_unit` from the units the table stores the metric in."""
    metric, requested = (question.x, question.x_unit) if axis == "x" else (question.y, question.y_unit)
    use, read = choose_unit(
        table.metric_units(metric),
        requested,
        metric=metric,
        axis=axis,
        convert=question.convert_units,
        source=table.source,
    )
    return metric, use, read


def resolve_units(table: LossTable, question: Question) -> Question:
    """A copy of ``question`` with x_unit and y_unit chosen from the units the table stores each metric in."""
    x_unit, y_unit = (axis_unit(table, question, axis)[1] for axis in ("x", "y"))
    return replace(question, unit=None, x_unit=x_unit, y_unit=y_unit)


def axis_values(table: LossTable, question: Question, axis: str) -> pd.DataFrame:
    """Per-checkpoint values of ``axis`` (columns run, checkpoint, value, unit, estimator) in the question's
    unit for it, converted exactly where ``convert_units`` allows it."""
    metric, use, read = axis_unit(table, question, axis)
    series = table.metric_series(metric, allow_mixed=question.allow_mixed, unit=read)
    if read != use:
        factor = conversion_factor(read, use)
        series = series.assign(
            value=series["value"] * factor,
            stderr=series["stderr"] * factor,
            stderr_independent=series["stderr_independent"] * factor,
            unit=use,
        )
    return series


def axis_series(table: LossTable, question: Question) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`axis_values` of x and of y."""
    return axis_values(table, question, "x"), axis_values(table, question, "y")


def axis_columns(axis: str) -> dict[str, str]:
    """:func:`axis_values`' columns as the design's point columns of ``axis`` (x_se, x_se_indep, ...)."""
    return {
        "value": axis,
        "unit": f"{axis}_unit",
        "estimator": f"{axis}_estimator",
        "stderr": f"{axis}_se",
        "stderr_independent": f"{axis}_se_indep",
    }


def build_design(table: LossTable, question: Question) -> Design:
    """Select, join and index the table for ``question``; raise UserInputError with the fix on bad input."""
    source = table.source
    if question.where:
        table = table.where(**question.where)
    unknown = [f for f in question.factors if f not in table.df.columns]
    if unknown:
        raise UserInputError(
            f"{source}: factor(s) {', '.join(unknown)} not in the table; factors are: {', '.join(table.factors)}"
        )
    check_distinct_axes(question.x, question.y, source)
    question = resolve_units(table, question)
    xs, ys = axis_series(table, question)
    ident = table.checkpoints()
    merged = xs.rename(columns=axis_columns("x")).merge(
        ys.rename(columns=axis_columns("y")),
        on=["run", "checkpoint"],
    )
    dropped: list[dict[str, Any]] = []
    n_missing = len(
        set(map(tuple, xs[["run", "checkpoint"]].values)) ^ set(map(tuple, ys[["run", "checkpoint"]].values))
    )
    if n_missing:
        dropped.append({"reason": "x or y missing at the checkpoint", "count": int(n_missing)})
    pts = merged.merge(ident, on=["run", "checkpoint"], how="left")
    pts, repeated_note = drop_repeated_measurements(pts)
    if repeated_note:
        dropped.append(repeated_note)
    for f in question.factors:
        pts[f] = pts[f].astype("string").fillna(MISSING_LEVEL)
    if question.max_x is not None:
        keep = pts["x"] <= question.max_x
        if (~keep).any():
            dropped.append(
                {"reason": f"x above max_x={question.max_x} (early checkpoints)", "count": int((~keep).sum())}
            )
        pts = pts[keep]
    frac = _training_fraction(pts)
    if question.min_fraction is not None:
        keep = ~(frac < question.min_fraction)
        if (~keep).any():
            dropped.append(
                {
                    "reason": f"before fraction {question.min_fraction:g} of the run's training",
                    "count": int((~keep).sum()),
                }
            )
        pts, frac = pts[keep], frac[keep]
    pts = pts.assign(weight=np.where(frac.fillna(1.0) < question.early_fraction, question.early_weight, 1.0))
    if len(pts) == 0:
        raise UserInputError(
            f"{source}: no checkpoint has both x={question.x} and y={question.y} after filtering"
        )

    factor_levels: dict[str, list[str]] = {}
    for f in question.factors:
        present = sorted(pts[f].unique().tolist())
        if len(present) < 2:
            raise UserInputError(
                f"{source}: factor {f} has one level in this selection ({present[0]}), so there is nothing to "
                f"compare; drop --factor {f}, or widen --where to take in its other levels"
            )
        base = question.base.get(f)
        if base is None:
            base = choose_base(f, pts.drop_duplicates(["run", "checkpoint"])[f])
        if base not in present:
            raise UserInputError(
                f"{source}: base level {f}={base} has no checkpoints in this selection; levels are: {', '.join(present)}"
            )
        factor_levels[f] = [base] + [lv for lv in present if lv != base]
    pts, conditions, runs = index_conditions(pts, question.factors, factor_levels)
    small = conditions[conditions["n_points"] < MIN_POINTS_PER_CONDITION]
    if len(small):
        detail = "; ".join(f"{r.condition} ({r.n_points} point(s))" for r in small.itertuples())
        raise UserInputError(
            f"{source}: condition(s) with fewer than {MIN_POINTS_PER_CONDITION} checkpoints cannot be fitted: "
            f"{detail}. Drop them with --where, merge levels, or add checkpoints"
        )
    flat_y = conditions[(conditions["max_y"] - conditions["min_y"]) <= 0]
    if len(flat_y):
        raise UserInputError(
            f"{source}: y ({question.y}) is constant in condition {flat_y['condition'].iloc[0]} "
            f"({float(flat_y['min_y'].iloc[0]):g} at every checkpoint); a loss-to-loss curve needs y to vary. "
            "Check the y column (a placeholder or a copied value?) or choose another y"
        )
    flat = conditions[(conditions["max_x"] - conditions["min_x"]) <= 0]
    if len(flat):
        raise UserInputError(
            f"{source}: condition {flat['condition'].iloc[0]} has no spread in x; a curve needs several x values"
        )
    warnings = list(table.warnings)
    pooled = pooled_factors(pts, table.factors, question.factors)
    if pooled:
        warnings.append(pooled)
    warnings += factor_confounding(pts, factor_levels)
    for col in ("x_estimator", "y_estimator"):
        est = sorted(pts[col].astype(str).unique())
        if len(est) > 1:
            warnings.append(f"{col.split('_')[0]} axis mixes estimators across checkpoints: {', '.join(est)}")
    return Design(
        question=question,
        points=pts,
        factor_levels=factor_levels,
        conditions=conditions,
        runs=runs,
        dropped=dropped,
        warnings=warnings,
        n_import_warnings=len(table.warnings),
    )
