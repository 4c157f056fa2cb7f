"""Evidence from a posterior: factor contrasts, curve gaps, decisions, tests of new checkpoints, predictions.

Decision rule (docs/evidence.md): with ROPE r (nats) and the curve gap Δ(x) = f_level(x) - f_base(x) over
the common support of x,

* "shift" when P(|mean_x Δ(x)| > r) >= 0.95 (the average displacement over the support),
* "no practical shift" when P(max_x |Δ(x)| < r) >= 0.95,
* "undecided" otherwise;
* "no common support" when the two conditions' observed x ranges do not overlap (no gap without
  extrapolation).

The default ROPE, 0.02 nats, is the size of seed-to-seed variation of an LLM's loss at a fixed recipe:
differences smaller than that cannot be told apart from retraining the same recipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l.contrasts import matched_contrasts
from bayes_l2l.errors import UserInputError
from bayes_l2l.measurement import known_scale
from bayes_l2l.model import curve
from bayes_l2l.posterior import Posterior
from bayes_l2l.support import (
    MIN_SUPPORT_FRACTION,
    MIN_SUPPORT_POINTS,
    common_support,
    confounders,
    describe_confounders,
    run_attributes,
    too_little_support,
)

DEFAULT_ROPE = 0.02
DECISION_PROB = 0.95
GRID_POINTS = 60
CI_PROB = 0.9


NO_SUPPORT = "not identifiable: too little common support"
IN_DOUBT = "in doubt (sampler)"
"""The decision of every contrast of a fit whose sampler failed its diagnostics: its numbers are shown, but
they may describe the chains rather than the posterior, so no "shift" / "no practical shift" is read off them."""
"""Decision when the level's and the base's x ranges do not overlap."""


def _mean(draws: np.ndarray) -> float:
    """Mean of the finite draws (NaN, without a warning, when there are none)."""
    d = np.asarray(draws, dtype=float)
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


def hdi(draws: np.ndarray, prob: float = CI_PROB) -> tuple[float, float]:
    """Highest-density interval of 1-d draws (shortest interval holding ``prob`` of them)."""
    d = np.sort(np.asarray(draws, dtype=float).ravel())
    d = d[np.isfinite(d)]
    if d.size == 0:
        return (float("nan"), float("nan"))
    n_in = max(int(np.ceil(prob * d.size)), 1)
    widths = d[n_in - 1 :] - d[: d.size - n_in + 1]
    i = int(np.argmin(widths))
    return (float(d[i]), float(d[i + n_in - 1]))


def gap_summary_draws(gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw of a gap curve (draws, grid): the mean gap over the grid and max |gap| (nats), what
    :func:`decide` takes."""
    return np.nanmean(gaps, axis=1), np.nanmax(np.abs(gaps), axis=1)


def decide(mean_draws: np.ndarray, maxabs_draws: np.ndarray, rope: float) -> tuple[str, float, float]:
    """(decision, P(shift), P(inside ROPE)).

    P(shift) = P(|mean gap over the support| > rope): the average displacement of the curve, which curve
    noise does not inflate (max|gap| does: it is biased upwards when curves are uncertain).
    P(inside ROPE) = P(max_x |gap(x)| < rope): the whole curve within the ROPE.
    """
    p_shift = float(np.mean(np.abs(mean_draws) > rope))
    p_equiv = float(np.mean(maxabs_draws < rope))
    if p_shift >= DECISION_PROB:
        return "shift", p_shift, p_equiv
    if p_equiv >= DECISION_PROB:
        return "no practical shift", p_shift, p_equiv
    return "undecided", p_shift, p_equiv


def rope_thresholds(mean_draws: np.ndarray, maxabs_draws: np.ndarray) -> tuple[float, float]:
    """The ROPEs (nats) at which :func:`decide` changes its answer for these draws: "shift" for every ROPE below
    the first value, and (where not "shift") "no practical shift" for every ROPE above the second. So one
    posterior's decisions at every ROPE are two numbers (NaN draws count as neither)."""
    m = np.sort(np.nan_to_num(np.abs(np.asarray(mean_draws, float)), nan=-np.inf))
    mx = np.sort(np.nan_to_num(np.asarray(maxabs_draws, float), nan=np.inf))
    need = int(np.ceil(DECISION_PROB * m.size - 1e-9))  # draws that must clear the ROPE
    return float(m[m.size - need]), float(mx[need - 1])


