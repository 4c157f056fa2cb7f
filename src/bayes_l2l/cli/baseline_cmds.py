"""`bayes-l2l simulate` (tables with planted effects) and `bayes-l2l baseline` (point-fit comparators)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from bayes_l2l.cli.common import app, compact_table, console, print_json, print_table
from bayes_l2l.errors import UserInputError, check_output_file
from bayes_l2l.point_fits import METHOD_PARAMS, METHOD_SETS, FitResult, GroupFit
from bayes_l2l.simulate import SimulationSpec, simulate_table
from bayes_l2l.table import LossTable
from bayes_l2l.where import condition_text, parse_where

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


def truth_path(output: Path) -> Path:
    """Where the truth of a simulated table goes: ``<stem>.truth.json`` beside it."""
    return output.with_name(output.stem + ".truth.json")


@app.command("simulate")
def simulate_cmd(
    output: Path | None = typer.Option(None, "-o", "--output", help="Table to write (.parquet or .csv)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed and spec give the same table."),
    spec: Path | None = typer.Option(None, "--spec", help="YAML spec (keys mirror SimulationSpec)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    print_spec: bool = typer.Option(False, "--print-spec", help="Print the spec as YAML and exit."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary on stdout."),
) -> None:
    """Simulate a loss table with planted curve shifts; writes the table and <stem>.truth.json."""
    sim_spec = SimulationSpec.from_yaml(spec) if spec is not None else SimulationSpec()
    sim_spec.validate(str(spec) if spec is not None else "default spec")
    if print_spec:
        import yaml

        print(yaml.safe_dump(sim_spec.to_dict(), sort_keys=False), end="")
        return
    if output is None:
        raise UserInputError("simulate: give the output table with -o PATH.parquet (or --print-spec)")
    if output.suffix.lower() not in TABLE_SUFFIXES:
        raise UserInputError(f"{output}: unknown table format '{output.suffix}'; use .parquet or .csv")
    truth_file = truth_path(output)
    for path in (output, truth_file):
        check_output_file(path, overwrite)
    table, truth = simulate_table(sim_spec, seed)
    table.save(output, overwrite=overwrite)
    truth.save(truth_file, overwrite=overwrite)
    gaps = truth.gap_summaries()
    summary = {
        "table": str(output),
        "truth": str(truth_file),
        "seed": seed,
        "n_rows": len(table.df),
        "n_runs": len(table.runs),
        "n_checkpoints": len(table.checkpoints()),
        "x_metric": sim_spec.x_metric,
        "y_metric": sim_spec.y_metric,
        "conditions": truth.conditions.to_dict(orient="records"),
        "gaps": gaps.to_dict(orient="records"),
    }
    if as_json:
        print_json(summary)
        return
    _say(
        f"wrote [bold]{escape(str(output))}[/] ({summary['n_runs']} runs, {summary['n_checkpoints']} "
        f"checkpoints, {sim_spec.x_metric} -> {sim_spec.y_metric}) and [bold]{escape(str(truth_file))}[/]"
    )
    cond = compact_table("true curve per condition (nats)")
    for col in ("condition", "K", "kappa", "E_x", "E_y", "x range", "runs"):
        cond.add_column(col, overflow="fold")
    for row in truth.conditions.itertuples():
        cond.add_row(
            escape(str(row.condition)),
            f"{row.K:.4g}",
            f"{row.kappa:.4g}",
            f"{row.E_x:.4g}",
            f"{row.E_y:.4g}",
            f"{row.min_x:.3f}-{row.max_x:.3f}",
            str(row.n_runs),
        )
    print_table(cond)
    if len(gaps):
        gap_table = compact_table("true gap to the base curve over the common x support (nats)")
        for col in ("factor", "level", "mean gap", "max |gap|", "x support"):
            gap_table.add_column(col, overflow="fold")
        for g in gaps.itertuples():
            gap_table.add_row(
                escape(g.factor),
                escape(g.level),
                f"{g.mean_gap:+.4f}",
                f"{g.max_abs_gap:.4f}",
                f"{g.x_lo:.3f}-{g.x_hi:.3f}",
            )
        print_table(gap_table)


def _say(text: str) -> None:
    """A message line: no syntax highlighting, no hard wrapping (paths and names stay whole)."""
    console.print(text, highlight=False, soft_wrap=True)


def _fmt(value: float) -> str:
    """4 significant digits; |value| < 1e-6 (a loss parameter sitting on its zero bound) prints as 0."""
    if value != value:
        return "nan"
    return "0" if abs(value) < 1e-6 else f"{value:.4g}"


def _fit_row(method: str, fit: FitResult, params: list[str]) -> list[str]:
    cells = [method]
    for p in params:
        if p not in METHOD_PARAMS[method]:
            cells.append("")
            continue
        text = _fmt(fit.params[p])
        cells.append(f"[bold red]{text}*[/]" if p in fit.at_bounds else text)
    cells += [f"{fit.sse:.3g}", f"{fit.rmse:.3g}", f"{fit.condition_number:.1e}"]
    return cells


def _print_group(g: GroupFit, methods: tuple[str, ...]) -> None:
    head = f"[bold]{escape(g.group)}[/]: {g.n} checkpoints, {len(g.runs)} run(s)"
    if g.n:
        head += escape(f", x in [{g.x_range[0]:.3f}, {g.x_range[1]:.3f}]")
    if g.status == "skipped":
        _say(f"{head} - [yellow]skipped[/]: {escape('; '.join(sorted(set(g.skipped.values()))))}")
        return
    table = compact_table(head)
    used = [p for p in ("K", "kappa", "Ex", "Ey", "a", "b") if any(p in METHOD_PARAMS[m] for m in methods)]
    for col in ("method", *used, "SSE", "RMSE", "cond"):
        if col == "method":
            table.add_column(col, no_wrap=True, min_width=9)
        else:
            table.add_column(col, justify="right", overflow="fold")
    for m in methods:
        if m in g.fits:
            table.add_row(*_fit_row(m, g.fits[m], used))
    print_table(table)
    for m, reason in g.skipped.items():
        _say(f"  [yellow]{m} skipped[/]: {escape(reason)}")
    for w in g.warnings:
        _say(f"  [yellow]warning[/]: {escape(w)}")
    for m, fit in g.fits.items():
        for w in fit.warnings:
            _say(f"  [yellow]{m}[/]: {escape(w)}")


@app.command("baseline")
def baseline_cmd(
    table_path: Path = typer.Argument(..., metavar="TABLE", help="Loss table (.parquet or .csv)."),
    x: str = typer.Option(
        ..., "--x", help="x metric: an id (val/c4), a named average (val/avg5) or mean(a,b)."
    ),
    y: str = typer.Option(..., "--y", help="y metric, as for --x."),
    by: str | None = typer.Option(None, "--by", help="Factor whose levels are fitted separately."),
    where: list[str] | None = typer.Option(
        None,
        "--where",
        help="Keep rows COLUMN=VALUE; also !=, A,B (a set), >=, >, <=, < (numbers). Repeatable.",
    ),
    method: str = typer.Option("both", "--method", help=f"One of {', '.join(METHOD_SETS)}."),
    unit: str | None = typer.Option(
        None, "--unit", help="Unit of both axes (default: each as the table stores it)."
    ),
    allow_mixed: bool = typer.Option(
        False, "--allow-mixed", help="Let averages mix estimators (e.g. val/avg5 with SlimPajama's windows)."
    ),
    n_starts: int = typer.Option(24, "--n-starts", help="Starts of the free multi-start fit."),
    seed: int = typer.Option(0, "--seed", help="Seed of the free fit's random starts."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Point-fit comparators per group: free 4-parameter fit, the paper's two-stage fit (* = at a bound)."""
    from bayes_l2l import api

    table = LossTable.read(table_path)
    n_stored = len(table.warnings)
    filters = parse_where(where)
    result = api.baseline(
        table,
        x,
        y,
        by,
        where=filters,
        method=method,
        unit=unit,
        allow_mixed=allow_mixed,
        n_starts=n_starts,
        seed=seed,
    )
    groups = result.groups
    if as_json:
        print_json({**result.to_dict(), "table": str(table_path)})
        return
    _say(
        escape(
            f"baseline fits of {y} against {x}"
            + (f" by {by}" if by else "")
            + (" where " + ", ".join(condition_text(k, v) for k, v in filters.items()) if filters else "")
        )
        + " ([bold red]*[/] = at a bound: not determined by the data)"
    )
    for g in groups:
        _print_group(g, METHOD_SETS[method])
    for w in result.meta["warnings"][n_stored:]:
        _say(f"[yellow]warning[/]: {escape(w)}")
    if n_stored:
        _say(f"({n_stored} warning(s) stored in the table by its importer: see `bayes-l2l inspect`)")
