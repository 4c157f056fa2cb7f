"""`bayes-l2l compare | test | predict | report | demo`: evidence from a posterior, for humans and as JSON.

The functions here are also the Python API of these commands: :func:`compare_factors` (with the cached
"one shared curve" fits that the out-of-sample comparison needs), :func:`evidence_payload`,
:func:`read_new_checkpoints`, :func:`reusable_posterior`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.markup import escape

from bayes_l2l.cli.common import (
    app,
    compact_table,
    console,
    err_console,
    parse_assignments,
    print_json,
    print_table,
)
from bayes_l2l.cli.fit_options import with_fit_options
from bayes_l2l.errors import DiagnosticsError, UserInputError, check_output_file
from bayes_l2l.posterior_files import (
    SHARED_PREFIX,
    check_posterior_folder,
    is_posterior_folder,
    remove_posterior,
)

DEFAULT_ROPE = 0.02  # mirrors evidence.DEFAULT_ROPE without importing jax at CLI start-up


# ------------------------------------------------------------------------------------------ posteriors
def _model_key(config: Any) -> dict[str, Any]:
    """A model configuration without paper mode's fixed Ex / Ey (recomputed from each design's own points)."""
    key = config.to_dict()
    return {**key, "fixed_Ex": config.paper_mode, "fixed_Ey": config.paper_mode}


def same_fit(post: Any, design: Any, method: str, settings: dict[str, Any], config: Any = None) -> bool:
    """Whether a saved posterior answers the same question on the same points with the same sampler
    settings (those given in ``settings``: chains, draws, warmup, seed, ...) and model configuration
    (``config``; the library's default model when None)."""
    from dataclasses import replace

    from bayes_l2l.infer import APPROX_RUN_OFFSETS
    from bayes_l2l.model import ModelConfig

    if post.method != method or any(post.settings.get(k) != v for k, v in settings.items()):
        return False
    expected = config or ModelConfig()
    if method == "approx":  # fit(method="approx") records the run offsets it used
        expected = replace(expected, run_offsets=APPROX_RUN_OFFSETS)
    if _model_key(post.config) != _model_key(expected):
        return False
    return same_data(post, design)


def reusable_posterior(
    folder: Path, design: Any, method: str, settings: dict[str, Any], config: Any = None
) -> Any | None:
    """The posterior saved in ``folder`` if :func:`same_fit` holds, else None (also when none is saved)."""
    from bayes_l2l.infer import load

    if not is_posterior_folder(folder):
        return None
    try:
        post = load(folder)
    except (UserInputError, OSError, KeyError, ValueError):
        return None
    return post if same_fit(post, design, method, settings, config) else None


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


def shared_fit(post: Any, factor: str, cache: Path | None, *, progress: bool = False) -> tuple[Any, bool]:
    """The fit of the same question without ``factor`` (one shared curve over its levels), and whether it
    came from ``cache/shared_<factor>/`` (written there after fitting, when ``cache`` is given)."""
    design = post.design.without_factor(factor)
    folder = None if cache is None else cache / f"{SHARED_PREFIX}{factor}"
    if folder is not None:
        settings = shared_settings(post) if post.method == "nuts" else {}
        hit = reusable_posterior(folder, design, post.method, settings, post.config)
        if hit is not None:
            return hit, True
    with err_console.status(
        f"fitting the shared-curve model without {escape(factor)} (for the LOO comparison)"
    ):
        shared = fit_like(post, design, progress=progress)
    if folder is not None:
        shared.save(folder, overwrite=True)
    return shared, False


def compare_factors(
    post: Any,
    factors: list[str],
    *,
    rope: float = DEFAULT_ROPE,
    loo: bool = True,
    cache: Path | None = None,
    progress: bool = False,
) -> tuple[dict[str, list[Any]], dict[str, dict[str, Any]]]:
    """``evidence.compare_factor`` for each factor; with ``loo`` also the leave-one-run-out comparison
    against the shared-curve fit (cached in ``cache``). Returns (contrasts per factor, shared-fit info)."""
    from bayes_l2l.evidence import compare_factor

    if rope <= 0 or not math.isfinite(rope):
        raise UserInputError(f"--rope {rope}: the ROPE must be a positive number of nats, e.g. 0.02")
    unknown = [f for f in factors if f not in post.design.factor_levels]
    if unknown:
        raise UserInputError(
            f"{', '.join(unknown)}: not a factor of this posterior (its factors: "
            f"{', '.join(post.design.factor_levels) or 'none'}); refit with `bayes-l2l fit ... --factor {unknown[0]}`"
        )
    if not factors:
        raise UserInputError("no factor to compare: pass --factor F (a factor of the posterior)")
    from bayes_l2l.evidence import loo_runs, loo_unavailable

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
                "folder": None if cache is None else str(cache / f"{SHARED_PREFIX}{f}"),
                "settings": shared_settings(post) if post.method == "nuts" else None,
                "diagnostics": _diag(shared.diagnostics),
            }
        elif loo:
            shared_info[f] = {"cached": False, "folder": None, "not_fitted": unavailable}
        with warnings.catch_warnings():
            # arviz warns per fit about Pareto k > 0.6; the contrast's elpd_note states the largest k
            warnings.filterwarnings(
                "ignore", message="Estimated shape parameter of Pareto", category=UserWarning
            )
            results[f] = compare_factor(post, f, rope=rope, shared=shared)
        shared_problems = shared_info.get(f, {}).get("diagnostics", {}).get("problems") or []
        for c in results[f]:
            if unavailable is not None:
                c.elpd_note = unavailable
            if shared_problems and c.elpd_diff is not None:
                c.elpd_note = (
                    f"{c.elpd_note}; UNRELIABLE: the one-shared-curve fit failed its diagnostics "
                    f"({'; '.join(shared_problems)}) — expected when the factor really shifts the curve, "
                    "since one curve then misfits"
                )
    return results, shared_info


