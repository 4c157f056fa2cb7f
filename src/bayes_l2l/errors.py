"""Errors that the user can fix. The CLI prints them without a traceback and exits with status 2."""

from __future__ import annotations

from pathlib import Path


class UserInputError(ValueError):
    """Bad input the user can fix: the message names the file, row or column, and the fix."""


class LossTableError(UserInputError):
    """A loss table that does not satisfy the LossTable schema."""


class DiagnosticsError(RuntimeError):
    """Sampler diagnostics failed (R-hat, ESS, divergences); the CLI exits with status 3."""


def check_output_file(path: Path, overwrite: bool, *, error: type[UserInputError] = UserInputError) -> None:
    """Refuse to write the file ``path`` where a folder stands, where a file stands unless ``overwrite``, or
    where it cannot be written (a parent that is a file, a folder without write permission)."""
    if path.is_dir():
        raise error(
            f"{path}: is a folder; give the path of the file to write (for example a new name inside that folder)"
        )
    if path.exists() and not overwrite:
        raise error(f"{path}: exists already; choose another output path or pass --overwrite")
    from bayes_l2l.output_paths import check_writable  # it raises UserInputError: import here, no cycle

    check_writable(path, "")
