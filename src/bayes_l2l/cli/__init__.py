"""`bayes-l2l` command line: a thin typer layer over the library.

Exit status: 0 success; 1 unexpected internal error; 2 bad input (message, no traceback);
3 sampler diagnostics failed (R-hat, ESS, divergences; the result is still written).
Commands live in one module per area (data_cmds, fit_cmds, evidence_cmds, eval_cmds); each registers
itself on :data:`app` when imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer
from rich.markup import escape

from bayes_l2l.cli.common import app, err_console
from bayes_l2l.errors import DiagnosticsError, UserInputError

_COMMAND_MODULES = ("data_cmds", "baseline_cmds", "fit_cmds", "evidence_cmds", "eval_cmds")
for _name in _COMMAND_MODULES:
    if importlib.util.find_spec(f"bayes_l2l.cli.{_name}") is not None:
        importlib.import_module(f"bayes_l2l.cli.{_name}")

EXIT_BAD_INPUT = 2
EXIT_DIAGNOSTICS = 3
EXIT_ABORTED = 130

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
    if argv is None:
        sys.exit(code)
    return code
