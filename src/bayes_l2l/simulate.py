"""Synthetic loss tables with known, planted curve shifts (see docs/simulator.md).

A *condition* is one combination of factor levels. Each condition c has its own shifted power law
``y = K_c (x - E_x_c)**kappa_c + E_y_c`` whose parameters are the base parameters moved by the effects
of the condition's non-base levels (additive on log K, log kappa, E_x, E_y). Runs (seeds x sizes) are
nested in conditions, checkpoints in runs. All losses are in nats/token.

Per checkpoint k (0 = earliest) of run r with N parameters after D tokens:

* ``x_true = compute_loss(N, D, E_x_c, A, B, alpha, beta)``; ``x = x_true + Normal(0, x_noise_sd)``
* ``y = f_c(x_true) + offset_r + early_amp * exp(-k / early_tau) + eps``, with
  ``offset_r ~ Normal(0, run_sd)`` and ``eps`` Normal(0, noise_sd) or noise_sd * Student-t(noise_df).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l.errors import UserInputError, check_output_file
from bayes_l2l.laws import compute_loss, shifted_power_law
from bayes_l2l.table import (
    IDENTITY_COLUMNS,
    KIND_OF_PREFIX,
    MEASUREMENT_COLUMNS,
    METRIC_PATTERN,
    OPTIONAL_COLUMNS,
    UNITS,
    LossTable,
)

EFFECT_PARAMS: tuple[str, ...] = ("log_K", "log_kappa", "E_x", "E_y")
BASE_PARAMS: tuple[str, ...] = ("K", "kappa", "E_x", "E_y")
COMPUTE_PARAMS: tuple[str, ...] = ("A", "B", "alpha", "beta")
DESIGNS: tuple[str, ...] = ("one_at_a_time", "factorial")
NOISES: tuple[str, ...] = ("normal", "student_t")
RESERVED = set(IDENTITY_COLUMNS) | set(MEASUREMENT_COLUMNS) | set(OPTIONAL_COLUMNS) | {"seed", "condition"}
_SIZE = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(?P<suffix>[kKmMbBtT]?)\s*$")
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
GAP_GRID = 401
"""Points of the uniform x grid on which true gap summaries are averaged."""


def parse_size(level: str) -> float:
    """Parameter count of a size level: '160M' -> 1.6e8, '1.4B' -> 1.4e9, '7e8' -> 7e8."""
    m = _SIZE.match(str(level))
    if not m:
        raise UserInputError(f"size level {level!r} is not a parameter count; write e.g. 160M, 1.4B or 7e8")
    value = float(m.group("num")) * _SUFFIX[m.group("suffix").lower()]
    if value <= 0:
        raise UserInputError(f"size level {level!r} must be a positive parameter count")
    return value


def format_size(n_params: float) -> str:
    """A short label of a parameter count: 1.6e8 -> '160M', 1.4e9 -> '1.4B'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n_params >= scale:
            return f"{n_params / scale:.4g}{suffix}"
    return f"{n_params:.4g}"


_FLOAT_FIELDS = (
    "tokens_per_param",
    "first_token_fraction",
    "tokens_per_step",
    "x_noise_sd",
    "noise_sd",
    "noise_df",
    "run_sd",
    "early_amp",
    "early_tau",
)


