"""K-fold cross-validation by run: the exact out-of-sample comparison where PSIS-LOO is unreliable.

Where a Pareto k exceeds 0.7, PSIS cannot stand in for refitting without a run. Then, if the budget allows,
the runs are split into K folds (stratified by condition, so that every training set keeps at least one run
of every condition), and both models, separate curves for the factor's levels and one shared curve, are
refitted K times without each fold. A held-out run is scored by its log predictive density under the fit
that never saw it, with a *new* run offset integrated out by Monte Carlo:

    log p(y_r | rest) = log mean_{s, m} prod_t StudentT(y_rt | f_s(x_rt) + o_sm, sigma_s, nu_s),
    o_sm ~ Normal(0, sigma_run_s),

the run being held out as a whole (its checkpoints share a seed, a data order and a schedule). elpd diff =
sum over runs of the separate model's minus the shared model's, its SE sqrt(n) * sd of the per-run
differences, as for PSIS-LOO by run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import logsumexp

from bayes_l2l.design import MIN_POINTS_PER_CONDITION, Design

KFOLD_FOLDS = 5
"""Folds (fewer where there are fewer runs): 2 x K refits, each at the shared fit's settings."""
OFFSET_DRAWS = 64
"""Monte Carlo draws of a new run's offset per posterior draw."""


def fold_assignment(
    design: Design, folds: int = KFOLD_FOLDS, seed: int = 0
) -> tuple[dict[str, int], str | None]:
    """(fold per run, None), or ({}, the reason K-fold cannot run): every condition needs at least 2 runs, and
    each training set at least MIN_POINTS_PER_CONDITION checkpoints per condition."""
    runs = design.points.drop_duplicates("run")[["run", "cond_idx"]]
    per_cond = runs.groupby("cond_idx")["run"].apply(list)
    alone = [design.conditions["condition"].iloc[c] for c, rs in per_cond.items() if len(rs) < 2]
    if alone:
        shown = ", ".join(map(str, alone[:3])) + (f" and {len(alone) - 3} more" if len(alone) > 3 else "")
        return {}, f"K-fold by run needs at least 2 runs in every condition ({shown}: one run)"
    k = min(folds, int(per_cond.map(len).max()))
    rng = np.random.default_rng(seed)
    assignment: dict[str, int] = {}
    for _, members in per_cond.items():
        start = int(rng.integers(k))
        for i, run in enumerate(rng.permutation(members)):
            assignment[str(run)] = (start + i) % k
    counts = design.points.assign(fold=design.points["run"].map(assignment))
    for fold in range(k):
        kept = counts[counts["fold"] != fold].groupby("cond_idx").size()
        if len(kept) < design.n_conditions or (kept < MIN_POINTS_PER_CONDITION).any():
            return {}, f"K-fold by run: fold {fold + 1} would leave a condition with too few checkpoints"
    return assignment, None


def heldout_logpd(post: Any, design: Design, runs: list[str], seed: int = 0) -> np.ndarray:
    """Log predictive density of each held-out run (its points in ``design``) under ``post`` (fitted without
    it), a new run offset integrated out; -inf where every draw puts a checkpoint below the floor Ex."""
    from bayes_l2l.measurement import draws_scale
    from bayes_l2l.model import curve

    rng = np.random.default_rng(seed)
    p = post.condition_params()
    labels = post.design.conditions["condition"].astype(str).tolist()
    sigma, sigma_run = post.draws("sigma"), post.draws("sigma_run")
    s = sigma.size
    nu = post.draws("nu") if "nu" in post.dt["posterior"] else np.full(s, post.config.nu)
    out = np.empty(len(runs))
    for i, run in enumerate(runs):
        pts = design.points[design.points["run"] == run]
        c = labels.index(str(pts["condition"].iloc[0]))
        x, y = pts["x"].to_numpy(float), pts["y"].to_numpy(float)
        w = pts["weight"].to_numpy(float)
        f = curve(x, p["K"][:, c], p["kappa"][:, c], p["Ex"][:, c], p["Ey"][:, c])  # (S, T)
        offsets = rng.normal(size=(s, OFFSET_DRAWS)) * sigma_run[:, None]  # (S, M)
        mu = f[:, None, :] + offsets[:, :, None]
        scale = draws_scale(post, pts, sigma[:, None], p["K"][:, [c]], p["kappa"][:, [c]], p["Ex"][:, [c]])
        ll = stats.t.logpdf(y[None, None, :], nu[:, None, None], mu, scale[:, None, :])
        total = np.where(np.isfinite(ll), ll, -np.inf) @ w  # (S, M)
        out[i] = float(logsumexp(total) - np.log(total.size))
    return out


