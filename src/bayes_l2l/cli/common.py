"""Shared pieces of the CLI: the typer app, consoles, JSON output, KEY=VALUE parsing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from bayes_l2l.cli.help_format import hide_flag_types
from bayes_l2l.errors import UserInputError
from bayes_l2l.jsonable import to_json

hide_flag_types()

app = typer.Typer(
    name="bayes-l2l",
    help="Bayesian loss-to-loss scaling laws: which training interventions shift an LLM's loss-to-loss curve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Console(Console):
    """A rich console that lets a closed pipe propagate as BrokenPipeError (rich's own handler exits 1), so
    that :func:`bayes_l2l.cli.main` exits quietly with its documented status."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


console = _Console()
err_console = _Console(stderr=True)


def compact_table(title: str) -> Table:
    """A compact rich table, title on the left, whose cells wrap instead of being cut (no number is ever
    elided); print it with :func:`print_table`."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)


def print_table(table: Table) -> None:
    """Print at the table's natural width when the console is narrower (pipes default to 80 columns), so
    that names and numbers are never cut."""
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    _Console(width=natural, force_terminal=console.is_terminal, no_color=console.no_color).print(table)


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (no rich markup, so it stays machine-readable)."""
    print(to_json(obj))


def parse_assignments(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options into a dict, with a clear error for malformed ones."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UserInputError(
                f"{option} {item!r}: expected COLUMN=VALUE, e.g. {option} architecture=Llama"
            )
        key, value = item.split("=", 1)
        if not key.strip():
            raise UserInputError(f"{option} {item!r}: the column name before '=' is empty")
        out[key.strip()] = value.strip()
    return out


@contextlib.contextmanager
def progress_status(label: str, *, to_stdout: bool = False) -> Iterator[Callable[[str], None]]:
    """A spinner with ``label``, and a ``progress`` callback for the library that prints each message as a
    line (dim, on stderr, so that stdout stays clean for --json; ``to_stdout``: plain, on stdout, for the
    demo's steps) and shows it beside the spinner."""
    from rich.markup import escape

    out = console if to_stdout else err_console
    with out.status(escape(label)) as status:

        def progress(msg: str) -> None:
            line = escape(msg) if to_stdout else f"[dim]{escape(msg)}[/]"
            out.print(line, highlight=False, soft_wrap=True)
            status.update(f"{escape(label)}: {escape(msg)}")

        yield progress
