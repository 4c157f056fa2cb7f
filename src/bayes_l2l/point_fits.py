"""Point-estimate comparators for the Bayesian model (see docs/baselines.md).

* :func:`free_fit`: bounded multi-start least squares of all four parameters of the shifted power law,
  with identification diagnostics (parameters at bounds, ill-conditioning, near-optimal spread).
* :func:`two_stage_fit`: the reference paper's procedure, reproduced with its weaknesses (E from a
  compute-to-loss fit or min(loss), then K and kappa by ``curve_fit`` with E fixed; no uncertainty).
* :func:`power_law_fit` (``y = K x**kappa``) and :func:`linear_fit` (``y = a + b x``).
* :func:`fit_baselines`: any of these per group of a :class:`~bayes_l2l.table.LossTable`.

All losses are in the table's unit (nats/token unless stated); SSE in squared loss units.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit, least_squares

from bayes_l2l.contrasts import MISSING_LEVEL
from bayes_l2l.design import drop_repeated_measurements
from bayes_l2l.errors import UserInputError
from bayes_l2l.laws import compute_loss, shifted_power_law
from bayes_l2l.table import LossTable

LAW_PARAMS: tuple[str, ...] = ("K", "kappa", "Ex", "Ey")
K_BOUNDS: tuple[float, float] = (1e-6, 1e4)
"""Default bounds of K in free_fit (K > 0; the upper end only stops runs along the K -> inf ridge)."""
KAPPA_BOUNDS: tuple[float, float] = (0.01, 10.0)
E_MARGIN = 1e-3
"""E_x <= min(x) - E_MARGIN and E_y <= min(y) - E_MARGIN (loss units), so that x - E_x > 0 everywhere."""
BOUND_RTOL = 1e-3
"""A parameter is 'at a bound' within this fraction of its bound interval (log interval for K)."""
COND_THRESHOLD = 1e8
"""Ill-conditioning threshold for the condition number of the column-normalised J^T J at the optimum."""
SE_RATIO_THRESHOLD = 1.0
"""curve_fit-style standard error above this multiple of |estimate| is reported as not identified."""
NEAR_BEST_RTOL = 0.01
"""Starts whose SSE is within this fraction of the best SSE count as near-optimal."""
TWO_STAGE_FLOOR = 1e-10
"""The paper's fit clips x - E_x at this value (loss units); predictions of the two-stage fit do the same."""
METHODS: tuple[str, ...] = ("free", "two_stage", "power_law", "linear")
METHOD_SETS: dict[str, tuple[str, ...]] = {
    "both": ("free", "two_stage"),
    "all": METHODS,
    **{m: (m,) for m in METHODS},
}
METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "free": LAW_PARAMS,
    "two_stage": LAW_PARAMS,
    "power_law": ("K", "kappa"),
    "linear": ("a", "b"),
}
MIN_POINTS: dict[str, int] = {"free": 5, "two_stage": 4, "power_law": 4, "linear": 4}
"""Fewest points a method is run on: max(4, number of fitted parameters + 1)."""