def _number(value: Any, where: str) -> float:
    """A finite float from a number or a numeric string (YAML 1.1 reads 5e8 as the string '5e8')."""
    if isinstance(value, bool):
        raise UserInputError(f"{where} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise UserInputError(f"{where} must be finite, got {value!r}")
    return out


def _default_factors() -> dict[str, list[str]]:
    return {
        "pretraining_data": ["web", "code", "books"],
        "architecture": ["llama", "gptneox"],
        "size": ["410M", "160M", "1B"],
    }


def _default_effects() -> dict[str, dict[str, dict[str, float]]]:
    # Paper-like: pretraining data shifts the curve a lot, architecture a little, size not at all.
    return {
        "pretraining_data": {
            "code": {"E_x": 0.3, "E_y": 0.25, "log_K": 0.15},
            "books": {"E_y": -0.1, "log_kappa": 0.1},
        },
        "architecture": {"gptneox": {"E_y": 0.02}},
    }


@dataclass
class SimulationSpec:
    """What to simulate. Losses in nats/token; N in parameters; D in tokens. See docs/simulator.md."""

    factors: dict[str, list[str]] = field(default_factory=_default_factors)
    """factor -> levels; the first level is the base. A factor named ``size`` sets N per condition."""
    effects: dict[str, dict[str, dict[str, float]]] = field(default_factory=_default_effects)
    """factor -> non-base level -> {log_K | log_kappa | E_x | E_y: additive shift}; unlisted = no effect."""
    base: dict[str, float] = field(default_factory=lambda: {"K": 0.35, "kappa": 1.2, "E_x": 1.8, "E_y": 1.3})
    design: str = "one_at_a_time"
    """'one_at_a_time' (base + one condition per non-base level, others at base) or 'factorial'."""
    runs_per_condition: int = 2
    """Seeds per condition (per condition and size when ``size`` is not a factor)."""
    checkpoints_per_run: int = 20
    sizes: list[float] = field(default_factory=lambda: [160e6, 410e6, 1e9])
    """Parameter counts of each condition's runs when ``size`` is not a factor (ignored otherwise)."""
    compute: dict[str, float] = field(
        default_factory=lambda: {"A": 5e8, "B": 3.1e8, "alpha": 0.34, "beta": 0.3}
    )
    """Compute-to-loss law of x (its E is the condition's E_x): L = E + ((A/N)**(alpha/beta) + B/D)**beta."""
    tokens_per_param: float = 20.0
    """Tokens of the last checkpoint = tokens_per_param * N."""
    first_token_fraction: float = 0.002
    """Tokens of the first checkpoint as a fraction of the last; checkpoints are geometric in between."""
    tokens_per_step: float = 2.0**20
    x_noise_sd: float = 0.005
    noise_sd: float = 0.02
    """Checkpoint noise on y: sd (normal) or scale (student_t), nats."""
    noise: str = "normal"
    noise_df: float = 4.0
    run_sd: float = 0.02
    """sd of the per-run offset on y, nats."""
    early_amp: float = 0.05
    """Early deviation on y: early_amp * exp(-k / early_tau) at checkpoint k (0 = first), nats."""
    early_tau: float = 1.0
    x_metric: str = "val/c4"
    y_metric: str = "test/hellaswag"
    estimator: str = "simulated"
    unit: str = "nats/token"

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> SimulationSpec:
        """Build and validate a spec from a mapping (missing keys take the defaults)."""
        if not isinstance(data, dict):
            raise UserInputError(f"{source}: a simulation spec must be a mapping of field: value")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, data)) - names)
        if unknown:
            raise UserInputError(
                f"{source}: unknown field(s) {', '.join(unknown)}; "
                f"valid fields are: {', '.join(sorted(names))}"
            )
        spec = cls(**copy.deepcopy(data))
        spec.validate(source)
        return spec

    @classmethod
    def from_yaml(cls, path: str | Path) -> SimulationSpec:
        """Read a YAML spec whose keys mirror the dataclass fields."""
        import yaml

        path = Path(path)
        if not path.exists():
            raise UserInputError(f"{path}: no such spec file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UserInputError(f"{path}: not valid YAML ({exc})") from exc
        return cls.from_dict(data if data is not None else {}, source=str(path))

    # ------------------------------------------------------------------ validation
    def validate(self, source: str = "spec") -> None:
        """Raise UserInputError naming the field, what was expected and the fix."""

        def bad(msg: str) -> UserInputError:
            return UserInputError(f"{source}: {msg}")

        if not isinstance(self.factors, dict):
            raise bad("factors must map factor names to lists of levels")
        for name, levels in self.factors.items():
            if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise bad(f"factor name {name!r} must be lowercase snake case, e.g. pretraining_data")
            if name in RESERVED:
                raise bad(f"factor name {name!r} is reserved for a table column; rename it")
            if not isinstance(levels, list) or not levels:
                raise bad(f"factors.{name} must be a non-empty list of levels (the first is the base)")
            labels = [str(v) for v in levels]
            if len(set(labels)) != len(labels) or any(not s.strip() for s in labels):
                raise bad(f"factors.{name} has empty or repeated levels: {labels}")
            self.factors[name] = labels
        if "size" in self.factors:
            for level in self.factors["size"]:
                parse_size(level)
        if not isinstance(self.effects, dict):
            raise bad("effects must map factor -> level -> {parameter: shift}")
        for fac, by_level in self.effects.items():
            if fac not in self.factors:
                raise bad(
                    f"effects.{fac}: no such factor; factors are: {', '.join(self.factors) or '(none)'}"
                )
            if not isinstance(by_level, dict):
                raise bad(f"effects.{fac} must map levels to {{parameter: shift}}")
            for level, shifts in by_level.items():
                if str(level) not in self.factors[fac]:
                    raise bad(f"effects.{fac}.{level}: not a level of {fac} ({', '.join(self.factors[fac])})")
                if str(level) == self.factors[fac][0]:
                    raise bad(f"effects.{fac}.{level}: the base level has no effect by definition; remove it")
                if not isinstance(shifts, dict):
                    raise bad(f"effects.{fac}.{level} must map parameters to shifts")
                for param, value in shifts.items():
                    if param not in EFFECT_PARAMS:
                        raise bad(f"effects.{fac}.{level}.{param}: use one of {', '.join(EFFECT_PARAMS)}")
                    shifts[param] = _number(value, f"{source}: effects.{fac}.{level}.{param}")
        if set(self.base) != set(BASE_PARAMS):
            raise bad(
                f"base must give exactly {', '.join(BASE_PARAMS)}; got {', '.join(map(str, self.base))}"
            )
        self.base = {k: _number(v, f"{source}: base.{k}") for k, v in self.base.items()}
        for key, lo in (("K", 0.0), ("kappa", 0.0)):
            if not self.base[key] > lo:
                raise bad(f"base.{key} must be positive")
        for key in ("E_x", "E_y"):
            if not self.base[key] >= 0:
                raise bad(f"base.{key} must be >= 0 (an irreducible loss)")
        if self.design not in DESIGNS:
            raise bad(f"design {self.design!r}: use one of {', '.join(DESIGNS)}")
        if not isinstance(self.runs_per_condition, int) or self.runs_per_condition < 1:
            raise bad("runs_per_condition must be an integer >= 1")
        if not isinstance(self.checkpoints_per_run, int) or self.checkpoints_per_run < 2:
            raise bad("checkpoints_per_run must be an integer >= 2")
        if "size" not in self.factors:
            if not isinstance(self.sizes, list) or not self.sizes:
                raise bad("sizes must be a non-empty list of parameter counts, e.g. [160M, 410M, 1B]")
            self.sizes = [
                parse_size(v) if isinstance(v, str) else _number(v, f"{source}: sizes") for v in self.sizes
            ]
            if any(v <= 0 for v in self.sizes):
                raise bad("sizes must be positive parameter counts")
        if not isinstance(self.compute, dict) or set(self.compute) != set(COMPUTE_PARAMS):
            raise bad(f"compute must give {', '.join(COMPUTE_PARAMS)}")
        self.compute = {k: _number(v, f"{source}: compute.{k}") for k, v in self.compute.items()}
        if any(not v > 0 for v in self.compute.values()):
            raise bad(f"compute must give positive {', '.join(COMPUTE_PARAMS)}")
        for key in _FLOAT_FIELDS:
            setattr(self, key, _number(getattr(self, key), f"{source}: {key}"))
        for key in ("tokens_per_param", "tokens_per_step", "early_tau", "noise_df"):
            if not getattr(self, key) > 0:
                raise bad(f"{key} must be positive")
        if not 0 < self.first_token_fraction < 1:
            raise bad("first_token_fraction must be in (0, 1)")
        for key in ("x_noise_sd", "noise_sd", "run_sd"):
            if not getattr(self, key) >= 0:
                raise bad(f"{key} must be >= 0")
        if self.noise not in NOISES:
            raise bad(f"noise {self.noise!r}: use one of {', '.join(NOISES)}")
        for key in ("x_metric", "y_metric"):
            if not METRIC_PATTERN.match(getattr(self, key)):
                raise bad(f"{key} {getattr(self, key)!r} is not a metric id like val/c4 or test/hellaswag")
        if self.x_metric == self.y_metric:
            raise bad("x_metric and y_metric must differ")
        if self.unit not in UNITS:
            raise bad(f"unit must be one of {', '.join(UNITS)}")

    # ------------------------------------------------------------------ the design
    def condition_levels(self) -> list[dict[str, str]]:
        """Factor levels of every condition, base condition first."""
        names = list(self.factors)
        base = {f: self.factors[f][0] for f in names}
        if self.design == "factorial":
            return [
                dict(zip(names, combo, strict=True)) for combo in itertools.product(*self.factors.values())
            ]
        out = [dict(base)]
        for f in names:
            for level in self.factors[f][1:]:
                out.append({**base, f: level})
        return out

    def condition_params(self, levels: dict[str, str]) -> dict[str, float]:
        """K, kappa, E_x, E_y of a condition: base moved by the effects of its levels."""
        shift = dict.fromkeys(EFFECT_PARAMS, 0.0)
        for f, level in levels.items():
            for param, value in self.effects.get(f, {}).get(level, {}).items():
                shift[param] += float(value)
        return {
            "K": float(self.base["K"] * math.exp(shift["log_K"])),
            "kappa": float(self.base["kappa"] * math.exp(shift["log_kappa"])),
            "E_x": float(self.base["E_x"] + shift["E_x"]),
            "E_y": float(self.base["E_y"] + shift["E_y"]),
        }

    def token_schedule(self, n_params: float) -> tuple[np.ndarray, np.ndarray]:
        """(steps, tokens) of a run's checkpoints: geometric from first_token_fraction to the end."""
        last = self.tokens_per_param * n_params
        target = np.geomspace(self.first_token_fraction * last, last, self.checkpoints_per_run)
        steps = np.maximum(np.round(target / self.tokens_per_step), 1.0)
        for i in range(1, steps.size):  # strictly increasing step numbers (unique checkpoint ids)
            steps[i] = max(steps[i], steps[i - 1] + 1)
        return steps, steps * self.tokens_per_step


# ------------------------------------------------------------------------------------------ truth
def _label(levels: dict[str, str], factors: list[str]) -> str:
    if not factors:
        return "all"
    return "|".join(f"{f}={levels[f]}" for f in factors)


@dataclass
class SimulationTruth:
    """The parameters a simulated table was drawn from, and the true curve gaps between conditions."""

    spec: SimulationSpec
    seed: int
    conditions: pd.DataFrame
    """One row per condition: condition, factor levels, K, kappa, E_x, E_y, min_x, max_x, n_runs, n_points."""
    runs: pd.DataFrame
    """One row per run: run, condition, factor levels, seed, params, offset (nats on y)."""
    points: pd.DataFrame
    """One row per checkpoint: run, checkpoint, x_true, x, curve (f_c(x_true)), early, noise, y."""

    @property
    def base(self) -> dict[str, float]:
        return dict(self.spec.base)

    @property
    def effects(self) -> dict[str, dict[str, dict[str, float]]]:
        return self.spec.effects

    @property
    def factors(self) -> list[str]:
        return list(self.spec.factors)

    @property
    def run_offsets(self) -> dict[str, float]:
        return dict(zip(self.runs["run"], self.runs["offset"].astype(float), strict=True))

    @property
    def base_condition(self) -> str:
        return _label({f: lv[0] for f, lv in self.spec.factors.items()}, self.factors)

    def condition_row(self, condition: str | dict[str, str]) -> pd.Series:
        """The conditions row of a label ('pretraining_data=code|...') or a {factor: level} dict
        (unspecified factors at base)."""
        if isinstance(condition, dict):
            unknown = [f for f in condition if f not in self.spec.factors]
            if unknown:
                raise UserInputError(
                    f"unknown factor(s) {', '.join(unknown)}; factors are {', '.join(self.factors)}"
                )
            full = {f: str(condition.get(f, lv[0])) for f, lv in self.spec.factors.items()}
            label = _label(full, self.factors)
        else:
            label = str(condition)
        hit = self.conditions[self.conditions["condition"] == label]
        if hit.empty:
            raise UserInputError(
                f"condition {label!r} is not in this simulation ({self.spec.design} design); conditions are: "
                + "; ".join(self.conditions["condition"])
            )
        return hit.iloc[0]

    def curve(self, condition: str | dict[str, str], x: Any) -> np.ndarray:
        """True mean curve f_c(x) of a condition (nats), without run offsets or early deviation."""
        row = self.condition_row(condition)
        return shifted_power_law(x, row["K"], row["kappa"], row["E_x"], row["E_y"])

    def gap(
        self, level_condition: str | dict[str, str], base_condition: str | dict[str, str], x_grid: Any
    ) -> np.ndarray:
        """True curve gap Δ(x) = f_level(x) - f_base(x) in nats on ``x_grid``."""
        return self.curve(level_condition, x_grid) - self.curve(base_condition, x_grid)

    def true_gap_summary(
        self, factor: str, level: str, base_condition: str | dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Mean gap and max |gap| (nats) of the condition with ``factor=level`` against ``base_condition``
        (default: the all-base condition); the level condition is ``base_condition`` with ``factor`` set to
        ``level``. Averaged over the two conditions' common x support.

        The common support is [max of the two min_x, min of the two max_x] of the simulated (observed) x;
        the mean is the uniform average over that interval (GAP_GRID points). NaN when the supports do
        not overlap.
        """
        if factor not in self.spec.factors:
            raise UserInputError(f"unknown factor {factor!r}; factors are {', '.join(self.factors)}")
        if str(level) not in self.spec.factors[factor]:
            raise UserInputError(
                f"{factor} has no level {level!r}; levels: {', '.join(self.spec.factors[factor])}"
            )
        base_row = self.condition_row(base_condition if base_condition is not None else {})
        levels = {f: str(base_row[f]) for f in self.factors}
        level_row = self.condition_row({**levels, factor: str(level)})
        lo = float(max(base_row["min_x"], level_row["min_x"]))
        hi = float(min(base_row["max_x"], level_row["max_x"]))
        out: dict[str, Any] = {
            "factor": factor,
            "level": str(level),
            "base_condition": str(base_row["condition"]),
            "level_condition": str(level_row["condition"]),
            "x_lo": lo,
            "x_hi": hi,
            "overlap": bool(hi > lo),
            "mean_gap": float("nan"),
            "max_abs_gap": float("nan"),
        }
        if hi > lo:
            grid = np.linspace(lo, hi, GAP_GRID)
            delta = self.gap(str(level_row["condition"]), str(base_row["condition"]), grid)
            out["mean_gap"] = float(np.mean(delta))
            out["max_abs_gap"] = float(np.max(np.abs(delta)))
        return out

    def gap_summaries(self) -> pd.DataFrame:
        """true_gap_summary of every non-base level of every factor against the base condition."""
        rows = [
            self.true_gap_summary(f, level) for f, levels in self.spec.factors.items() for level in levels[1:]
        ]
        cols = [
            "factor",
            "level",
            "base_condition",
            "level_condition",
            "x_lo",
            "x_hi",
            "overlap",
            "mean_gap",
            "max_abs_gap",
        ]
        return pd.DataFrame(rows, columns=cols)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (floats, strings, lists); :meth:`from_dict` reads it back."""
        return {
            "seed": self.seed,
            "spec": self.spec.to_dict(),
            "base": self.base,
            "effects": self.effects,
            "base_condition": self.base_condition,
            "conditions": json.loads(self.conditions.to_json(orient="records")),
            "runs": json.loads(self.runs.to_json(orient="records")),
            "run_offsets": self.run_offsets,
            "gaps": json.loads(self.gap_summaries().to_json(orient="records")),
            "points": json.loads(self.points.to_json(orient="records")),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationTruth:
        spec = SimulationSpec.from_dict(data["spec"], source="truth spec")
        runs = pd.DataFrame(data["runs"])
        for col in spec.factors:
            if col in runs:
                runs[col] = runs[col].astype(str)
        conditions = pd.DataFrame(data["conditions"])
        for col in spec.factors:
            if col in conditions:
                conditions[col] = conditions[col].astype(str)
        return cls(
            spec=spec,
            seed=int(data["seed"]),
            conditions=conditions,
            runs=runs,
            points=pd.DataFrame(data["points"]),
        )

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the truth as JSON; refuses to overwrite unless told to."""
        path = Path(path)
        check_output_file(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        from bayes_l2l.jsonable import to_json

        path.write_text(to_json(self.to_dict()))
        return path


def read_truth(path: str | Path) -> SimulationTruth:
    """Read a ``<stem>.truth.json`` written by :meth:`SimulationTruth.save`."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"{path}: no such truth file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc})") from exc
    return SimulationTruth.from_dict(data)


# ------------------------------------------------------------------------------------------ simulation
def simulate_table(spec: SimulationSpec, seed: int) -> tuple[LossTable, SimulationTruth]:
    """Draw a loss table from ``spec`` (deterministic for ``seed``) and return it with its truth."""
    spec.validate()
    rng = np.random.default_rng(seed)
    factors = list(spec.factors)
    cond_levels = spec.condition_levels()
    rows: list[dict[str, Any]] = []
    run_rows: list[dict[str, Any]] = []
    point_rows: list[dict[str, Any]] = []
    cond_rows: list[dict[str, Any]] = []
    for levels in cond_levels:
        label = _label(levels, factors)
        par = spec.condition_params(levels)
        if par["E_y"] < 0:
            raise UserInputError(
                f"spec: condition {label} has E_y = {par['E_y']:.4g} < 0; reduce the negative E_y effects "
                "or raise base.E_y"
            )
        if par["E_x"] < 0:
            raise UserInputError(
                f"spec: condition {label} has E_x = {par['E_x']:.4g} < 0; reduce the negative E_x effects "
                "or raise base.E_x"
            )
        sizes = [parse_size(levels["size"])] if "size" in levels else list(spec.sizes)
        cond_rows.append({"condition": label, **levels, **par})
        for n_params in sizes:
            steps, tokens = spec.token_schedule(n_params)
            for s in range(spec.runs_per_condition):
                parts = [levels[f] for f in factors]
                if "size" not in levels:
                    parts.append(format_size(n_params))
                run = "_".join([*parts, f"seed{s}"]) if parts else f"seed{s}"
                offset = float(rng.normal(0.0, spec.run_sd)) if spec.run_sd > 0 else 0.0
                n = steps.size
                x_true = compute_loss(n_params, tokens, par["E_x"], **spec.compute)
                x_obs = x_true + (rng.normal(0.0, spec.x_noise_sd, n) if spec.x_noise_sd > 0 else 0.0)
                if spec.noise == "normal":
                    eps = rng.normal(0.0, spec.noise_sd, n) if spec.noise_sd > 0 else np.zeros(n)
                else:
                    eps = spec.noise_sd * rng.standard_t(spec.noise_df, n)
                early = spec.early_amp * np.exp(-np.arange(n) / spec.early_tau)
                curve = shifted_power_law(x_true, par["K"], par["kappa"], par["E_x"], par["E_y"])
                y = curve + offset + early + eps
                if np.any(x_obs <= par["E_x"]):
                    raise UserInputError(
                        f"spec: x_noise_sd = {spec.x_noise_sd} pushes x below E_x in condition {label}; "
                        "lower x_noise_sd or train less long (tokens_per_param)"
                    )
                run_rows.append(
                    {
                        "run": run,
                        "condition": label,
                        **levels,
                        "seed": str(s),
                        "params": n_params,
                        "offset": offset,
                    }
                )
                for k in range(n):
                    ckpt = f"step{int(steps[k])}"
                    ident = {
                        "run": run,
                        "checkpoint": ckpt,
                        "step": float(steps[k]),
                        "tokens": float(tokens[k]),
                        "params": float(n_params),
                        **levels,
                        "seed": str(s),
                    }
                    for metric, value in ((spec.x_metric, x_obs[k]), (spec.y_metric, y[k])):
                        rows.append(
                            {
                                **ident,
                                "metric": metric,
                                "kind": KIND_OF_PREFIX[metric.split("/")[0]],
                                "value": float(value),
                                "unit": spec.unit,
                                "estimator": spec.estimator,
                            }
                        )
                    point_rows.append(
                        {
                            "run": run,
                            "checkpoint": ckpt,
                            "condition": label,
                            "index": k,
                            "x_true": float(x_true[k]),
                            "x": float(x_obs[k]),
                            "curve": float(curve[k]),
                            "offset": offset,
                            "early": float(early[k]),
                            "noise": float(eps[k]),
                            "y": float(y[k]),
                        }
                    )
    df = pd.DataFrame(rows)
    bad = df["value"] <= 0
    if bad.any():
        first = df[bad].iloc[0]
        raise UserInputError(
            f"spec: simulated {first['metric']} = {first['value']:.4g} <= 0 at run {first['run']}; losses "
            "must be positive: raise base.E_y / base.E_x or lower the noise"
        )
    points = pd.DataFrame(point_rows)
    stats = points.groupby("condition").agg(
        min_x=("x", "min"), max_x=("x", "max"), n_points=("x", "size"), n_runs=("run", "nunique")
    )
    conditions = pd.DataFrame(cond_rows).join(stats, on="condition")
    runs = pd.DataFrame(run_rows)
    table = LossTable.from_frame(df, source=f"simulate(seed={seed})")
    truth = SimulationTruth(spec=spec, seed=int(seed), conditions=conditions, runs=runs, points=points)
    return table, truth


RANK_DRAWS = 99
"""Posterior draws (evenly thinned) a true value is ranked among in calibration checks: ranks 0..99."""


def rank_among_draws(truth: float, draws: np.ndarray, n: int = RANK_DRAWS) -> int:
    """Number of ``n`` evenly thinned posterior draws below ``truth`` (0..n): uniform over simulations when the
    posterior is calibrated (rank histograms of benchmarks/calibration.py and benchmarks/sbc.py)."""
    idx = np.linspace(0, len(draws) - 1, n).round().astype(int)
    return int(np.sum(np.sort(draws)[idx] < truth))