@dataclass
class ContrastResult:
    """One level of a factor against the base level, on a matched pair of conditions."""

    factor: str
    level: str
    base: str
    matched_on: dict[str, str]
    level_condition: str | None
    base_condition: str | None
    support: list[float]
    gap_mean: float
    gap_hdi90: list[float]
    gap_maxabs: float
    gap_maxabs_hdi90: list[float]
    p_shift: float
    p_equivalent: float
    decision: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    elpd_diff: float | None = None
    elpd_se: float | None = None
    elpd_note: str | None = None
    note: str | None = None
    decision_if_converged: str | None = None
    """Where the fit failed its diagnostics (decision = IN_DOUBT): what the numbers would decide (for the
    calibration benchmarks' records); None otherwise."""
    unit: str | None = None
    """y's unit: that of every gap and of the ROPE."""
    common_support: dict[str, Any] = field(default_factory=dict)
    """Width of the common x support (x's unit), its share of the narrower x range, checkpoints of each side
    inside it (:func:`bayes_l2l.support.common_support`)."""
    decision_if_supported: str | None = None
    """Where the common support is too small (decision = NO_SUPPORT): what the gap alone would decide."""
    confounded_with: list[dict[str, Any]] = field(default_factory=list)
    """Run-level columns whose values separate the two sides (:func:`bayes_l2l.support.confounders`)."""
    held_fixed: dict[str, str] = field(default_factory=dict)
    """What the contrast holds fixed: the matched factor levels and every run-level column constant on both
    sides."""
    reconciliation: str | None = None
    """One statement that puts the decision and the out-of-sample comparison side by side."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gap_unit(compares: Mapping[str, Sequence[ContrastResult]]) -> str:
    """y's unit of these contrasts (that of every gap and ROPE); nats/token for results without one."""
    return next((c.unit for cs in compares.values() for c in cs if c.unit), "nats/token")


def gap_from_params(
    params: dict[str, np.ndarray],
    conditions: pd.DataFrame,
    c_level: int,
    c_base: int,
    n_grid: int = GRID_POINTS,
):
    """Draws of the curve gap f_level(x) - f_base(x) (nats), shape (draws, n_grid), from per-condition K, kappa,
    Ex, Ey arrays shaped (draws, conditions), on the two conditions' common observed x support (from
    ``conditions``' min_x / max_x), and that support [lo, hi]; (None, [lo, hi]) without overlap."""
    lo = float(max(conditions["min_x"][c_level], conditions["min_x"][c_base]))
    hi = float(min(conditions["max_x"][c_level], conditions["max_x"][c_base]))
    if hi <= lo:
        return None, [lo, hi]
    grid = np.linspace(lo, hi, n_grid)
    p = params
    f_l = curve(grid, p["K"][:, c_level], p["kappa"][:, c_level], p["Ex"][:, c_level], p["Ey"][:, c_level])
    f_b = curve(grid, p["K"][:, c_base], p["kappa"][:, c_base], p["Ex"][:, c_base], p["Ey"][:, c_base])
    return f_l - f_b, [lo, hi]


def gap_draws(post: Posterior, c_level: int, c_base: int, n_grid: int = GRID_POINTS):
    """Posterior draws of the curve gap f_level(x) - f_base(x) (nats), shape (draws, n_grid), on the two
    conditions' common observed x support, and that support [lo, hi]; (None, [lo, hi]) without overlap."""
    return gap_from_params(post.condition_params(), post.design.conditions, c_level, c_base, n_grid)


def param_delta_draws(params: dict[str, np.ndarray], c_level: int, c_base: int) -> dict[str, np.ndarray]:
    """Posterior draws of the level - base differences of log K, log kappa, Ex and Ey (nats for E)."""
    return {
        "delta_log_K": np.log(params["K"][:, c_level]) - np.log(params["K"][:, c_base]),
        "delta_log_kappa": np.log(params["kappa"][:, c_level]) - np.log(params["kappa"][:, c_base]),
        "delta_Ex": params["Ex"][:, c_level] - params["Ex"][:, c_base],
        "delta_Ey": params["Ey"][:, c_level] - params["Ey"][:, c_base],
    }


