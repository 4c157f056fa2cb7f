"""An ``lm_eval.api.model.LM`` backed by the project's batched scorer (the model loaded once per checkpoint).

Requests are tokenised as lm-eval's causal models do (trailing spaces of the context move to the
continuation; the continuation's tokens are those of ``context + continuation`` after the context's),
always without the tokenizer's special tokens; the config's prefix token goes in front and is never
scored (an empty context is conditioned on it, BOS else EOS). Contexts longer than the model's window
lose their oldest tokens. For every (context, continuation) the adapter keeps how many tokens it scored
and the UTF-8 bytes of the continuation as scored, so the cloze loss can be normalised exactly.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.scorer import Scorer
from bayes_l2l.evaluate.tokens import Prefix


class ScorerLM(LM):
    """lm-eval model interface over :class:`~bayes_l2l.evaluate.scorer.Scorer`."""

    def __init__(self, tokenizer: Any, scorer: Scorer, prefix: Prefix, max_length: int) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.scorer = scorer
        self.prefix = prefix
        self.max_length = int(max_length)
        self.scored: dict[tuple[str, str], tuple[int, int]] = {}

    # ------------------------------------------------------------------------------------------ tokenising
    def _enc(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def encode_request(self, context: str, continuation: str) -> tuple[list[int], int, str]:
        """(input ids, first scored index, continuation text as scored) for one loglikelihood request."""
        if context == "":
            pre = [self.prefix.empty_context_id]
            ctx: list[int] = []
            cont = self._enc(continuation)
            scored_text = continuation
        else:
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                continuation = context[-n_spaces:] + continuation
                context = context[:-n_spaces]
            whole = self._enc(context + continuation)
            ctx = self._enc(context)
            cont = whole[len(ctx) :]
            scored_text = continuation
            pre = [] if self.prefix.token_id is None else [self.prefix.token_id]
        if not cont:
            raise UserInputError(
                f"empty continuation to score after context {context[-60:]!r}; check the task"
            )
        if len(cont) + max(len(pre), 1) > self.max_length:
            raise UserInputError(
                f"a continuation of {len(cont)} tokens does not fit the context length {self.max_length}; "
                "raise context_length in the eval config"
            )
        room = self.max_length - len(pre) - len(cont)
        ctx = ctx[-room:] if room > 0 else []
        seq = pre + ctx + cont
        score_from = len(seq) - len(cont)
        if score_from == 0:  # prefix 'none', context cut away entirely: condition on BOS/EOS
            seq = [self.prefix.empty_context_id] + seq[-(self.max_length - 1) :]
            score_from = len(seq) - len(cont)
        return seq, score_from, scored_text

    # ---------------------------------------------------------------------------------------------- LM API
    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Summed log-probability (nats) of each continuation and whether it is the greedy completion."""
        batch = []
        for req in requests:
            context, continuation = req.args[0], req.args[1]
            seq, score_from, scored_text = self.encode_request(context, continuation)
            self.scored[(context, continuation)] = (len(seq) - score_from, len(scored_text.encode("utf-8")))
            batch.append((seq, score_from))
        results = self.scorer.score(batch, desc="cloze requests")
        return [(float(r.logprobs.sum()), bool(r.greedy)) for r in results]

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood (nats) of whole strings in disjoint rolling windows, each token scored once."""
        windows: list[tuple[list[int], int]] = []
        owner: list[int] = []
        for k, req in enumerate(requests):
            tokens = self._enc(req.args[0])
            for pair in get_rolling_token_windows(
                token_list=tokens,
                prefix_token=self.prefix.empty_context_id,
                max_seq_len=self.max_length - 1,
                context_len=1,
            ):
                ctx, cont = make_disjoint_window(pair)
                windows.append((ctx + cont, len(ctx)))
                owner.append(k)
        results = self.scorer.score(windows, desc="rolling windows")
        totals = [0.0] * len(requests)
        for k, r in zip(owner, results, strict=True):
            totals[k] += float(r.logprobs.sum())
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        raise UserInputError(
            "generation tasks (output_type generate_until) are not supported: bayes-l2l scores losses; "
            "use loglikelihood / multiple_choice tasks"
        )

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "tokenizer")).replace("/", "__")
