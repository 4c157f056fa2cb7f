"""`bayes-l2l import` and `bayes-l2l inspect`: bring loss tables in, and see what is in them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from bayes_l2l.cli.common import app, console, err_console, parse_assignments, print_json, print_table
from bayes_l2l.errors import UserInputError, check_output_file
from bayes_l2l.io import FORMATS, import_table
from bayes_l2l.io.describe import describe
from bayes_l2l.output_paths import check_writable
from bayes_l2l.table import LossTable

OUTPUT_SUFFIXES = (".parquet", ".pq", ".csv")
LONG_LIST = 20
"""A section of `inspect` with more entries than this is cut to its first HEAD_ROWS (unless --all)."""
HEAD_ROWS = 10


@app.command("import")
def import_cmd(
    paths: list[Path] = typer.Argument(
        ...,
        help="Input file(s) or folder(s) of one format (concatenated); quoted globs like 'runs/*.csv' work.",
    ),
    fmt: str = typer.Option(..., "--format", "-f", help=f"Input format: {', '.join(FORMATS)}."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Table to write: .parquet (keeps warnings) or .csv."
    ),
    mapping: Path | None = typer.Option(
        None, "--mapping", "-m", help="YAML column mapping (generic format)."
    ),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="lm-eval: local HF tokenizer folder."),
    run: str | None = typer.Option(
        None, "--run", help="lm-eval: run name (default: pretrained= of the results)."
    ),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="lm-eval: checkpoint id (default: revision)."
    ),
    factor: list[str] | None = typer.Option(
        None, "--factor", help="Constant factor label KEY=VALUE (repeatable)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables."),
) -> None:
    """Import a loss table measured elsewhere into the LossTable format."""
    output = check_writable(output, "-o")
    if not output.suffix:
        raise UserInputError(
            f"-o {output}: has no file suffix; name a file such as {output / 'table.parquet'} or "
            f"{output.with_suffix('.parquet')}"
        )
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserInputError(f"-o {output}: unknown output format '{output.suffix}'; use .parquet or .csv")
    check_output_file(output, overwrite)
    table = import_table(
        fmt,
        paths,
        mapping,
        factors=parse_assignments(factor, "--factor"),
        tokenizer=tokenizer,
        run=run,
        checkpoint=checkpoint,
    )
    written = table.save(output, overwrite=overwrite)
    ckpts = table.checkpoints()
    summary = {
        "rows": len(table),
        "checkpoints": len(ckpts),
        "runs": int(ckpts["run"].nunique()),
        "metrics": table.metrics,
        "warnings": list(table.warnings),
        "output": str(written),
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[bold green]imported[/] {summary['rows']} rows: {summary['checkpoints']} checkpoints of "
        f"{summary['runs']} runs, {len(summary['metrics'])} metrics -> {written}",
        highlight=False,
        soft_wrap=True,
    )
    _print_warnings(summary["warnings"])


@app.command("inspect")
def inspect_cmd(
    table_path: Path = typer.Argument(..., metavar="TABLE", help="A LossTable (.parquet or .csv)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    show_all: bool = typer.Option(
        False, "--all", help=f"List every run, metric, level and contrast (default: the first {HEAD_ROWS})."
    ),
) -> None:
    """Show runs, checkpoints, metrics, factor levels, missing values, warnings and matched contrasts."""
    info = describe(LossTable.read(table_path))
    if as_json:
        print_json(info)
        return
    _render(info, show_all=show_all)


# ----------------------------------------------------------------------------------------- rendering
def _head(items: list[Any], show_all: bool) -> tuple[list[Any], int]:
    """The entries to print and how many are left out: all of them up to LONG_LIST, else the first
    HEAD_ROWS."""
    if show_all or len(items) <= LONG_LIST:
        return items, 0
    return items[:HEAD_ROWS], len(items) - HEAD_ROWS


def _more(n: int) -> str:
    return f"... {n} more (--all to list every one)"


def _print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)


def _render(info: dict[str, Any], *, show_all: bool = False) -> None:
    console.print(
        f"[bold]{escape(info['source'])}[/]: {info['rows']} rows, {info['checkpoints']} checkpoints of "
        f"{info['runs']} runs (models)",
        highlight=False,
        soft_wrap=True,
    )
    per_run, more = _head(list(info["checkpoints_per_run"].items()), show_all)
    runs = Table(title=f"Runs ({info['runs']})", show_lines=False)
    runs.add_column("run")
    runs.add_column("checkpoints", justify="right")
    for run, n in per_run:
        runs.add_row(escape(run), str(n))
    if more:
        runs.add_row(_more(more), "")
    print_table(runs)

    shown_metrics, more = _head(info["metrics"], show_all)
    metrics = Table(title=f"Metrics ({len(info['metrics'])})")
    for col in ("metric", "unit", "kind", "checkpoints", "range", "estimator"):
        metrics.add_column(col, justify="right" if col == "checkpoints" else "left", overflow="fold")
    for m in shown_metrics:
        metrics.add_row(
            m["metric"],
            m["unit"],
            m["kind"],
            str(m["checkpoints"]),
            f"{m['min']:.3f}-{m['max']:.3f}",
            escape("\n".join(m["estimators"])),
        )
    if more:
        metrics.add_row(_more(more), "", "", "", "", "")
    print_table(metrics)

    factors = Table(title="Factors (checkpoints per level)")
    factors.add_column("factor")
    factors.add_column("levels", overflow="fold")
    for name, f in info["factors"].items():
        levels, more = _head([f"{lvl} ({n})" for lvl, n in f["levels"].items()], show_all)
        text = ", ".join(levels) + (f", {_more(more)}" if more else "")
        factors.add_row(escape(name), f"[{f['n_levels']}] " + escape(text))
    print_table(factors)

    if info["missing"]:
        console.print(
            "[bold]Unknown values[/] (checkpoints): "
            + ", ".join(f"{col} unknown for {n}" for col, n in info["missing"].items()),
            highlight=False,
            soft_wrap=True,
        )
    _render_contrasts(info, show_all=show_all)
    _print_warnings(info["warnings"])


def _matched_text(matched_on: list[dict[str, str]]) -> str:
    """The first matched condition, and how many more there are (the JSON output lists them all)."""
    first = ", ".join(f"{k}={v}" for k, v in matched_on[0].items()) or "(no other factors)"
    more = len(matched_on) - 1
    return first + (f" (+{more} more matched condition{'s' if more > 1 else ''})" if more else "")


def _render_contrasts(info: dict[str, Any], *, show_all: bool = False) -> None:
    if not info["contrasts"]:
        console.print("No factor has two or more levels: no contrasts to check.")
        return
    names = ", ".join(info["contrast_factors"])
    title = f"Level contrasts against the base level (as `fit` chooses it), matched on the other factors ({names})"
    tbl = Table(title=escape(title))
    for col in ("factor", "level vs base", "matched?", "matched on / confounded with"):
        tbl.add_column(col, overflow="fold")
    for factor, c in info["contrasts"].items():
        shown, more = _head(c["levels"], show_all)
        for lv in shown:
            if lv["matched"]:
                where, verdict = _matched_text(lv["matched_on"]), "[green]matched[/]"
            else:
                where = "confounded with " + (", ".join(lv["confounded_with"]) or "the other factors")
                verdict = "[red]confounded[/]"
            tbl.add_row(escape(factor), escape(f"{lv['level']} vs {c['base']}"), verdict, escape(where))
        if more:
            tbl.add_row(escape(factor), _more(more), "", "")
        pairs = [f"{p['level']} vs {p['versus']}" for p in c["other_matched_pairs"]]
        if pairs:
            shown = "; ".join(pairs[:6]) + (
                f"; ... ({len(pairs)} pairs, all in --json)" if len(pairs) > 6 else ""
            )
            tbl.add_row(escape(factor), "other level pairs", "[green]matched[/]", escape(shown))
    print_table(tbl)
