"""The fits a question needs and the comparisons made from them: the design of a question, the main fit
(reused from its folder when it answers the same question on the same data with the same request), the
one-shared-curve fits of the leave-one-run-out comparison (cached beside it), the contrasts per factor, and
their JSON. No printing here: progress goes through ``progress=`` callbacks, trouble through
:class:`~bayes_l2l.errors.UserInputError` and returned problem lists.

Used by the Python API (:mod:`bayes_l2l.api`), the CLI commands and the demo.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l.errors import UserInputError
from bayes_l2l.measurement import points_column
from bayes_l2l.posterior_files import (
    SHARED_PREFIX,
    check_posterior_folder,
    is_posterior_folder,
    remove_posterior,
)

DEFAULT_ROPE = 0.02
"""Region of practical equivalence of a curve gap (nats); mirrors evidence.DEFAULT_ROPE without importing jax."""
DEFAULT_OUT = Path("out")
"""Where default posterior folders go: ``out/<question>/`` (:func:`question_folder`)."""
Progress = Callable[[str], None] | None


def _say(progress: Progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def check_rope(rope: float | None, unit: str | None = "nats/token") -> float:
    """The ROPE to use: ``rope`` when given (a positive number in y's unit), else the default of ``unit``
    (:func:`bayes_l2l.units.default_rope`: 0.02 nats/token; docs/evidence.md)."""
    from bayes_l2l.units import default_rope

    unit = unit or "nats/token"
    if rope is None:
        return default_rope(unit)
    if rope <= 0 or not math.isfinite(rope):
        raise UserInputError(
            f"--rope {rope}: the ROPE must be a positive number in y's unit ({unit}), e.g. {default_rope(unit):g}"
        )
    return rope


# ------------------------------------------------------------------------------------------ the question
def build_question_design(
    table: Any,
    *,
    x: str,
    y: str,
    factors: list[str] | None = None,
    base: Mapping[str, str] | None = None,
    where: Mapping[str, str] | None = None,
    **question_options: Any,
) -> Any:
    """The design of a question on the LossTable ``table``; ``question_options`` are the other
    :class:`~bayes_l2l.design.Question` fields (unit, allow_mixed, max_x, min_fraction, ...)."""
    from bayes_l2l.design import Question, build_design
    from bayes_l2l.where import normalise_where

    question = Question(
        x=x,
        y=y,
        factors=list(dict.fromkeys(factors or [])),
        base=dict(base or {}),
        where=normalise_where(where),
        **question_options,
    )
    stray = [f for f in question.base if f not in question.factors]
    if stray:
        raise UserInputError(f"--base names {', '.join(stray)}, which is not a --factor of this fit")
    return build_design(table, question)


def question_folder(question: Any, root: Path = DEFAULT_OUT) -> Path:
    """The default posterior folder of a question: ``root/<y>_vs_<x>[_by_<factors>][_where_<k=v>]-<hash>``,
    so that two analyses never share one (the hash covers every field of the question, the name the
    readable part)."""
    from bayes_l2l.where import folder_label

    q = question.to_dict() if hasattr(question, "to_dict") else dict(question)
    parts = [f"{q['y']}_vs_{q['x']}"]
    if q.get("factors"):
        parts.append("by_" + "+".join(q["factors"]))
    if q.get("where"):
        parts.append("where_" + "+".join(folder_label(k, v) for k, v in sorted(q["where"].items())))
    name = re.sub(r"[^A-Za-z0-9=+._-]+", "-", "_".join(parts)).strip("-")[:120]
    digest = hashlib.sha1(json.dumps(q, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return root / f"{name}-{digest}"


# ------------------------------------------------------------------------------------------ reuse
def same_data(post: Any, design: Any) -> bool:
    """Same question, runs and points (x and y, and their standard errors, which the error model reads) as
    ``design``."""
    d = post.design
    if d.question.to_dict() != design.question.to_dict() or d.runs != design.runs:
        return False
    if len(d.points) != len(design.points):
        return False
    # design.json stores floats with 10 significant digits: compare at that precision
    if not (np.allclose(d.x, design.x, rtol=1e-9, atol=0) and np.allclose(d.y, design.y, rtol=1e-9, atol=0)):
        return False
    for col in ("x_se", "x_se_indep", "y_se", "y_se_indep"):
        if not np.allclose(points_column(d.points, col), points_column(design.points, col), rtol=1e-9, atol=0,
                           equal_nan=True):  # fmt: skip
            return False
    return True


def _model_key(config: Any) -> dict[str, Any]:
    """A model configuration without paper mode's fixed Ex / Ey (recomputed from each design's own points)."""
    key = config.to_dict()
    return {**key, "fixed_Ex": config.paper_mode, "fixed_Ey": config.paper_mode}


def same_fit(post: Any, design: Any, method: str, settings: dict[str, Any], config: Any = None) -> bool:
    """Whether a saved posterior answers the same question on the same points with the same sampler
    settings (those given in ``settings``: chains, draws, warmup, seed, ...) and model configuration
    (``config``; the library's default model when None)."""
    from bayes_l2l.approximation import APPROX_RUN_OFFSETS
    from bayes_l2l.model import ModelConfig

    if post.method != method or any(post.settings.get(k) != v for k, v in settings.items()):
        return False
    expected = config or ModelConfig()
    if method == "approx":  # fit(method="approx") records the run offsets it used
        expected = replace(expected, run_offsets=APPROX_RUN_OFFSETS)
    if _model_key(post.config) != _model_key(expected):
        return False
    return same_data(post, design)


def _load_if_posterior(folder: Path) -> Any | None:
    from bayes_l2l.posterior import load

    if not is_posterior_folder(folder):
        return None
    try:
        return load(folder)
    except (UserInputError, OSError, KeyError, ValueError):
        return None


def reusable_posterior(
    folder: Path, design: Any, method: str, settings: dict[str, Any], config: Any = None
) -> Any | None:
    """The posterior saved in ``folder`` if :func:`same_fit` holds, else None (also when none is saved)."""
    post = _load_if_posterior(folder)
    return post if post is not None and same_fit(post, design, method, settings, config) else None


def reusable_fit(folder: Path, design: Any, options: Any) -> Any | None:
    """The posterior saved in ``folder`` if it answers the same question on the same points and was fitted
    with the same request (:class:`~bayes_l2l.robust_fit.FitOptions`, budget, retries), else None."""
    from bayes_l2l.robust_fit import requested

    asked = requested(
        options.model_config(),
        options.user_settings(),
        method=options.method,
        seed=options.seed,
        retry=options.retry,
        budget_s=options.budget_s,
    )
    hit = _load_if_posterior(folder)
    if hit is None:
        return None
    same = hit.settings.get("requested") == json.loads(json.dumps(asked, default=float))
    return hit if same and same_data(hit, design) else None


def fit_question(
    design: Any,
    options: Any = None,
    *,
    output: Path | None = None,
    overwrite: bool = False,
    progress: Progress = None,
) -> tuple[Any, bool]:
    """The robust fit of ``design`` with ``options`` (:class:`~bayes_l2l.robust_fit.FitOptions`), saved in
    ``output`` when given — or the posterior already there, when it is the same fit. Returns (posterior,
    reused). Refuses to replace another posterior in ``output`` unless ``overwrite`` (checked before the
    work starts)."""
    from bayes_l2l.robust_fit import FitOptions, fit_design_with

    options = options or FitOptions()
    if output is not None:
        output = Path(output)
        hit = reusable_fit(output, design, options)
        if hit is not None:
            _say(progress, f"reusing the posterior in {output} (same question, data and options)")
            return hit, True
        if is_posterior_folder(output) and not overwrite:
            raise UserInputError(
                f"{output}: holds a posterior of another question, data or options; choose another -o folder "
                "or pass --overwrite"
            )
        check_posterior_folder(output, overwrite=overwrite)
    post = fit_design_with(design, options, progress=progress)
    if output is not None:
        if output.is_dir():
            remove_posterior(
                output
            )  # with the replaced fit's shared_<F>/ caches; the user's other files stay
        post.save(output, overwrite=True)
        _say(progress, f"posterior written to {output}")
    return post, False


# ------------------------------------------------------------------------------------------ shared fits
SHARED_DRAWS = 500
"""Draws per chain of the one-shared-curve fit: it serves only the leave-one-run-out elpd (PSIS on 4 x 500 draws),
so it costs about half the main fit (benchmarks/RESULTS.md, robust defaults)."""


def shared_settings(post: Any) -> dict[str, Any]:
    """Sampler settings of the one-shared-curve fit: the main fit's kept attempt (the geometry that passed on
    the same points), half its warm-up and :data:`SHARED_DRAWS` draws per chain."""
    from bayes_l2l.infer import LEGACY_MASS

    s = post.settings
    return {
        "chains": int(s.get("chains", 4)),
        "draws": min(int(s.get("draws", 1000)), SHARED_DRAWS),
        "warmup": max(int(s.get("warmup", 1000)) // 2, 100),
        "seed": int(s.get("seed", 0)),
        "target_accept": float(s.get("target_accept", 0.9)),
        "max_tree_depth": int(s.get("max_tree_depth", 10)),
        "mass": s.get("mass", LEGACY_MASS),
    }


def fit_like(post: Any, design: Any, *, progress: bool = False) -> Any:
    """Fit ``design`` with the model configuration of ``post`` and :func:`shared_settings`."""
    from bayes_l2l.infer import fit, paper_mode_config

    config = post.config
    if config.paper_mode:
        config, _ = paper_mode_config(design, replace(config, fixed_Ex=None, fixed_Ey=None))
    return fit(design, config, method=post.method, progress=progress, **shared_settings(post))


def shared_fit(post: Any, factor: str, cache: Path | None, *, progress: Progress = None) -> tuple[Any, bool]:
    """The fit of the same question without ``factor`` (one shared curve over its levels), and whether it
    came from ``cache/shared_<factor>/`` (written there after fitting, when ``cache`` is given)."""
    design = post.design.without_factor(factor)
    folder = None if cache is None else Path(cache) / f"{SHARED_PREFIX}{factor}"
    if folder is not None:
        settings = shared_settings(post) if post.method == "nuts" else {}
        hit = reusable_posterior(folder, design, post.method, settings, post.config)
        if hit is not None:
            return hit, True
    _say(progress, f"fitting the shared-curve model without {factor} (for the LOO comparison)")
    shared = fit_like(post, design)
    if folder is not None:
        shared.save(folder, overwrite=True)
    return shared, False


# ------------------------------------------------------------------------------------------ comparisons
def compare_factors(
    post: Any,
    factors: list[str],
    *,
    rope: float | None = None,
    loo: bool = True,
    cache: Path | None = None,
    progress: Progress = None,
    min_support_points: int | None = None,
    min_support_fraction: float | None = None,
    kfold_budget_s: float | None = None,
) -> tuple[dict[str, list[Any]], dict[str, dict[str, Any]]]:
    """``evidence.compare_factor`` for each factor; with ``loo`` also the leave-one-run-out comparison
    against the shared-curve fit (cached in ``cache``). Returns (contrasts per factor, shared-fit info).
    ``min_support_points`` / ``min_support_fraction``: the common support a decision needs (defaults in
    :mod:`bayes_l2l.support`). Where PSIS-LOO is unreliable, K-fold by run (:mod:`bayes_l2l.kfold`) takes its
    place if its refits fit in ``kfold_budget_s`` (default: the fit budget, 300 s)."""
    from bayes_l2l.evidence import compare_factor, loo_runs, loo_unavailable
    from bayes_l2l.support import reconcile

    rope = check_rope(rope, post.design.question.y_unit)
    support_options = check_support_options(min_support_points, min_support_fraction)
    factors = list(dict.fromkeys(factors))
    unknown = [f for f in factors if f not in post.design.factor_levels]
    if unknown:
        raise UserInputError(
            f"{', '.join(unknown)}: not a factor of this posterior (its factors: "
            f"{', '.join(post.design.factor_levels) or 'none'}); refit with `bayes-l2l fit ... --factor {unknown[0]}`"
        )
    if not factors:
        raise UserInputError("no factor to compare: pass --factor F (a factor of the posterior)")
    results: dict[str, list[Any]] = {}
    shared_info: dict[str, dict[str, Any]] = {}
    # runs the separate-curves fit cannot predict (Pareto k > 0.7) make the elpd unavailable whatever the
    # shared fit says: then the shared fit is not run at all
    unavailable = None
    if loo:
        with warnings.catch_warnings():  # the note below says it, once
            warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
            unavailable = loo_unavailable(loo_runs(post)["pareto_k"], post.design.runs, "separate-curves")
    for f in factors:
        shared = None
        if loo and unavailable is None:
            shared, cached = shared_fit(post, f, cache, progress=progress)
            shared_info[f] = {
                "cached": cached,
                "folder": None if cache is None else str(Path(cache) / f"{SHARED_PREFIX}{f}"),
                "settings": shared_settings(post) if post.method == "nuts" else None,
                "diagnostics": diagnostics_summary(shared.diagnostics),
            }
        elif loo:
            shared_info[f] = {"cached": False, "folder": None, "not_fitted": unavailable}
        with warnings.catch_warnings():
            # arviz warns per fit about Pareto k > 0.6; the contrast's elpd_note states the largest k
            warnings.filterwarnings(
                "ignore", message="Estimated shape parameter of Pareto", category=UserWarning
            )
            results[f] = compare_factor(post, f, rope=rope, shared=shared, **support_options)
        if loo and results[f] and results[f][0].elpd_diff is None:
            psis_note = unavailable or results[f][0].elpd_note or ""
            if psis_note.startswith("not available: leave-one-run-out PSIS"):
                kf = run_kfold(post, f, kfold_budget_s, progress)
                shared_info.setdefault(f, {})["kfold"] = {k: v for k, v in kf.items() if k != "problems"}
                for c in results[f]:
                    c.elpd_diff, c.elpd_se = kf["elpd_diff"], kf["elpd_se"]
                    c.elpd_note = kf["note"] if kf["elpd_diff"] is not None else f"{psis_note}; {kf['note']}"
        shared_problems = shared_info.get(f, {}).get("diagnostics", {}).get("problems") or []
        for c in results[f]:
            if unavailable is not None and c.elpd_diff is None and not c.elpd_note:
                c.elpd_note = unavailable
            if shared_problems and c.elpd_diff is not None and "K-fold" not in (c.elpd_note or ""):
                c.elpd_note = (
                    f"{c.elpd_note}; UNRELIABLE: the one-shared-curve fit failed its diagnostics "
                    f"({'; '.join(shared_problems)}) — expected when the factor really shifts the curve, "
                    "since one curve then misfits"
                )
            c.reconciliation = reconcile(c.decision, c.elpd_diff, c.elpd_se, c.elpd_note)
    return results, shared_info


def run_kfold(post: Any, factor: str, budget_s: float | None, progress: Progress) -> dict[str, Any]:
    """K-fold by run for ``factor`` (:func:`bayes_l2l.kfold.kfold_compare`) with the shared fit's settings."""
    from bayes_l2l.kfold import kfold_compare
    from bayes_l2l.sampler_policy import DEFAULT_BUDGET_S

    return kfold_compare(
        post,
        factor,
        budget_s=DEFAULT_BUDGET_S if budget_s is None else budget_s,
        fit=lambda p, d: fit_like(p, d),
        progress=progress,
    )


def check_support_options(points: int | None, fraction: float | None) -> dict[str, Any]:
    """The common-support minimum as keyword arguments of ``compare_factor`` (defaults where None)."""
    from bayes_l2l.support import MIN_SUPPORT_FRACTION, MIN_SUPPORT_POINTS

    points = MIN_SUPPORT_POINTS if points is None else points
    fraction = MIN_SUPPORT_FRACTION if fraction is None else fraction
    if points < 1 or not 0 <= fraction <= 1:
        raise UserInputError(
            f"--min-support-points {points} / --min-support-fraction {fraction}: give at least 1 checkpoint and "
            "a fraction in [0, 1]"
        )
    return {"min_support_points": int(points), "min_support_fraction": float(fraction)}


def diagnostics_summary(dg: dict[str, Any]) -> dict[str, Any]:
    """The diagnostics every JSON output carries (method, R-hat, ESS, divergences, ok, problems, attempts)."""
    keys = ("method", "max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "ok", "problems", "note")
    keys += ("attempts",)
    return {k: dg.get(k) for k in keys if k in dg or k in ("max_rhat", "min_ess_bulk", "divergences", "ok")}


def evidence_payload(
    post: Any,
    compares: dict[str, list[Any]],
    rope: float,
    shared_info: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON of `compare`: question axes, ROPE, contrasts per factor, ranking, diagnostics."""
    from bayes_l2l.evidence import rank_factors
    from bayes_l2l.report import is_simulated

    d = post.design
    factors = []
    for f, contrasts in compares.items():
        factors.append(
            {
                "factor": f,
                "base": d.factor_levels[f][0],
                "contrasts": [c.to_dict() for c in contrasts],
                "predictive": predictive_summary(contrasts),
                "shared_fit": (shared_info or {}).get(f),
            }
        )
    out: dict[str, Any] = {
        "x": d.question.x,
        "y": d.question.y,
        "unit": d.question.y_unit,
        "x_unit": d.question.x_unit,
        "y_unit": d.question.y_unit,
        "rope": rope,
        "simulated": is_simulated(post),
        "method": post.method,
        "n_points": len(d.points),
        "n_runs": d.n_runs,
        "diagnostics": diagnostics_summary(post.diagnostics),
        "attempts": post.settings.get("attempts", []),
        "design_warnings": d.warnings[d.n_import_warnings :],
        "measurement_error": post.settings.get("measurement_error"),
    }
    if len(factors) == 1:
        out.update({k: factors[0][k] for k in ("factor", "base", "contrasts")})
    out["factors"] = factors
    if len(compares) > 1:
        out["ranking"] = rank_factors(compares).to_dict(orient="records")
    return out


def predictive_summary(contrasts: list[Any]) -> dict[str, Any] | None:
    """The factor's out-of-sample comparison, once: it is per factor (separate curves for all its levels vs
    one shared curve), not per level, although every contrast carries a copy."""
    if not contrasts:
        return None
    c = contrasts[0]
    return {
        "scope": "per factor: separate curves for every level vs one shared curve, leave-one-run-out",
        "elpd_diff": c.elpd_diff,
        "elpd_se": c.elpd_se,
        "note": c.elpd_note,
    }


def fit_problems(
    post: Any, shared_info: dict[str, dict[str, Any]] | None = None
) -> tuple[list[str], list[str]]:
    """(problems, warnings): the posterior's diagnostic problems, on which the decisions rest (the CLI exits
    3 on them), and the auxiliary one-shared-curve fits' problems, which only make the elpd comparison
    unreliable (each contrast's elpd_note says so; see :func:`compare_factors`)."""
    problems = list(post.diagnostics.get("problems", []))
    notes = [
        f"shared-curve fit without {f}: {p} (its elpd is marked unreliable)"
        for f, info in (shared_info or {}).items()
        for p in (info.get("diagnostics") or {}).get("problems") or []
    ]
    return problems, notes


# ------------------------------------------------------------------------------------------ new checkpoints
def observed_axes(table: Any, q: Any, *, require_y: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """x and y series (run, checkpoint, value, unit, estimator) of a table in the units of question ``q``
    (exact nats <-> bits conversion where the question allows it); without ``require_y`` a table that lacks
    y gives an empty y frame."""
    from bayes_l2l.design import axis_values

    xs = axis_values(table, q, "x")
    try:
        ys = axis_values(table, q, "y")
    except UserInputError:
        if require_y:
            raise
        ys = pd.DataFrame({"run": [], "checkpoint": [], "value": []})
    return xs, ys


def new_points(xs: pd.DataFrame, ys: pd.DataFrame, how: str) -> pd.DataFrame:
    """x and y series (:func:`observed_axes`) joined per (run, checkpoint) (``how``: pandas' merge) into a
    design's point columns: run, checkpoint, x, x_se, x_se_indep, y, y_se, y_se_indep."""
    from bayes_l2l.design import axis_columns

    def part(series: pd.DataFrame, axis: str) -> pd.DataFrame:
        names = {
            k: v for k, v in axis_columns(axis).items() if k in ("value", "stderr", "stderr_independent")
        }
        out = series.reindex(columns=["run", "checkpoint", *names]).rename(columns=names)
        return out.astype({c: float for c in names.values()})

    return part(xs, "x").merge(part(ys, "y"), on=["run", "checkpoint"], how=how)


def read_new_checkpoints(
    post: Any, table: Any, where: Mapping[str, str] | None = None, *, allow_mixed: bool = False
) -> pd.DataFrame:
    """x and y (the posterior's metrics and unit) per checkpoint of a new loss table (a LossTable or the
    path of one): run, checkpoint, x, y, and their standard errors as a design's points have them (x_se,
    x_se_indep, y_se, y_se_indep; NaN where the table has none). Refuses losses measured with other estimators than the fit's unless
    ``allow_mixed``."""
    from bayes_l2l.table import LossTable

    q = post.design.question
    if not isinstance(table, LossTable):
        table = LossTable.read(table)
    name = table.source
    if where:
        table = table.where(**where)
    xs, ys = observed_axes(table, q)
    if not (allow_mixed or q.allow_mixed):
        for axis, metric, series in (("x", q.x, xs), ("y", q.y, ys)):
            fitted = set(post.design.points[f"{axis}_estimator"].astype(str))
            new = set(series["estimator"].astype(str)) - fitted
            if new:
                raise UserInputError(
                    f"{name}: {metric} was measured with estimator(s) {', '.join(sorted(new))}, the fit's "
                    f"with {', '.join(sorted(fitted))}; losses of different estimators are not comparable "
                    "(windows, context, normalisation). Measure the new checkpoints the same way, or pass "
                    "--allow-mixed if you accept that"
                )
    pts = new_points(xs, ys, how="inner")
    if pts.empty:
        raise UserInputError(
            f"{name}: no checkpoint has both x={q.x} and y={q.y} in {q.units_label()} (the posterior's axes); "
            "add those metrics to the table"
        )
    return pts


def test_against_curve(
    post: Any,
    table: Any,
    *,
    against: Mapping[str, str] | None = None,
    where: Mapping[str, str] | None = None,
    rope: float | None = None,
    allow_mixed: bool = False,
) -> dict[str, Any]:
    """Do the checkpoints of ``table`` lie on the curve of the condition ``against`` (default: the base)? The
    JSON of `test`: gap with interval, P(shift), decision, per-checkpoint z, diagnostics."""
    from bayes_l2l.evidence import test_new_checkpoints
    from bayes_l2l.measurement import new_point_variances

    rope = check_rope(rope, post.design.question.y_unit)
    pts = read_new_checkpoints(post, table, where, allow_mixed=allow_mixed)
    labels = [f"{r}@{c}" for r, c in zip(pts["run"], pts["checkpoint"], strict=True)]
    res = test_new_checkpoints(
        post,
        pts["x"].to_numpy(float),
        pts["y"].to_numpy(float),
        levels=dict(against or {}),
        rope=rope,
        labels=labels,
        known=new_point_variances(post, pts),
    )
    res["diagnostics"] = diagnostics_summary(post.diagnostics)
    res["table"] = str(getattr(table, "source", table))
    return res


def posterior_report(post: Any) -> dict[str, Any]:
    """JSON-able summary of a fit: question, design sizes, parameters, diagnostics, identification."""
    from bayes_l2l.diagnostics import prior_check, summary_table

    summ = summary_table(post)
    d = post.design
    return {
        "question": d.question.to_dict(),
        "method": post.method,
        "settings": post.settings,
        "n_points": len(d.points),
        "n_runs": d.n_runs,
        "conditions": d.conditions.to_dict(orient="records"),
        "factor_levels": d.factor_levels,
        "dropped": d.dropped,
        "warnings": d.warnings,
        "parameters": summ.reset_index(names="name").to_dict(orient="records"),
        "diagnostics": post.diagnostics,
        "prior_check": prior_check(post),
        "wall_time_s": post.wall_time_s,
    }
