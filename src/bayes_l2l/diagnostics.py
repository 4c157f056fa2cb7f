"""Diagnostics of a posterior: R-hat, bulk / tail ESS, divergences, BFMI, tree-depth saturation (the gate a fit
must pass), prior-to-posterior contraction (identification), the prior-predictive check, the summary table."""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayes_l2l.posterior import EFFECT_VARS, SUMMARY_VARS, Posterior

RHAT_MAX = 1.01
ESS_MIN = 400
IDENTIFIED = 0.75
"""Prior-to-posterior contraction from which a quantity counts as identified (see :func:`identification`)."""
WEAK = 0.3
"""Contraction below which a quantity is 'not identified' (the prior, not the data, sets its interval)."""


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
        degenerate = _degenerate_draws(dt, names)
        if degenerate:
            out["problems"] = [
                "the Laplace approximation is degenerate (draws at 0, infinite or NaN for "
                f"{', '.join(degenerate)}: a mode on a boundary); use --method nuts"
            ]
            out["ok"] = False
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


def _degenerate_draws(dt: Any, names: list[str]) -> list[str]:
    """Scalar parameters (sigma, sigma_run, nu) whose approximate draws are non-finite or all but zero."""
    bad = []
    for v in ("sigma", "sigma_run", "nu", *names):
        if v not in dt["posterior"] or v in bad:
            continue
        arr = np.asarray(dt["posterior"][v].values, dtype=float)
        if not np.isfinite(arr).all() or (v in ("sigma", "sigma_run", "nu") and (arr <= 1e-12).mean() > 0.01):
            bad.append(v)
    return bad


def identification(post: Posterior) -> pd.DataFrame:
    """Prior-to-posterior contraction per scalar quantity and a flag.

    contraction = 1 - (w_post / w_prior)^2 with w the width of the central 90% interval (on the log scale
    for K and kappa); it equals 1 - var_post/var_prior for Gaussians but is robust to the heavy tails of
    derived priors. ``identified`` (>= 0.75: the posterior interval is at most half the prior's), ``weak``
    (0.3-0.75), ``not identified`` (< 0.3: the prior, not the data, sets the interval), ``fixed`` (a constant),
    ``not physical`` (a loss floor Ex or Ey whose posterior median is below 0: a loss cannot fall below 0, so
    the floor is an artefact of the fit's extrapolation, whatever its contraction).
    """
    rows, negative_floor = {}, set()
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
            if var in ("Ex", "Ey") and np.nanmedian(p_arr[:, j]) < 0:
                negative_floor.add(name)
    df = pd.DataFrame({"contraction": pd.Series(rows, dtype=float)})
    df["identified"] = np.select(
        [df["contraction"].isna(), df["contraction"] >= IDENTIFIED, df["contraction"] >= WEAK],
        ["fixed", "identified", "weak"],
        "not identified",
    )
    df.loc[df.index.isin(negative_floor), "identified"] = "not physical"
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
