"""Inference: NUTS (several chains on the host's cores) or a fast approximate path, diagnostics, save/load.

A fitted posterior is a folder:

* ``posterior.nc`` — ArviZ DataTree (groups posterior, prior, sample_stats, log_likelihood, observed_data)
* ``design.json`` — the question and the design (points, conditions, factor levels, what was dropped)
* ``fit.json`` — method, sampler settings, model config, diagnostics, identification, versions
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CHAINS = 4


def configure_host(n_devices: int = DEFAULT_CHAINS) -> None:
    """Expose ``n_devices`` CPU devices to jax so chains run in parallel (must precede jax start-up)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n_devices}".strip()


configure_host()

import arviz as az  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_value  # noqa: E402

from bayes_l2l.compile_cache import configure_compilation_cache, release_compiled_programs  # noqa: E402
from bayes_l2l.design import Design  # noqa: E402
from bayes_l2l.errors import UserInputError  # noqa: E402
from bayes_l2l.model import (  # noqa: E402
    CURVATURE_LINEAR_MARGIN,
    CURVATURE_PARAMS,
    PAPER_PARAMS,
    PARAMS,
    ModelConfig,
    ModelData,
    compute_enabled,
    l2l_model,
)
from bayes_l2l.posterior_files import POSTERIOR_FILES, check_posterior_folder  # noqa: E402

numpyro.enable_x64()
COMPILE_CACHE = configure_compilation_cache()
"""Folder of JAX's persistent compilation cache (None: off); see :mod:`bayes_l2l.compile_cache`."""

RHAT_MAX = 1.01
ESS_MIN = 400
IDENTIFIED = 0.75
"""Prior-to-posterior contraction from which a quantity counts as identified (see :func:`identification`)."""
WEAK = 0.3
"""Contraction below which a quantity is 'not identified' (the prior, not the data, sets its interval)."""
EFFECT_VARS = tuple(f"d_{p}" for p in dict.fromkeys(PARAMS + CURVATURE_PARAMS + PAPER_PARAMS))
SUMMARY_VARS = ("K", "kappa", "Ex", "Ey", *EFFECT_VARS, "sigma", "sigma_run", "nu")


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