def _param_deltas(post: Posterior, c_level: int, c_base: int) -> dict[str, dict[str, Any]]:
    """Δ log K, Δ log kappa, Δ Ex, Δ Ey with 90% HDI and an identification flag from the contraction of the
    delta itself (its own prior draws against its posterior draws; see infer.identification)."""
    from bayes_l2l.diagnostics import IDENTIFIED, WEAK, _contraction

    post_d = param_delta_draws(post.condition_params(), c_level, c_base)
    prior_d = None
    if "prior" in post.dt.children and all(v in post.dt["prior"] for v in ("K", "kappa", "Ex", "Ey")):
        prior_params = {}
        for v in ("K", "kappa", "Ex", "Ey"):
            arr = np.asarray(post.dt["prior"][v].values)
            prior_params[v] = arr.reshape(-1, arr.shape[-1])
        prior_d = param_delta_draws(prior_params, c_level, c_base)
    names = post.design.conditions["condition"].astype(str).tolist()
    out = {}
    for name, draws in post_d.items():
        flag = _worst_condition_flag(post, name, [names[c_level], names[c_base]])
        if prior_d is not None and flag != "not physical":
            c = _contraction(draws, prior_d[name])
            flag = (
                "fixed"
                if not np.isfinite(c)
                else ("identified" if c >= IDENTIFIED else "weak" if c >= WEAK else "not identified")
            )
        out[name] = {"mean": float(np.mean(draws)), "hdi90": list(hdi(draws)), "identified": flag}
    return out


def _worst_condition_flag(post: Posterior, delta: str, conditions: list[str]) -> str:
    """Fallback flag (no prior draws stored): the worse of the two conditions' flags for the parameter."""
    var = {"delta_log_K": "K", "delta_log_kappa": "kappa", "delta_Ex": "Ex", "delta_Ey": "Ey"}[delta]
    ident = post.identification
    flags = (
        []
        if ident is None
        else [str(ident.loc[f"{var}[{c}]", "identified"]) for c in conditions if f"{var}[{c}]" in ident.index]
    )
    if flags and all(f == "fixed" for f in flags):
        return "fixed"
    return next(
        (f for f in ("not physical", "not identified", "weak", "identified") if f in flags), "unknown"
    )


