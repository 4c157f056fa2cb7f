"""`bayes-l2l survey`: one factor's evidence over every loss pair of a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bayes_l2l.cli.cluster_options import with_cluster_options
from bayes_l2l.cli.common import (
    app,
    compact_table,
    parse_assignments,
    print_json,
    print_table,
    progress_status,
)
from bayes_l2l.cli.fit_options import FitCommandOptions, with_fit_options
from bayes_l2l.cli.render import say
from bayes_l2l.cluster import ClusterOptions
from bayes_l2l.where import parse_where


@app.command("survey")
@with_cluster_options
@with_fit_options
def survey_command(
    table: Annotated[Path, typer.Argument(help="Loss table (parquet or CSV).")],
    factor: Annotated[str, typer.Option("--factor", help="Factor whose evidence is surveyed.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Survey folder (resumable).")],
    x: Annotated[
        list[str] | None, typer.Option("--x", help="x metric (repeatable; default: every val/).")
    ] = None,
    y: Annotated[
        list[str] | None, typer.Option("--y", help="y metric (repeatable; default: every other metric).")
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Keep rows COLUMN=VALUE (or !=, A,B, >=, >, <=, <).")
    ] = None,
    base: Annotated[
        list[str] | None, typer.Option("--base", help="Base level FACTOR=LEVEL (repeatable).")
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Pairs fitted at once, one process each.")] = 1,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            "-e",
            help="inline (this machine, --jobs processes), local (submitit) or slurm (job array).",
        ),
    ] = "inline",
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="local/slurm: wait for the jobs and collect the pairs.")
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the survey as JSON.")] = False,
    fit_opts: FitCommandOptions | None = None,
    cluster: ClusterOptions | None = None,
) -> int:
    """Does changing FACTOR shift the curve, for every (x, y) pair? One posterior per pair in OUTPUT,
    survey.json, grid.png, report.html and a ranking of the factor's levels across pairs. Fit options apply
    to every pair."""
    from dataclasses import asdict

    from bayes_l2l import api

    assert fit_opts is not None
    base_levels = parse_assignments(base, "--base")
    options = {**fit_opts.question_kwargs(), **asdict(fit_opts.fit_options())}
    with progress_status("survey") as progress:
        result = api.survey(
            table, factor, output, x=x or (), y=y or (), where=parse_where(where), jobs=jobs,
            executor=executor, cluster=cluster, wait=wait, progress=progress,
            **({"base": base_levels} if base_levels else {}), **options,
        )  # fmt: skip
    if json_out:
        print_json(result)
        return 0
    if "pairs" not in result:
        say(
            f"submitted {len(result['job_ids'])} job(s) for {result['n_pairs']} pairs (logs in "
            f"{escape(result['log_dir'])}); when they finish, run the same command with --executor inline "
            "to collect (every fitted pair is reused)"
        )
        return 0
    _print_survey(result)
    say(f"wrote {escape(', '.join(str(output / n) for n in ('survey.json', 'grid.png', 'report.html')))}")
    return 0


def _print_survey(result: dict[str, Any]) -> None:
    pairs = result["pairs"]
    bad = [p for p in pairs if p["status"] != "ok"]
    say(
        f"{len(pairs)} pairs for {escape(result['factor'])} in {result['wall_s']:.0f} s; "
        f"{len(bad)} without a standing decision (sampler in doubt or input error)"
    )
    table = compact_table(f"{escape(result['factor'])}: levels ranked across pairs")
    for col in ("level", "pairs", "decided", "share shift", "median mean gap", "5-95% of pairs", "units"):
        table.add_column(col)
    for r in result["ranking"]:
        table.add_row(
            escape(str(r["level"])), str(r["pairs"]), str(r["decided"]),
            "—" if r["share_shift"] != r["share_shift"] else f"{r['share_shift']:.0%}",
            f"{r['median_gap']:+.3f}", f"[{r['lo']:+.3f}, {r['hi']:+.3f}]", escape(r.get("units", "")),
        )  # fmt: skip
    print_table(table)
    for p in bad:
        say(
            f"  [yellow]{escape(p['y'])} vs {escape(p['x'])}: {escape(p['status'])}[/] {escape(p.get('error') or '')}"
        )
