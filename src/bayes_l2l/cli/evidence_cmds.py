"""`bayes-l2l compare | test | predict | report | demo`: parse the options, call the Python API
(:mod:`bayes_l2l.api`), print (:mod:`bayes_l2l.cli.render`). No analysis logic here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape

from bayes_l2l.cli.common import app, parse_assignments, print_json, progress_status
from bayes_l2l.cli.fit_cmds import fit_table
from bayes_l2l.cli.fit_options import FitCommandOptions, with_fit_options
from bayes_l2l.cli.render import (
    print_compare,
    print_predictions,
    print_test,
    print_warnings,
    report_problems,
    say,
)
from bayes_l2l.errors import UserInputError
from bayes_l2l.posterior_files import is_posterior_folder, require_posterior_folder
from bayes_l2l.where import parse_where

ROPE_HELP = (
    "Region of practical equivalence in y's unit (default: 0.02 nats/token or its per-unit equivalent)."
)


def fit_or_load(
    source: Path,
    *,
    x: str | None,
    y: str | None,
    factors: list[str],
    base: list[str] | None,
    where: list[str] | None,
    fit_opts: FitCommandOptions,
    output: Path | None,
    overwrite: bool,
) -> Any:
    """The posterior folder ``source``, or the fit of the loss table ``source`` (reused from ``output``, by
    default the question's own folder, when it holds the same fit)."""
    from bayes_l2l import api

    if not source.exists():
        raise UserInputError(f"{source}: no such posterior folder or loss table")
    if is_posterior_folder(source):
        given = [name for name, v in (("--x", x), ("--y", y), ("--base", base), ("--where", where)) if v]
        if given:
            raise UserInputError(
                f"{source}: is a posterior folder, which fixes its own question; {', '.join(given)} apply only "
                "when SOURCE is a loss table (refit with `bayes-l2l fit` to change the question)"
            )
        return api.load(source)
    if not x or not y:
        raise UserInputError(
            f"{source}: not a posterior folder (no fit.json), so compare reads it as a loss table and "
            "fits it first, which needs --x and --y (or pass a posterior folder written by `bayes-l2l fit`)"
        )
    return fit_table(
        source,
        x=x,
        y=y,
        factors=factors,
        base=base,
        where=where,
        fit_opts=fit_opts,
        output=output if output is not None else True,
        overwrite=overwrite,
    )


def finish(fit: Any, problems: list[str], warnings: list[str] = ()) -> int:
    """Warnings, then the fit's problems (exit 3 when there are any)."""
    print_warnings(list(warnings))
    report_problems(problems, str(fit.folder or "not saved"))
    return 0


@app.command("compare")
@with_fit_options
def compare_command(
    source: Annotated[
        Path, typer.Argument(help="Posterior folder (from `fit`), or a loss table to fit first.")
    ],
    factor: Annotated[
        list[str], typer.Option("--factor", help="Factor to compare (repeatable: also ranks).")
    ],
    rope: Annotated[float | None, typer.Option(help=ROPE_HELP)] = None,
    loo: Annotated[
        bool,
        typer.Option("--loo/--no-loo", help="Leave-one-run-out elpd vs one shared curve (fits it once)."),
    ] = True,
    x: Annotated[str | None, typer.Option("--x", help="x metric (when SOURCE is a table).")] = None,
    y: Annotated[str | None, typer.Option("--y", help="y metric (when SOURCE is a table).")] = None,
    base: Annotated[list[str] | None, typer.Option("--base", help="Base level FACTOR=LEVEL (table).")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where", help="Keep rows COLUMN=VALUE; also !=, A,B (a set), >=, >, <=, < (numbers). (table)"
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Posterior folder to write when SOURCE is a table (default: out/<question>/, one per question).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace another posterior in --output.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the evidence as JSON.")] = False,
    min_support_points: Annotated[
        int | None,
        typer.Option(
            help="Checkpoints of each side that pin its curve on the common x support, inside it or nearest to it (default 2)."
        ),
    ] = None,
    min_support_fraction: Annotated[
        float | None,
        typer.Option(
            help="Common x support a decision needs, as a share of the narrower x range (default 0.1)."
        ),
    ] = None,
    kfold_budget: Annotated[
        float | None,
        typer.Option(
            help="Seconds for K-fold-by-run refits where PSIS-LOO is unreliable (default 300; 0: off)."
        ),
    ] = None,
    fit_opts: Any = None,
) -> int:
    """Does changing FACTOR shift the loss-to-loss curve? Curve gaps, decisions and LOO by run. SOURCE is a
    posterior folder, or a loss table that is fitted first with every option of `fit` (those options apply
    only then)."""
    factors = list(dict.fromkeys(factor))
    fit = fit_or_load(
        source,
        x=x,
        y=y,
        factors=factors,
        base=base,
        where=where,
        fit_opts=fit_opts,
        output=output,
        overwrite=overwrite,
    )
    with progress_status("comparing") as progress:
        ev = fit.compare(
            *factors,
            rope=rope,
            loo=loo,
            progress=progress,
            min_support_points=min_support_points,
            min_support_fraction=min_support_fraction,
            kfold_budget_s=kfold_budget,
        )
    if json_out:
        print_json(ev.to_dict())
    else:
        print_compare(fit.posterior, ev.contrasts, ev.rope)
    return finish(fit, ev.problems, ev.warnings)


@app.command("test")
def test_command(
    posterior: Annotated[Path, typer.Argument(help="Posterior folder (from `fit`).")],
    new_table: Annotated[Path, typer.Argument(help="Loss table with the new checkpoints.")],
    against: Annotated[
        list[str] | None,
        typer.Option("--against", help="Curve to test against, FACTOR=LEVEL (default: base)."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="Keep new rows COLUMN=VALUE (or !=, A,B, >=, >, <=, <)."),
    ] = None,
    rope: Annotated[float | None, typer.Option(help=ROPE_HELP)] = None,
    allow_mixed: Annotated[
        bool,
        typer.Option(
            "--allow-mixed", help="Accept new losses measured with another estimator than the fit's."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> int:
    """Do new checkpoints lie on the base (or a given) curve? Gap with interval, P(shift), decision, z."""
    require_posterior_folder(posterior)  # before jax: a wrong folder is refused at once
    from bayes_l2l import api

    fit = api.load(posterior)
    res = fit.test(
        new_table,
        against=parse_assignments(against, "--against"),
        where=parse_where(where),
        rope=rope,
        allow_mixed=allow_mixed,
    )
    if json_out:
        print_json(res.to_dict())
    else:
        print_test(res.to_dict())
    return finish(fit, list(fit.diagnostics.get("problems", [])))


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
    require_posterior_folder(posterior)  # before jax: a wrong folder is refused at once
    from bayes_l2l import api

    if (x is None) == (from_table is None):
        raise UserInputError("give exactly one of --x VALUES (e.g. --x 3.1,2.9) or --from-table TABLE")
    fit = api.load(posterior)
    xs = None if x is None else parse_values(x, "--x")
    pred = fit.predict(xs, table=from_table, level=parse_assignments(level, "--level"), run=run)
    if json_out:
        print_json(pred.to_dict())
    else:
        print_predictions(pred, with_checkpoints=from_table is not None)
    return finish(fit, list(fit.diagnostics.get("problems", [])))


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
    rope: Annotated[float | None, typer.Option(help=ROPE_HELP)] = None,
    loo: Annotated[bool, typer.Option("--loo/--no-loo", help="LOO by run vs one shared curve.")] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing report / figures.")
    ] = False,
    survey: Annotated[
        Path | None,
        typer.Option(
            "--survey",
            help="A survey folder whose ranking gets a section (default: the one POSTERIOR is in).",
        ),
    ] = None,
) -> int:
    """Write one self-contained HTML report: question, data, diagnostics, evidence, figures, caveats."""
    require_posterior_folder(posterior)  # before jax: a wrong folder is refused at once
    from bayes_l2l import api
    from bayes_l2l.errors import check_output_file

    check_output_file(output, overwrite)
    fit = api.load(posterior)
    factors = list(dict.fromkeys(compare or fit.design.factor_levels))
    with progress_status("comparing") as progress:
        ev = fit.compare(*factors, rope=rope, loo=loo, progress=progress) if factors else None
    path = fit.report(output, evidence=ev, rope=rope, figures=figures, overwrite=overwrite, survey=survey)
    say(f"report written to {escape(str(path))}")
    return finish(fit, list(fit.diagnostics.get("problems", [])), ev.warnings if ev else [])


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
        list[str] | None,
        typer.Option("--where", help="Keep rows COLUMN=VALUE (or !=, A,B, >=, >, <=, <; with --table)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small data and short chains; no LOO (a smoke run).")
    ] = False,
    rope: Annotated[float | None, typer.Option(help=ROPE_HELP)] = None,
) -> int:
    """The main job: import -> fit -> compare -> figures -> report, into OUT (report.html, evidence.json,
    figures/, posterior/). Without --table: the project's own measured mini study (data/mini_study.parquet);
    --simulated: a simulated table with planted effects (labelled so everywhere)."""
    from bayes_l2l.demo import run_demo

    with progress_status("demo", to_stdout=True) as progress:
        result = run_demo(
            out,
            table=table,
            x=x,
            y=y,
            factors=factor,
            where=parse_where(where),
            quick=quick,
            rope=rope,
            simulated=simulated,
            progress=progress,
        )
    if result["compares"]:
        print_compare(result["posterior"], result["compares"], result["rope"])
    say(f"wrote {escape(', '.join(result['written']))}")
    report_problems(result["problems"], str(out))
    return 0