# ------------------------------------------------------------------------------------------ payloads
def _diag(dg: dict[str, Any]) -> dict[str, Any]:
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
                "shared_fit": (shared_info or {}).get(f),
            }
        )
    out: dict[str, Any] = {
        "x": d.question.x,
        "y": d.question.y,
        "unit": d.question.unit,
        "rope": rope,
        "simulated": is_simulated(post),
        "method": post.method,
        "n_points": len(d.points),
        "n_runs": d.n_runs,
        "diagnostics": _diag(post.diagnostics),
        "attempts": post.settings.get("attempts", []),
    }
    if len(factors) == 1:
        out.update({k: factors[0][k] for k in ("factor", "base", "contrasts")})
    out["factors"] = factors
    if len(compares) > 1:
        out["ranking"] = rank_factors(compares).to_dict(orient="records")
    return out


def fits_ok(post: Any, shared_info: dict[str, dict[str, Any]] | None = None) -> tuple[bool, list[str]]:
    """Whether the posterior passed diagnostics, and its problems.

    The decisions rest on this posterior: its problems fail the command (exit 3). Problems of the auxiliary
    one-shared-curve fits only make the elpd comparison unreliable: they are printed as warnings and
    written into each contrast's elpd_note (see :func:`compare_factors`), not turned into a failure.
    """
    problems = list(post.diagnostics.get("problems", []))
    for f, info in (shared_info or {}).items():
        for p in (info.get("diagnostics") or {}).get("problems") or []:
            err_console.print(
                f"[yellow]warning:[/] shared-curve fit without {escape(f)}: {escape(p)} (its elpd is marked unreliable)",
                highlight=False,
                soft_wrap=True,
            )
    return not problems, problems


# ------------------------------------------------------------------------------------------ rendering
def say(text: str) -> None:
    """A message line: no highlighting, no hard wrapping (paths and names stay whole)."""
    console.print(text, highlight=False, soft_wrap=True)


def note(text: str) -> None:
    """A progress message on stderr (stdout stays clean for --json)."""
    err_console.print(text, highlight=False, soft_wrap=True)


