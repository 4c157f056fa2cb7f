"""Fitting: NUTS (several chains on the host's cores; in Laplace-whitened coordinates or with NumPyro's
dense / diagonal adaptation) or the approximate path, into a :class:`~bayes_l2l.posterior.Posterior`.

The other jobs live beside it and are re-exported here for callers of the earlier single module: the posterior
and its folder (:mod:`bayes_l2l.posterior`), diagnostics (:mod:`bayes_l2l.diagnostics`), the Laplace
approximation (:mod:`bayes_l2l.approximation`), passes over draws and prior draws (:mod:`bayes_l2l.replay`),
starting values (:mod:`bayes_l2l.starting_values`).
"""

from __future__ import annotations

from bayes_l2l.jax_host import COMPILE_CACHE, DEFAULT_CHAINS, configure_host  # first: before jax starts

# isort: split

import dataclasses  # noqa: E402
import functools  # noqa: E402
import time  # noqa: E402

import arviz as az  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_value  # noqa: E402

from bayes_l2l.approximation import (  # noqa: E402, F401 - re-exported
    APPROX_RUN_OFFSETS,
    LAPLACE_MAX_VAR,
    _fit_approx,
    _Laplace,
    _laplace,
)
from bayes_l2l.compile_cache import release_compiled_programs  # noqa: E402
from bayes_l2l.design import Design  # noqa: E402
from bayes_l2l.diagnostics import (  # noqa: E402, F401 - re-exported
    ESS_MIN,
    IDENTIFIED,
    RHAT_MAX,
    WEAK,
    _contraction,
    diagnose,
    identification,
    prior_check,
    summary_table,
)
from bayes_l2l.errors import UserInputError  # noqa: E402
from bayes_l2l.model import (  # noqa: E402
    CURVATURE_PARAMS,
    PAPER_PARAMS,
    PARAMS,
    ModelConfig,
    ModelData,
    compute_enabled,
    l2l_model,
    measurement_choice,
)
from bayes_l2l.posterior import EFFECT_VARS, SUMMARY_VARS, Posterior, load, versions  # noqa: E402, F401
from bayes_l2l.replay import (  # noqa: E402, F401 - re-exported
    PRIOR_DRAWS,
    _InBackground,
    _model_structure,
    _prior_job,
    _replayer,
)
from bayes_l2l.starting_values import BASELINE_INIT_STARTS, baseline_init  # noqa: E402, F401

_baseline_init = baseline_init
__all__ = ["COMPILE_CACHE", "DEFAULT_CHAINS", "Posterior", "configure_host", "fit", "load"]


MASS_CHOICES = ("laplace", "dense", "diag")
"""NUTS mass matrices: 'laplace' (the default) — NUTS in coordinates whitened by the Laplace covariance,
then diagonal adaptation (:func:`_nuts_laplace`) — or NumPyro's dense or diagonal adaptation (Stan's
windows) in the model's own coordinates."""
DEFAULT_MASS = "laplace"
"""Measured in benchmarks/RESULTS.md: on the 40 calibration tables 34 fits pass the convergence gate against
11 with dense, with the same decisions and coverage; on 1,500 checkpoints it passes where dense does not."""
LEGACY_MASS = "dense"
"""The mass of posteriors saved before ``settings['mass']`` was recorded."""


def check_mass(mass: str) -> str:
    """``mass`` if it is one of :data:`MASS_CHOICES`, else a :class:`UserInputError` naming them."""
    if mass not in MASS_CHOICES:
        raise UserInputError(f"--mass {mass!r}: use {', '.join(MASS_CHOICES)}")
    return mass


def _coords_dims(design: Design) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """The DataTree's coordinates (as numpy string arrays: ArviZ deep-copies them for every group, which took
    0.4 s for lists of 6,000 point labels) and each site's dims."""
    eff = [f"{f}={lvl}" for f, lvl in design.effect_names]
    labels = {
        "condition": design.conditions["condition"].astype(str).tolist(),
        "effect": eff,
        "factor": list(design.factor_levels) or ["none"],
        "run": design.offset_runs,
        "point": [f"{r}@{c}" for r, c in zip(design.points["run"], design.points["checkpoint"], strict=True)],
    }
    coords = {k: np.asarray(v, dtype=str) for k, v in labels.items()}
    dims = {v: ["condition"] for v in ("K", "kappa", "Ex", "Ey")}
    for p in dict.fromkeys(PARAMS + CURVATURE_PARAMS + PAPER_PARAMS):
        dims[f"d_{p}"] = ["effect"]
        dims[f"z_{p}"] = ["effect"]
        dims[f"tau_{p}"] = ["factor"]
    dims.update({"z_run": ["run"], "run_offset": ["run"], "y": ["point"], "x_obs": ["point"]})
    return coords, dims