def compare_factor(
    post: Posterior,
    factor: str,
    *,
    rope: float = DEFAULT_ROPE,
    shared: Posterior | None = None,
    min_support_points: int = MIN_SUPPORT_POINTS,
    min_support_fraction: float = MIN_SUPPORT_FRACTION,
) -> list[ContrastResult]:
    """Every non-base level of ``factor`` against its base, on matched conditions.

    ``shared`` is the same model fitted without ``factor`` (one shared curve); when given, the out-of-sample
    comparison (leave-one-run-out PSIS-LOO, runs held out together) fills elpd_diff and elpd_se. A contrast
    whose common x support is below ``min_support_points`` checkpoints a side or ``min_support_fraction`` of
    the narrower x range is "not identifiable: too little common support" (:mod:`bayes_l2l.support`).
    """
    d = post.design
    if factor not in d.factor_levels:
        raise UserInputError(
            f"factor '{factor}' is not in this fit (its factors: {', '.join(d.factor_levels) or 'none'}); "
            f"refit with --factor {factor}"
        )
    if rope <= 0:
        raise UserInputError(f"--rope {rope}: the ROPE must be a positive number in y's unit")
    levels = d.factor_levels[factor]
    others = [f for f in d.factor_levels if f != factor]
    cond = d.conditions.copy()
    contrasts = matched_contrasts(cond, factor, others, base=levels[0])
    labels = cond["condition"].astype(str).tolist()
    attributes = run_attributes(d.points, exclude=[factor, *others])
    elpd = loo_compare_runs(post, shared) if shared is not None else None
    results = []
    for con in contrasts:
        if not con.matched:
            results.append(
                ContrastResult(
                    factor=factor,
                    level=con.level,
                    base=con.base,
                    matched_on={},
                    level_condition=None,
                    base_condition=None,
                    support=[float("nan")] * 2,
                    gap_mean=float("nan"),
                    gap_hdi90=[float("nan")] * 2,
                    gap_maxabs=float("nan"),
                    gap_maxabs_hdi90=[float("nan")] * 2,
                    p_shift=float("nan"),
                    p_equivalent=float("nan"),
                    decision=f"not identifiable: confounded with {', '.join(con.confounded_with) or 'other factors'}",
                )
            )
            continue

        # Prefer the pair whose other factors sit at their base levels (the paper's causal design).
        def n_base(pair: tuple[dict[str, str], str, str]) -> int:
            return sum(pair[0][f] == d.factor_levels[f][0] for f in others)

        shared_lv = max(con.matched_pairs, key=n_base)[0]
        c_l = d.condition_of({**shared_lv, factor: con.level})
        c_b = d.condition_of({**shared_lv, factor: con.base})
        lvl_label, base_label = labels[c_l], labels[c_b]
        gaps, support = gap_draws(post, c_l, c_b)
        note, if_supported = None, None
        support_info = common_support(d.points, c_l, c_b, support)
        if gaps is None:
            gap_mean_d = maxabs_d = np.full(1, np.nan)
            decision, p_shift, p_eq = NO_SUPPORT, float("nan"), float("nan")
        else:
            gap_mean_d, maxabs_d = gap_summary_draws(gaps)
            decision, p_shift, p_eq = decide(gap_mean_d, maxabs_d, rope)
        thin = too_little_support(
            support_info, min_points=min_support_points, min_fraction=min_support_fraction
        )
        if thin:
            if_supported = None if gaps is None else decision
            decision = NO_SUPPORT
            note = (
                f"too little common support: {thin}; a gap there is an extrapolation of the two curves, not "
                "evidence. Compare on an x where both have data, or test the level's checkpoints against the "
                "base curve (`bayes-l2l test`, extrapolation flagged)"
            )
        cidx = d.points["cond_idx"]
        confounded, fixed = confounders(d.points, cidx == c_l, cidx == c_b, attributes)
        res = ContrastResult(
            factor=factor,
            level=con.level,
            base=con.base,
            matched_on=shared_lv,
            level_condition=lvl_label,
            base_condition=base_label,
            support=support,
            gap_mean=_mean(gap_mean_d),
            gap_hdi90=list(hdi(gap_mean_d)),
            gap_maxabs=_mean(maxabs_d),
            gap_maxabs_hdi90=list(hdi(maxabs_d)),
            p_shift=p_shift,
            p_equivalent=p_eq,
            decision=decision,
            params=_param_deltas(post, c_l, c_b),
            note=note,
            unit=d.question.y_unit,
            common_support=support_info,
            decision_if_supported=if_supported,
            confounded_with=confounded,
            held_fixed={**shared_lv, **fixed},
        )
        if confounded:
            res.note = (res.note + "; " if res.note else "") + (
                f"{con.level} vs {con.base} is confounded with {describe_confounders(confounded)}: the gap may "
                f"be theirs as much as {factor}'s"
            )
        if elpd is not None:
            res.elpd_diff, res.elpd_se, res.elpd_note = elpd["elpd_diff"], elpd["elpd_se"], elpd["note"]
        if not post.diagnostics.get("ok", True) and decision != NO_SUPPORT:
            res.decision_if_converged, res.decision = decision, IN_DOUBT
            problems = "; ".join(post.diagnostics.get("problems") or [])
            res.note = (
                res.note + "; " if res.note else ""
            ) + f"the sampler failed its diagnostics ({problems})"
        results.append(res)
    return results


# ----------------------------------------------------------------------------------------- out of sample
def run_loglik(post: Posterior) -> np.ndarray:
    """Pointwise log-likelihood summed over each run's checkpoints: (S, n_runs)."""
    ll = np.asarray(post.dt["log_likelihood"]["y"].values)
    ll = ll.reshape(-1, ll.shape[-1])
    out = np.zeros((ll.shape[0], post.design.n_runs))
    np.add.at(out.T, post.design.run_idx, ll.T)
    return out


def loo_runs(post: Posterior) -> dict[str, Any]:
    """Leave-one-run-out PSIS-LOO: per-run elpd and Pareto k (runs held out together)."""
    import arviz as az
    import xarray as xr

    ll = np.asarray(post.dt["log_likelihood"]["y"].values)
    n_chain, n_draw = ll.shape[:2]
    runs = run_loglik(post).reshape(n_chain, n_draw, -1)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"dummy": (("chain", "draw"), np.zeros((n_chain, n_draw)))}),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "run"), runs)}),
        }
    )
    res = az.loo(tree, pointwise=True)
    return {
        "elpd_i": np.asarray(res.elpd_i).ravel(),
        "pareto_k": np.asarray(res.pareto_k).ravel(),
    }


