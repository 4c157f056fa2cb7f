"""Measurement error on both axes (issue 27): the known noise of each point and when to model it.

x and y are means over a sample of documents (questions), so each carries a standard error (the table's
``stderr``). Every checkpoint is scored on the same documents, so the error of one metric has two parts:
a part *shared* by all checkpoints (which documents happened to be drawn: it moves every checkpoint's loss,
of every condition, the same way, so it shifts all curves together and leaves their gaps unchanged to first
order) and a part *independent* across checkpoints. Only the independent part scatters points around their
curve; it is the table's ``stderr_independent`` where the evaluator wrote it (from per-document losses),
else the whole ``stderr`` (the conservative end: the most noise).

The model integrates the latent true x out to first order: with x_obs = x + e, e ~ N(0, s_x^2), and
y = f(x) + offset + residual + e_y, e_y ~ N(0, s_y^2), y given x_obs has scale
sqrt(sigma^2 + s_y^2 + f'(x_obs)^2 s_x^2) (the "effective variance"; exact for a locally linear f, and the
curvature term f'' s_x^2 / 2 is below 1e-4 nats at these noise levels). No latent variable per point is
sampled, so the cost stays that of the fit without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bayes_l2l.errors import UserInputError

MODES = ("auto", "on", "off")
NEGLIGIBLE_SHARE = 0.1
"""auto leaves the error model off when the known independent noise variance (median over points) is below
this share of the scatter variance of the checkpoints around a smooth curve: it would change nothing."""


@dataclass(frozen=True)
class MeasurementChoice:
    """Whether the error model is used on a design, and why (stated in the output and the report)."""

    used: bool
    reason: str
    x_se: float
    """Median independent standard error of x (its unit; NaN when the table has none)."""
    y_se: float
    scatter_sd: float
    """Scatter of y around a smooth curve through each run's neighbouring checkpoints (y's unit)."""
    known_sd: float
    """Median sqrt(s_y^2 + slope^2 s_x^2) over points (y's unit), slope the local one."""
    source: str
    """Which column gave each axis' independent noise, in words ("x from stderr_independent", "none")."""
    sources: dict[str, str | None]
    """Per axis the column the model reads (:func:`axis_sources`); empty when the model is not used."""

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.__dict__.items()
        }


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UserInputError(f"--measurement-error {mode!r}: use auto, on or off")
    return mode


def axis_sources(points: Any, fallback: bool) -> dict[str, str | None]:
    """Per axis, the column its independent error comes from: ``stderr_independent`` where the table has it,
    else (with ``fallback``, under ``--measurement-error on``) the whole ``stderr``, else None."""
    out: dict[str, str | None] = {}
    for axis in ("x", "y"):
        if np.isfinite(points_column(points, f"{axis}_se_indep")).any():
            out[axis] = "stderr_independent"
        elif fallback and np.isfinite(points_column(points, f"{axis}_se")).any():
            out[axis] = "stderr"
        else:
            out[axis] = None
    return out


