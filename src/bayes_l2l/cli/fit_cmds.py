"""`bayes-l2l fit | show`: table + question -> posterior folder, with a compact summary and diagnostics
(parsing and printing only: the fit is :func:`bayes_l2l.api.fit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bayes_l2l.cli.common import app, console, parse_assignments, print_json, progress_status
from bayes_l2l.cli.fit_options import FitCommandOptions, with_fit_options
from bayes_l2l.cli.render import print_posterior_summary
from bayes_l2l.posterior_files import require_posterior_folder
from bayes_l2l.where import parse_where


def fit_table(
    table: Path,
    *,
    x: str,
    y: str,
    factors: list[str],
    base: list[str] | None,
    where: list[str] | None,
    fit_opts: FitCommandOptions,
    output: Path | bool,
    overwrite: bool,
) -> Any:
    """`fit` and `compare TABLE`: the API's robust fit with the command line's options, progress on stderr."""
    from dataclasses import asdict

    from bayes_l2l import api

    with progress_status(f"fitting {table} ({fit_opts.method})") as progress:
        return api.fit(
            table,
            x,
            y,
            factors,
            where=parse_where(where),
            base=parse_assignments(base, "--base"),
            output=output,
            overwrite=overwrite,
            progress=progress,
            **fit_opts.question_kwargs(),
            **asdict(fit_opts.fit_options()),
        )


@app.command("fit")
@with_fit_options
def fit_command(
    table: Annotated[Path, typer.Argument(help="Loss table (.parquet or .csv).")],
    x: Annotated[str, typer.Option("--x", help="x metric id, named average (val/avg5) or mean(a,b,...).")],
    y: Annotated[str, typer.Option("--y", help="y metric id, named average (test/avg7) or mean(a,b,...).")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Posterior folder to write (default: out/<question>/)."),
    ] = None,
    factor: Annotated[
        list[str] | None, typer.Option("--factor", help="Factor of interest (repeatable).")
    ] = None,
    base: Annotated[
        list[str] | None, typer.Option("--base", help="Base level FACTOR=LEVEL (repeatable).")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="Keep rows COLUMN=VALUE; also !=, A,B (a set), >=, >, <=, < (numbers). Repeatable.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing posterior folder.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    fit_opts: FitCommandOptions | None = None,
) -> int:
    """Fit the hierarchical loss-to-loss model; write the posterior folder; exit 3 if every sampler attempt
    failed the diagnostics (the best attempt is kept)."""
    fit = fit_table(
        table,
        x=x,
        y=y,
        factors=factor or [],
        base=base,
        where=where,
        fit_opts=fit_opts,
        output=output if output is not None else True,
        overwrite=overwrite,
    )
    if json_out:
        print_json(fit.to_dict())
    else:
        print_posterior_summary(fit.posterior)
        console.print(f"posterior in {escape(str(fit.folder))}")
    fit.raise_for_diagnostics()
    return 0


@app.command("show")
def show_command(
    posterior: Annotated[Path, typer.Argument(help="Posterior folder written by `bayes-l2l fit`.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Print the summary of a saved posterior."""
    require_posterior_folder(posterior)  # before jax: a wrong folder is refused at once
    from bayes_l2l import api

    fit = api.load(posterior)
    if json_out:
        print_json(fit.to_dict())
    else:
        print_posterior_summary(fit.posterior)
    return 0
