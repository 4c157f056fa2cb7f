"""The two laws of the toolkit, in numpy and in jax.

* Loss-to-loss (shifted power law): ``L_y = K * (L_x - E_x)**kappa + E_y``. All losses in the same unit
  (nats/token unless stated). Domain: ``x > E_x`` (and ``K > 0``, ``kappa > 0``); outside it the power of a
  negative number is undefined and the numpy/jax functions return NaN there (unless a ``floor`` is given).
* Compute-to-loss (Brandfonbrener et al. 2024): ``L(N, D) = E + ((A / N)**(alpha / beta) + B / D)**beta``
  with ``N`` parameters and ``D`` training tokens; ``E`` is the irreducible loss (same unit as ``L``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # numpy / jax arrays or floats; kept loose on purpose (both libraries are accepted)


def shifted_power_law(
    x: ArrayLike, K: ArrayLike, kappa: ArrayLike, Ex: ArrayLike, Ey: ArrayLike, *, floor: float | None = None
) -> np.ndarray:
    """``K * (x - Ex)**kappa + Ey`` (unit of x, y); NaN at ``x <= Ex`` unless ``floor`` clips ``x - Ex``."""
    gap = np.asarray(x, dtype=float) - Ex
    if floor is not None:
        gap = np.maximum(gap, floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = K * np.where(gap > 0, gap, np.nan) ** kappa + Ey
    return np.asarray(out, dtype=float)


def shifted_power_law_jax(
    x: ArrayLike, K: ArrayLike, kappa: ArrayLike, Ex: ArrayLike, Ey: ArrayLike, *, floor: float | None = None
) -> Any:
    """jax.numpy :func:`shifted_power_law` (differentiable; NaN where ``x <= Ex`` unless ``floor``).

    With ``floor`` (e.g. 1e-6 nats) the gap ``x - Ex`` is clipped from below, which keeps values and
    gradients finite when a sampler proposes ``Ex`` above some ``x``.
    """
    import jax.numpy as jnp

    gap = jnp.asarray(x) - Ex
    if floor is not None:
        gap = jnp.maximum(gap, floor)
    return K * jnp.power(gap, kappa) + Ey


def inverse_shifted_power_law(
    y: ArrayLike, K: ArrayLike, kappa: ArrayLike, Ex: ArrayLike, Ey: ArrayLike
) -> np.ndarray:
    """The x where the law equals ``y``: ``Ex + ((y - Ey) / K)**(1 / kappa)``; NaN where ``y <= Ey``."""
    ratio = (np.asarray(y, dtype=float) - Ey) / K
    with np.errstate(invalid="ignore", divide="ignore"):
        out = Ex + np.where(ratio > 0, ratio, np.nan) ** (1.0 / np.asarray(kappa, dtype=float))
    return np.asarray(out, dtype=float)


def compute_loss(
    N: ArrayLike, D: ArrayLike, E: ArrayLike, A: ArrayLike, B: ArrayLike, alpha: ArrayLike, beta: ArrayLike
) -> np.ndarray:
    """Loss of a model with ``N`` parameters after ``D`` tokens: ``E + ((A/N)**(alpha/beta) + B/D)**beta``.

    NaN where the bracket is negative (only possible with negative ``A`` or ``B``).
    """
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        inner = (A / N) ** (np.asarray(alpha, dtype=float) / beta) + B / D
        out = E + np.where(inner >= 0, inner, np.nan) ** beta
    return np.asarray(out, dtype=float)


def compute_loss_jax(
    N: ArrayLike, D: ArrayLike, E: ArrayLike, A: ArrayLike, B: ArrayLike, alpha: ArrayLike, beta: ArrayLike
) -> Any:
    """jax.numpy version of :func:`compute_loss` (differentiable in all arguments)."""
    import jax.numpy as jnp

    N = jnp.asarray(N)
    D = jnp.asarray(D)
    return E + jnp.power(jnp.power(A / N, alpha / beta) + B / D, beta)


def shifted_power_law_derivative(x: ArrayLike, K: ArrayLike, kappa: ArrayLike, Ex: ArrayLike) -> np.ndarray:
    """``dL_y/dL_x = K * kappa * (x - Ex)**(kappa - 1)`` (dimensionless); NaN where ``x <= Ex``."""
    gap = np.asarray(x, dtype=float) - Ex
    with np.errstate(invalid="ignore", divide="ignore"):
        out = K * kappa * np.where(gap > 0, gap, np.nan) ** (np.asarray(kappa, dtype=float) - 1.0)
    return np.asarray(out, dtype=float)