def independent_variances(points: Any, sources: dict[str, str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(x variance, y variance) of each point from the columns ``sources`` names (:func:`axis_sources`),
    zero where a point has none."""
    out = []
    for axis in ("x", "y"):
        col = {"stderr_independent": f"{axis}_se_indep", "stderr": f"{axis}_se"}.get(sources.get(axis) or "")
        se = points_column(points, col) if col else np.zeros(len(points))
        out.append(np.where(np.isfinite(se), se, 0.0) ** 2)
    return out[0], out[1]


def points_column(points: Any, name: str) -> np.ndarray:
    """A column of a design's points as floats, NaN throughout where the points have no such column."""
    if name not in points.columns:
        return np.full(len(points), np.nan)
    return points[name].to_numpy(dtype=float)


def scatter_and_slope(points: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per interior checkpoint of a run (sorted by x): its y minus the line through its two neighbours,
    scaled to unit variance under i.i.d. noise, and the local slope; runs with < 3 checkpoints give none."""
    g = points[["run", "x", "y"]].sort_values(["run", "x"], kind="stable")
    run = g["run"].to_numpy()
    x, y = g["x"].to_numpy(float), g["y"].to_numpy(float)
    if len(x) < 3:
        return np.zeros(0), np.zeros(0)
    same = (run[:-2] == run[1:-1]) & (run[1:-1] == run[2:])
    span = x[2:] - x[:-2]
    ok = same & (span > 0)
    safe = np.where(ok, span, 1.0)
    w = (x[1:-1] - x[:-2]) / safe
    line = (1 - w) * y[:-2] + w * y[2:]
    r = (y[1:-1] - line) / np.sqrt(1 + w**2 + (1 - w) ** 2)
    return r[ok], ((y[2:] - y[:-2]) / safe)[ok]


def choose(points: Any, mode: str) -> MeasurementChoice:
    """The error model's use on ``points`` (a design's points) under ``mode`` (auto, on, off)."""
    check_mode(mode)
    has_total = any(np.isfinite(points_column(points, f"{a}_se")).any() for a in ("x", "y"))
    sources = axis_sources(points, fallback=mode == "on")
    x_var, y_var = independent_variances(points, sources)
    resid, slopes = scatter_and_slope(points)
    # robust scatter: the median absolute residual / 0.6745 (a few jumps between runs' phases do not count)
    scatter = float(np.median(np.abs(resid)) / 0.6745) if resid.size else float("nan")
    slope = float(np.median(np.abs(slopes))) if slopes.size else 1.0
    known = float(np.sqrt(np.median(y_var + slope**2 * x_var)))
    x_se = float(np.sqrt(np.median(x_var))) if x_var.any() else float("nan")
    y_se = float(np.sqrt(np.median(y_var))) if y_var.any() else float("nan")
    given = ", ".join(f"{a} from {c}" for a, c in sources.items() if c) or "none"

    def pick(used: bool, reason: str) -> MeasurementChoice:
        return MeasurementChoice(used, reason, x_se, y_se, scatter, known, given, sources if used else {})

    if mode == "off":
        return pick(False, "off (--measurement-error off)")
    if not has_total:
        if mode == "on":
            raise UserInputError(
                "--measurement-error on needs standard errors: the table has no 'stderr' for x or y "
                "(the evaluator writes it; map a column to stderr when importing)"
            )
        return pick(False, "off: the table has no stderr for x or y")
    if mode == "on":
        return pick(
            True,
            f"on (--measurement-error on): independent noise {given} (an axis without stderr_independent is "
            f"treated as wholly independent: the conservative end); known noise median {known:.3g} in y",
        )
    if not any(sources.values()):
        total = float(np.sqrt(np.median(_sq(points, "y_se") + slope**2 * _sq(points, "x_se"))))
        excess = (
            f"; the stated stderr (median {total:.3g} in y) exceeds the checkpoints' scatter around a smooth "
            f"curve ({scatter:.3g}), so most of it must be shared"
            if np.isfinite(scatter) and total > scatter
            else ""
        )
        return pick(
            False,
            "off: the table gives stderr but not its part independent across checkpoints (column "
            "stderr_independent; the evaluator writes it from per-document losses). The part shared by every "
            f"checkpoint (the same documents) moves all curves together and leaves the gaps{excess}. "
            "--measurement-error on treats all of it as independent (wider intervals)",
        )
    if not (np.isfinite(scatter) and scatter > 0):
        return pick(True, f"on: independent noise {given}; no run has 3 checkpoints to compare it with")
    share = known**2 / scatter**2
    if share < NEGLIGIBLE_SHARE:
        return pick(
            False,
            f"off: the known independent noise ({given}, median {known:.3g} in y) is {share:.0%} of the "
            f"checkpoints' scatter ({scatter:.3g}) in variance, below {NEGLIGIBLE_SHARE:.0%}: negligible",
        )
    return pick(
        True,
        f"on: the known independent noise ({given}, median {known:.3g} in y) is {share:.0%} of the "
        f"checkpoints' scatter ({scatter:.3g}) in variance",
    )


def _sq(points: Any, name: str) -> np.ndarray:
    v = points_column(points, name)
    return np.where(np.isfinite(v), v, 0.0) ** 2


def draws_scale(
    post: Any, points: Any, sigma: np.ndarray, K: np.ndarray, kappa: np.ndarray, Ex: np.ndarray
) -> np.ndarray:
    """The predictive scale of observed ``points`` on draws: ``sigma`` (S, 1), curve parameters (S, N) per
    point; sqrt(sigma^2 + s_y^2 + f'(x)^2 s_x^2) where the posterior used the error model, else sigma."""
    if not used(post):
        return sigma
    x_var, y_var = independent_variances(points, post.settings["measurement_error"]["sources"])
    rel = np.clip(points["x"].to_numpy(float)[None, :] - Ex, 1e-12, None)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return known_scale(sigma, K, kappa, 1.0, rel, x_var[None, :], y_var[None, :])


def known_scale(
    sigma: Any, amp: Any, kappa: Any, g: Any, rel: Any, x_var: Any, y_var: Any, xp: Any = np
) -> Any:
    """The likelihood scale of a point under the error model: sqrt(sigma^2 + s_y^2 + f'(x)^2 s_x^2), with
    f'(x) = amp kappa rel^(kappa - 1) / g the curve's slope at the observed x (rel = (x - Ex) / g; first-order
    integration of the true x, see the module doc). ``xp``: numpy on draws, jax.numpy in the model."""
    slope = amp * kappa * xp.exp((kappa - 1.0) * xp.log(rel)) / g
    return xp.sqrt(sigma**2 + y_var + slope**2 * x_var)


def new_point_variances(post: Any, points: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Known independent error variances (x, y) of new checkpoints (``points`` with a design's se columns,
    e.g. from :func:`bayes_l2l.comparisons.read_new_checkpoints`), read from the columns the fit read; None
    where the fit did not use the error model (its sigma then holds whatever independent noise there is)."""
    if not used(post):
        return None
    return independent_variances(points, post.settings["measurement_error"]["sources"])


def used(post: Any) -> bool:
    """Whether ``post`` was fitted with the error model."""
    return bool((post.settings.get("measurement_error") or {}).get("used"))


def independent_share(nll: np.ndarray, denom: np.ndarray, pooled: bool = True) -> np.ndarray:
    """Per checkpoint (rows), the share of its loss's sampling variance that is independent across the
    checkpoints, from per-document NLL sums and token (or byte) counts (checkpoints x documents, the same
    documents in the same order).

    Each document's influence on checkpoint i's loss is psi_id = (nll_id - L_i n_id) / mean(n_i) for the
    pooled estimator (L_i = sum nll / sum n), or nll_id / n_id - L_i for the mean of per-document means; the
    variance of L_i is var_d(psi_i) / D. The documents' common effect is the mean influence over checkpoints,
    psi_bar_d, taken over the *other* checkpoints (leave-one-out, so that a checkpoint's own noise is not
    part of it); what remains after regressing psi_i on it (through the origin) is the independent part:
    share_i = var(residual_i) / var(psi_i). The common part moves every checkpoint's loss together. The other
    checkpoints' own noise in the profile makes the share come out slightly high (the conservative side);
    with few checkpoints it is rough, and it changes as checkpoints are added to the store."""
    nll, denom = np.asarray(nll, float), np.asarray(denom, float)
    if pooled:
        level = nll.sum(axis=1, keepdims=True) / denom.sum(axis=1, keepdims=True)
        psi = (nll - level * denom) / denom.mean(axis=1, keepdims=True)
    else:
        per_doc = nll / np.maximum(denom, 1.0)
        psi = per_doc - per_doc.mean(axis=1, keepdims=True)
    psi = psi - psi.mean(axis=1, keepdims=True)
    m = psi.shape[0]
    if m < 2:
        return np.ones(m)
    # leave-one-out: checkpoint i's own independent part must not be in the common profile it is regressed on
    common = (psi.sum(axis=0, keepdims=True) - psi) / (m - 1)
    scale = (common**2).sum(axis=1)
    total = (psi**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(scale > 0, (psi * common).sum(axis=1) / scale, 0.0)
        resid = psi - beta[:, None] * common
        share = np.where(total > 0, (resid**2).sum(axis=1) / total, 1.0)
    return np.clip(share, 0.0, 1.0)
