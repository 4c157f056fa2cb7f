"""How `--help` shows options: flags without a type, so that ``--json`` does not read as ``--json <bool>``."""

from __future__ import annotations

from typing import Any


def hide_flag_types() -> None:
    """typer 0.29's rich help prints '<bool>' beside every flag (``--json <bool>``, even ``--help``) as if it
    took a value; print nothing there, as click's plain help does. A no-op where typer has no such hook."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - typer without its own core
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_bayes_l2l_flags", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return original(self, ctx)

    display_type_rich._bayes_l2l_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
