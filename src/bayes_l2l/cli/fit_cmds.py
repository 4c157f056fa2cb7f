"""`bayes-l2l fit`: table + question -> posterior folder, with a compact summary and diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bayes_l2l.cli.common import app, console, err_console, parse_assignments, print_json, print_table
from bayes_l2l.cli.fit_options import FitCommandOptions, with_fit_options
from bayes_l2l.errors import DiagnosticsError, UserInputError
from bayes_l2l.posterior_files import check_posterior_folder


def build_question_design(
    table_path: Path,
    *,
    x: str,
    y: str,
    factors: list[str],
    base: list[str] | None,
    where: list[str] | None,
    fit_opts: FitCommandOptions,
) -> Any:
    """Read the table and build the design of the question the options describe."""
    from bayes_l2l.design import Question, build_design
    from bayes_l2l.table import LossTable

    question = Question(
        x=x,
        y=y,
        factors=list(factors),
        base=parse_assignments(base, "--base"),
        where=parse_assignments(where, "--where"),
        **fit_opts.question_kwargs(),
    )
    stray = [f for f in question.base if f not in question.factors]
    if stray:
        raise UserInputError(f"--base names {', '.join(stray)}, which is not a --factor of this fit")
    return build_design(LossTable.read(table_path), question)


def fit_with_progress(design: Any, fit_opts: FitCommandOptions) -> Any:
    """The library's robust fit of ``design``, one line per sampler attempt on stderr."""
    from bayes_l2l.robust_fit import fit_design_with

    options = fit_opts.fit_options()
    with err_console.status(
        f"fitting {design.n_conditions} condition(s), {len(design.points)} points ({options.method})"
    ) as status:

        def progress(msg: str) -> None:
            err_console.print(f"[dim]{escape(msg)}[/]", highlight=False, soft_wrap=True)
            status.update(f"fitting: {escape(msg)}")

        return fit_design_with(design, options, progress=progress)


def posterior_report(post: Any) -> dict[str, Any]:
    """JSON-able summary of a fit: question, design sizes, parameters, diagnostics, identification."""
    from bayes_l2l.infer import prior_check, summary_table

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


def print_posterior_summary(post: Any) -> None:
    """Rich rendering of :func:`posterior_report`."""
    from bayes_l2l.infer import summary_table

    d = post.design
    q = d.question
    console.print(
        f"[bold]{escape(q.y)}[/] vs [bold]{escape(q.x)}[/] ({q.unit}); factors: {', '.join(q.factors) or 'none'}; "
        f"{len(d.points)} checkpoints, {d.n_runs} runs, {d.n_conditions} conditions; method {post.method}"
    )
    if d.factor_levels:
        bases = ", ".join(f"{f}={levels[0]}" for f, levels in d.factor_levels.items())
        console.print(f"base level(s): {escape(bases)} (change with --base FACTOR=LEVEL)")
    for item in d.dropped:
        console.print(f"[yellow]dropped[/] {item['count']}: {escape(item['reason'])}")
    n_import = d.n_import_warnings
    if n_import:
        err_console.print(
            f"[yellow]{n_import} warning(s) from the table's import[/] (listed by `bayes-l2l inspect TABLE`; "
            "kept in design.json and --json)",
            soft_wrap=True,
        )
    for w in d.warnings[n_import:]:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    summ = summary_table(post)
    table = Table(title="posterior (90% HDI)", show_lines=False)
    for col in ("quantity", "mean", "90% HDI", "r_hat", "ess_bulk", "identified"):
        table.add_column(col, justify="left" if col in ("quantity", "identified") else "right")
    for name, row in summ.iterrows():
        ident = row.get("identified")
        ident_s = "" if not isinstance(ident, str) else ident
        style = {"not identified": "red", "weak": "yellow"}.get(ident_s, "")
        table.add_row(
            escape(str(name)),
            f"{row['mean']:.4g}",
            f"[{row['lo']:.4g}, {row['hi']:.4g}]",
            "" if row.get("r_hat") != row.get("r_hat") else f"{row['r_hat']:.3f}",
            "" if row.get("ess_bulk") != row.get("ess_bulk") else f"{row['ess_bulk']:.0f}",
            f"[{style}]{ident_s}[/]" if style else ident_s,
        )
    print_table(table)
    dg = post.diagnostics
    if post.method == "nuts":
        console.print(
            f"diagnostics: max R-hat {_number(dg['max_rhat'], '.4f')}, "
            f"min bulk ESS {_number(dg['min_ess_bulk'], '.0f')}, min tail ESS {_number(dg['min_ess_tail'], '.0f')}, "
            f"divergences {dg['divergences']}, min BFMI {_number(dg['min_bfmi'], '.2f')}, "
            f"tree-depth saturation {_number(dg.get('tree_depth_saturation'), '.1%')}; "
            f"wall {post.wall_time_s:.1f} s -> " + ("[green]ok[/]" if dg["ok"] else "[red]FAILED[/]")
        )
    else:
        console.print(f"[yellow]{escape(dg['note'])}[/]; wall {post.wall_time_s:.1f} s")
    if dg.get("attempts"):
        console.print(("[green]" if dg["ok"] else "[red]") + escape(dg["attempts"]) + "[/]", soft_wrap=True)
    for problem in dg.get("problems", []):
        err_console.print(f"[red]diagnostic problem:[/] {escape(problem)}")