def paper_mode_config(design: Design, base: ModelConfig | None = None) -> tuple[ModelConfig, list[str]]:
    """Paper mode: Ex, Ey per condition from the two-stage fit (point_fits.two_stage_fit), then fixed.

    Returns the config and the two-stage fit's warnings (which E came from a compute-law fit and which fell
    back to min(loss)).
    """
    from dataclasses import replace

    from bayes_l2l.point_fits import two_stage_fit

    fixed_ex, fixed_ey, notes = [], [], []
    for c in range(design.n_conditions):
        sel = design.cond_idx == c
        n = design.params[sel] if np.isfinite(design.params[sel]).all() else None
        d = design.tokens[sel] if np.isfinite(design.tokens[sel]).all() else None
        res = two_stage_fit(design.x[sel], design.y[sel], N=n, D=None if n is None else d)
        fixed_ex.append(float(res.params["Ex"]))
        fixed_ey.append(float(res.params["Ey"]))
        label = design.conditions["condition"].iloc[c]
        notes += [f"{label}: {w}" for w in res.warnings]
    return replace(base or ModelConfig(), fixed_Ex=fixed_ex, fixed_Ey=fixed_ey), notes


def _check_paper_mode(design: Design, config: ModelConfig) -> None:
    if not config.paper_mode:
        return
    ex = np.asarray(config.fixed_Ex, dtype=float)
    ey = np.asarray(config.fixed_Ey, dtype=float)
    if ex.shape != (design.n_conditions,) or ey.shape != (design.n_conditions,):
        raise UserInputError(f"paper mode needs one fixed Ex and Ey per condition ({design.n_conditions})")
    below = ex > design.cond_min_x + 1e-9  # Ex = min(x) is the paper's own fallback (x - Ex clipped)
    if below.any():
        c = int(np.flatnonzero(below)[0])
        raise UserInputError(
            f"condition {design.conditions['condition'][c]}: losses below the fitted floor (x min "
            f"{design.cond_min_x[c]:.4f} <= fixed Ex {ex[c]:.4f}); the two-stage fit failed for it — "
            "use the full model instead of --paper-mode"
        )


def fit(
    design: Design,
    config: ModelConfig | None = None,
    *,
    method: str = "nuts",
    chains: int = DEFAULT_CHAINS,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = 0,
    target_accept: float = 0.95,
    max_tree_depth: int = 10,
    mass: str = DEFAULT_MASS,
    progress: bool = False,
) -> Posterior:
    """Fit the model to a design by NUTS (``method='nuts'``) or a Laplace approximation (``method='approx'``).

    ``mass`` (NUTS only): 'laplace' runs NUTS in Laplace-whitened coordinates with diagonal adaptation
    (:func:`_nuts_laplace`); 'dense' / 'diag' adapt a dense / diagonal mass matrix in the model's own
    coordinates. ``method='approx'`` takes its Gaussian in the coordinates of ``run_offsets='split'``
    (:data:`APPROX_RUN_OFFSETS`), whatever ``config`` says; the returned posterior records that config. Same
    design, config and seed give identical numbers.
    """
    check_mass(mass)
    release_compiled_programs()
    config = config or ModelConfig()
    if method == "approx":
        config = dataclasses.replace(config, run_offsets=APPROX_RUN_OFFSETS)
    _check_paper_mode(design, config)
    if config.run_offsets == "mixed" and len(config.run_centering) != len(design.offset_runs):
        raise UserInputError(
            f"run_centering has {len(config.run_centering)} values; this design has "
            f"{len(design.offset_runs)} runs with a run offset (at least two checkpoints)"
        )
    data = ModelData.from_design(design, config)
    coords, dims = _coords_dims(design)
    t0 = time.perf_counter()
    if method == "nuts" and mass == "laplace":
        dt = _nuts_laplace(
            design,
            data,
            config,
            chains=chains,
            draws=draws,
            warmup=warmup,
            seed=seed,
            target_accept=target_accept,
            max_tree_depth=max_tree_depth,
            progress=progress,
            coords=coords,
            dims=dims,
        )
    elif method == "nuts":
        init = _baseline_init(design, config)
        model = functools.partial(l2l_model, data, config)
        kernel = NUTS(
            model,
            target_accept_prob=target_accept,
            max_tree_depth=max_tree_depth,
            dense_mass=mass == "dense",
            init_strategy=init_to_value(values=init),
        )
        mcmc = _mcmc(kernel, chains=chains, draws=draws, warmup=warmup, progress=progress)
        mcmc.run(jax.random.PRNGKey(seed), extra_fields=("diverging", "num_steps", "energy"))
        dt = az.from_numpyro(
            mcmc, prior=_prior_job(data, config, seed + 1)(), log_likelihood=True, coords=coords, dims=dims
        )
    elif method == "approx":
        dt = _fit_approx(
            design, data, config, draws=max(draws, 1000) * 2, seed=seed, coords=coords, dims=dims
        )
    else:
        raise UserInputError(f"unknown method '{method}'; use nuts or approx")
    wall = time.perf_counter() - t0
    post = Posterior(
        dt=dt,
        design=design,
        config=config,
        method=method,
        settings={
            "chains": chains if method == "nuts" else 1,
            "draws": draws,
            "warmup": warmup,
            "seed": seed,
            "target_accept": target_accept,
            "max_tree_depth": max_tree_depth,
            "mass": mass,
            "compute_component": compute_enabled(design, config),
            "measurement_error": measurement_choice(design, config).to_dict(),
        },
        wall_time_s=wall,
    )
    post.diagnostics = diagnose(post)
    post.identification = identification(post)
    return post


