"""Errors that the user can fix. The CLI prints them without a traceback and exits with status 2."""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input the user can fix: the message names the file, row or column, and the fix."""


class LossTableError(UserInputError):
    """A loss table that does not satisfy the LossTable schema."""


class DiagnosticsError(RuntimeError):
    """Sampler diagnostics failed (R-hat, ESS, divergences); the CLI exits with status 3."""
