"""The validation estimator on tiny random Llama / GPT-NeoX / Mamba / Mamba2 models: losses equal a direct torch
cross-entropy, bits/byte use the true UTF-8 bytes of the scored text, batching and OOM back-off change
nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from eval_fixtures.tiny import build_model, build_tokenizer, documents  # noqa: E402

from bayes_l2l.errors import UserInputError  # noqa: E402
from bayes_l2l.evaluate.config import parse_config  # noqa: E402
from bayes_l2l.evaluate.corpora import Corpus  # noqa: E402
from bayes_l2l.evaluate.scorer import Scorer  # noqa: E402
from bayes_l2l.evaluate.tokens import ByteCounter, resolve_prefix, tokenize_document  # noqa: E402
from bayes_l2l.evaluate.validation import score_corpus, validation_estimator  # noqa: E402

ARCHS = ("llama", "gpt_neox", "mamba", "mamba2")
CTX = 48


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def tok_bos():
    return build_tokenizer(bos=True)


@pytest.fixture(scope="module")
def models(tok):
    return {arch: build_model(arch, tok, seed=i) for i, arch in enumerate(ARCHS)}


def _corpus(docs: list[str]) -> Corpus:
    return Corpus("tiny", tuple(docs), "0" * 64, "test")


def _cfg(**kw):
    return parse_config(
        {"corpora": {"tiny": {"path": "x.jsonl"}}, "context_length": CTX, "bootstrap": 100, **kw}
    )


def _direct_nll(model, ids: list[int], score_from: int) -> float:
    """Sum of -log p over targets ids[score_from:], one sequence, plain torch cross-entropy."""
    with torch.no_grad():
        x = torch.tensor([ids])
        logits = model(input_ids=x).logits[0]
        ce = torch.nn.functional.cross_entropy(logits[:-1].float(), x[0, 1:], reduction="none")
    return float(ce[score_from - 1 :].sum())


@pytest.mark.parametrize("arch", ARCHS)
def test_validation_loss_equals_direct_cross_entropy(arch, tok, models):
    model = models[arch]
    docs = documents(10)
    cfg = _cfg()
    prefix = resolve_prefix(tok, "bos_or_eos")
    assert prefix.token_id == tok.eos_token_id  # no BOS in this tokenizer: EOS goes in front
    scorer = Scorer(model, device="cpu", max_length=CTX, batch_tokens=3 * CTX, progress=False)
    res = score_corpus(_corpus(docs), tok, scorer, cfg, prefix)
    nll, ntok, nbytes = 0.0, 0, 0
    for text in docs:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        kept = ids[: CTX - 1]
        nll += _direct_nll(model, [tok.eos_token_id] + kept, 1)
        ntok += len(kept)
        # true bytes of the scored text: the whole document, or the text its kept tokens decode to
        scored_text = text if len(kept) == len(ids) else tok.decode(kept)
        assert text.startswith(scored_text)
        nbytes += len(scored_text.encode("utf-8"))
    assert res.n_tokens == ntok and res.n_bytes == nbytes and res.n_docs == 10
    assert 0 < res.n_truncated < 10  # the fixture has documents on both sides of the window
    assert res.nats_per_token == pytest.approx(nll / ntok, rel=1e-5)
    assert res.bits_per_byte == pytest.approx(nll / (math.log(2) * nbytes), rel=1e-5)
    assert res.stderr_nats > 0 and res.stderr_bpb > 0
    rows = res.rows("tokens")
    assert [r["unit"] for r in rows] == ["nats/token", "bits/byte"] and rows[0]["n"] == ntok


def test_keep_end_prefix_none_and_document_pooling(tok, models):
    model = models["gpt_neox"]
    docs = documents(6)
    cfg = _cfg(truncation="keep_end", prefix="none", pool="documents")
    prefix = resolve_prefix(tok, "none")
    assert prefix.token_id is None
    scorer = Scorer(model, device="cpu", max_length=CTX, progress=False)
    res = score_corpus(_corpus(docs), tok, scorer, cfg, prefix)
    per_doc = []
    for text in docs:
        ids = tok(text, add_special_tokens=False)["input_ids"][-CTX:]  # the end of the document
        per_doc.append(_direct_nll(model, ids, 1) / (len(ids) - 1))  # the first kept token is context only
    assert res.nats_per_token == pytest.approx(float(np.mean(per_doc)), rel=1e-5)
    assert res.stderr_nats == pytest.approx(float(np.std(per_doc, ddof=1) / math.sqrt(len(docs))), rel=1e-4)
    assert res.rows("documents")[0]["n"] == len(docs)


def test_tokenizer_prefix_policy_uses_default_bos(tok_bos):
    p = resolve_prefix(tok_bos, "tokenizer")
    assert p.token_id == tok_bos.bos_token_id
    assert resolve_prefix(tok_bos, "bos_or_eos").token_id == tok_bos.bos_token_id
    counter = ByteCounter(tok_bos)
    d = tokenize_document(
        "The cat sat.", tok_bos, counter, prefix=p, context_length=CTX, truncation="keep_start"
    )
    assert d.input_ids[0] == tok_bos.bos_token_id and d.input_ids.count(tok_bos.bos_token_id) == 1
    assert d.n_bytes == len(b"The cat sat.") and d.n_scored == len(d.input_ids) - 1


def test_byte_counts_are_exact_for_bytelevel_and_metaspace_tokenizers(tok):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = "Grüße aus 東京 — naïve café!\n\nSecond  paragraph, with\ttabs."
    counter = ByteCounter(tok)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    per, method = counter.per_token(text, enc["input_ids"], enc["offset_mapping"])
    assert method == "bytelevel" and sum(per) == len(text.encode("utf-8"))
    # SentencePiece-style vocabulary ('▁' for spaces, dummy prefix, byte fallback for unseen characters)
    sp = Tokenizer(models.BPE(byte_fallback=True, unk_token=None))
    sp.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    sp.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["</s>", *byte_tokens])
    sp.train_from_iterator(["the cat sat on the mat", "grüße aus der stadt"] * 20, trainer=trainer)
    sp_tok = PreTrainedTokenizerFast(tokenizer_object=sp, eos_token="</s>")
    c2 = ByteCounter(sp_tok)
    assert c2.kind == "metaspace"
    for t in ["the cat sat", "Grüße 東京 mat", " leading space"]:
        e = sp_tok(t, add_special_tokens=False, return_offsets_mapping=True)
        per, method = c2.per_token(t, e["input_ids"], e["offset_mapping"])
        assert sum(per) == len(t.encode("utf-8")), (t, method)
        assert method.startswith("metaspace")


def test_estimator_string_names_the_choices():
    est = validation_estimator(_cfg(), "bos_or_eos")
    assert "full causal context" in est and f"{CTX} input tokens keeping the start" in est
    assert "BOS, else EOS" in est and "pooled over scored tokens" in est and "UTF-8 bytes" in est
    assert est != validation_estimator(_cfg(truncation="keep_end"), "bos_or_eos")


class _OomModel:
    """Wraps a model; raises torch.OutOfMemoryError when a batch has more than ``limit`` padded tokens."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit, self.calls = model, limit, 0

    def __call__(self, input_ids, attention_mask=None, use_cache=False):
        self.calls += 1
        if input_ids.numel() > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