def refit_wall_estimate(post: Any) -> float:
    """Seconds one refit takes, estimated from the kept attempt's wall scaled to the shared fit's settings
    (half the warm-up, 500 draws per chain); NaN when the fit recorded no wall time."""
    attempts = post.settings.get("attempts") or []
    wall = float(attempts[-1].get("wall_s", np.nan)) if attempts else float(post.wall_time_s)
    warmup, draws = post.settings.get("warmup") or 0, post.settings.get("draws") or 0
    if warmup + draws <= 0:
        return wall
    from bayes_l2l.comparisons import SHARED_DRAWS

    return wall * (warmup / 2 + min(draws, SHARED_DRAWS)) / (warmup + draws)


def kfold_compare(
    post: Any,
    factor: str,
    *,
    budget_s: float,
    fit: Callable[[Any, Design], Any],
    progress: Callable[[str], None] | None = None,
    folds: int = KFOLD_FOLDS,
) -> dict[str, Any]:
    """elpd(separate curves) - elpd(one shared curve) by K-fold over runs, or why it was not run.

    ``fit(post, design)`` refits a design with ``post``'s model and settings. Runs only where the estimate
    (2 x K refits at the main fit's wall time) fits in ``budget_s``. Returns {elpd_diff, elpd_se, note,
    problems (of the refits), wall_s} with elpd_diff None where not run."""
    design = post.design
    assignment, why = fold_assignment(design, folds)
    if why:
        return {"elpd_diff": None, "elpd_se": None, "note": f"not available: {why}", "problems": []}
    k = max(assignment.values()) + 1
    estimate = 2 * k * refit_wall_estimate(post)
    if not estimate <= budget_s:
        return {
            "elpd_diff": None,
            "elpd_se": None,
            "note": f"not available: K-fold by run needs {2 * k} refits, about {estimate:.0f} s at this fit's "
            f"wall time, over the budget of {budget_s:.0f} s (--kfold-budget, kfold_budget_s=)",
            "problems": [],
        }
    t0 = time.perf_counter()
    shared_design = design.without_factor(factor)
    sep = np.full(design.n_runs, np.nan)
    shr = np.full(design.n_runs, np.nan)
    problems: list[str] = []
    for fold in range(k):
        held = sorted(r for r, f in assignment.items() if f == fold)
        if progress is not None:
            progress(f"K-fold by run for {factor}: fold {fold + 1} of {k} ({len(held)} runs held out)")
        for target, full in ((sep, design), (shr, shared_design)):
            refit = fit(post, full.without_runs(set(held)))
            problems += [f"fold {fold + 1}: {p}" for p in refit.diagnostics.get("problems") or []]
            scores = heldout_logpd(refit, full, held, seed=fold)
            for run, score in zip(held, scores, strict=True):
                target[design.runs.index(run)] = score
    diff = sep - shr
    n = diff.size
    note = (
        f"K-fold by run ({k} folds, {2 * k} refits at the shared fit's settings, {time.perf_counter() - t0:.0f} s), "
        "used because PSIS-LOO was unreliable"
    )
    if problems:
        note += f"; UNRELIABLE: {len(problems)} refit problem(s) ({problems[0]})"
    if not np.isfinite(diff).all():
        return {
            "elpd_diff": None,
            "elpd_se": None,
            "note": note + "; a held-out run fell below a floor",
            "problems": problems,
        }
    return {
        "elpd_diff": float(diff.sum()),
        "elpd_se": float(np.sqrt(n) * np.std(diff, ddof=1)) if n > 1 else float("nan"),
        "note": note,
        "problems": problems,
        "wall_s": time.perf_counter() - t0,
    }
