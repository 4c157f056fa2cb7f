"""The Laplace approximation: the posterior mode in the model's unconstrained space (L-BFGS, whitened by the
Hessian), the Hessian there, and the approximate path (``fit(method='approx')``) that draws from the Gaussian;
the whitening of NUTS (``mass='laplace'``) uses the same mode and Hessian."""

from __future__ import annotations

from bayes_l2l.jax_host import DEFAULT_CHAINS  # noqa: F401 - first: XLA's host devices before jax starts

# isort: split

import functools
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from bayes_l2l.design import Design
from bayes_l2l.model import ModelConfig, ModelData, l2l_model
from bayes_l2l.replay import (
    _datatree,
    _InBackground,
    _model_structure,
    _ModelStructure,
    _prior_job,
    _read_only,
    _replayer,
    _StartSignal,
)
from bayes_l2l.starting_values import baseline_init as _baseline_init

LAPLACE_MAX_VAR = 4.0
"""Cap on the Laplace variance in the unconstrained space (every prior there has sd <= 2)."""


@dataclass
class _Laplace:
    """The posterior mode in the model's unconstrained space and the eigendecomposition of the Hessian of
    the potential there."""

    structure: _ModelStructure
    unravel: Any
    potential: Any
    """Negative log density at a flat unconstrained vector (jax)."""
    mode: np.ndarray
    eigval: np.ndarray
    eigvec: np.ndarray
    converged: bool
    iterations: int
    potential_at_mode: float
    replay: Any
    """The program that replays draws of the latent sites (:func:`_replayer`)."""
    prior: _InBackground
    """The fit's prior draws (seed + 1), started in the background before the mode search."""

    def scale(self, max_var: float = LAPLACE_MAX_VAR) -> np.ndarray:
        """L with L L^T = the Laplace covariance (eigenvalues of the Hessian floored, variances capped)."""
        var = 1.0 / np.clip(self.eigval, 1.0 / max_var, None)
        return self.eigvec * np.sqrt(var)

    def constrain(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Flat unconstrained draws (..., d) -> the model's latent sites on their own scales: the columns of
        each site (in :attr:`unravel`'s order) through its transform, applied to the whole batch at once (no
        compiled program: compiling one took 0.1-0.16 s of a cold approximate fit)."""
        lead = flat.shape[:-1]
        rows = np.asarray(flat, dtype=float).reshape(-1, flat.shape[-1])
        sites = jax.eval_shape(self.unravel, jax.ShapeDtypeStruct(rows.shape[1:], rows.dtype))
        leaves, treedef = jax.tree_util.tree_flatten(sites)
        parts, start = [], 0
        for leaf in leaves:
            parts.append(rows[:, start : start + leaf.size].reshape(len(rows), *leaf.shape))
            start += leaf.size
        unconstrained = jax.tree_util.tree_unflatten(treedef, parts)
        transforms = self.structure.transforms
        # copies (identity transforms return views of ``flat``), read-only like the replayed arrays
        return {
            k: _read_only(np.array(transforms[k](v)).reshape(*lead, *np.shape(v)[1:]))
            for k, v in unconstrained.items()
        }

    def datatree(self, latent: dict[str, np.ndarray], data: ModelData, config: ModelConfig, **kwargs: Any):  # noqa: ANN201
        """:func:`_datatree` of draws around this mode, with the optimiser's outcome in the attributes."""
        dt = _datatree(
            latent, data, config, structure=self.structure, replay=self.replay, prior=self.prior, **kwargs
        )
        dt.attrs["laplace_converged"] = int(self.converged)
        dt.attrs["laplace_iterations"] = self.iterations
        return dt


def _unconstrained_start(
    structure: _ModelStructure, init: dict[str, np.ndarray], seed: int
) -> dict[str, np.ndarray]:
    """The least-squares start in the unconstrained space; sites it lacks start uniformly in (-2, 2) there
    (NumPyro's init_to_value fallback)."""
    rng = np.random.default_rng(seed)
    start = {}
    for k, shape in structure.shapes.items():
        if k in init:
            start[k] = np.asarray(structure.transforms[k].inv(jax.numpy.asarray(init[k], dtype=float)))
        else:
            start[k] = rng.uniform(-2.0, 2.0, size=shape)
    return start


def _laplace(design: Design, data: ModelData, config: ModelConfig, seed: int) -> _Laplace:
    """The mode of the jitted potential from the least-squares start (:func:`_minimize_whitened`), then the
    Hessian there (central differences of the same compiled gradient: no second compilation). The fit's
    prior draws start first, in a background thread: their programs compile beside the start and the
    gradient's compilation, and they run once the mode is found (run beside the mode search,
    they slowed each of its gradient calls about 8-fold on 2 cores; benchmarks/RESULTS.md, fixed costs V)."""
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy

    structure = _model_structure(data, config)
    replay = _replayer(data, config, structure)
    mode_found = _StartSignal()
    prior_draws = _prior_job(data, config, seed + 1, structure=structure, replay=replay)
    try:  # the background thread waits for mode_found: set it however this ends
        prior = _InBackground(functools.partial(prior_draws, mode_found))
        start = _unconstrained_start(structure, _baseline_init(design, config), seed)
        flat0, unravel = ravel_pytree({k: jax.numpy.asarray(v, dtype=float) for k, v in start.items()})

        def potential(v):  # noqa: ANN001, ANN202
            return potential_energy(l2l_model, (data, config), {}, unravel(v))

        value_and_grad = jax.jit(jax.value_and_grad(potential))

        def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
            val, grad = value_and_grad(jax.numpy.asarray(v))
            return float(val), np.asarray(grad, dtype=float)

        opt = _minimize_whitened(fun, np.asarray(flat0, float))
        mode_found.set()  # before the Hessian: measured 0.1-0.2 s faster than after it (fixed costs V)
        hess = _hessian_by_differences(lambda v: fun(v)[1], np.asarray(opt.x))
    except BaseException:
        mode_found.abandoned = True  # the fit failed: the prior draws are not needed
        raise
    finally:
        mode_found.set()
    eigval, eigvec = np.linalg.eigh(hess)
    return _Laplace(
        structure=structure,
        unravel=unravel,
        potential=potential,
        mode=np.asarray(opt.x),
        eigval=eigval,
        eigvec=eigvec,
        converged=bool(opt.success),
        iterations=int(opt.nit),
        potential_at_mode=float(opt.fun),
        replay=replay,
        prior=prior,
    )


WARM_START_ITERATIONS = 200
"""L-BFGS iterations in the model's own unconstrained coordinates before they are whitened."""


def _minimize_whitened(fun: Any, start: np.ndarray) -> Any:
    """scipy L-BFGS for WARM_START_ITERATIONS, then again in coordinates whitened by the Hessian there
    (|eigenvalues| floored at 1e-2). Unwhitened, the parameters' scales differ by 10^3 on large tables and
    L-BFGS took 1,833 iterations to a worse point on the 6,000-checkpoint speed table (curvature shape); this
    took 477 gradient calls to a lower potential (benchmarks/RESULTS.md, fixed costs)."""
    from scipy.optimize import minimize

    warm = minimize(fun, start, jac=True, method="L-BFGS-B", options={"maxiter": WARM_START_ITERATIONS})
    eigval, eigvec = np.linalg.eigh(_hessian_by_differences(lambda v: fun(v)[1], warm.x))
    whiten = eigvec / np.sqrt(np.clip(np.abs(eigval), 1e-2, None))

    def fun_white(z: np.ndarray) -> tuple[float, np.ndarray]:
        val, grad = fun(warm.x + whiten @ z)
        return val, whiten.T @ grad

    opt = minimize(fun_white, np.zeros_like(start), jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    opt.x = warm.x + whiten @ opt.x
    opt.nit += warm.nit
    return opt


def _hessian_by_differences(grad: Any, at: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """Symmetrised Hessian by central differences of a gradient (2 d gradient calls; error O(step^2))."""
    d = at.size
    hess = np.empty((d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = step
        hess[i] = (grad(at + e) - grad(at - e)) / (2 * step)
    return (hess + hess.T) / 2


APPROX_RUN_OFFSETS = "split"
"""The run offsets' coordinates of the approximate path (the same prior and posterior as the others): each
condition's mean offset non-centred, the contrasts between its runs centred. A joint mode, which the Laplace
approximation is centred on, leaves out the volume of the directions it maximises over. Non-centred, the mode
of sigma_run is pulled up by the contrasts the data pin (2.5x the NUTS median on the calibration tables, and
the height effects' sds 110-120% too wide); centred, down by the condition means only the prior sets (10% low
on the 6,000-checkpoint speed table). Split, neither: benchmarks/RESULTS.md, "The approximate path's
coordinates"."""


def _fit_approx(
    design: Design,
    data: ModelData,
    config: ModelConfig,
    *,
    draws: int,
    seed: int,
    coords,  # noqa: ANN001
    dims,  # noqa: ANN001
):
    """Laplace approximation: the posterior mode in the model's unconstrained space (scipy L-BFGS on the
    jitted potential, started from the same least-squares initialisation as NUTS), a Gaussian with the
    inverse Hessian there (eigenvalues floored at 1e-8), draws mapped back through the model's transforms.
    Seconds instead of minutes; no sampler diagnostics; not calibrated (benchmarks/RESULTS.md, speed)."""
    lap = _laplace(design, data, config, seed)
    cov = (lap.eigvec / np.clip(lap.eigval, 1e-8, None)) @ lap.eigvec.T
    z = np.random.default_rng(seed).multivariate_normal(lap.mode, cov, size=draws)
    constrained = lap.constrain(z[None])
    lp = np.full((1, draws), -lap.potential_at_mode)
    dt = lap.datatree(constrained, data, config, coords=coords, dims=dims, sample_stats={"lp": lp})
    dt.attrs["laplace_min_hessian_eigenvalue"] = float(lap.eigval.min())
    return dt
