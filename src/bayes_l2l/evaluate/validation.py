"""Validation-corpus loss: one well-defined estimator, in nats/token and bits/byte, with a stderr.

Each document is tokenised without special tokens, the prefix token (config ``prefix``) is put in front
and never scored, the sequence is truncated to ``context_length`` input tokens (``truncation``), and every
kept token is scored once with full causal context (no windows). ``pool: tokens`` pools the NLL over all
scored tokens of all documents; ``pool: documents`` averages per-document means. Bits/byte divide the
same NLL by ln 2 times the UTF-8 bytes of the scored text. Stderr: per-document bootstrap (pooled) or
sd/sqrt(documents) (per-document means).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_l2l.evaluate.config import EvalConfig
from bayes_l2l.evaluate.corpora import Corpus
from bayes_l2l.evaluate.scorer import Scorer
from bayes_l2l.evaluate.tokens import ByteCounter, Prefix, tokenize_document

VAL_ESTIMATOR_VERSION = "bayes-l2l/val-v1"
LN2 = math.log(2.0)


def validation_estimator(cfg: EvalConfig, prefix_policy: str) -> str:
    """The estimator string recorded with every validation row (the same for both units)."""
    prefix = Prefix(prefix_policy, None, 0).describe()
    keep = "keeping the start" if cfg.truncation == "keep_start" else "keeping the end"
    pool = (
        "NLL pooled over scored tokens (sum NLL / sum tokens)"
        if cfg.pool == "tokens"
        else "mean over documents of the per-document mean NLL"
    )
    return (
        f"{VAL_ESTIMATOR_VERSION}: document tokenised without special tokens; {prefix}; truncated to "
        f"{cfg.context_length} input tokens {keep}; every kept token scored once with full causal context "
        f"(no windows); {pool}; bits/byte over the UTF-8 bytes of the scored text"
    )


@dataclass
class CorpusResult:
    """Per-corpus validation loss in both units plus the per-document sums it came from."""

    corpus: str
    nats_per_token: float
    bits_per_byte: float
    stderr_nats: float
    stderr_bpb: float
    n_docs: int
    n_tokens: int
    n_bytes: int
    n_truncated: int
    n_skipped: int
    byte_methods: dict[str, int]
    doc_nll: np.ndarray = field(repr=False)
    doc_tokens: np.ndarray = field(repr=False)
    doc_bytes: np.ndarray = field(repr=False)

    def rows(self, pool: str) -> list[dict[str, Any]]:
        """(unit, value, n, stderr) rows: n = scored tokens / bytes (pooled) or documents (per-doc means)."""
        n_tok = self.n_tokens if pool == "tokens" else self.n_docs
        n_byt = self.n_bytes if pool == "tokens" else self.n_docs
        return [
            {"unit": "nats/token", "value": self.nats_per_token, "n": n_tok, "stderr": self.stderr_nats},
            {"unit": "bits/byte", "value": self.bits_per_byte, "n": n_byt, "stderr": self.stderr_bpb},
        ]


def score_corpus(
    corpus: Corpus,
    tokenizer: Any,
    scorer: Scorer,
    cfg: EvalConfig,
    prefix: Prefix,
    counter: ByteCounter | None = None,
) -> CorpusResult:
    """Score the corpus' documents and pool them according to ``cfg.pool``."""
    counter = counter or ByteCounter(tokenizer)
    docs = []
    skipped = 0
    for text in corpus.documents:
        d = tokenize_document(
            text,
            tokenizer,
            counter,
            prefix=prefix,
            context_length=cfg.context_length,
            truncation=cfg.truncation,
        )
        if d is None:
            skipped += 1
        else:
            docs.append(d)
    if not docs:
        raise ValueError(f"corpus '{corpus.name}': no document has a token to score")
    scored = scorer.score([(d.input_ids, d.score_from) for d in docs], desc=f"val/{corpus.name}")
    nll = np.array([-float(s.logprobs.sum()) for s in scored])
    ntok = np.array([d.n_scored for d in docs], dtype=float)
    nbytes = np.array([d.n_bytes for d in docs], dtype=float)
    methods: dict[str, int] = {}
    for d in docs:
        methods[d.byte_method] = methods.get(d.byte_method, 0) + 1
    if cfg.pool == "tokens":
        value = nll.sum() / ntok.sum()
        bpb = nll.sum() / (LN2 * nbytes.sum())
        se, se_b = _bootstrap_ratio(nll, ntok, nbytes, cfg.bootstrap, _seed(cfg.seed, corpus.name))
    else:
        per_doc = nll / ntok
        per_doc_b = nll / (LN2 * np.maximum(nbytes, 1.0))
        value, bpb = per_doc.mean(), per_doc_b.mean()
        k = len(per_doc)
        se = per_doc.std(ddof=1) / math.sqrt(k) if k > 1 else math.nan
        se_b = per_doc_b.std(ddof=1) / math.sqrt(k) if k > 1 else math.nan
    return CorpusResult(
        corpus=corpus.name,
        nats_per_token=float(value),
        bits_per_byte=float(bpb),
        stderr_nats=float(se),
        stderr_bpb=float(se_b),
        n_docs=len(docs),
        n_tokens=int(ntok.sum()),
        n_bytes=int(nbytes.sum()),
        n_truncated=sum(d.truncated for d in docs),
        n_skipped=skipped,
        byte_methods=methods,
        doc_nll=nll,
        doc_tokens=ntok,
        doc_bytes=nbytes,
    )


def _seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**32)


def _bootstrap_ratio(
    nll: np.ndarray, ntok: np.ndarray, nbytes: np.ndarray, iters: int, seed: int
) -> tuple[float, float]:
    """Bootstrap sd (documents resampled) of sum(nll)/sum(ntok) and of sum(nll)/(ln2 sum(bytes))."""
    k = len(nll)
    if iters <= 0 or k < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    per_tok, per_byte = [], []
    chunk = max(1, min(iters, 2_000_000 // k))
    done = 0
    while done < iters:
        m = min(chunk, iters - done)
        idx = rng.integers(0, k, size=(m, k))
        s = nll[idx].sum(axis=1)
        per_tok.append(s / ntok[idx].sum(axis=1))
        per_byte.append(s / (LN2 * nbytes[idx].sum(axis=1)))
        done += m
    return float(np.concatenate(per_tok).std(ddof=1)), float(np.concatenate(per_byte).std(ddof=1))