def _number(value: float | None, fmt: str) -> str:
    """A diagnostic formatted, or 'n/a' where it could not be computed (R-hat of one chain)."""
    return "n/a" if value is None else format(value, fmt)


@app.command("fit")
@with_fit_options
def fit_command(
    table: Annotated[Path, typer.Argument(help="Loss table (.parquet or .csv).")],
    x: Annotated[str, typer.Option("--x", help="x metric id, named average (val/avg5) or mean(a,b,...).")],
    y: Annotated[str, typer.Option("--y", help="y metric id, named average (test/avg7) or mean(a,b,...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Posterior folder to write.")],
    factor: Annotated[
        list[str] | None, typer.Option("--factor", help="Factor of interest (repeatable).")
    ] = None,
    base: Annotated[
        list[str] | None, typer.Option("--base", help="Base level FACTOR=LEVEL (repeatable).")
    ] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="Keep rows with COLUMN=VALUE.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing posterior folder.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    fit_opts: FitCommandOptions | None = None,
) -> int:
    """Fit the hierarchical loss-to-loss model; write the posterior folder; exit 3 if every sampler attempt
    failed the diagnostics (the best attempt is kept)."""
    check_posterior_folder(output, overwrite=overwrite)
    design = build_question_design(
        table, x=x, y=y, factors=factor or [], base=base, where=where, fit_opts=fit_opts
    )
    post = fit_with_progress(design, fit_opts)
    post.save(output, overwrite=overwrite)
    if json_out:
        print_json({**posterior_report(post), "output": str(output)})
    else:
        print_posterior_summary(post)
        console.print(f"posterior written to {escape(str(output))}")
    if not post.diagnostics["ok"]:
        hint = ""
        if post.settings.get("chains", 4) < 2:
            hint = "; run --chains 2 or more (the default is 4) so that R-hat can be computed"
        raise DiagnosticsError(
            "; ".join(post.diagnostics["problems"])
            + f" — {post.diagnostics.get('attempts') or 'one attempt'} (posterior kept in {output}; every "
            f"attempt's settings and diagnostics are in its fit.json){hint}"
        )
    return 0


@app.command("show")
def show_command(
    posterior: Annotated[Path, typer.Argument(help="Posterior folder written by `bayes-l2l fit`.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Print the summary of a saved posterior."""
    from bayes_l2l.infer import load

    post = load(posterior)
    if json_out:
        print_json(posterior_report(post))
    else:
        print_posterior_summary(post)
    return 0
