"""Speed: bayes-l2l's NUTS (NumPyro) against the same model in PyMC sampled by nutpie, growth with table
size, and the approximate (Laplace) path against NUTS.

The table is simulated at paper scale (bayes_l2l.simulate): 60 runs, 6 factors (pretraining data with 5
levels and five two-level factors, one-at-a-time design: 10 conditions x 2 sizes x 3 seeds), one (x, y)
pair, ``--checkpoints`` checkpoints per run (100 -> 6,000 checkpoints). Both samplers run 4 chains x 1,000
draws after 1,000 tuning steps on the machine's cores, in this one process, one after the other, wall time
including compilation. ESS per second = the smallest bulk ESS over the reported quantities (K, kappa, Ex,
Ey per condition, sigma, sigma_run, nu; arviz) / wall seconds.

The PyMC model is the library's model (bayes_l2l.model, effect_prior='normal', no compute component)
written out term by term: same parametrisation (height, log slope, log kappa or the curvature q of
``--shape``, u), priors, run offsets (``--run-offsets``), Student-t noise with learned nu; checked by comparing
the log density of both at one point.

Every timed fit compiles from scratch: JAX's persistent compilation cache (bayes_l2l.compile_cache) points at
a new empty folder for the run. The approximate path is also timed a second time with its programs in the cache
(a rerun on the same table), and ``--warm-rerun`` does the same for NUTS.

Run: ``.venv/bin/pip install -e ".[bench]" && .venv/bin/python benchmarks/speed.py``
(``--skip-nutpie``, ``--skip-growth``, ``--skip-approx`` to run parts). Writes ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bayes_l2l import infer
from bayes_l2l.compile_cache import use_cache_dir
from bayes_l2l.design import Design, Question, build_design
from bayes_l2l.model import ModelConfig, ModelData, add_model_arguments, curvature_kappa
from bayes_l2l.robust_fit import fit_robust
from bayes_l2l.sampler_policy import UserSettings
from bayes_l2l.simulate import SimulationSpec, simulate_table

REPO = Path(__file__).resolve().parents[1]
REPORTED = ("K", "kappa", "Ex", "Ey", "sigma", "sigma_run", "nu")
EFFECTS = ("d_h", "d_logs", "d_logkappa", "d_q", "d_u")
"""Effect sites compared between the approximate path and NUTS (d_logkappa or d_q, by the model's shape)."""


def paper_scale_spec(checkpoints_per_run: int) -> SimulationSpec:
    """60 runs (10 conditions x 2 sizes x 3 seeds), 6 factors, ``checkpoints_per_run`` checkpoints each."""
    return SimulationSpec(
        factors={
            "pretraining_data": ["web", "code", "books", "math", "wiki"],
            "tokenizer": ["bpe32k", "bpe50k"],
            "architecture": ["llama", "gptneox"],
            "context_length": ["2048", "4096"],
            "optimizer": ["adamw", "lion"],
            "learning_rate": ["3e-4", "1e-3"],
        },
        effects={
            "pretraining_data": {
                "code": {"E_x": 0.3, "E_y": 0.25, "log_K": 0.15},
                "books": {"E_y": -0.1, "log_kappa": 0.1},
                "math": {"E_y": 0.15},
                "wiki": {"log_K": -0.1},
            },
            "tokenizer": {"bpe50k": {"E_y": 0.05}},
        },
        runs_per_condition=3,
        checkpoints_per_run=checkpoints_per_run,
        sizes=[160e6, 410e6],
    )


def design_for(checkpoints_per_run: int, seed: int = 0) -> Design:
    spec = paper_scale_spec(checkpoints_per_run)
    table, _ = simulate_table(spec, seed)
    return build_design(table, Question(x=spec.x_metric, y=spec.y_metric, factors=list(spec.factors)))


def min_bulk_ess(dt: Any) -> float:
    """Smallest bulk ESS over the reported quantities (arviz)."""
    import arviz as az

    names = [v for v in REPORTED if v in dt["posterior"]]
    summ = az.summary(dt, var_names=names, kind="diagnostics", round_to="none")
    return float(np.nanmin(summ["ess_bulk"].astype(float).to_numpy()))


def mean_steps(dt: Any) -> float | None:
    """Mean leapfrog steps per draw (NumPyro: num_steps / n_steps; nutpie: n_steps)."""
    for name in ("num_steps", "n_steps"):
        if name in dt["sample_stats"]:
            return float(np.asarray(dt["sample_stats"][name]).mean())
    return None


def max_rhat(dt: Any) -> float:
    import arviz as az

    names = [v for v in REPORTED if v in dt["posterior"]]
    summ = az.summary(dt, var_names=names, kind="diagnostics", round_to="none")
    return float(np.nanmax(summ["r_hat"].astype(float).to_numpy()))


# ----------------------------------------------------------------------------------------- bayes-l2l
def _model_label(config: ModelConfig | None) -> str:
    config = config or ModelConfig()
    return f"shape {config.shape}, {config.run_offsets} run offsets"


def run_numpyro(
    design: Design,
    seed: int = 0,
    user: UserSettings | None = None,
    config: ModelConfig | None = None,
    retry: bool = True,
) -> dict[str, Any]:
    """The library's robust fit (:func:`bayes_l2l.robust_fit.fit_robust`: sampler settings chosen from the
    table, retried from what failed) with the settings the command line named in ``user``."""
    t0 = time.perf_counter()
    post = fit_robust(design, config, user=user, seed=seed, retry=retry)
    wall = time.perf_counter() - t0
    ess = min_bulk_ess(post.dt)
    dg = post.diagnostics
    s = post.settings
    return {
        "sampler": f"bayes-l2l (NumPyro NUTS, robust fit: {dg.get('attempts')}; {_model_label(post.config)})",
        "attempts": [
            {
                k: a.get(k)
                for k in ("shape", "run_offsets", "mass", "target_accept", "warmup", "draws", "wall_s")
            }
            for a in s.get("attempts", [])
        ],
        "wall_s": wall,
        "sampling_s": post.wall_time_s,
        "min_ess_bulk": ess,
        "ess_per_s": ess / wall,
        "max_rhat": max_rhat(post.dt),
        "steps_per_draw": mean_steps(post.dt),
        "divergences": dg.get("divergences"),
        "ok": dg.get("ok"),
        "post": post,
    }


# ----------------------------------------------------------------------------------------- PyMC + nutpie
PYMC_RUN_OFFSETS = ("noncentred", "centred")
"""Run-offset forms the PyMC twin writes (:func:`pymc_model`)."""


def pymc_model(design: Design, config: ModelConfig | None = None) -> Any:
    """The library's model (normal effect prior, no compute component) in PyMC, term by term."""
    import pymc as pm
    import pytensor.tensor as pt

    config = config or ModelConfig()
    data = ModelData.from_design(design, config)
    if data.log_n is not None or data.downweighted or config.effect_prior != "normal":
        raise ValueError("the PyMC twin covers the default model without compute component or weights")
    X = np.asarray(data.X)
    n_eff = X.shape[1]
    min_x = np.asarray(data.min_x)
    cond = np.asarray(data.cond)
    run = np.asarray(data.run)
    centers = {
        "h": data.h_center,
        "logs": data.logs_center,
        config.params[2]: 0.0,  # logkappa, or the curvature q
        "u": float(np.log(config.gap_prior_median)),
    }
    with pm.Model() as model:
        lin = {}
        for name, center in centers.items():
            base = pm.Normal(f"base_{name}", center, config.base_sd[name])
            d = pm.Normal(f"d_{name}", 0.0, config.effect_scale[name], shape=n_eff)
            lin[name] = base + pt.dot(X, d)
        h = lin["h"]
        slope = pt.exp(lin["logs"])
        ex = pm.Deterministic("Ex", min_x - pt.exp(lin["u"]))
        g_ref = data.x_ref - ex
        if config.shape == "curvature":
            kappa = pm.Deterministic(
                "kappa", curvature_kappa(lin["q"], g_ref, config.kappa_floor, softplus=pt.softplus)
            )
        else:
            kappa = pm.Deterministic("kappa", pt.exp(lin["logkappa"]))
        amp = slope * g_ref / kappa
        pm.Deterministic("K", amp / pt.exp(kappa * pt.log(g_ref)))
        pm.Deterministic("Ey", h - amp)
        sigma_run = pm.HalfNormal("sigma_run", config.run_sd_scale)
        if config.run_offsets == "centred":
            offset = pt.concatenate([pm.Normal("run_offset", 0.0, sigma_run, shape=data.n_runs), pt.zeros(1)])
        else:
            z_run = pm.Normal("z_run", 0.0, 1.0, shape=data.n_runs)
            offset = pt.concatenate([sigma_run * z_run, pt.zeros(1)])
        rel = pt.clip((np.asarray(data.x) - ex[cond]) / g_ref[cond], 1e-12, np.inf)
        mu = h[cond] + amp[cond] * (pt.exp(kappa[cond] * pt.log(rel)) - 1.0) + offset[run]
        sigma = pm.HalfNormal("sigma", config.noise_scale)
        nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
        pm.StudentT("y", nu=nu, mu=mu, sigma=sigma, observed=np.asarray(data.y))
    return model


def check_same_density(design: Design, model: Any, config: ModelConfig | None = None, seed: int = 0) -> float:
    """|log p_numpyro - log p_pymc| at one random point of the unconstrained space (0 = same model up to the
    Jacobians, which both include)."""
    import jax
    from numpyro.infer.util import initialize_model

    config = config or ModelConfig()
    data = ModelData.from_design(design, config)
    from bayes_l2l.model import l2l_model

    info = initialize_model(jax.random.PRNGKey(seed), l2l_model, model_args=(data, config))
    params = info.param_info.z  # unconstrained values
    lp_numpyro = -float(info.potential_fn(params))
    # map the same unconstrained values into PyMC's value variables (log-transformed positives)
    point = {}
    for rv in model.free_RVs:
        value_var = model.rvs_to_values[rv]
        point[value_var.name] = np.asarray(params[rv.name])
    lp_pymc = float(model.compile_logp(jacobian=True)(point))
    return abs(lp_numpyro - lp_pymc)


def run_nutpie(
    design: Design,
    config: ModelConfig | None = None,
    seed: int = 0,
    cores: int | None = None,
    tune: int = 1000,
) -> dict[str, Any]:
    import nutpie

    t0 = time.perf_counter()
    model = pymc_model(design, config)
    compiled = nutpie.compile_pymc_model(model)
    compile_s = time.perf_counter() - t0
    idata = nutpie.sample(
        compiled,
        draws=1000,
        tune=tune,
        chains=4,
        seed=seed,
        cores=cores or os.cpu_count(),
        progress_bar=False,
    )
    wall = time.perf_counter() - t0
    import arviz as az

    dt = az.convert_to_datatree(idata)
    ess = min_bulk_ess(dt)
    div = (
        int(np.asarray(dt["sample_stats"]["diverging"]).sum()) if "diverging" in dt["sample_stats"] else None
    )
    return {
        "sampler": f"PyMC {__import__('pymc').__version__} + nutpie {nutpie.__version__} (diagonal mass, defaults, {tune} tuning steps; "
        f"{_model_label(config)})",
        "wall_s": wall,
        "compile_s": compile_s,
        "min_ess_bulk": ess,
        "ess_per_s": ess / wall,
        "max_rhat": max_rhat(dt),
        "steps_per_draw": mean_steps(dt),
        "divergences": div,
    }


# ----------------------------------------------------------------------------------------- approx
def effect_distance(
    nuts: infer.Posterior, approx: infer.Posterior | dict[str, np.ndarray]
) -> dict[str, float | str]:
    """Largest |mean difference| / NUTS sd and largest |sd ratio - 1| over the effect parameters, with the
    effect where the sd differs most and the NUTS sd's own relative Monte Carlo error there (arviz mcse)."""
    import arviz_stats as azs

    names, mean_err, sd_err, sd_mcse = [], [], [], []
    for name in EFFECTS:
        if name not in nuts.dt["posterior"]:
            continue
        a = nuts.draws(name)
        b = approx.draws(name)
        sd = a.std(axis=0)
        mcse = np.asarray(azs.mcse(nuts.dt, var_names=[name], method="sd")[name]).reshape(-1)
        names += [f"{name}[{i}]" for i in range(sd.size)]
        mean_err += list(np.abs(a.mean(axis=0) - b.mean(axis=0)) / sd)
        sd_err += list(np.abs(b.std(axis=0) / sd - 1.0))
        sd_mcse += list(mcse / sd)
    worst = int(np.argmax(sd_err))
    return {
        "max_mean_err_in_sd": float(np.max(mean_err)),
        "max_sd_rel_err": float(sd_err[worst]),
        "max_sd_rel_err_at": names[worst],
        "nuts_sd_rel_mcse_there": float(sd_mcse[worst]),
        "median_sd_rel_err": float(np.median(sd_err)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=100, help="per run (x 60 runs)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "speed")
    ap.add_argument("--skip-nutpie", action="store_true")
    ap.add_argument("--skip-growth", action="store_true")
    ap.add_argument("--skip-approx", action="store_true")
    ap.add_argument(
        "--mass",
        choices=infer.MASS_CHOICES,
        default=None,
        help="NUTS mass matrix (fit --mass; default: the policy)",
    )
    ap.add_argument(
        "--target-accept",
        type=float,
        default=None,
        help="NUTS target acceptance (fit --target-accept; default: the library's policy)",
    )
    add_model_arguments(ap)
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up (tuning) steps per chain, for both samplers (fit --warmup; default: the policy's, nutpie "
        "gets the same)",
    )
    ap.add_argument("--no-retry", action="store_true", help="one sampler attempt per fit")
    ap.add_argument(
        "--warm-rerun", action="store_true", help="also time a second NUTS fit with its programs in the cache"
    )
    args = ap.parse_args(argv)
    if args.run_offsets not in (*PYMC_RUN_OFFSETS, "auto") and not args.skip_nutpie:
        print(
            f"error: the PyMC twin has {' and '.join(PYMC_RUN_OFFSETS)} run offsets only; "
            f"use --skip-nutpie with --run-offsets {args.run_offsets}",
            file=sys.stderr,
        )
        return 2
    config = ModelConfig(shape="logkappa" if args.shape == "auto" else args.shape)
    args.out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(tempfile.mkdtemp(prefix="bayes-l2l-speed-cache-"))
    users_cache = use_cache_dir(cache_root / "nuts")  # empty: the fits below compile from scratch
    try:
        results = _measure(args, config, cache_root)
    finally:
        use_cache_dir(users_cache)
        shutil.rmtree(cache_root, ignore_errors=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(json.dumps(results, indent=1, default=float))
    return 0


def _measure(args: argparse.Namespace, config: ModelConfig, cache_root: Path) -> dict[str, Any]:
    """The timed fits of :func:`main`; returns the results."""
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {msg}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "machine": {"node": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(sys.argv),
    }
    design = design_for(args.checkpoints)
    log(f"design: {len(design.points)} checkpoints, {design.n_runs} runs, {design.n_conditions} conditions")
    results["points"] = len(design.points)
    # every NUTS fit of the run: the same sampler settings and model
    user = UserSettings(
        mass=args.mass,
        target_accept=args.target_accept,
        warmup=args.warmup,
        shape=None if args.shape == "auto" else args.shape,
        run_offsets=None if args.run_offsets == "auto" else args.run_offsets,
    )
    fit_nuts = functools.partial(run_numpyro, user=user, config=config, retry=not args.no_retry)
    nuts = fit_nuts(design)
    post = nuts.pop("post")
    kept = post.config  # the twin and the approximate path get the model the kept attempt sampled
    tune = int(post.settings["warmup"])
    results["numpyro"] = nuts
    log(
        f"bayes-l2l: {nuts['wall_s']:.1f} s, min ESS {nuts['min_ess_bulk']:.0f}, R-hat {nuts['max_rhat']:.3f}, "
        f"{nuts['divergences']} divergences"
    )
    if not args.skip_nutpie and kept.run_offsets not in PYMC_RUN_OFFSETS:
        log(f"nutpie skipped: the PyMC twin has no {kept.run_offsets} run offsets")
    elif not args.skip_nutpie:
        config = kept
        model = pymc_model(design, config)
        results["density_check_abs_diff"] = check_same_density(design, model, config)
        log(f"log-density difference NumPyro vs PyMC at one point: {results['density_check_abs_diff']:.2e}")
        nut = run_nutpie(design, config, tune=tune)
        results["nutpie"] = nut
        results["ess_per_s_ratio"] = nuts["ess_per_s"] / nut["ess_per_s"]
        log(
            f"nutpie: {nut['wall_s']:.1f} s, min ESS {nut['min_ess_bulk']:.0f}, R-hat {nut['max_rhat']:.3f}; "
            f"ESS/s ratio bayes-l2l / nutpie = {results['ess_per_s_ratio']:.2f}"
        )
    if args.warm_rerun:
        again = fit_nuts(design)
        again.pop("post")
        results["numpyro_warm_cache"] = again
        log(f"bayes-l2l, same table again (programs in the cache): {again['wall_s']:.1f} s")
    if not args.skip_approx:
        use_cache_dir(cache_root / "approx")  # empty again: the first approx fit compiles everything
        for label in ("approx", "approx_warm_cache"):
            t0 = time.perf_counter()
            approx = infer.fit(design, kept, method="approx", seed=0)
            wall = time.perf_counter() - t0
            results[label] = {"wall_s": wall, **effect_distance(post, approx)}
            log(f"{label}: {wall:.1f} s; {results[label]}")
        use_cache_dir(cache_root / "nuts")

    if not args.skip_growth:
        growth = []
        for per_run in (8, 25, 50, args.checkpoints):
            if per_run == args.checkpoints:  # the main fit above: not refitted
                growth.append({"checkpoints": len(design.points), **nuts})
                continue
            d = design_for(per_run)
            r = fit_nuts(d)
            r.pop("post")
            growth.append({"checkpoints": len(d.points), **r})
            log(f"growth: {len(d.points)} checkpoints: {r['wall_s']:.1f} s, R-hat {r['max_rhat']:.3f}")
        results["growth"] = growth
        results["growth_ratio"] = growth[-1]["wall_s"] / growth[0]["wall_s"]
    return results


if __name__ == "__main__":
    sys.exit(main())