PARETO_K_MAX = 0.7
"""Above this Pareto k the PSIS estimate of a run's held-out elpd is unreliable (Vehtari et al. 2017)."""


def loo_unavailable(pareto_k: np.ndarray, runs: list[str], which: str) -> str | None:
    """The reason the run-level elpd is not reported when a Pareto k exceeds :data:`PARETO_K_MAX`, else None."""
    k = np.asarray(pareto_k, dtype=float)
    bad = np.flatnonzero(k > PARETO_K_MAX)
    if not bad.size:
        return None
    names = ", ".join(runs[i] for i in bad[:3]) + (f" and {bad.size - 3} more" if bad.size > 3 else "")
    return (
        f"not available: leave-one-run-out PSIS is unreliable here (Pareto k up to {np.nanmax(k):.2f} > "
        f"{PARETO_K_MAX} for {bad.size} of {k.size} runs in the {which} fit: {names}; typically runs alone in "
        f"their condition, which separate curves cannot predict)"
    )


def loo_compare_runs(post: Posterior, shared: Posterior) -> dict[str, Any]:
    """elpd(separate curves) - elpd(one shared curve), leave-one-run-out, with its standard error.

    Positive = the factor's separate curves predict held-out runs better. Where a Pareto k exceeds
    :data:`PARETO_K_MAX` in either fit, no elpd is given (it would read as evidence and is not): elpd_diff and
    elpd_se are None and the note says why.
    """
    if sorted(post.design.runs) != sorted(shared.design.runs):
        raise UserInputError("the two fits must use the same runs (same table, --where and filters)")
    a, b = loo_runs(post), loo_runs(shared)
    order = [shared.design.runs.index(r) for r in post.design.runs]  # align the shared fit's runs by name
    kmax = float(np.nanmax(np.concatenate([a["pareto_k"], b["pareto_k"][order]])))
    why = loo_unavailable(a["pareto_k"], post.design.runs, "separate-curves") or loo_unavailable(
        b["pareto_k"], shared.design.runs, "one-shared-curve"
    )
    if why:
        return {"elpd_diff": None, "elpd_se": None, "note": why, "max_pareto_k": kmax}
    diff = a["elpd_i"] - b["elpd_i"][order]
    n = diff.size
    se = float(np.sqrt(n * np.var(diff, ddof=1))) if n > 1 else float("nan")
    note = f"PSIS-LOO over {n} runs held out whole; max Pareto k {kmax:.2f}"
    return {"elpd_diff": float(diff.sum()), "elpd_se": se, "note": note, "max_pareto_k": kmax}


# ----------------------------------------------------------------------------------------- ranking
def rank_factors(results: dict[str, list[ContrastResult]]) -> pd.DataFrame:
    """Factors ordered by the size of their largest gap (mean of max|Δ| over the factor's levels)."""
    rows = []
    for factor, contrasts in results.items():
        ok = [c for c in contrasts if np.isfinite(c.gap_maxabs)]
        if not ok:
            rows.append(
                {
                    "factor": factor,
                    "level": None,
                    "gap_maxabs": np.nan,
                    "lo": np.nan,
                    "hi": np.nan,
                    "decision": contrasts[0].decision if contrasts else "no levels",
                }
            )
            continue
        top = max(ok, key=lambda c: c.gap_maxabs)
        rows.append(
            {
                "factor": factor,
                "level": top.level,
                "gap_maxabs": top.gap_maxabs,
                "lo": top.gap_maxabs_hdi90[0],
                "hi": top.gap_maxabs_hdi90[1],
                "decision": top.decision,
            }
        )
    return (
        pd.DataFrame(rows)
        .sort_values("gap_maxabs", ascending=False, na_position="last")
        .reset_index(drop=True)
    )


# ----------------------------------------------------------------------------------------- predictions
def _condition_from_levels(post: Posterior, levels: dict[str, str]) -> int:
    unknown = [f for f in levels if f not in post.design.factor_levels]
    if unknown:
        raise UserInputError(
            f"--level names factor(s) {', '.join(unknown)} not in this fit; its factors: "
            f"{', '.join(post.design.factor_levels) or 'none'}"
        )
    return post.design.condition_of(levels)


