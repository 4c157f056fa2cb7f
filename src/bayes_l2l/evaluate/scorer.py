"""The batched scorer: log-probabilities of target tokens under full causal context.

Every request is a token sequence plus the index of its first scored target; target ``t >= score_from``
is predicted from tokens ``0..t-1`` in one forward pass. Requests are sorted by length (longest first,
so an out-of-memory error shows up at once) and packed into right-padded batches of at most
``batch_tokens`` padded tokens; on CUDA out-of-memory the token budget halves and the batch is retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_l2l.errors import UserInputError

CPU_BATCH_TOKENS = 8192
CUDA_START_BATCH_TOKENS_PER_CTX = 64  # auto budget on CUDA starts at 64 full-length sequences
LOGSOFTMAX_CHUNK_ELEMENTS = 2**28  # 1 GiB of float32 logits at a time


@dataclass
class Scored:
    """Log-probabilities (nats, float64) of the scored targets and whether each was the greedy argmax."""

    logprobs: np.ndarray
    greedy: bool


@dataclass
class ScorerStats:
    """Work done: sequences, real and padded tokens through the model, wall seconds, OOM back-offs."""

    sequences: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0
    seconds: float = 0.0
    oom_backoffs: int = 0
    batch_tokens: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequences": self.sequences,
            "tokens": self.tokens,
            "padded_tokens": self.padded_tokens,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens / self.seconds, 1) if self.seconds > 0 else None,
            "oom_backoffs": self.oom_backoffs,
            "final_batch_tokens": self.batch_tokens[-1] if self.batch_tokens else None,
        }


class Scorer:
    """Scores token sequences with a causal LM (``model(input_ids, attention_mask).logits``)."""

    def __init__(
        self,
        model: Any,
        *,
        device: Any,
        max_length: int,
        batch_tokens: int | None = None,
        max_batch_size: int = 256,
        pad_id: int = 0,
        progress: bool = True,
    ) -> None:
        import torch

        self.model = model
        self.device = torch.device(device)
        self.max_length = int(max_length)
        if batch_tokens is None:
            batch_tokens = (
                CUDA_START_BATCH_TOKENS_PER_CTX * self.max_length
                if self.device.type == "cuda"
                else max(CPU_BATCH_TOKENS, self.max_length)
            )
        self.batch_tokens = int(batch_tokens)
        self.max_batch_size = int(max_batch_size)
        self.pad_id = int(pad_id)
        self.progress = progress
        self.stats = ScorerStats()

    # ---------------------------------------------------------------------------------------------- public
    def score(self, requests: Sequence[tuple[list[int], int]], desc: str = "scoring") -> list[Scored]:
        """Score ``(input_ids, score_from)`` requests; results come back in request order."""
        for i, (ids, s) in enumerate(requests):
            if len(ids) > self.max_length:
                raise ValueError(f"request {i}: {len(ids)} tokens exceed max_length {self.max_length}")
            if not 1 <= s <= len(ids):
                raise ValueError(f"request {i}: score_from={s} outside 1..{len(ids)}")
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]))
        out: list[Scored | None] = [None] * len(requests)
        bar = _progress(len(requests), desc, self.progress)
        pos = 0
        try:
            while pos < len(order):
                batch = self._next_batch(order, pos, requests)
                results = None
                try:
                    results = self._forward([requests[i] for i in batch])
                except Exception as exc:  # noqa: BLE001 - only OOM is handled; others re-raised
                    if not _is_oom(exc):
                        raise
                    if len(batch) == 1:
                        raise UserInputError(
                            "out of GPU memory on a single sequence of "
                            f"{len(requests[batch[0]][0])} tokens; "
                            "use a GPU with more memory, a smaller context_length, or "
                            "engine.dtype: bfloat16"
                        ) from exc
                if results is None:  # out of memory: the failed batch's tensors are released by now
                    self._back_off(len(batch), len(requests[batch[0]][0]))
                    continue
                for i, r in zip(batch, results, strict=True):
                    out[i] = r
                pos += len(batch)
                bar.update(len(batch))
        finally:
            bar.close()
        return [r for r in out if r is not None]

    # ---------------------------------------------------------------------------------------------- internals
    def _next_batch(self, order: list[int], pos: int, requests: Sequence[tuple[list[int], int]]) -> list[int]:
        longest = len(requests[order[pos]][0])
        n = max(1, min(self.max_batch_size, self.batch_tokens // max(1, longest)))
        return order[pos : pos + n]

    def _back_off(self, batch_len: int, longest: int) -> None:
        import torch

        self.stats.oom_backoffs += 1
        self.batch_tokens = max(longest, (batch_len // 2) * longest)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _forward(self, batch: list[tuple[list[int], int]]) -> list[Scored]:
        import torch

        t0 = time.perf_counter()
        width = max(len(ids) for ids, _ in batch)
        ids_t = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (ids, _) in enumerate(batch):
            ids_t[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[b, : len(ids)] = 1
        ids_t, mask = ids_t.to(self.device), mask.to(self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids_t, attention_mask=mask, use_cache=False).logits
            lp_all, greedy_all = _target_logprobs(logits, ids_t)
        lp_np = lp_all.double().cpu().numpy()
        greedy_np = greedy_all.cpu().numpy()
        results = []
        for b, (ids, s) in enumerate(batch):
            n = len(ids)
            # target t (t >= s) is predicted at position t - 1
            results.append(Scored(lp_np[b, s - 1 : n - 1].copy(), bool(greedy_np[b, s - 1 : n - 1].all())))
        self.stats.sequences += len(batch)
        self.stats.tokens += sum(len(ids) for ids, _ in batch)
        self.stats.padded_tokens += width * len(batch)
        self.stats.batches += 1
        self.stats.batch_tokens.append(self.batch_tokens)
        self.stats.seconds += time.perf_counter() - t0
        return results


def _target_logprobs(logits: Any, ids: Any) -> tuple[Any, Any]:
    """log p(ids[:, t + 1] | ids[:, :t + 1]) in float32 and whether it was the argmax, for every position.

    Row chunks bound the float32 copy of the logits to about LOGSOFTMAX_CHUNK_ELEMENTS elements.
    """
    import torch

    rows_total, width, vocab = logits.shape
    tgt = ids[:, 1:]
    lp = torch.empty((rows_total, width - 1), dtype=torch.float32, device=logits.device)
    greedy = torch.empty((rows_total, width - 1), dtype=torch.bool, device=logits.device)
    rows = max(1, LOGSOFTMAX_CHUNK_ELEMENTS // max(1, (width - 1) * vocab))
    for r0 in range(0, rows_total, rows):
        lg = logits[r0 : r0 + rows, :-1].float()
        t = tgt[r0 : r0 + rows]
        lp[r0 : r0 + rows] = torch.log_softmax(lg, dim=-1).gather(-1, t[..., None])[..., 0]
        greedy[r0 : r0 + rows] = lg.argmax(dim=-1) == t
    return lp, greedy


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class _NoBar:
    """The part of tqdm's interface the evaluator uses, doing nothing."""

    def update(self, n: int) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled or total == 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="seq", leave=False, position=1, dynamic_ncols=True)