def _num(v: Any, fmt: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _interval(lohi: Any, fmt: str = ".3f") -> str:
    return f"[{_num(lohi[0], fmt)}, {_num(lohi[1], fmt)}]"


def _decision_style(decision: str) -> str:
    return {"shift": "bold red", "no practical shift": "bold green"}.get(decision, "yellow")


def print_compare(post: Any, compares: dict[str, list[Any]], rope: float) -> None:
    """Rich tables of the contrasts (and the ranking when there are several factors)."""
    from bayes_l2l.evidence import rank_factors
    from bayes_l2l.report import is_simulated

    q = post.design.question
    if is_simulated(post):
        say("[bold magenta]SIMULATED DATA[/] (estimator 'simulated'): not a measurement of real models")
    if post.diagnostics.get("attempts"):
        style = "green" if post.diagnostics.get("ok") else "red"
        say(f"sampler: [{style}]{escape(post.diagnostics['attempts'])}[/]")
    for f, contrasts in compares.items():
        table = compact_table(
            f"{escape(f)}: curve gap level − base {escape(str(post.design.factor_levels[f][0]))} "
            f"({escape(q.y)} vs {escape(q.x)}, nats), ROPE {rope:g}"
        )
        for col in ("level", "x support", "mean gap [90% HDI]", "max |gap| [90% HDI]", "P(shift)"):
            table.add_column(col, justify="left" if col == "level" else "right")
        for col in ("decision", "elpd diff ± se"):
            table.add_column(col)
        for c in contrasts:
            elpd = "—" if c.elpd_diff is None else f"{_num(c.elpd_diff, '.1f')} ± {_num(c.elpd_se, '.1f')}"
            table.add_row(
                escape(c.level),
                _interval(c.support, ".3f"),
                f"{_num(c.gap_mean, '+.3f')} {_interval(c.gap_hdi90, '+.3f')}",
                f"{_num(c.gap_maxabs)} {_interval(c.gap_maxabs_hdi90)}",
                _num(c.p_shift, ".2f"),
                f"[{_decision_style(c.decision)}]{escape(c.decision)}[/]",
                elpd,
            )
        print_table(table)
        shown: set[str] = set()  # a note shared by the factor's levels is printed once
        for c in contrasts:
            if c.matched_on:
                say(
                    f"  {escape(c.level)} vs {escape(c.base)}: matched on "
                    + escape(", ".join(f"{k}={v}" for k, v in c.matched_on.items()))
                )
            for note in (c.note, c.elpd_note):
                if note and note not in shown:
                    shown.add(note)
                    say(f"  [dim]{escape(c.level)}: {escape(note)}[/]")
            weak = [k for k, v in c.params.items() if v.get("identified") in ("weak", "not identified")]
            if weak:
                say(
                    f"  [yellow]{escape(c.level)}: {', '.join(weak)} weakly or not identified "
                    "(the prior sets those intervals); the curve gap is the identified quantity[/]"
                )
    if len(compares) > 1:
        ranking = rank_factors(compares)
        table = compact_table("factor ranking by largest gap max |Δ| (nats)")
        for col in ("factor", "level", "max |gap|", "90% HDI", "decision"):
            table.add_column(col)
        for row in ranking.itertuples():
            table.add_row(
                escape(str(row.factor)),
                escape(str(row.level)) if isinstance(row.level, str) else "—",
                _num(row.gap_maxabs),
                _interval((row.lo, row.hi)),
                f"[{_decision_style(str(row.decision))}]{escape(str(row.decision))}[/]",
            )
        print_table(table)


def report_problems(problems: list[str], where: str) -> None:
    """Print diagnostic problems on stderr and raise DiagnosticsError (exit 3) if there are any."""
    if problems:
        for p in problems:
            err_console.print(f"[red]diagnostic problem:[/] {escape(p)}", highlight=False, soft_wrap=True)
        raise DiagnosticsError(
            f"{len(problems)} sampler problem(s); the results above are in doubt ({where})"
        )


# ------------------------------------------------------------------------------------------ compare
def reusable_fit(folder: Path, design: Any, options: Any) -> Any | None:
    """The posterior saved in ``folder`` if it answers the same question on the same points and was fitted
    with the same request (options, budget, retries), else None."""
    import json

    from bayes_l2l.robust_fit import requested

    asked = requested(
        options.model_config(),
        options.user_settings(),
        method=options.method,
        seed=options.seed,
        retry=options.retry,
        budget_s=options.budget_s,
    )
    from bayes_l2l.infer import load

    if not is_posterior_folder(folder):
        return None
    try:
        hit = load(folder)
    except (UserInputError, OSError, KeyError, ValueError):
        return None
    same = hit.settings.get("requested") == json.loads(json.dumps(asked, default=float))
    return hit if same and same_data(hit, design) else None


def same_data(post: Any, design: Any) -> bool:
    """Same question, runs and points (x and y) as ``design``."""
    d = post.design
    if d.question.to_dict() != design.question.to_dict() or d.runs != design.runs:
        return False
    if len(d.points) != len(design.points):
        return False
    # design.json stores floats with 10 significant digits: compare at that precision
    return bool(
        np.allclose(d.x, design.x, rtol=1e-9, atol=0) and np.allclose(d.y, design.y, rtol=1e-9, atol=0)
    )


def fit_table_for_compare(
    table_path: Path,
    *,
    x: str | None,
    y: str | None,
    factors: list[str],
    base: list[str] | None,
    where: list[str] | None,
    fit_opts: Any,
    output: Path,
    overwrite: bool,
) -> Any:
    """Fit a table for `compare TABLE` (the options of `fit`), reusing ``output`` when it holds the same fit;
    refuses to replace another posterior there unless ``overwrite``."""
    from bayes_l2l.cli.fit_cmds import build_question_design, fit_with_progress

    if not x or not y:
        raise UserInputError(
            f"{table_path}: not a posterior folder (no fit.json), so compare reads it as a loss table and "
            "fits it first, which needs --x and --y (or pass a posterior folder written by `bayes-l2l fit`)"
        )
    design = build_question_design(
        table_path, x=x, y=y, factors=factors, base=base, where=where, fit_opts=fit_opts
    )
    hit = reusable_fit(output, design, fit_opts.fit_options())
    if hit is not None:
        note(f"reusing the posterior in {escape(str(output))} (same question, data and options)")
        return hit
    if is_posterior_folder(output) and not overwrite:
        raise UserInputError(
            f"{output}: holds a posterior of another question, data or options; choose another -o folder "
            "or pass --overwrite"
        )
    check_posterior_folder(output, overwrite=overwrite)
    post = fit_with_progress(design, fit_opts)
    if output.is_dir():
        remove_posterior(output)  # with the replaced fit's shared_<F>/ caches; the user's other files stay
    post.save(output, overwrite=True)
    note(f"posterior written to {escape(str(output))}")
    return post


@app.command("compare")
@with_fit_options
def compare_command(
    source: Annotated[
        Path, typer.Argument(help="Posterior folder (from `fit`), or a loss table to fit first.")
    ],
    factor: Annotated[
        list[str], typer.Option("--factor", help="Factor to compare (repeatable: also ranks).")
    ],
    rope: Annotated[float, typer.Option(help="Region of practical equivalence, nats.")] = DEFAULT_ROPE,
    loo: Annotated[
        bool,
        typer.Option("--loo/--no-loo", help="Leave-one-run-out elpd vs one shared curve (fits it once)."),
    ] = True,
    x: Annotated[str | None, typer.Option("--x", help="x metric (when SOURCE is a table).")] = None,
    y: Annotated[str | None, typer.Option("--y", help="y metric (when SOURCE is a table).")] = None,
    base: Annotated[list[str] | None, typer.Option("--base", help="Base level FACTOR=LEVEL (table).")] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Keep rows COLUMN=VALUE (table).")
    ] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Posterior folder to write when SOURCE is a table.")
    ] = Path("out/posterior"),
    overwrite: Annotated[bool, typer.Option(help="Replace another posterior in --output.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the evidence as JSON.")] = False,
    fit_opts: Any = None,
) -> int:
    """Does changing FACTOR shift the loss-to-loss curve? Curve gaps, decisions and LOO by run. SOURCE is a
    posterior folder, or a loss table that is fitted first with every option of `fit` (those options apply
    only then)."""
    from bayes_l2l.infer import load

    if not source.exists():
        raise UserInputError(f"{source}: no such posterior folder or loss table")
    if is_posterior_folder(source):
        given = [name for name, v in (("--x", x), ("--y", y), ("--base", base), ("--where", where)) if v]
        if given:
            raise UserInputError(
                f"{source}: is a posterior folder, which fixes its own question; {', '.join(given)} apply only "
                "when SOURCE is a loss table (refit with `bayes-l2l fit` to change the question)"
            )
        post = load(source)
        cache = source
    else:
        post = fit_table_for_compare(
            source,
            x=x,
            y=y,
            factors=list(dict.fromkeys(factor)),
            base=base,
            where=where,
            fit_opts=fit_opts,
            output=output,
            overwrite=overwrite,
        )
        cache = output
    factors = list(dict.fromkeys(factor))
    compares, shared_info = compare_factors(post, factors, rope=rope, loo=loo, cache=cache)
    payload = evidence_payload(post, compares, rope, shared_info)
    if json_out:
        print_json(payload)
    else:
        print_compare(post, compares, rope)
    ok, problems = fits_ok(post, shared_info)
    report_problems(problems, str(cache))
    return 0