def predictive_draws(
    post: Posterior,
    c: int,
    x: np.ndarray,
    seed: int = 0,
    run: str | None = None,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(curve draws, predictive draws) of shape (S, len(x)) for condition c: a checkpoint at x of a new run
    (offset drawn from the run-offset distribution) or, with ``run``, a further checkpoint of that fitted run
    (its posterior offset; a run fitted on one checkpoint has no offset of its own and is treated as new).
    ``known``: the checkpoints' own independent error variances (x, y) where the fit used the error model
    (:func:`bayes_l2l.measurement.new_point_variances`): a measured y at a measured x, not the true one."""
    rng = np.random.default_rng(seed)
    p = post.condition_params()
    f = curve(x, p["K"][:, c], p["kappa"][:, c], p["Ex"][:, c], p["Ey"][:, c])
    s = f.shape[0]
    sigma = noise_scale(post, p, c, x, known)
    nu = post.draws("nu")[:, None] if "nu" in post.dt["posterior"] else np.full((s, 1), post.config.nu)
    if run is not None and run in post.design.offset_runs:
        offset = post.draws("run_offset")[:, post.design.offset_runs.index(run)][:, None]
    else:
        offset = rng.normal(size=(s, 1)) * post.draws("sigma_run")[:, None]
    noise = rng.standard_t(np.broadcast_to(nu, (s, len(x)))) * sigma
    return f, f + offset + noise


def noise_scale(
    post: Posterior,
    p: dict[str, np.ndarray],
    c: int,
    x: np.ndarray,
    known: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """Per draw, the checkpoint-noise scale at ``x`` for condition c: sigma (S, 1), or with ``known``
    variances the error model's sqrt(sigma^2 + s_y^2 + f'(x)^2 s_x^2) (S, len(x))."""
    sigma = post.draws("sigma")[:, None]
    if known is None:
        return sigma
    rel = np.clip(x[None, :] - p["Ex"][:, [c]], 1e-12, None)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return known_scale(
            sigma, p["K"][:, [c]], p["kappa"][:, [c]], 1.0, rel, known[0][None, :], known[1][None, :]
        )


MAX_BELOW_FLOOR = 0.10
"""`predict` gives no value at an x below the condition's floor Ex in more than this share of the draws: the
law is undefined there, and the draws left would be a biased few (those whose floor happens to be lower)."""


def predict(
    post: Posterior,
    x: np.ndarray,
    levels: dict[str, str] | None = None,
    seed: int = 0,
    run: str | None = None,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Predicted y (y's unit) at ``x`` for the condition with ``levels`` (others at base): mean, sd, 50% and 90%
    predictive intervals of a new run's checkpoint, the 90% interval of the curve itself, and whether x lies
    outside the condition's observed x range (extrapolation). With ``run`` (a fitted run; ``levels`` must
    then be empty), predictions are further checkpoints of that run: its condition and its own offset.
    ``p_below_floor``: the share of draws whose floor Ex lies above x; past :data:`MAX_BELOW_FLOOR` the
    summaries are NaN, below it they are of the draws with x above their floor. ``known``: measured
    checkpoints' own error variances (:func:`predictive_draws`)."""
    x = np.asarray(x, dtype=float).ravel()
    if run is not None:
        if levels:
            raise UserInputError("give either --run or --level, not both: a run fixes its condition")
        runs = post.design.runs
        if run not in runs:
            raise UserInputError(
                f"run {run!r} is not in this fit; its runs are: {', '.join(runs[:12])}"
                + (f" ... ({len(runs)} in all)" if len(runs) > 12 else "")
            )
        c = int(post.design.run_cond_idx[runs.index(run)])
    else:
        c = _condition_from_levels(post, levels or {})
    f, pred = predictive_draws(post, c, x, seed=seed, run=run, known=known)
    cond = post.design.conditions.iloc[c]
    below_floor = np.mean(~np.isfinite(f), axis=0)
    undefined = below_floor > MAX_BELOW_FLOOR
    f, pred = f[:, ~undefined], pred[:, ~undefined]
    q = np.full((4, x.size), np.nan)
    fq = np.full((2, x.size), np.nan)
    mean = np.full(x.size, np.nan)
    sd = np.full(x.size, np.nan)
    sd[~undefined] = np.nanstd(pred, axis=0)
    q[:, ~undefined] = np.nanquantile(pred, [0.05, 0.25, 0.75, 0.95], axis=0)
    fq[:, ~undefined] = np.nanquantile(f, [0.05, 0.95], axis=0)
    mean[~undefined] = np.nanmean(pred, axis=0)
    return pd.DataFrame(
        {
            "condition": str(cond["condition"]),
            "x": x,
            "mean": mean,
            "sd": sd,
            "lo50": q[1],
            "hi50": q[2],
            "lo90": q[0],
            "hi90": q[3],
            "curve_lo90": fq[0],
            "curve_hi90": fq[1],
            "extrapolation": (x < cond["min_x"]) | (x > cond["max_x"]),
            "p_below_floor": below_floor,
        }
    )


