"""Check an output path before any work is done, so a long import / fit does not fail at the last step."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bayes_l2l.errors import UserInputError


def check_writable(path: str | Path, what: str = "output") -> Path:
    """Return ``Path(path)`` (user-expanded) if a file can be written there; else raise UserInputError.

    ``what`` names the path in the message, e.g. ``"-o"`` gives ``"-o /x/t.parquet: ..."``. Refused (the
    CLI prints the message and exits 2): an existing folder at ``path``; a parent that is a file; a parent
    folder where no file can be created (tested by creating and deleting a temporary file in the nearest
    existing parent, so missing parents are fine: savers create them); an existing file that is read-only.
    Not checked here: the suffix and whether an existing file may be replaced
    (:func:`bayes_l2l.errors.check_output_file`).
    """
    out = Path(path).expanduser()
    label = f"{what} {out}" if what else str(out)
    if out.is_dir():
        raise UserInputError(f"{label}: is a folder; name a file such as {out / 'table.parquet'}")
    parent = out.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserInputError(f"{label}: {parent} is a file, not a folder; choose another output path")
    if out.exists():
        try:
            with out.open("ab"):
                pass
        except OSError as exc:
            raise UserInputError(f"{label}: cannot be written ({exc.strerror}); choose another path") from exc
        return out
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".bayes-l2l-write-test-"):
            pass
    except OSError as exc:
        raise UserInputError(
            f"{label}: cannot create files in {parent} ({exc.strerror}); choose another output path"
        ) from exc
    return out


__all__ = ["check_writable"]