# ------------------------------------------------------------------------------------------ test
def read_new_checkpoints(
    post: Any, table_path: Path, where: list[str] | None = None, *, allow_mixed: bool = False
) -> pd.DataFrame:
    """x and y (the posterior's metrics and unit) per checkpoint of a new loss table: run, checkpoint, x, y.
    Refuses losses measured with other estimators than the fit's unless ``allow_mixed``."""
    from bayes_l2l.table import LossTable

    q = post.design.question
    table = LossTable.read(table_path)
    filters = parse_assignments(where, "--where")
    if filters:
        table = table.where(**filters)
    xs = table.metric_series(q.x, allow_mixed=q.allow_mixed, unit=q.unit)
    ys = table.metric_series(q.y, allow_mixed=q.allow_mixed, unit=q.unit)
    if not (allow_mixed or q.allow_mixed):
        for axis, metric, series in (("x", q.x, xs), ("y", q.y, ys)):
            fitted = set(post.design.points[f"{axis}_estimator"].astype(str))
            new = set(series["estimator"].astype(str)) - fitted
            if new:
                raise UserInputError(
                    f"{table_path}: {metric} was measured with estimator(s) {', '.join(sorted(new))}, the fit's "
                    f"with {', '.join(sorted(fitted))}; losses of different estimators are not comparable "
                    "(windows, context, normalisation). Measure the new checkpoints the same way, or pass "
                    "--allow-mixed if you accept that"
                )
    pts = (
        xs[["run", "checkpoint", "value"]]
        .rename(columns={"value": "x"})
        .merge(ys[["run", "checkpoint", "value"]].rename(columns={"value": "y"}), on=["run", "checkpoint"])
    )
    if pts.empty:
        raise UserInputError(
            f"{table_path}: no checkpoint has both x={q.x} and y={q.y} in {q.unit} (the posterior's axes); "
            "add those metrics to the table"
        )
    return pts