@dataclass
class FitResult:
    """A point fit: parameters, residual sums, diagnostics. Losses and SSE in the data's loss unit."""

    params: dict[str, float]
    sse: float
    rmse: float
    n: int
    method: str
    warnings: list[str] = field(default_factory=list)
    at_bounds: list[str] = field(default_factory=list)
    condition_number: float = float("nan")
    """Of the column-normalised J^T J at the optimum (scale-free; inf when singular)."""
    stderr: dict[str, float] = field(default_factory=dict)
    """curve_fit-style standard errors sqrt(diag(s^2 (J^T J)^-1)); meaningless for parameters at bounds."""
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    """Method-specific details (near-optimal ranges, where E came from, number of starts, ...)."""

    @property
    def ok(self) -> bool:
        """True when every parameter is finite."""
        return all(np.isfinite(v) for v in self.params.values())

    def predict(self, x: Any) -> np.ndarray:
        """Predicted y at ``x`` (loss units); NaN outside the law's domain (x <= E_x for the free fit)."""
        p = self.params
        x = np.asarray(x, dtype=float)
        if self.method == "free":
            return shifted_power_law(x, p["K"], p["kappa"], p["Ex"], p["Ey"])
        if self.method == "two_stage":
            return shifted_power_law(x, p["K"], p["kappa"], p["Ex"], p["Ey"], floor=TWO_STAGE_FLOOR)
        if self.method == "power_law":
            return p["K"] * x ** p["kappa"]
        if self.method == "linear":
            return p["a"] + p["b"] * x
        raise ValueError(f"unknown method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (NaN/inf stay floats; the CLI's JSON writer turns them into null)."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "stderr": dict(self.stderr),
            "sse": self.sse,
            "rmse": self.rmse,
            "n": self.n,
            "condition_number": self.condition_number,
            "at_bounds": list(self.at_bounds),
            "warnings": list(self.warnings),
            "bounds": {k: [float(lo), float(hi)] for k, (lo, hi) in self.bounds.items()},
            "info": _plain(self.info),
        }


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ------------------------------------------------------------------------------------------ helpers
def _as_xy(x: Any, y: Any, min_points: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise UserInputError(f"{what}: x has {x.size} values but y has {y.size}; give one y per x")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UserInputError(f"{what}: x and y must be finite (drop checkpoints with missing losses first)")
    if x.size < min_points:
        raise UserInputError(
            f"{what}: needs at least {min_points} points (parameters + 1, and at least 4); got {x.size}"
        )
    if np.ptp(x) <= 0:
        raise UserInputError(f"{what}: all x values are equal; a curve needs several x values")
    return x, y


def _conditioning(jac: np.ndarray, resid: np.ndarray, params: Sequence[float]) -> tuple[float, np.ndarray]:
    """(condition number of the column-normalised J^T J, curve_fit-style standard errors)."""
    n, p = jac.shape
    scale = np.linalg.norm(jac, axis=0)
    if not np.all(np.isfinite(jac)) or np.any(scale == 0):
        return float("inf"), np.full(p, np.inf)
    jn = jac / scale
    sv = np.linalg.svd(jn, compute_uv=False)
    cond = float((sv[0] / sv[-1]) ** 2) if sv[-1] > 0 else float("inf")
    dof = max(n - p, 1)
    s2 = float(resid @ resid) / dof
    if not np.isfinite(cond) or cond > 1e15:
        return cond, np.full(p, np.inf)
    cov_n = np.linalg.inv(jn.T @ jn) * s2
    se = np.sqrt(np.clip(np.diag(cov_n), 0, None)) / scale
    return cond, se


def _at_bound(value: float, lo: float, hi: float, log: bool = False) -> str | None:
    """'lower' / 'upper' when ``value`` is within BOUND_RTOL of the bound interval, else None."""
    if log:
        value, lo, hi = np.log(value), np.log(lo), np.log(hi)
    width = hi - lo
    if not np.isfinite(width) or width <= 0:
        return None
    if value - lo <= BOUND_RTOL * width:
        return "lower"
    if hi - value <= BOUND_RTOL * width:
        return "upper"
    return None


def _diagnose(
    result: FitResult, names: Sequence[str], se: np.ndarray, log_names: Sequence[str] = ("K",)
) -> None:
    """Fill at_bounds and warnings from bounds, condition number and standard errors."""
    for name in names:
        if name not in result.bounds:
            continue
        lo, hi = result.bounds[name]
        side = _at_bound(result.params[name], lo, hi, log=name in log_names and lo > 0)
        if side:
            result.at_bounds.append(name)
            bound = lo if side == "lower" else hi
            result.warnings.append(
                f"{name} = {result.params[name]:.4g} is at its {side} bound {bound:.4g}: the data do not "
                "determine it (the optimum lies outside the allowed range)"
            )
    result.stderr = {n: float(s) for n, s in zip(names, se, strict=True)}
    if not np.isfinite(result.condition_number) or result.condition_number > COND_THRESHOLD:
        result.warnings.append(
            f"ill-conditioned: condition number of J^T J is {result.condition_number:.3g} "
            f"(> {COND_THRESHOLD:.0e}); parameters trade off along a ridge and are not identified separately"
        )
    loose = [
        f"{n} (se {s:.3g} vs |{result.params[n]:.3g}|)"
        for n, s in zip(names, se, strict=True)
        if not np.isfinite(s) or s > SE_RATIO_THRESHOLD * abs(result.params[n])
    ]
    if loose:
        result.warnings.append(
            f"standard error larger than {SE_RATIO_THRESHOLD:g}x the estimate: {', '.join(loose)}"
        )


# ------------------------------------------------------------------------------------------ free fit
def _law_residuals(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    log_k, kappa, ex, ey = theta
    return np.exp(log_k) * (x - ex) ** kappa + ey - y


def _law_jacobian(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d residuals / d(log K, kappa, Ex, Ey)."""
    log_k, kappa, ex, _ = theta
    k = np.exp(log_k)
    g = x - ex
    p = g**kappa
    return np.column_stack([k * p, k * p * np.log(g), -k * kappa * g ** (kappa - 1.0), np.ones_like(x)])


def _natural_jacobian(params: dict[str, float], x: np.ndarray) -> np.ndarray:
    """d f / d(K, kappa, Ex, Ey) at the given parameters."""
    k, kappa, ex = params["K"], params["kappa"], params["Ex"]
    g = x - ex
    p = g**kappa
    return np.column_stack([p, k * p * np.log(g), -k * kappa * g ** (kappa - 1.0), np.ones_like(x)])


def free_bounds(
    x: np.ndarray, y: np.ndarray, bounds: dict[str, tuple[float, float]] | None = None
) -> dict[str, tuple[float, float]]:
    """Bounds of the free fit: K in [1e-6, 1e4], kappa in [0.01, 10], 0 <= E_x <= min(x) - 1e-3,
    0 <= E_y <= min(y) - 1e-3 (loss units); entries of ``bounds`` replace the defaults (E upper ends are
    still capped below min(x) / min(y))."""
    out: dict[str, tuple[float, float]] = {
        "K": K_BOUNDS,
        "kappa": KAPPA_BOUNDS,
        "Ex": (0.0, float(np.min(x)) - E_MARGIN),
        "Ey": (0.0, float(np.min(y)) - E_MARGIN),
    }
    for name, (lo, hi) in (bounds or {}).items():
        if name not in out:
            raise UserInputError(f"free_fit bounds: unknown parameter {name!r}; use one of {', '.join(out)}")
        if name == "Ex":
            hi = min(hi, out["Ex"][1])
        if name == "Ey":
            hi = min(hi, out["Ey"][1])
        out[name] = (float(lo), float(hi))
    for name, (lo, hi) in out.items():
        if not lo < hi:
            raise UserInputError(
                f"free_fit bounds: {name} has an empty range [{lo:.4g}, {hi:.4g}]"
                + (
                    " (E must stay below the smallest loss: are the losses positive?)"
                    if name[0] == "E"
                    else ""
                )
            )
        if name in ("K", "kappa") and lo <= 0:
            raise UserInputError(f"free_fit bounds: {name} must be positive; got lower bound {lo:.4g}")
    return out


def free_fit(
    x: Any,
    y: Any,
    *,
    n_starts: int = 24,
    seed: int = 0,
    bounds: dict[str, tuple[float, float]] | None = None,
) -> FitResult:
    """Bounded multi-start least squares of ``y = K (x - E_x)**kappa + E_y`` (all four parameters free).

    Starts: one fixed start plus ``n_starts - 1`` random ones (log-uniform K and kappa, uniform E inside the
    bounds), drawn from ``numpy.random.default_rng(seed)``; the lowest-SSE solution is returned. Warnings
    flag parameters at bounds, ill-conditioning, large standard errors and disagreeing near-optimal starts.
    """
    x, y = _as_xy(x, y, MIN_POINTS["free"], "free_fit")
    bnd = free_bounds(x, y, bounds)
    lo = np.array([np.log(bnd["K"][0]), bnd["kappa"][0], bnd["Ex"][0], bnd["Ey"][0]])
    hi = np.array([np.log(bnd["K"][1]), bnd["kappa"][1], bnd["Ex"][1], bnd["Ey"][1]])
    rng = np.random.default_rng(seed)
    starts = [np.clip(np.array([np.log(0.5), 1.0, 0.5 * bnd["Ex"][1], 0.5 * bnd["Ey"][1]]), lo, hi)]
    for _ in range(max(n_starts, 1) - 1):
        start = np.array(
            [
                rng.uniform(max(lo[0], np.log(1e-2)), min(hi[0], np.log(10.0))),
                np.exp(rng.uniform(np.log(max(lo[1], 0.2)), np.log(min(hi[1], 5.0)))),
                rng.uniform(lo[2], hi[2]),
                rng.uniform(lo[3], hi[3]),
            ]
        )
        starts.append(np.clip(start, lo, hi))
    solutions: list[tuple[float, np.ndarray]] = []
    for start in starts:
        start = np.minimum(np.maximum(start, lo + 1e-12 * (hi - lo)), hi - 1e-12 * (hi - lo))
        with np.errstate(all="ignore"):
            try:
                sol = least_squares(
                    _law_residuals,
                    start,
                    jac=_law_jacobian,
                    bounds=(lo, hi),
                    args=(x, y),
                    x_scale="jac",
                    max_nfev=2000,
                )
            except ValueError:
                continue
        sse = float(sol.fun @ sol.fun)
        if np.isfinite(sse):
            solutions.append((sse, sol.x))
    if not solutions:
        nan = dict.fromkeys(LAW_PARAMS, float("nan"))
        return FitResult(nan, float("nan"), float("nan"), x.size, "free", ["every start failed"], bounds=bnd)
    solutions.sort(key=lambda s: s[0])
    best_sse, best = solutions[0]
    params = {
        "K": float(np.exp(best[0])),
        "kappa": float(best[1]),
        "Ex": float(best[2]),
        "Ey": float(best[3]),
    }
    resid = shifted_power_law(x, **params) - y
    jac = _natural_jacobian(params, x)
    cond, se = _conditioning(jac, resid, list(params.values()))
    near = np.array([s[1] for s in solutions if s[0] <= best_sse * (1 + NEAR_BEST_RTOL) + 1e-12])
    near_k = np.exp(near[:, 0])
    ranges = {
        "K": [float(near_k.min()), float(near_k.max())],
        "kappa": [float(near[:, 1].min()), float(near[:, 1].max())],
        "Ex": [float(near[:, 2].min()), float(near[:, 2].max())],
        "Ey": [float(near[:, 3].min()), float(near[:, 3].max())],
    }
    result = FitResult(
        params=params,
        sse=best_sse,
        rmse=float(np.sqrt(best_sse / x.size)),
        n=int(x.size),
        method="free",
        condition_number=cond,
        bounds=bnd,
        info={
            "n_starts": len(starts),
            "n_converged": len(solutions),
            "near_best": int(len(near)),
            "near_best_ranges": ranges,
        },
    )
    _diagnose(result, LAW_PARAMS, se)
    wide = [
        f"{n} in [{ranges[n][0]:.3g}, {ranges[n][1]:.3g}]"
        for n in LAW_PARAMS
        if (n in ("K", "kappa") and ranges[n][1] > 1.1 * ranges[n][0])
        or (n in ("Ex", "Ey") and ranges[n][1] - ranges[n][0] > 0.05)
    ]
    if wide:
        result.warnings.append(
            f"{len(near)} of {len(solutions)} starts reach within {NEAR_BEST_RTOL:.0%} of the best SSE with "
            f"{', '.join(wide)}: the optimum is a flat ridge, not a point"
        )
    return result


# ------------------------------------------------------------------------------------------ two-stage fit
def _compute_curve(
    nd: tuple[np.ndarray, np.ndarray], e: float, a: float, b: float, d: float, f: float
) -> Any:
    """The paper's compute-to-loss curve, parameter order (E, A, B, alpha, beta)."""
    n, dd = nd
    return compute_loss(n, dd, e, a, b, d, f)


def _irreducible(
    loss: np.ndarray, N: np.ndarray | None, D: np.ndarray | None, upper: float, p0_e: float, name: str
) -> tuple[float, str, list[str]]:
    """E for one axis as the paper computes it: (value, source, warnings)."""
    notes: list[str] = []
    if N is None or D is None:
        return upper, "fallback", [f"{name}: no N/D given; set to min(loss) = {upper:.4g} (paper's fallback)"]
    if not (np.isfinite(N).all() and np.isfinite(D).all() and (N > 0).all() and (D > 0).all()):
        return (
            upper,
            "fallback",
            [
                f"{name}: N or D missing or non-positive at some checkpoints; set to min(loss) = {upper:.4g} "
                "(paper's fallback)"
            ],
        )
    if np.unique(N).size == 1:
        notes.append(
            f"{name}: compute-to-loss law fitted with one model size (N constant): the 5-parameter law is "
            "not identified, E is whatever the optimizer stops at"
        )
    try:
        with _warnings.catch_warnings(), np.errstate(all="ignore"):
            _warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(
                _compute_curve,
                (N, D),
                loss,
                p0=(p0_e, 1, 1, 1, 1),
                bounds=([0, -np.inf, -np.inf, -np.inf, -np.inf], [upper, np.inf, np.inf, np.inf, np.inf]),
            )
    except (RuntimeError, ValueError, TypeError) as exc:
        notes.append(
            f"{name}: compute-to-loss fit failed ({exc}); set to min(loss) = {upper:.4g} (paper's fallback)"
        )
        return upper, "fallback", notes
    return float(popt[0]), "compute_fit", notes


def two_stage_fit(
    x: Any,
    y: Any,
    *,
    N: Any = None,
    D: Any = None,
    x_min: float | None = None,
    y_min: float | None = None,
) -> FitResult:
    """The paper's two-stage fit (method.md §3), reproduced as a comparator, weaknesses included.

    Stage 1: E_x (E_y) = E of the compute-to-loss law fitted to x (y) over the group's N (params) and
    D (tokens) with ``scipy.optimize.curve_fit``, E bounded to [0, x_min] ([0, y_min]); ``x_min`` and
    ``y_min`` default to min(x), min(y) and are also the fallback when N/D are missing or the fit fails.
    Stage 2: K, kappa by ``curve_fit`` (p0 = (0.8, 1), kappa >= 0, x - E_x clipped at 1e-10) with E fixed.
    No uncertainty is propagated from stage 1 to stage 2 (as in the paper).
    """
    x, y = _as_xy(x, y, MIN_POINTS["two_stage"], "two_stage_fit")
    n_arr = None if N is None else np.asarray(N, dtype=float).ravel()
    d_arr = None if D is None else np.asarray(D, dtype=float).ravel()
    for arr, name in ((n_arr, "N"), (d_arr, "D")):
        if arr is not None and arr.shape != x.shape:
            raise UserInputError(f"two_stage_fit: {name} has {arr.size} values but x has {x.size}")
    ux = float(np.min(x)) if x_min is None else float(x_min)
    uy = float(np.min(y)) if y_min is None else float(y_min)
    ex, ex_src, notes_x = _irreducible(x, n_arr, d_arr, ux, 0.1, "E_x")
    ey, ey_src, notes_y = _irreducible(y, n_arr, d_arr, uy, 0.0, "E_y")
    notes = notes_x + notes_y
    bnd = {"Ex": (0.0, ux), "Ey": (0.0, uy), "kappa": (0.0, np.inf), "K": (-np.inf, np.inf)}

    def stage2(xx: np.ndarray, k: float, kappa: float) -> np.ndarray:
        return k * np.maximum(xx - ex, TWO_STAGE_FLOOR) ** kappa + ey

    info = {"E_x_source": ex_src, "E_y_source": ey_src}
    try:
        with _warnings.catch_warnings(), np.errstate(all="ignore"):
            _warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(
                stage2, x, y, p0=(0.8, 1.0), bounds=([-np.inf, 0], [np.inf, np.inf]), maxfev=10000
            )
    except (RuntimeError, ValueError) as exc:
        params = {"K": float("nan"), "kappa": float("nan"), "Ex": ex, "Ey": ey}
        return FitResult(
            params,
            float("nan"),
            float("nan"),
            int(x.size),
            "two_stage",
            [*notes, f"K, kappa fit failed ({exc})"],
            bounds=bnd,
            info=info,
        )
    params = {"K": float(popt[0]), "kappa": float(popt[1]), "Ex": ex, "Ey": ey}
    resid = stage2(x, *popt) - y
    sse = float(resid @ resid)
    g = np.maximum(x - ex, TWO_STAGE_FLOOR)
    jac = np.column_stack([g ** popt[1], popt[0] * g ** popt[1] * np.log(g)])
    cond, se = _conditioning(jac, resid, popt)
    result = FitResult(
        params=params,
        sse=sse,
        rmse=float(np.sqrt(sse / x.size)),
        n=int(x.size),
        method="two_stage",
        condition_number=cond,
        bounds=bnd,
        warnings=list(notes),
        info=info,
    )
    for name, src in (("Ex", ex_src), ("Ey", ey_src)):
        if src == "compute_fit":
            side = _at_bound(params[name], *bnd[name])
            if side:
                result.at_bounds.append(name)
                result.warnings.append(
                    f"{name} = {params[name]:.4g} from the compute-to-loss fit sits at its {side} bound "
                    f"{bnd[name][0 if side == 'lower' else 1]:.4g}"
                )
        else:
            result.at_bounds.append(name)
    _diagnose(result, ("K", "kappa"), se, log_names=())
    if params["kappa"] <= BOUND_RTOL:
        result.at_bounds.append("kappa")
        result.warnings.append(f"kappa = {params['kappa']:.3g} is at its lower bound 0")
    result.info["conditioning_of"] = "(K, kappa) with E_x, E_y fixed"
    return result


# ------------------------------------------------------------------------------------------ simple laws
def power_law_fit(x: Any, y: Any) -> FitResult:
    """Least squares of ``y = K * x**kappa`` on raw losses (start: log-log regression); K > 0."""
    x, y = _as_xy(x, y, MIN_POINTS["power_law"], "power_law_fit")
    if (x <= 0).any() or (y <= 0).any():
        raise UserInputError("power_law_fit: x and y must be positive losses")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)

    def resid(theta: np.ndarray) -> np.ndarray:
        return np.exp(theta[0]) * x ** theta[1] - y

    def jac(theta: np.ndarray) -> np.ndarray:
        f = np.exp(theta[0]) * x ** theta[1]
        return np.column_stack([f, f * np.log(x)])

    sol = least_squares(resid, np.array([intercept, slope]), jac=jac, x_scale="jac")
    params = {"K": float(np.exp(sol.x[0])), "kappa": float(sol.x[1])}
    r = sol.fun
    sse = float(r @ r)
    jn = np.column_stack([x ** params["kappa"], params["K"] * x ** params["kappa"] * np.log(x)])
    cond, se = _conditioning(jn, r, list(params.values()))
    result = FitResult(
        params, sse, float(np.sqrt(sse / x.size)), int(x.size), "power_law", condition_number=cond
    )
    _diagnose(result, ("K", "kappa"), se)
    return result


def linear_fit(x: Any, y: Any) -> FitResult:
    """Ordinary least squares of ``y = a + b * x``."""
    x, y = _as_xy(x, y, MIN_POINTS["linear"], "linear_fit")
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    r = design @ coef - y
    sse = float(r @ r)
    cond, se = _conditioning(design, r, coef)
    result = FitResult(
        {"a": float(coef[0]), "b": float(coef[1])},
        sse,
        float(np.sqrt(sse / x.size)),
        int(x.size),
        "linear",
        condition_number=cond,
    )
    result.stderr = {"a": float(se[0]), "b": float(se[1])}
    return result


# ------------------------------------------------------------------------------------------ per group
@dataclass
class GroupFit:
    """The baseline fits of one group (a level of ``by``, or all points)."""

    group: str
    n: int
    runs: list[str]
    x_range: tuple[float, float]
    fits: dict[str, FitResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """method -> reason it was not run."""
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """'ok' (every method ran), 'partial' or 'skipped' (none ran)."""
        if not self.fits:
            return "skipped"
        return "partial" if self.skipped else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "status": self.status,
            "n": self.n,
            "runs": list(self.runs),
            "x_range": [float(v) for v in self.x_range],
            "fits": {m: f.to_dict() for m, f in self.fits.items()},
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
        }


def baseline_points(
    table: LossTable,
    x: str,
    y: str,
    by: str | None = None,
    *,
    unit: str | None = None,
    allow_mixed: bool = False,
) -> pd.DataFrame:
    """One row per checkpoint with both metrics: run, checkpoint, params, tokens, group, x, y, estimators.

    Only values in ``unit`` are used (None: each axis in the unit the table stores it in, the first of
    units.PREFERENCE where it has several). Averages
    (val/avg4, mean(a,b)) refuse to mix estimators unless ``allow_mixed``.
    """
    if by is not None and by not in table.df.columns:
        raise UserInputError(
            f"{table.source}: --by names '{by}', which is not a column of the table; factors are: "
            f"{', '.join(table.factors)}"
        )
    from bayes_l2l.design import Question, axis_series, check_distinct_axes, resolve_units

    check_distinct_axes(x, y, table.source)
    question = resolve_units(table, Question(x=x, y=y, unit=unit, allow_mixed=allow_mixed))
    xs, ys = axis_series(table, question)
    pts = xs.rename(columns={"value": "x", "unit": "x_unit", "estimator": "x_estimator"}).merge(
        ys.rename(columns={"value": "y", "unit": "y_unit", "estimator": "y_estimator"}),
        on=["run", "checkpoint"],
    )
    if pts.empty:
        raise UserInputError(
            f"{table.source}: no checkpoint has both {x} and {y}"
            + (f" in {unit}" if unit else "")
            + "; check the metric names"
            + (" or choose another unit (--unit)" if unit else "")
        )
    ident = table.checkpoints()
    keep = ["run", "checkpoint"] + [c for c in ("step", "tokens", "params") if c in ident.columns]
    if by is not None and by not in keep:
        keep.append(by)
    pts = pts.merge(ident[keep], on=["run", "checkpoint"], how="left")
    pts, note = drop_repeated_measurements(pts)
    if note:
        table.warnings.append(
            f"baseline: dropped {note['count']} repeated measurement(s): {', '.join(note['checkpoints'])}"
        )
    pts["group"] = "all" if by is None else pts[by].astype("string").fillna(MISSING_LEVEL).astype(str)
    for col in ("tokens", "params"):
        if col not in pts.columns:
            pts[col] = np.nan
    return pts.sort_values(["group", "run", "x"], ascending=[True, True, False]).reset_index(drop=True)


def fit_group(
    pts: pd.DataFrame, group: str, methods: Sequence[str], *, n_starts: int = 24, seed: int = 0
) -> GroupFit:
    """Run ``methods`` on the points of one group (columns x, y, params, tokens, run, estimators)."""
    x = pts["x"].to_numpy(dtype=float)
    y = pts["y"].to_numpy(dtype=float)
    out = GroupFit(
        group=group,
        n=len(pts),
        runs=sorted(pts["run"].astype(str).unique().tolist()),
        x_range=(float(np.min(x)), float(np.max(x))) if len(x) else (float("nan"), float("nan")),
    )
    for col in ("x_estimator", "y_estimator"):
        if col in pts.columns:
            est = sorted(pts[col].astype(str).unique())
            if len(est) > 1:
                out.warnings.append(f"{col[0]} axis mixes estimators: {', '.join(est)}")
    fitters: dict[str, Callable[[], FitResult]] = {
        "free": lambda: free_fit(x, y, n_starts=n_starts, seed=seed),
        "two_stage": lambda: two_stage_fit(
            x, y, N=pts["params"].to_numpy(dtype=float), D=pts["tokens"].to_numpy(dtype=float)
        ),
        "power_law": lambda: power_law_fit(x, y),
        "linear": lambda: linear_fit(x, y),
    }
    for method in methods:
        need = MIN_POINTS[method]
        if len(pts) < need:
            out.skipped[method] = (
                f"{len(pts)} point(s); {method} needs at least {need} "
                f"({len(METHOD_PARAMS[method])} parameters + 1, and at least 4)"
            )
            continue
        if np.ptp(x) <= 0:
            out.skipped[method] = "all x values are equal"
            continue
        out.fits[method] = fitters[method]()
    return out


def fit_baseline_groups(
    table: LossTable,
    x: str,
    y: str,
    by: str | None = None,
    method: str = "both",
    *,
    unit: str | None = None,
    allow_mixed: bool = False,
    n_starts: int = 24,
    seed: int = 0,
) -> list[GroupFit]:
    """Baseline fits per level of ``by`` (one group 'all' when ``by`` is None)."""
    if method not in METHOD_SETS:
        raise UserInputError(f"unknown baseline method {method!r}; use one of {', '.join(METHOD_SETS)}")
    pts = baseline_points(table, x, y, by, unit=unit, allow_mixed=allow_mixed)
    return [
        fit_group(sub, str(group), METHOD_SETS[method], n_starts=n_starts, seed=seed)
        for group, sub in pts.groupby("group", sort=True)
    ]


def fit_baselines(
    table: LossTable,
    x: str,
    y: str,
    by: str | None = None,
    method: str = "both",
    *,
    unit: str | None = None,
    allow_mixed: bool = False,
    n_starts: int = 24,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group: n, runs, status, and per method ``<method>_<param>``, ``_sse``, ``_rmse``,
    ``_cond``, ``_at_bounds``, ``_warnings`` (and ``_skipped`` with the reason when a method did not run).

    ``method``: 'free', 'two_stage', 'power_law', 'linear', 'both' (free + two_stage) or 'all'.
    Groups are the levels of ``by``; with ``by=None`` all points form one group named 'all'.
    """
    groups = fit_baseline_groups(
        table, x, y, by, method, unit=unit, allow_mixed=allow_mixed, n_starts=n_starts, seed=seed
    )
    return groups_frame(groups, METHOD_SETS[method])


def groups_frame(groups: Sequence[GroupFit], methods: Sequence[str]) -> pd.DataFrame:
    """The DataFrame of :func:`fit_baselines` from already fitted groups."""
    rows = []
    for g in groups:
        row: dict[str, Any] = {
            "group": g.group,
            "n": g.n,
            "n_runs": len(g.runs),
            "status": g.status,
            "x_min": g.x_range[0],
            "x_max": g.x_range[1],
            "warnings": list(g.warnings),
        }
        for m in methods:
            fit = g.fits.get(m)
            for p in METHOD_PARAMS[m]:
                row[f"{m}_{p}"] = fit.params[p] if fit else np.nan
            row[f"{m}_sse"] = fit.sse if fit else np.nan
            row[f"{m}_rmse"] = fit.rmse if fit else np.nan
            row[f"{m}_cond"] = fit.condition_number if fit else np.nan
            row[f"{m}_at_bounds"] = list(fit.at_bounds) if fit else []
            row[f"{m}_warnings"] = list(fit.warnings) if fit else []
            row[f"{m}_skipped"] = g.skipped.get(m, "")
        rows.append(row)
    return pd.DataFrame(rows)