@dataclass
class Posterior:
    """A fitted model: the ArviZ DataTree plus the design, config, diagnostics and identification."""

    dt: Any
    design: Design
    config: ModelConfig
    method: str
    settings: dict[str, Any]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    identification: pd.DataFrame | None = None
    wall_time_s: float = float("nan")

    # ------------------------------------------------------------------ draws
    def draws(self, var: str) -> np.ndarray:
        """Posterior draws of a variable with chain and draw flattened into the first axis."""
        da = self.dt["posterior"][var]
        arr = np.asarray(da.values)
        return arr.reshape((-1, *arr.shape[2:]))

    def condition_params(self) -> dict[str, np.ndarray]:
        """K, kappa, Ex, Ey draws of shape (S, n_conditions)."""
        return {p: self.draws(p) for p in ("K", "kappa", "Ex", "Ey")}

    def summary(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """ArviZ summary (mean, sd, HDI, ESS, R-hat) of the reported quantities, joined with identification."""
        names = [v for v in SUMMARY_VARS if v in self.dt["posterior"]]
        summ = az.summary(self.dt, var_names=names, ci_kind="hdi", ci_prob=ci_prob, round_to="none")
        if self.identification is not None:
            summ = summ.join(self.identification[["contraction", "identified"]], how="left")
        return summ

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the posterior folder; refuse to replace an existing one unless ``overwrite``."""
        folder = Path(folder)
        check_posterior_folder(folder, overwrite=overwrite)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "posterior.nc.tmp"
        self.dt.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(folder / "posterior.nc")
        (folder / "design.json").write_text(self.design.to_json())
        fit = {
            "method": self.method,
            "settings": self.settings,
            "config": self.config.to_dict(),
            "diagnostics": self.diagnostics,
            "identification": None
            if self.identification is None
            else json.loads(self.identification.reset_index().to_json(orient="records")),
            "wall_time_s": self.wall_time_s,
            "versions": versions(),
        }
        (folder / "fit.json").write_text(json.dumps(fit, indent=1, default=float))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Posterior:
        """Read a posterior folder written by :meth:`save`."""
        folder = Path(folder)
        if folder.is_file():
            raise UserInputError(
                f"{folder}: is a file, not a posterior folder; give the folder `bayes-l2l fit ... -o FOLDER` "
                "wrote (a loss table is read by `bayes-l2l inspect`)"
            )
        for name in POSTERIOR_FILES:
            if not (folder / name).exists():
                raise UserInputError(
                    f"{folder}: not a posterior folder ({name} missing); create one with `bayes-l2l fit ... -o {folder}`"
                )
        fit = json.loads((folder / "fit.json").read_text())
        dt = xr.open_datatree(folder / "posterior.nc", engine="h5netcdf").load()
        ident = fit.get("identification")
        ident_df = pd.DataFrame(ident).set_index("index") if ident else None
        if ident_df is not None:
            ident_df.index.name = None
        return cls(
            dt=dt,
            design=Design.from_json((folder / "design.json").read_text()),
            config=ModelConfig.from_dict(fit["config"]),
            method=fit["method"],
            settings=fit["settings"],
            diagnostics=fit["diagnostics"],
            identification=ident_df,
            wall_time_s=fit.get("wall_time_s", float("nan")),
        )


def load(folder: str | Path) -> Posterior:
    """Read a posterior folder (see :class:`Posterior`)."""
    return Posterior.load(folder)


def versions() -> dict[str, str]:
    """Versions of the packages that produced a result, for the record."""
    import arviz_base
    import scipy

    import bayes_l2l

    return {
        "bayes_l2l": bayes_l2l.__version__,
        "python": platform.python_version(),
        "numpyro": numpyro.__version__,
        "jax": jax.__version__,
        "arviz_base": arviz_base.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "xarray": xr.__version__,
    }


# ---------------------------------------------------------------------------------------------------------
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


BASELINE_INIT_STARTS = 3
"""Least-squares starts per condition for the sampler's and the mode search's starting values: 8 and 3 gave the
same starts to within 0.0007 on the paper's tables, Gemstones and the speed tables, in 0.3 s instead of 0.75 s at
6,000 checkpoints (benchmarks/RESULTS.md, fixed costs V)."""


def _baseline_init(design: Design, config: ModelConfig) -> dict[str, np.ndarray]:
    """Starting values from per-condition least-squares fits, regressed on the effect design."""
    rows = []
    x_ref = design.x_ref
    kappa_lo = 0.1
    if config.shape == "curvature":  # start where kappa = 1 + q g, above the floor's flat part
        kappa_lo = max(kappa_lo, config.kappa_floor + CURVATURE_LINEAR_MARGIN)
    for c in range(design.n_conditions):
        sel = design.cond_idx == c
        x, y = design.x[sel], design.y[sel]
        try:
            from bayes_l2l.point_fits import free_fit

            fit = free_fit(x, y, n_starts=BASELINE_INIT_STARTS, seed=0)
            p = {k.replace("_", ""): float(v) for k, v in fit.params.items()}
            k, kappa, ex, ey = p["K"], p["kappa"], p["Ex"], p["Ey"]
        except Exception:  # noqa: BLE001 - a failed comparator fit only costs a worse start
            k, kappa, ex, ey = float(np.ptp(y) or 0.1), 1.0, x.min() - 0.5, y.min() - 0.1
        kappa = float(np.clip(kappa, kappa_lo, 8.0))
        if config.paper_mode:
            ex, ey = config.fixed_Ex[c], config.fixed_Ey[c]
            ok = (y > ey) & (x > ex)
            if ok.sum() >= 2:
                kappa_ls, logk_ls = np.polyfit(np.log(x[ok] - ex), np.log(y[ok] - ey), 1)
                k, kappa = float(np.exp(logk_ls)), float(np.clip(kappa_ls, 0.1, 8.0))
            rows.append([np.log(np.clip(k, 1e-3, 1e3)), np.log(kappa)])
            continue
        gap = float(np.clip(design.cond_min_x[c] - ex, 0.05, 5.0))
        g_ref = x_ref - (design.cond_min_x[c] - gap)
        height = k * g_ref**kappa + ey
        slope = max(k * kappa * g_ref ** (kappa - 1.0), 1e-3)
        shape = (kappa - 1.0) / g_ref if config.shape == "curvature" else np.log(kappa)
        rows.append([height, np.log(slope), shape, np.log(gap)])
    per_cond = np.asarray(rows)
    mat = np.column_stack([np.ones(design.n_conditions), design.effect_matrix])
    coef, *_ = np.linalg.lstsq(mat, per_cond, rcond=None)
    init: dict[str, np.ndarray] = {}
    for j, p in enumerate(config.params):
        init[f"base_{p}"] = np.asarray(coef[0, j])
        eff = coef[1:, j]
        if eff.size and config.effect_prior == "normal":
            init[f"d_{p}"] = eff
        elif eff.size:
            tau = np.full(max(len(design.factor_levels), 1), config.effect_scale[p] * 0.5)
            for fi in range(tau.size):
                sel = design.effect_factor_idx == fi
                if sel.any():
                    tau[fi] = max(tau[fi], float(np.abs(eff[sel]).max()))
            init[f"tau_{p}"] = tau
            init[f"z_{p}"] = np.clip(eff / tau[design.effect_factor_idx], -3, 3)
    init["sigma_run"] = np.asarray(config.run_sd_scale * 0.5)
    if design.offset_runs:
        init["z_run"] = np.zeros(len(design.offset_runs))
        init["run_offset"] = np.zeros(len(design.offset_runs))
        init["run_offset_decentered"] = np.zeros(len(design.offset_runs))  # run_offsets="mixed"
        n_groups = np.unique(design.offset_run_cond_idx).size  # as ModelData.n_run_groups
        init["z_run_mean"] = np.zeros(n_groups)  # run_offsets="split": one mean per condition, then contrasts
        init["run_contrast"] = np.zeros(len(design.offset_runs) - n_groups)
    init["sigma"] = np.asarray(max(float(np.std(design.y)) * 0.05, 0.005))
    if config.nu is None:
        init["nu"] = np.asarray(10.0)
    return init


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


OBSERVED_SITES = ("y", "x_obs")
"""The model's observed sites: in prior_predictive (not prior) of a posterior's DataTree, as az.from_numpyro."""
LAPLACE_MAX_VAR = 4.0
"""Cap on the Laplace variance in the unconstrained space (every prior there has sd <= 2)."""


@dataclass(frozen=True)
class _ModelStructure:
    """The model's sites, read by tracing it abstractly (jax.eval_shape: no op is executed or compiled)."""

    transforms: dict[str, Any]
    """Latent site -> bijection from the unconstrained space onto the site's support."""
    shapes: dict[str, tuple[int, ...]]
    deterministic: tuple[str, ...]
    observed: tuple[str, ...]
    """Observed sample sites, including numpyro.factor sites (as numpyro's log_likelihood lists them)."""


def _model_structure(data: ModelData, config: ModelConfig) -> _ModelStructure:
    """Latent sites with their transforms and shapes, deterministic and observed site names.

    NumPyro's ``initialize_model`` finds the same by running the model and its gradient op by op, which costs
    several seconds of per-primitive compilation in a fresh process; the supports here are static."""
    from numpyro.distributions.transforms import biject_to

    found: dict[str, Any] = {}

    def trace_once() -> int:
        tr = numpyro.handlers.trace(numpyro.handlers.seed(l2l_model, 0)).get_trace(data, config)
        latent = {k: s for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
        found["transforms"] = {k: biject_to(s["fn"].support) for k, s in latent.items()}
        found["shapes"] = {k: tuple(np.shape(s["value"])) for k, s in latent.items()}
        found["deterministic"] = tuple(k for k, s in tr.items() if s["type"] == "deterministic")
        found["observed"] = tuple(k for k, s in tr.items() if s["type"] == "sample" and s["is_observed"])
        return 0

    jax.eval_shape(trace_once)
    return _ModelStructure(**found)


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


def _datatree(
    latent: dict[str, np.ndarray],
    data: ModelData,
    config: ModelConfig,
    *,
    coords,  # noqa: ANN001
    dims,  # noqa: ANN001
    sample_stats: dict[str, np.ndarray],
    structure: _ModelStructure,
    replay: Any,
    prior: _InBackground,
):
    """The DataTree of draws of the latent sites (each of shape (chain, draw, ...)): deterministic sites,
    pointwise log-likelihood, prior draws (``prior``: :func:`_prior_job` running in the background) and
    observed data added as ``az.from_numpyro`` would. The posterior and the prior draws are replayed by the
    same compiled program, ``replay`` (:func:`_replayer`)."""
    n_chain, n_draw = next(iter(latent.values())).shape[:2]
    flat = {k: np.asarray(v).reshape(n_chain * n_draw, *v.shape[2:]) for k, v in latent.items()}
    derived, ll, _ = replay(flat, keep=("deterministic", "log_likelihood"))

    def by_chain(v) -> np.ndarray:  # noqa: ANN001
        v = np.asarray(v)
        return v.reshape(n_chain, n_draw, *v.shape[1:])

    latent_or_derived = set(flat) | set(structure.deterministic)
    prior = prior.result()
    return az.from_dict(
        {
            "posterior": {k: by_chain(v) for k, v in {**flat, **derived}.items()},
            "prior": {k: np.asarray(v)[None] for k, v in prior.items() if k in latent_or_derived},
            "prior_predictive": {k: np.asarray(v)[None] for k, v in prior.items() if k in OBSERVED_SITES},
            "log_likelihood": {k: by_chain(v) for k, v in ll.items()},
            "observed_data": {
                "y": np.asarray(data.y),
                **({"x_obs": np.asarray(data.x)} if "x_obs" in ll else {}),
            },
            "sample_stats": sample_stats,
        },
        coords=coords,
        dims=dims,
    )


PRIOR_DRAWS = 2000


def _prior_job(
    data: ModelData,
    config: ModelConfig,
    seed: int,
    n: int = PRIOR_DRAWS,
    structure: _ModelStructure | None = None,
    replay: Any = None,
) -> Any:
    """A function returning ``n`` joint draws from the prior: the latent sites (the model run forward from ``n``
    keys; a small program, since nothing else it computes is returned), their deterministic sites and the
    observed sites' likelihood parameters (``replay``: the program that replays the posterior draws,
    :func:`_replayer`), and the observed sites' prior predictive (y, and x_obs of the compute component) drawn
    in numpy from each draw's Student-t / Normal. JAX's Student-t sampler (a gamma rejection loop) took 15 s for
    2,000 x 6,000 values on the 2-core CPU, numpy 0.5 s (benchmarks/RESULTS.md, fixed costs). The model is
    traced here, so that the function may run in another thread. The function compiles its programs, then
    waits for its optional argument ``start`` (a :class:`_StartSignal`) before running them ({} if abandoned)."""
    structure = structure or _model_structure(data, config)
    replay = replay or _replayer(data, config, structure)

    def one(key):  # noqa: ANN001, ANN202
        tr = numpyro.handlers.trace(numpyro.handlers.seed(l2l_model, key)).get_trace(data, config)
        return {k: tr[k]["value"] for k in structure.shapes}

    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    latent_program = _compile_once(
        jax.jit(jax.vmap(one), compiler_options=PRIOR_LATENT_COMPILER_OPTIONS).lower(keys)
    )

    def draw(start: _StartSignal | None = None) -> dict[str, np.ndarray]:
        program = latent_program()
        replay.compile()
        if start is not None:
            start.wait()
            if start.abandoned:
                return {}
        latent = jax.tree.map(np.asarray, program(keys))
        derived, _, params = replay(latent, keep=("deterministic", "params"))
        out = {**latent, **derived}
        rng = np.random.default_rng(seed)
        for k, (loc, scale, df) in params.items():
            out[k] = loc + scale * (rng.standard_normal(loc.shape) if df is None else rng.standard_t(df))
        return out

    return draw


REPLAY_ELEMENTS = 16_000_000
"""Draws x points per vectorised batch when running the model on many draws (bounds memory to about 1 GB on
the CPU; 2,000 draws of a 6,000-point table run as one batch)."""
REPLAY_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
"""XLA's CPU backend at level 1 (default 2) for the passes over draws: measured on the 6,000-checkpoint speed
table when the prior's latent and deterministic sites were one program, it compiled in 1.74 s instead of 2.73 s,
with the same run time (0.14 s) and the same numbers (benchmarks/RESULTS.md, fixed costs III)."""


PRIOR_LATENT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
"""The prior's latent program (2,000 keys -> the latent sites; 0.02 s to run) at XLA level 0: on the 6,000-checkpoint
speed table it compiled in 0.61 s instead of 0.95 s at level 1, its draws equal to 1e-13 relative (rounding;
benchmarks/RESULTS.md, fixed costs V)."""


def _trace_at(draw: dict[str, Any], data: ModelData, config: ModelConfig) -> dict[str, Any]:
    """The model's trace with its latent sites set to one draw."""
    model = numpyro.handlers.substitute(numpyro.handlers.seed(l2l_model, 0), data=draw)
    return numpyro.handlers.trace(model).get_trace(data, config)


def _replay_batch(points: int) -> int:
    """Draws per batch of a replay: PRIOR_DRAWS, or fewer where draws x points would exceed REPLAY_ELEMENTS.
    One size per table, so that the prior draws and the posterior draws (1 or 2 batches for the default
    2,000 approximate or 4 x 1,000 NUTS draws) run the same compiled program."""
    return max(1, min(PRIOR_DRAWS, REPLAY_ELEMENTS // max(points, 1)))


REPLAY_PARTS = ("deterministic", "log_likelihood", "params")


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a``, marked read-only like the views of JAX's buffers that a replay of one batch returns (so that a
    fit's arrays behave the same whatever the number of batches)."""
    a.flags.writeable = False
    return a


def _leading(tree: Any, size: int) -> Any:
    """The first ``size`` entries along the leading axis of every array of a pytree, as numpy arrays."""
    return jax.tree.map(lambda v: np.asarray(v)[:size], tree)


def _replayer(data: ModelData, config: ModelConfig, structure: _ModelStructure) -> Any:
    """A function of latent draws (a dict of arrays with a leading draw axis) and the parts to keep, returning
    (deterministic sites, pointwise log-likelihood, observed sites' (loc, scale, df)) as numpy arrays ({} for
    a part not kept): what Predictive and NumPyro's log_likelihood give, from one compiled program run in
    equal batches of :func:`_replay_batch` draws (the last batch padded with copies of the last draw). The
    arrays are read-only (views of JAX's buffers, not copied); copy one before writing into it.

    The model is traced here, in the calling thread (NumPyro's effect handlers are global, so models must not
    be traced in two threads at once); the program is compiled on first use, in whichever thread that is, or
    by ``replay.compile()``."""
    observed = [k for k in OBSERVED_SITES if k in structure.observed]

    def one(draw):  # noqa: ANN001, ANN202
        tr = _trace_at(draw, data, config)
        det = {k: tr[k]["value"] for k in structure.deterministic}
        ll = {k: tr[k]["fn"].log_prob(tr[k]["value"]) for k in structure.observed}
        params = {k: (tr[k]["fn"].loc, tr[k]["fn"].scale, getattr(tr[k]["fn"], "df", None)) for k in observed}
        return det, ll, params

    batch = _replay_batch(data.y.size)
    example = {k: jax.ShapeDtypeStruct((batch, *shape), np.float64) for k, shape in structure.shapes.items()}
    run = _compile_once(jax.jit(jax.vmap(one), compiler_options=REPLAY_COMPILER_OPTIONS).lower(example))

    def replay(latent: dict[str, Any], keep: tuple[str, ...] = REPLAY_PARTS) -> tuple[dict, dict, dict]:
        n = len(next(iter(latent.values())))
        kept: list[list[Any]] = []
        for start in range(0, n, batch):
            size = min(batch, n - start)
            chunk = {k: np.asarray(v[start : start + size], dtype=np.float64) for k, v in latent.items()}
            if size < batch:
                chunk = {
                    k: np.concatenate([v, np.repeat(v[-1:], batch - size, axis=0)]) for k, v in chunk.items()
                }
            out = dict(zip(REPLAY_PARTS, run()(chunk), strict=True))
            kept.append([_leading(out[p], size) if p in keep else {} for p in REPLAY_PARTS])
        if len(kept) == 1:  # one batch: no copy (copying 2,000 x 6,000 arrays took 0.2 s)
            return tuple(kept[0])
        return tuple(
            jax.tree.map(lambda *v: _read_only(np.concatenate(v)), *part) for part in zip(*kept, strict=True)
        )

    replay.compile = run
    return replay


def _compile_once(lowered: Any) -> Any:
    """A function returning ``lowered.compile()``, compiled at its first call (one compilation when several
    threads call it)."""
    lock = threading.Lock()
    compiled: list[Any] = []

    def get() -> Any:
        with lock:
            if not compiled:
                compiled.append(lowered.compile())
        return compiled[0]

    return get


class _StartSignal(threading.Event):
    """Set when a fit's prior draws may run (its mode is found); ``abandoned`` when the fit failed before that
    and they should not run at all."""

    abandoned: bool = False


class _InBackground:
    """A function of no arguments run in a background thread; ``result()`` waits for it (and re-raises its
    error). The prior draws of a fit (compiling and running their programs, 2 s cold on the 6,000-checkpoint
    table) compile beside the start and the mode search and run beside the sampler: everything they trace is
    traced before the thread starts."""

    def __init__(self, work: Any) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bayes-l2l-prior")
        self._future = self._pool.submit(work)
        self._pool.shutdown(wait=False)

    def result(self) -> Any:
        return self._future.result()


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


# ---------------------------------------------------------------------------------------------------------
def diagnose(post: Posterior) -> dict[str, Any]:
    """R-hat, bulk/tail ESS, divergences, BFMI and tree-depth saturation; ``ok`` and the reasons if not."""
    dt = post.dt
    names = [v for v in SUMMARY_VARS if v in dt["posterior"]]
    out: dict[str, Any] = {"method": post.method}
    if post.method != "nuts":
        out.update(
            {
                "max_rhat": None,
                "min_ess_bulk": None,
                "min_ess_tail": None,
                "divergences": None,
                "ok": True,
                "problems": [],
                "note": "approximate posterior (Laplace: Gaussian at the mode, taken with split run offsets "
                "whatever --run-offsets says): no sampler diagnostics, not "
                "calibrated; weakly identified quantities can be far off (benchmarks/RESULTS.md) — "
                "confirm decisions with --method nuts",
            }
        )
        return out
    summ = az.summary(dt, var_names=names, kind="diagnostics", round_to="none")
    # Deterministic transforms of constants (e.g. paper-mode Ex) have no variance: R-hat is NaN there.
    rhat = summ["r_hat"].astype(float)
    out["max_rhat"] = float(np.nanmax(rhat.to_numpy())) if rhat.notna().any() else None
    out["worst_rhat"] = str(rhat.idxmax()) if rhat.notna().any() else None
    ess_b = summ["ess_bulk"].astype(float)
    ess_t = summ["ess_tail"].astype(float)
    out["min_ess_bulk"] = float(np.nanmin(ess_b)) if ess_b.notna().any() else None
    out["min_ess_tail"] = float(np.nanmin(ess_t)) if ess_t.notna().any() else None
    out["divergences"] = int(np.asarray(dt["sample_stats"]["diverging"].values).sum())
    out["min_bfmi"] = (
        float(np.asarray(az.bfmi(dt)["energy"].values).min()) if "energy" in dt["sample_stats"] else None
    )
    stats = dt["sample_stats"]
    if "reached_max_tree_depth" in stats:
        out["tree_depth_saturation"] = float(np.asarray(stats["reached_max_tree_depth"].values).mean())
    n_total = int(np.asarray(stats["diverging"].values).size)
    out["wall_time_s"] = post.wall_time_s
    out["ess_bulk_per_s"] = (out["min_ess_bulk"] or 0) / post.wall_time_s if post.wall_time_s else None
    problems = []
    n_chains = int(dt["posterior"].sizes["chain"])
    if n_chains < 2:
        problems.append(
            f"R-hat needs at least 2 chains (this fit ran {n_chains}): convergence is not checked"
        )
    if out["max_rhat"] is not None and out["max_rhat"] > RHAT_MAX:
        problems.append(f"R-hat {out['max_rhat']:.3f} > {RHAT_MAX} ({out['worst_rhat']})")
    if out["min_ess_bulk"] is not None and out["min_ess_bulk"] < min(ESS_MIN, n_total / 4):
        problems.append(f"bulk ESS {out['min_ess_bulk']:.0f} < {min(ESS_MIN, n_total / 4):.0f}")
    if out["min_ess_tail"] is not None and out["min_ess_tail"] < min(ESS_MIN, n_total / 4):
        problems.append(f"tail ESS {out['min_ess_tail']:.0f} < {min(ESS_MIN, n_total / 4):.0f}")
    if out["divergences"] > 0:
        problems.append(f"{out['divergences']} divergent transitions")
    if out.get("min_bfmi") is not None and out["min_bfmi"] < 0.3:
        problems.append(f"BFMI {out['min_bfmi']:.2f} < 0.3")
    out["problems"] = problems
    out["ok"] = not problems
    return out


LOG_SCALE_VARS = ("K", "kappa")


def identification(post: Posterior) -> pd.DataFrame:
    """Prior-to-posterior contraction per scalar quantity and a flag.

    contraction = 1 - (w_post / w_prior)^2 with w the width of the central 90% interval (on the log scale
    for K and kappa); it equals 1 - var_post/var_prior for Gaussians but is robust to the heavy tails of
    derived priors. ``identified`` (>= 0.75: the posterior interval is at most half the prior's), ``weak``
    (0.3-0.75), ``not identified`` (< 0.3: the prior, not the data, sets the interval), ``fixed`` (a constant).
    """
    rows = {}
    if "prior" not in post.dt.children:
        return pd.DataFrame(columns=["contraction", "identified"])
    for var in ("K", "kappa", "Ex", "Ey", *EFFECT_VARS):
        if var not in post.dt["posterior"] or var not in post.dt["prior"]:
            continue
        p_arr = _flat(post.dt["posterior"][var])
        q_arr = _flat(post.dt["prior"][var])
        if var in LOG_SCALE_VARS:
            p_arr, q_arr = np.log(np.clip(p_arr, 1e-300, None)), np.log(np.clip(q_arr, 1e-300, None))
        extra = [d for d in post.dt["posterior"][var].dims if d not in ("chain", "draw")]
        labels = post.dt["posterior"][var][extra[0]].values if extra else [None]
        for j, label in enumerate(labels):
            name = var if label is None else f"{var}[{label}]"
            rows[name] = _contraction(p_arr[:, j], q_arr[:, j])
    df = pd.DataFrame({"contraction": pd.Series(rows, dtype=float)})
    df["identified"] = np.select(
        [df["contraction"].isna(), df["contraction"] >= IDENTIFIED, df["contraction"] >= WEAK],
        ["fixed", "identified", "weak"],
        "not identified",
    )
    return df


def _flat(da: xr.DataArray) -> np.ndarray:
    arr = np.asarray(da.values, dtype=float)
    return arr.reshape(arr.shape[0] * arr.shape[1], -1)


def _contraction(post: np.ndarray, prior: np.ndarray) -> float:
    w_prior = np.subtract(*np.nanquantile(prior, [0.95, 0.05]))
    if not np.isfinite(w_prior) or w_prior <= 1e-12:
        return float("nan")
    w_post = np.subtract(*np.nanquantile(post, [0.95, 0.05]))
    return float(1.0 - (w_post / w_prior) ** 2)


def prior_check(post: Posterior) -> dict[str, Any]:
    """Prior-predictive check: are the priors' implied losses plausible and do they cover the data?

    Reports the share of prior-predictive y draws inside (0, 20] nats (plausible losses), and the share of
    observed points inside their prior-predictive 90% interval (should be close to 1: priors wide enough).
    """
    if "prior_predictive" not in post.dt.children or "y" not in post.dt["prior_predictive"]:
        return {"available": False}
    draws = np.asarray(post.dt["prior_predictive"]["y"].values).reshape(-1, len(post.design.points))
    lo, hi = np.nanquantile(draws, [0.05, 0.95], axis=0)
    y = post.design.y
    return {
        "available": True,
        "plausible_share": float(np.mean((draws > 0) & (draws <= 20))),
        "observed_in_prior_90": float(np.mean((y >= lo) & (y <= hi))),
        "prior_y_median_range": [float(np.nanmedian(lo)), float(np.nanmedian(hi))],
    }


def summary_table(post: Posterior, ci_prob: float = 0.9) -> pd.DataFrame:
    """Compact summary: mean, sd, HDI bounds, R-hat, ESS, contraction and identification flag per quantity."""
    summ = post.summary(ci_prob=ci_prob)
    lo_col = next(c for c in summ.columns if str(c).endswith("%") or "lb" in str(c) or "hdi" in str(c))
    cols = list(summ.columns)
    hi_col = cols[cols.index(lo_col) + 1]
    out = pd.DataFrame(
        {
            "mean": summ["mean"].astype(float),
            "sd": summ["sd"].astype(float),
            "lo": summ[lo_col].astype(float),
            "hi": summ[hi_col].astype(float),
        }
    )
    for col in ("r_hat", "ess_bulk", "ess_tail", "contraction", "identified"):
        if col in summ:
            out[col] = summ[col]
    return out