@app.command("test")
def test_command(
    posterior: Annotated[Path, typer.Argument(help="Posterior folder (from `fit`).")],
    new_table: Annotated[Path, typer.Argument(help="Loss table with the new checkpoints.")],
    against: Annotated[
        list[str] | None,
        typer.Option("--against", help="Curve to test against, FACTOR=LEVEL (default: base)."),
    ] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="Keep new rows COLUMN=VALUE.")] = None,
    rope: Annotated[float, typer.Option(help="Region of practical equivalence, nats.")] = DEFAULT_ROPE,
    allow_mixed: Annotated[
        bool, typer.Option(help="Accept new losses measured with another estimator than the fit's.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> int:
    """Do new checkpoints lie on the base (or a given) curve? Gap with interval, P(shift), decision, z."""
    from bayes_l2l.evidence import test_new_checkpoints
    from bayes_l2l.infer import load

    if rope <= 0 or not math.isfinite(rope):
        raise UserInputError(f"--rope {rope}: the ROPE must be a positive number of nats, e.g. 0.02")
    post = load(posterior)
    pts = read_new_checkpoints(post, new_table, where, allow_mixed=allow_mixed)
    labels = [f"{r}@{c}" for r, c in zip(pts["run"], pts["checkpoint"], strict=True)]
    res = test_new_checkpoints(
        post,
        pts["x"].to_numpy(float),
        pts["y"].to_numpy(float),
        levels=parse_assignments(against, "--against"),
        rope=rope,
        labels=labels,
    )
    res["diagnostics"] = _diag(post.diagnostics)
    res["table"] = str(new_table)
    if json_out:
        print_json(res)
    else:
        style = _decision_style(res["decision"])
        say(
            f"{res['n_checkpoints']} new checkpoint(s) vs the curve of [bold]{escape(res['against'])}[/]: "
            f"mean gap {res['gap_mean']:+.4f} nats, 90% HDI {_interval(res['gap_hdi90'], '+.4f')}, "
            f"P(|gap| > {rope:g}) = {res['p_shift']:.2f} -> [{style}]{escape(res['decision'])}[/]"
        )
        if res["extrapolated"]:
            say(
                f"[yellow]{res['extrapolated']} checkpoint(s) lie outside that curve's observed x range "
                "(extrapolation)[/]"
            )
        table = compact_table("per checkpoint (z = (y − predicted) / predictive sd)")
        for col in ("checkpoint", "x", "y", "predicted", "sd", "z"):
            table.add_column(col, justify="left" if col == "checkpoint" else "right")
        for c in res["checkpoints"]:
            z = c["z"]
            z_s = f"{z:+.2f}" if abs(z) < 2 else f"[red]{z:+.2f}[/]"
            table.add_row(
                escape(c["checkpoint"]),
                f"{c['x']:.4f}",
                f"{c['y']:.4f}",
                f"{c['predicted']:.4f}",
                f"{c['predictive_sd']:.4f}",
                z_s,
            )
        print_table(table)
    report_problems(list(post.diagnostics.get("problems", [])), str(posterior))
    return 0


# ------------------------------------------------------------------------------------------ predict
def parse_values(text: str, option: str) -> np.ndarray:
    """Comma-separated numbers -> array; a clear error for anything else."""
    try:
        vals = np.array([float(v) for v in text.split(",") if v.strip()], dtype=float)
    except ValueError as exc:
        raise UserInputError(
            f"{option} {text!r}: expected comma-separated numbers, e.g. {option} 3.1,2.9"
        ) from exc
    if vals.size == 0 or not np.isfinite(vals).all():
        raise UserInputError(
            f"{option} {text!r}: expected finite comma-separated numbers, e.g. {option} 3.1,2.9"
        )
    return vals


@app.command("predict")
def predict_command(
    posterior: Annotated[Path, typer.Argument(help="Posterior folder (from `fit`).")],
    x: Annotated[str | None, typer.Option("--x", help="x losses (nats), comma separated.")] = None,
    from_table: Annotated[
        Path | None, typer.Option("--from-table", help="Read x (the posterior's x metric) from a loss table.")
    ] = None,
    level: Annotated[
        list[str] | None, typer.Option("--level", help="Condition FACTOR=LEVEL (others at base; repeatable).")
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Predict further checkpoints of this fitted run (its own offset)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON.")] = False,
) -> int:
    """Predict y from x with 50% and 90% predictive intervals (a new run's checkpoint, or with --run a
    further checkpoint of a fitted run); flag extrapolation."""
    from bayes_l2l.evidence import MAX_BELOW_FLOOR, predict
    from bayes_l2l.infer import load

    if (x is None) == (from_table is None):
        raise UserInputError("give exactly one of --x VALUES (e.g. --x 3.1,2.9) or --from-table TABLE")
    post = load(posterior)
    q = post.design.question
    if x is not None:
        xs = parse_values(x, "--x")
        if (xs <= 0).any():
            raise UserInputError(f"--x {x!r}: losses are positive numbers (in {q.unit})")
        labels = [None] * xs.size
    else:
        from bayes_l2l.table import LossTable

        series = LossTable.read(from_table).metric_series(q.x, allow_mixed=q.allow_mixed, unit=q.unit)
        if series.empty:
            raise UserInputError(f"{from_table}: no {q.x} values in {q.unit} (the posterior's x axis)")
        xs = series["value"].to_numpy(float)
        labels = [f"{r}@{c}" for r, c in zip(series["run"], series["checkpoint"], strict=True)]
    df = predict(post, xs, parse_assignments(level, "--level"), run=run)
    df.insert(0, "checkpoint", labels)
    rows = df.to_dict(orient="records")
    if json_out:
        print_json(
            {
                "x_metric": q.x,
                "y_metric": q.y,
                "unit": q.unit,
                "predictions": rows,
                "diagnostics": _diag(post.diagnostics),
            }
        )
    else:
        say(f"condition: {escape(str(df['condition'][0]))}")
        table = compact_table(f"predicted {escape(q.y)} ({q.unit}) from {escape(q.x)}")
        cols = ["x", "mean", "50% PI", "90% PI", "note"]
        if from_table is not None:
            cols.insert(0, "checkpoint")
        for col in cols:
            table.add_column(col, justify="left" if col in ("checkpoint", "note") else "right")
        for r in rows:
            notes = []
            if r["extrapolation"]:
                notes.append("[yellow]extrapolation[/]")
            if r["p_below_floor"] > MAX_BELOW_FLOOR:
                notes.append(
                    f"[red]x below the floor Ex in {r['p_below_floor']:.0%} of draws: the law gives no value[/]"
                )
            elif r["p_below_floor"] > 0:
                notes.append(f"[red]x below the floor Ex in {r['p_below_floor']:.0%} of draws (left out)[/]")
            cells = [
                f"{r['x']:.4f}",
                _num(r["mean"], ".4f"),
                f"[{_num(r['lo50'], '.4f')}, {_num(r['hi50'], '.4f')}]",
                f"[{_num(r['lo90'], '.4f')}, {_num(r['hi90'], '.4f')}]",
                "; ".join(notes),
            ]
            if from_table is not None:
                cells.insert(0, escape(str(r["checkpoint"])))
            table.add_row(*cells)
        print_table(table)
    report_problems(list(post.diagnostics.get("problems", [])), str(posterior))
    return 0


# ------------------------------------------------------------------------------------------ report
@app.command("report")
def report_command(
    posterior: Annotated[Path, typer.Argument(help="Posterior folder (from `fit`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")],
    compare: Annotated[
        list[str] | None, typer.Option("--compare", help="Factor to compare (repeatable; default: all).")
    ] = None,
    figures: Annotated[
        Path | None, typer.Option("--figures", help="Also write PNG + SVG figures here.")
    ] = None,
    rope: Annotated[float, typer.Option(help="Region of practical equivalence, nats.")] = DEFAULT_ROPE,
    loo: Annotated[bool, typer.Option("--loo/--no-loo", help="LOO by run vs one shared curve.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report / figures.")] = False,
) -> int:
    """Write one self-contained HTML report: question, data, diagnostics, evidence, figures, caveats."""
    from bayes_l2l.infer import load
    from bayes_l2l.report import build_report

    check_output_file(output, overwrite)
    post = load(posterior)
    factors = list(dict.fromkeys(compare or post.design.factor_levels))
    compares, shared_info = (
        compare_factors(post, factors, rope=rope, loo=loo, cache=posterior) if factors else ({}, {})
    )
    path = build_report(post, compares, output, rope=rope, figures_dir=figures, overwrite=overwrite)
    say(f"report written to {escape(str(path))}")
    ok, problems = fits_ok(post, shared_info)
    report_problems(problems, str(posterior))
    return 0


# ------------------------------------------------------------------------------------------ demo
@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder (resumable).")] = Path("out"),
    table: Annotated[
        Path | None, typer.Option("--table", help="Your loss table instead of the bundled mini study.")
    ] = None,
    simulated: Annotated[
        bool, typer.Option("--simulated", help="A simulated table with planted effects instead.")
    ] = False,
    x: Annotated[str | None, typer.Option("--x", help="x metric (with --table).")] = None,
    y: Annotated[str | None, typer.Option("--y", help="y metric (with --table).")] = None,
    factor: Annotated[list[str] | None, typer.Option("--factor", help="Factors (with --table).")] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Keep rows COLUMN=VALUE (with --table).")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small data and short chains; no LOO (a smoke run).")
    ] = False,
    rope: Annotated[float, typer.Option(help="Region of practical equivalence, nats.")] = DEFAULT_ROPE,
) -> int:
    """The main job: import -> fit -> compare -> figures -> report, into OUT (report.html, evidence.json,
    figures/, posterior/). Without --table: the project's own measured mini study (data/mini_study.parquet);
    --simulated: a simulated table with planted effects (labelled so everywhere)."""
    from bayes_l2l.demo import run_demo

    result = run_demo(
        out,
        table=table,
        x=x,
        y=y,
        factors=factor,
        where=parse_assignments(where, "--where"),
        quick=quick,
        rope=rope,
        simulated=simulated,
    )
    report_problems(result["problems"], str(out))
    return 0
