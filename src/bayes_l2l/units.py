"""Loss units: which unit each axis of a question uses, exact conversions, and the default ROPE per unit.

A unit is ``<base>/<denominator>``: base ``nats`` or ``bits``, denominator ``token`` or ``byte``. x and y
keep their own units (a validation loss in nats/token against a task loss in bits/byte is a fair
question); nothing is relabelled. The only conversion is the exact one, nats <-> bits over the same
denominator (1 nat = 1/ln 2 bits), and only on request. Per-token <-> per-byte needs the tokenizer's
bytes per token, which a loss table does not carry: never converted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bayes_l2l.errors import UserInputError

PREFERENCE: tuple[str, ...] = ("nats/token", "bits/token", "nats/byte", "bits/byte")
"""Order in which a unit is picked when a metric is stored in several and none was asked for."""

DEFAULT_ROPE_NATS_PER_TOKEN = 0.02
"""Seed-to-seed spread of an LLM's loss at a fixed recipe (docs/evidence.md): 0.02 nats/token."""

BYTES_PER_TOKEN = 4.0
"""Typical bytes per token of English BPE tokenizers (GPT-2 / GPT-NeoX / Llama: about 3.7-4.5), used only
to state the default ROPE of the per-byte units; pass ``rope`` when your tokenizer differs."""


def parse_unit(unit: str) -> tuple[str, str]:
    """(base, denominator) of ``unit``; UserInputError for anything else."""
    base, _, denom = str(unit).partition("/")
    if base not in ("nats", "bits") or denom not in ("token", "byte"):
        raise UserInputError(f"unit '{unit}' is not a loss unit; use one of {', '.join(PREFERENCE)}")
    return base, denom


def conversion_factor(source: str, target: str) -> float | None:
    """The exact factor that turns a loss in ``source`` into ``target``, or None where there is none."""
    (b1, d1), (b2, d2) = parse_unit(source), parse_unit(target)
    if d1 != d2:
        return None
    if b1 == b2:
        return 1.0
    return 1 / math.log(2) if b1 == "nats" else math.log(2)


def default_rope(unit: str) -> float:
    """The default ROPE in ``unit``: 0.02 nats/token, carried over exactly to bits and at
    :data:`BYTES_PER_TOKEN` bytes per token to the per-byte units (rounded to 2 significant digits)."""
    base, denom = parse_unit(unit)
    rope = DEFAULT_ROPE_NATS_PER_TOKEN / (BYTES_PER_TOKEN if denom == "byte" else 1.0)
    if base == "bits":
        rope /= math.log(2)
    return float(f"{rope:.2g}")


def choose_unit(
    available: Sequence[str], requested: str | None, *, metric: str, axis: str, convert: bool, source: str
) -> tuple[str, str]:
    """(unit to use, unit to read) for one axis.

    ``available``: the units the table stores the metric in. ``requested`` (``--x-unit`` / ``--y-unit``)
    picks one of them; None takes the only one, or the first of :data:`PREFERENCE` when there are several.
    With ``convert``, a requested unit the table lacks is read from its exact partner (nats <-> bits).
    """
    available = sorted(set(available), key=lambda u: PREFERENCE.index(u) if u in PREFERENCE else 99)
    if not available:
        raise UserInputError(f"{source}: metric '{metric}' has no values")
    if requested is None:
        return available[0], available[0]
    parse_unit(requested)
    if requested in available:
        return requested, requested
    partners = [u for u in available if conversion_factor(u, requested) is not None]
    if convert and partners:
        return requested, partners[0]
    hint = (
        f"; pass --convert-units (convert_units=True) to convert {partners[0]} exactly"
        if partners
        else " (no exact conversion: per-token and per-byte losses differ by the tokenizer's bytes per token)"
    )
    raise UserInputError(
        f"{source}: the {axis} metric '{metric}' has no {requested} values; it is stored in "
        f"{', '.join(available)}. Choose --{axis}-unit {available[0]}{hint}"
    )