def test_scorer_backs_off_on_out_of_memory(tok, models):
    model = models["llama"]
    reqs = [(ids[:CTX], 1) for ids in (tok(d, add_special_tokens=False)["input_ids"] for d in documents(12))]
    plain = Scorer(model, device="cpu", max_length=CTX, batch_tokens=10_000, progress=False).score(reqs)
    oom = _OomModel(model, limit=2 * CTX)
    s = Scorer(oom, device="cpu", max_length=CTX, batch_tokens=12 * CTX, progress=False)
    backed = s.score(reqs)
    assert s.stats.oom_backoffs >= 2 and s.batch_tokens <= 2 * CTX
    for a, b in zip(plain, backed, strict=True):
        np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=1e-5, atol=1e-6)
    tiny = Scorer(_OomModel(model, limit=4), device="cpu", max_length=CTX, progress=False)
    with pytest.raises(UserInputError, match="out of GPU memory on a single sequence"):
        tiny.score(reqs[:2])


def test_scorer_batching_is_invariant_and_ordered(tok, models):
    model = models["mamba"]
    reqs = [(ids[:CTX], min(3, len(ids[:CTX]) - 1)) for ids in (tok(d)["input_ids"] for d in documents(8))]
    one = Scorer(model, device="cpu", max_length=CTX, batch_tokens=1, progress=False).score(reqs)
    many = Scorer(model, device="cpu", max_length=CTX, batch_tokens=10_000, progress=False).score(reqs)
    for (ids, s), a, b in zip(reqs, one, many, strict=True):
        assert len(a.logprobs) == len(ids) - s
        np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="exceed max_length"):
        Scorer(model, device="cpu", max_length=4, progress=False).score(reqs[:1])
