"""How the CLI prints results: rich tables of fits, contrasts, tests and predictions, warnings and
diagnostic problems. Printing only: every number comes from the library (:mod:`bayes_l2l.api`)."""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from rich.table import Table

from bayes_l2l.cli.common import compact_table, console, err_console, print_table
from bayes_l2l.errors import DiagnosticsError


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
    say_measurement_error(post)
    for f, contrasts in compares.items():
        table = compact_table(
            f"{escape(f)}: curve gap level − base {escape(str(post.design.factor_levels[f][0]))} "
            f"({escape(q.y)} vs {escape(q.x)}; gaps in {q.y_unit}, x in {q.x_unit}), ROPE {rope:g}"
        )
        for col in (
            "level",
            "common x support (checkpoints in it)",
            "mean gap [90% HDI]",
            "max |gap| [90% HDI]",
        ):
            table.add_column(col, justify="left" if col == "level" else "right")
        table.add_column("P(shift)", justify="right")
        table.add_column("decision")
        for c in contrasts:
            table.add_row(
                escape(c.level),
                _support(c),
                f"{_num(c.gap_mean, '+.3f')} {_interval(c.gap_hdi90, '+.3f')}",
                f"{_num(c.gap_maxabs)} {_interval(c.gap_maxabs_hdi90)}",
                _num(c.p_shift, ".2f"),
                f"[{_decision_style(c.decision)}]{escape(c.decision)}[/]",
            )
        print_table(table)
        if contrasts:
            c0 = contrasts[0]
            if c0.elpd_diff is not None:
                say(
                    f"  out of sample ({escape(f)}, one number per factor: separate curves vs one shared curve, "
                    f"runs held out{' by K-fold' if 'K-fold' in (c0.elpd_note or '') else ''}): elpd diff {_num(c0.elpd_diff, '+.1f')} ± {_num(c0.elpd_se, '.1f')}"
                )
        shown: set[str] = set()  # a note shared by the factor's levels is printed once
        for c in contrasts:
            fixed = c.held_fixed or c.matched_on
            if fixed:
                say(
                    f"  {escape(c.level)} vs {escape(c.base)}: holds fixed "
                    + escape(", ".join(f"{k}={v}" for k, v in fixed.items()))
                )
            for note in (c.note, c.elpd_note, c.reconciliation):
                if note and note not in shown:
                    shown.add(note)
                    say(f"  [dim]{escape(c.level)}: {escape(note)}[/]")
            weak = [
                k
                for k, v in c.params.items()
                if v.get("identified") in ("weak", "not identified", "not physical")
            ]
            if weak:
                say(
                    f"  [yellow]{escape(c.level)}: {', '.join(weak)} weakly or not identified, or a floor below 0 "
                    "(not physical); the curve gap is the identified quantity[/]"
                )
    design_notes = post.design.warnings[post.design.n_import_warnings :]
    for w in design_notes:
        say(f"[yellow]note:[/] {escape(w)}")
    if len(compares) > 1:
        ranking = rank_factors(compares)
        table = compact_table(f"factor ranking by largest gap max |Δ| ({q.y_unit})")
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


def _support(c: Any) -> str:
    """'[lo, hi] (n_level / n_base)', or 'none' where the x ranges do not overlap."""
    lo, hi = (list(c.support) + [float("nan")] * 2)[:2]
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return "none"
    info = c.common_support or {}
    counts = f" ({info['n_level']} / {info['n_base']})" if "n_level" in info else ""
    return f"{_interval((lo, hi), '.3f')}{counts}"


def report_problems(problems: list[str], where: str) -> None:
    """Print diagnostic problems on stderr and raise DiagnosticsError (exit 3) if there are any."""
    if problems:
        for p in problems:
            err_console.print(f"[red]diagnostic problem:[/] {escape(p)}", highlight=False, soft_wrap=True)
        raise DiagnosticsError(
            f"{len(problems)} sampler problem(s); the results above are in doubt ({where})"
        )


def say_measurement_error(post: Any) -> None:
    """One line: whether the fit modelled the table's standard errors, and why."""
    me = post.settings.get("measurement_error")
    if me:
        say(f"measurement error: {escape(me['reason'])}")


def print_posterior_summary(post: Any) -> None:
    """Rich rendering of :func:`posterior_report`."""
    from bayes_l2l.diagnostics import summary_table

    d = post.design
    q = d.question
    console.print(
        f"[bold]{escape(q.y)}[/] vs [bold]{escape(q.x)}[/] ({q.units_label()}); factors: {', '.join(q.factors) or 'none'}; "
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
    say_measurement_error(post)
    summ = summary_table(post)
    table = Table(title="posterior (90% HDI)", show_lines=False)
    for col in ("quantity", "mean", "90% HDI", "r_hat", "ess_bulk", "identified"):
        table.add_column(col, justify="left" if col in ("quantity", "identified") else "right")
    for name, row in summ.iterrows():
        ident = row.get("identified")
        ident_s = "" if not isinstance(ident, str) else ident
        style = {"not identified": "red", "not physical": "red", "weak": "yellow"}.get(ident_s, "")
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


def print_warnings(lines: list[str]) -> None:
    """Warnings on stderr (e.g. a shared-curve fit's problems, which only make its elpd unreliable)."""
    for line in lines:
        err_console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def print_test(res: dict[str, Any]) -> None:
    """`test`: the gap of the new checkpoints to the curve, its decision, and a row per checkpoint."""
    rope = res["rope"]
    style = _decision_style(res["decision"])
    say(
        f"{res['n_checkpoints']} new checkpoint(s) vs the curve of [bold]{escape(res['against'])}[/]: "
        f"mean gap {res['gap_mean']:+.4f} {res.get('unit') or 'nats/token'}, 90% HDI {_interval(res['gap_hdi90'], '+.4f')}, "
        f"P(|gap| > {rope:g}) = {res['p_shift']:.2f} -> [{style}]{escape(res['decision'])}[/]"
    )
    if res.get("note"):
        say(f"[yellow]{escape(res['note'])}[/]")
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


def print_predictions(pred: Any, *, with_checkpoints: bool) -> None:
    """`predict`: mean, 50% and 90% predictive intervals per x, with extrapolation and floor notes."""
    from bayes_l2l.evidence import MAX_BELOW_FLOOR

    rows = pred.frame.to_dict(orient="records")
    say(f"condition: {escape(str(pred.frame['condition'][0]))}")
    title = f"predicted {escape(pred.y_metric)} ({pred.unit}) from {escape(pred.x_metric)}"
    if "y_observed" in pred.frame.columns:
        title += " (z = (observed − mean) / predictive sd)"
    table = compact_table(title)
    observed = "y_observed" in pred.frame.columns
    cols = ["x", "mean", "50% PI", "90% PI", "note"]
    if observed:
        cols[1:1] = ["observed y", "z"]
    if with_checkpoints:
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
        if observed:
            z = r["residual_z"]
            z_s = "—" if not math.isfinite(z) else (f"{z:+.2f}" if abs(z) < 2 else f"[red]{z:+.2f}[/]")
            cells[1:1] = [_num(r["y_observed"], ".4f"), z_s]
        if with_checkpoints:
            cells.insert(0, escape(str(r["checkpoint"])))
        table.add_row(*cells)
    print_table(table)