def _mcmc(kernel: NUTS, *, chains: int, draws: int, warmup: int, progress: bool) -> MCMC:
    """NumPyro's MCMC with chains in parallel on the virtual CPU devices (sequential if too few)."""
    return MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method="parallel" if jax.local_device_count() >= chains else "sequential",
        progress_bar=progress,
    )


def _nuts_laplace(
    design: Design,
    data: ModelData,
    config: ModelConfig,
    *,
    chains: int,
    draws: int,
    warmup: int,
    seed: int,
    target_accept: float,
    max_tree_depth: int,
    progress: bool,
    coords,  # noqa: ANN001
    dims,  # noqa: ANN001
):
    """NUTS on the Laplace-whitened coordinates eta, theta = mode + L eta (L L^T = Laplace covariance).

    The map is affine, so the posterior is exactly the model's; only the sampler's coordinates change: the
    scales of the parameters (which differ by 10^3 on large tables) are equal from the first warm-up step,
    and NumPyro's diagonal adaptation corrects what the Gaussian misses. Chains start at independent
    draws of the Laplace approximation (eta ~ N(0, I)). lp is the log density in eta (a constant apart).
    """
    lap = _laplace(design, data, config, seed)
    scale = jax.numpy.asarray(lap.scale())
    mode = jax.numpy.asarray(lap.mode)

    def potential_eta(eta):  # noqa: ANN001, ANN202
        return lap.potential(mode + scale @ eta)

    kernel = NUTS(
        potential_fn=potential_eta,
        target_accept_prob=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=False,
    )
    mcmc = _mcmc(kernel, chains=chains, draws=draws, warmup=warmup, progress=progress)
    start = np.random.default_rng(seed).standard_normal((chains, lap.mode.size))
    init = jax.numpy.asarray(start if chains > 1 else start[0])
    mcmc.run(
        jax.random.PRNGKey(seed),
        init_params=init,
        extra_fields=("diverging", "num_steps", "energy", "potential_energy"),
    )
    eta = np.asarray(mcmc.get_samples(group_by_chain=True))
    theta = eta @ np.asarray(scale).T + lap.mode
    constrained = lap.constrain(theta)
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    depth = np.log2(extra["num_steps"]).astype(int) + 1
    stats = {
        "lp": -extra["potential_energy"],
        "diverging": extra["diverging"],
        "energy": extra["energy"],
        "n_steps": extra["num_steps"],
        "tree_depth": depth,
        "reached_max_tree_depth": depth >= max_tree_depth,
    }
    dt = lap.datatree(constrained, data, config, coords=coords, dims=dims, sample_stats=stats)
    return dt
