"""`bayes-l2l` command line: a thin typer layer over the library.

Exit status: 0 success; 1 unexpected internal error; 2 bad input (message, no traceback);
3 sampler diagnostics failed (R-hat, ESS, divergences; the result is still written); 141 (128 + SIGPIPE) when
the reader of stdout went away (``bayes-l2l inspect T | head -1``), quietly, as a C tool killed by SIGPIPE.
Commands live in one module per area (data_cmds, fit_cmds, evidence_cmds, eval_cmds); each registers
itself on :data:`app` when imported.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from bayes_l2l.cli.common import app, err_console
from bayes_l2l.errors import DiagnosticsError, UserInputError

_COMMAND_MODULES = ("data_cmds", "baseline_cmds", "fit_cmds", "evidence_cmds", "survey_cmds", "eval_cmds")
for _name in _COMMAND_MODULES:
    if importlib.util.find_spec(f"bayes_l2l.cli.{_name}") is not None:
        importlib.import_module(f"bayes_l2l.cli.{_name}")

EXIT_BAD_INPUT = 2
EXIT_DIAGNOSTICS = 3
EXIT_ABORTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell reports for `yes | head -1`


def package_version() -> str:
    """bayes-l2l's installed version (``importlib.metadata``), or 'unknown' outside an installation."""
    try:
        return importlib.metadata.version("bayes-l2l")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"bayes-l2l {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _top_level(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Bayesian loss-to-loss scaling laws: which training interventions shift an LLM's loss-to-loss curve."""


def _quiet_broken_pipe() -> int:
    """stdout's reader went away: point stdout at /dev/null so that the interpreter's final flush does not
    fail again (the recipe of Python's `signal` docs, "Note on SIGPIPE"), and exit quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (a test's capture)
        pass
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


# typer >= 0.29 bundles its own click (typer._click) and its own Exit/Abort (RuntimeError subclasses), and
# does not install click itself; older typer re-exports click's. Catch whichever families are present.
_CLICK_ERRORS: tuple[type[BaseException], ...] = ()
_ABORTS: tuple[type[BaseException], ...] = (typer.Abort,)
_EXITS: tuple[type[BaseException], ...] = (typer.Exit,)
try:
    from typer._click.exceptions import ClickException as _TyperClickException

    _CLICK_ERRORS += (_TyperClickException,)
except ImportError:  # pragma: no cover - typer < 0.29 uses click itself
    pass
try:
    import click

    _CLICK_ERRORS += (click.ClickException,)
    _ABORTS += (click.exceptions.Abort,)
    _EXITS += (click.exceptions.Exit,)
except ImportError:  # typer >= 0.29 without click installed
    pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the documented status."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit (which would print)
    except BrokenPipeError:
        code = _quiet_broken_pipe()
    if argv is None:
        sys.exit(code)
    return code


def _run(argv: list[str] | None) -> int:
    """Run the app; map the library's errors to the documented exit statuses."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="bayes-l2l")
        code = rv if isinstance(rv, int) else 0
    except UserInputError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = EXIT_BAD_INPUT
    except DiagnosticsError as exc:
        err_console.print(
            f"[bold yellow]diagnostics failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        code = EXIT_DIAGNOSTICS
    except _ABORTS:
        err_console.print("aborted")
        code = EXIT_ABORTED
    except _EXITS as exc:
        code = exc.exit_code
    except _CLICK_ERRORS as exc:  # usage errors: unknown option, missing argument, bad value
        exc.show(file=sys.stderr)
        code = EXIT_BAD_INPUT
    return code