# ----------------------------------------------------------------------------------------- new checkpoints
def test_new_checkpoints(
    post: Posterior,
    x: np.ndarray,
    y: np.ndarray,
    *,
    levels: dict[str, str] | None = None,
    rope: float = DEFAULT_ROPE,
    labels: list[str] | None = None,
    seed: int = 0,
    min_support_points: int = MIN_SUPPORT_POINTS,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Do new checkpoints (x, y) lie on the curve of the condition with ``levels`` (default: the base)?

    The gap is the mean over the new checkpoints of y - f(x), with the posterior of f and the uncertainty of
    a new run's offset and checkpoint noise (so a new seed of the same recipe is "on the curve"). Decision
    as for factor contrasts, on |gap| against the ROPE. Standardized residuals use the predictive mean/sd.
    Fewer than ``min_support_points`` new checkpoints (all of them, if fewer were given) inside the curve's
    observed x range: "not identifiable: too little common support". ``known``: the new checkpoints' own
    independent error variances (x, y) where the fit used the error model; they widen the gap and the z's.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size == 0:
        raise UserInputError("the new table has no checkpoints with both the x and the y metric")
    c = _condition_from_levels(post, levels or {})
    f, pred = predictive_draws(post, c, x, seed=seed, known=known)
    if np.isnan(f).mean() > 0.05:
        raise UserInputError(
            "new checkpoints have x at or below the base curve's floor Ex in more than 5% of draws: x values "
            f"{np.round(x[np.isnan(f).mean(axis=0) > 0.05], 4).tolist()} are outside the law's domain"
        )
    rng = np.random.default_rng(seed + 7)
    point_var = np.broadcast_to(noise_scale(post, post.condition_params(), c, x, known) ** 2, f.shape)
    sigma_run = post.draws("sigma_run")
    resid = y[None, :] - f
    gap = np.nanmean(resid, axis=1) + rng.normal(size=resid.shape[0]) * np.sqrt(
        sigma_run**2 + np.nansum(point_var, axis=1) / x.size**2
    )
    decision, p_shift, p_eq = decide(gap, np.abs(gap), rope)
    mean_pred = np.nanmean(pred, axis=0)
    sd_pred = np.nanstd(pred, axis=0)
    cond = post.design.conditions.iloc[c]
    inside = int(((x >= cond["min_x"]) & (x <= cond["max_x"])).sum())
    needed = min(min_support_points, x.size)
    note, if_supported = None, None
    if inside < needed:
        if_supported, decision = decision, NO_SUPPORT
        note = (
            f"too little common support: {inside} of the {x.size} new checkpoints lie inside the curve's observed "
            f"x range [{cond['min_x']:.3f}, {cond['max_x']:.3f}] (minimum {needed}); the rest is an "
            "extrapolation of the curve, not evidence"
        )
    return {
        "against": str(cond["condition"]),
        "x": post.design.question.x,
        "y": post.design.question.y,
        "rope": rope,
        "n_checkpoints": int(x.size),
        "gap_mean": float(np.mean(gap)),
        "gap_hdi90": list(hdi(gap)),
        "p_shift": p_shift,
        "p_equivalent": p_eq,
        "decision": decision,
        "decision_if_supported": if_supported,
        "note": note,
        "unit": post.design.question.y_unit,
        "inside_support": inside,
        "extrapolated": int(((x < cond["min_x"]) | (x > cond["max_x"])).sum()),
        "checkpoints": [
            {
                "checkpoint": labels[i] if labels else str(i),
                "x": float(x[i]),
                "y": float(y[i]),
                "predicted": float(mean_pred[i]),
                "predictive_sd": float(sd_pred[i]),
                "z": float((y[i] - mean_pred[i]) / sd_pred[i]),
            }
            for i in range(x.size)
        ],
    }
