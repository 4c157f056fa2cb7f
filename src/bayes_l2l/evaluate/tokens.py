"""Tokenisation for the estimators: the unscored prefix token, truncation, and true UTF-8 bytes per token.

Bytes per token: for byte-level BPE (GPT-2, GPT-NeoX, Llama-3, OLMo) every character of a token string
stands for one byte; for SentencePiece-style vocabularies ('▁' for a space, ``<0xNN>`` byte fallback) the
token's bytes are counted from its text. Either way the per-token counts must add up to the document's
UTF-8 length (a dummy prefix space added by the tokenizer is taken off the first token); when they do
not, the character offsets of a fast tokenizer give the split, and as a last resort the scored span is
decoded. The method used is recorded with every result.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bayes_l2l.errors import UserInputError

_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass(frozen=True)
class Prefix:
    """What precedes the first scored token: ``token_id`` (never scored), or None for nothing."""

    policy: str
    token_id: int | None
    empty_context_id: int  # conditions a cloze continuation whose context is empty

    def describe(self) -> str:
        return {
            "bos_or_eos": "1 unscored prefix token (BOS, else EOS)",
            "tokenizer": "prefix as the tokenizer's default special tokens (lm-eval default)",
            "none": "no prefix token (first document token unscored)",
        }[self.policy]


def resolve_prefix(tokenizer: Any, policy: str) -> Prefix:
    """The prefix token for ``policy`` (bos_or_eos | tokenizer | none) and this tokenizer."""
    bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
    fallback = bos if bos is not None else eos
    if fallback is None:
        if policy != "none":
            raise UserInputError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has neither a BOS nor an EOS token; "
                "set 'prefix: none' in the eval config"
            )
        raise UserInputError(
            "the tokenizer has neither BOS nor EOS, so an empty cloze context cannot be conditioned; "
            "use a tokenizer with an EOS token"
        )
    if policy == "bos_or_eos":
        return Prefix(policy, int(fallback), int(fallback))
    if policy == "none":
        return Prefix(policy, None, int(fallback))
    with_special = list(tokenizer("a b", add_special_tokens=True)["input_ids"])
    without = list(tokenizer("a b", add_special_tokens=False)["input_ids"])
    if len(with_special) > len(without) and with_special[1 : 1 + len(without)] == without:
        return Prefix(policy, int(with_special[0]), int(fallback))
    return Prefix(policy, None, int(fallback))


# ------------------------------------------------------------------------------------------------ bytes
class ByteCounter:
    """UTF-8 bytes of each token of a document, exactly, for the scored-span byte counts."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.kind = _decoder_kind(tokenizer)
        self._cache: dict[int, int] = {}

    def _piece_bytes(self, token_id: int, piece: str) -> int:
        cached = self._cache.get(token_id)
        if cached is not None:
            return cached
        if self.kind == "bytelevel":
            n = len(piece) if all(c in _BYTE_ALPHABET for c in piece) else len(piece.encode("utf-8"))
        elif self.kind == "metaspace":
            n = 1 if _BYTE_FALLBACK.match(piece) else len(piece.replace("\u2581", " ").encode("utf-8"))
        else:
            n = len(self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False).encode("utf-8"))
        self._cache[token_id] = n
        return n

    def per_token(
        self, text: str, ids: list[int], offsets: list[tuple[int, int]] | None
    ) -> tuple[list[int], str]:
        """Bytes of each token (summing to len(text) in UTF-8) and the method used."""
        total = len(text.encode("utf-8"))
        if not ids:
            return [], "empty"
        pieces = self.tokenizer.convert_ids_to_tokens(ids)
        counts = [self._piece_bytes(int(i), str(p)) for i, p in zip(ids, pieces, strict=True)]
        s = sum(counts)
        if s == total:
            return counts, self.kind
        if s == total + 1 and counts[0] >= 1:
            counts[0] -= 1  # dummy prefix space added by the tokenizer (SentencePiece / add_prefix_space)
            return counts, self.kind + "-dummy-prefix"
        if offsets is not None and len(offsets) == len(ids):
            return _from_offsets(text, offsets), "offsets"
        return [], "decode"


def _from_offsets(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Token i covers text[start_i : start_{i+1}] (the first from 0, the last to the end)."""
    starts = [0]
    for a, _ in offsets[1:]:
        starts.append(max(starts[-1], int(a)))
    starts.append(len(text))
    return [len(text[starts[i] : starts[i + 1]].encode("utf-8")) for i in range(len(offsets))]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (one character per byte)."""
    bs = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


_BYTE_ALPHABET = frozenset(_bytes_to_unicode().values())


def _decoder_kind(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return "decode"
    try:
        dec = json.loads(backend.to_str()).get("decoder") or {}
    except Exception:  # noqa: BLE001 - an exotic backend: fall back to decoding
        return "decode"
    types = _decoder_types(dec)
    if "ByteLevel" in types:
        return "bytelevel"
    if "Metaspace" in types or "ByteFallback" in types or "Replace" in types:
        return "metaspace"
    return "decode"


def _decoder_types(dec: dict[str, Any]) -> set[str]:
    out = {str(dec.get("type"))}
    for sub in dec.get("decoders") or []:
        if isinstance(sub, dict):
            out |= _decoder_types(sub)
    return out


# ------------------------------------------------------------------------------------------------ documents
@dataclass(frozen=True)
class DocTokens:
    """A validation document ready to score: model input, first scored target index, scored bytes."""

    input_ids: list[int]
    score_from: int  # targets input_ids[score_from:] are scored (each given all earlier tokens)
    n_bytes: int
    truncated: bool
    byte_method: str

    @property
    def n_scored(self) -> int:
        return len(self.input_ids) - self.score_from


def tokenize_document(
    text: str,
    tokenizer: Any,
    counter: ByteCounter,
    *,
    prefix: Prefix,
    context_length: int,
    truncation: str,
) -> DocTokens | None:
    """Tokenise without special tokens, prepend the prefix, truncate to ``context_length`` input tokens.

    Returns None when no token would be scored (an empty document, or one token with no prefix).
    """
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=fast)
    ids = [int(i) for i in enc["input_ids"]]
    offsets = [tuple(o) for o in enc["offset_mapping"]] if fast else None
    if not ids:
        return None
    per_tok, method = counter.per_token(text, ids, offsets)
    n_pre = 0 if prefix.token_id is None else 1
    keep = context_length - n_pre
    truncated = len(ids) > keep
    if truncation == "keep_start":
        lo, hi = 0, min(len(ids), keep)
    else:
        lo, hi = max(0, len(ids) - keep), len(ids)
    kept = ids[lo:hi]
    first_scored = lo if n_pre else lo + 1  # document-token index of the first scored token
    if hi - first_scored < 1:
        return None
    if per_tok:
        n_bytes = sum(per_tok[first_scored:hi])
    else:  # last resort: decode the scored span
        n_bytes = len(
            tokenizer.decode(ids[first_scored:hi], clean_up_tokenization_spaces=False).encode("utf-8")
        )
    inp = ([prefix.token_id] if n_pre else []) + kept
    return DocTokens(inp, 1, n_bytes, truncated, method)
