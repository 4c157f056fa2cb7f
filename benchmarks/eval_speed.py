"""Throughput and MFU of the validation pass, against the paper's 50-token windows and lm-eval's `hf` model.

Random-init Llama and GPT-NeoX models (~160M and ~1B parameters) score the same documents three ways,
in one process, on one device:

  ours      bayes-l2l's estimator: one sequence per document, full causal context up to --ctx tokens,
            length-bucketed batches (the validation pass of `bayes-l2l eval`)
  window50  the paper's hub-model estimator: the document's first --ctx tokens cut into windows of 50
            tokens, each scored without earlier context (run through the same batched scorer)
  lm_eval   lm-eval's HFLM.loglikelihood_rolling (its `hf` model), max_length --ctx, batch --hf-batch

Reported per (model, method): scored tokens, seconds, scored tokens/s, model FLOPs utilisation (MFU)
and the mean NLL. FLOPs count the useful forward work on real (unpadded) tokens: per sequence of L
tokens, 2 * N * L for the weight matmuls (N = parameters without the input embedding) plus
2 * n_layer * d_model * L * (L + 1) / 2 for causal attention scores and values. MFU = FLOPs /
(seconds * peak); the peak is --peak-tflops or, for known GPUs, the dense bf16 spec sheet value.

Usage: python benchmarks/eval_speed.py [--tiny] [--out results.json]
  --tiny: tiny models, few short documents, CPU-friendly smoke run (used by the tests); the numbers
  mean nothing. Without --tiny run it on a CUDA machine. Nothing here is a stored result.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
SIZES = {
    # name: (architecture, hidden, layers, heads, intermediate)
    "llama-160m": ("llama", 768, 12, 12, 2048),
    "neox-160m": ("gpt_neox", 768, 12, 12, 3072),
    "llama-1b": ("llama", 2048, 16, 16, 5632),
    "neox-1b": ("gpt_neox", 2048, 16, 8, 8192),
}
TINY = {
    "llama-tiny": ("llama", 64, 2, 4, 128),
    "neox-tiny": ("gpt_neox", 64, 2, 4, 256),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU smoke run with tiny models")
    p.add_argument("--models", nargs="*", default=None, help=f"subset of {', '.join(SIZES)}")
    p.add_argument("--docs", type=int, default=None, help="documents (default 256; tiny: 6)")
    p.add_argument("--ctx", type=int, default=None, help="context length (default 2048; tiny: 64)")
    p.add_argument("--corpus", type=Path, default=None, help="JSONL with a 'text' field (default: synthetic)")
    p.add_argument("--vocab", type=int, default=None, help="tokenizer vocabulary (default 50304; tiny: 300)")
    p.add_argument("--batch-tokens", type=int, default=None, help="scorer token budget (default: automatic)")
    p.add_argument("--hf-batch", type=int, default=None, help="lm-eval HFLM batch size (default 16; tiny 4)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (dense, model dtype)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def synthetic_documents(n: int, seed: int) -> list[str]:
    """Pseudo-English documents of varied length (a random model does not care what it reads)."""
    import random

    rng = random.Random(seed)
    words = (
        "the of and to in a is that for it as was with be by on not he this are or his from at which but have "
        "an they you were her she there one all we their has been would more if no when will so who time "
        "people water energy light system model data number through between because however therefore"
    ).split()
    docs = []
    for _ in range(n):
        k = int(rng.lognormvariate(6.0, 0.9))  # median ~400 words, a long tail beyond 2048 tokens
        docs.append(" ".join(rng.choice(words) for _ in range(max(k, 5))) + ".")
    return docs


def read_corpus(path: Path, n: int) -> list[str]:
    docs = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                docs.append(json.loads(line)["text"])
                if len(docs) >= n:
                    break
    return docs


def train_tokenizer(docs: list[str], vocab: int):
    """A byte-level BPE fast tokenizer trained on the documents (EOS only, like GPT-2 / Pythia)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(docs, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def build_model(spec: tuple[str, int, int, int, int], vocab: int, ctx: int, device: Any, dtype: Any):
    """A random-init causal LM of the given shape, SDPA attention, in ``dtype`` on ``device``."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig

    arch, hidden, layers, heads, inter = spec
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=max(ctx, 2048),
    )
    cfg = LlamaConfig(**common) if arch == "llama" else GPTNeoXConfig(**common)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=dtype)
    return model.to(device).eval(), cfg


def forward_flops(lengths: list[int], n_matmul: int, layers: int, hidden: int) -> float:
    """Useful forward FLOPs for sequences of the given lengths (see the module docstring)."""
    return float(sum(2.0 * n_matmul * L + 2.0 * layers * hidden * L * (L + 1) / 2.0 for L in lengths))


def peak_tflops(device: Any, given: float | None) -> float | None:
    if given is not None:
        return given
    if device.type != "cuda":
        return None
    import torch

    name = torch.cuda.get_device_name(device)
    for key, val in PEAK_BF16_TFLOPS.items():
        if key in name:
            return val
    return None


def timed(fn, device: Any) -> tuple[Any, float]:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from bayes_l2l.evaluate.engine import pick_device, pick_dtype

    tiny = args.tiny
    n_docs = args.docs or (6 if tiny else 256)
    ctx = args.ctx or (64 if tiny else 2048)
    vocab = args.vocab or (300 if tiny else 50304)
    hf_batch = args.hf_batch or (4 if tiny else 16)
    sizes = TINY if tiny else {k: SIZES[k] for k in (args.models or list(SIZES))}
    device = pick_device("cpu" if tiny else "auto")
    dtype = pick_dtype("auto", device)
    torch.manual_seed(args.seed)
    docs = read_corpus(args.corpus, n_docs) if args.corpus else synthetic_documents(n_docs, args.seed)
    tok = train_tokenizer(
        docs if args.corpus else synthetic_documents(max(n_docs, 200), args.seed + 1), vocab
    )
    eos = tok.eos_token_id
    ids = [tok(d, add_special_tokens=False)["input_ids"] for d in docs]
    ours_reqs = [([eos, *x[: ctx - 1]], 1) for x in ids]
    win_reqs = []
    for x in ids:
        head = x[:ctx]
        win_reqs += [(head[i : i + 50], 1) for i in range(0, len(head), 50) if len(head[i : i + 50]) > 1]
    peak = peak_tflops(device, args.peak_tflops)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "peak_tflops": peak,
        "documents": n_docs,
        "context_length": ctx,
        "vocab": vocab,
        "tiny": tiny,
        "torch": torch.__version__,
        "models": {},
    }
    for name, spec in sizes.items():
        model, cfg = build_model(spec, vocab, ctx, device, dtype)
        n_params = sum(p.numel() for p in model.parameters())
        n_matmul = n_params - model.get_input_embeddings().weight.numel()
        entry: dict[str, Any] = {"params": n_params, "params_without_input_embedding": n_matmul}

        for label, reqs in (("ours", ours_reqs), ("window50", win_reqs)):
            entry[label] = measure_scorer(
                model, reqs, label, device, ctx, args.batch_tokens, eos, cfg, n_matmul, peak
            )
        entry["lm_eval"] = measure_lm_eval(model, tok, docs, ctx, hf_batch, device, cfg, n_matmul, peak)
        results["models"][name] = entry
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def measure_scorer(
    model, reqs, label, device, ctx, batch_tokens, pad_id, cfg, n_matmul, peak
) -> dict[str, Any]:
    """bayes-l2l's batched scorer on ``reqs`` ((input ids, first scored index) pairs), after a warm-up."""
    from bayes_l2l.evaluate.scorer import Scorer, ScorerStats

    scorer = Scorer(
        model, device=device, max_length=ctx, batch_tokens=batch_tokens, pad_id=pad_id, progress=False
    )
    scorer.score(reqs[: max(1, len(reqs) // 20)], desc="warm-up")  # kernels, allocator
    scorer.stats = ScorerStats()
    out, secs = timed(lambda: scorer.score(reqs, desc=label), device)
    n_tok = sum(len(r.logprobs) for r in out)
    nll = -sum(float(r.logprobs.sum()) for r in out) / n_tok
    flops = forward_flops([len(x) for x, _ in reqs], n_matmul, cfg.num_hidden_layers, cfg.hidden_size)
    return {
        "scored_tokens": n_tok,
        "seconds": round(secs, 4),
        "tokens_per_second": round(n_tok / secs, 1),
        "mfu": None if peak is None else round(flops / secs / (peak * 1e12), 4),
        "mean_nll": round(nll, 5),
        "padded_fraction": round(1 - scorer.stats.tokens / max(1, scorer.stats.padded_tokens), 4),
        "oom_backoffs": scorer.stats.oom_backoffs,
        "final_batch_tokens": scorer.batch_tokens,
    }


def measure_lm_eval(model, tok, docs, ctx, batch, device, cfg, n_matmul, peak) -> dict[str, Any]:
    """lm-eval's HFLM rolling log-likelihood over the same documents (every token, windows of ctx)."""
    import logging

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch, max_length=ctx, device=str(device))
    reqs = [
        Instance(request_type="loglikelihood_rolling", doc={}, arguments=(d,), idx=i)
        for i, d in enumerate(docs)
    ]
    lm.loglikelihood_rolling(reqs[: max(1, len(reqs) // 20)], disable_tqdm=True)  # warm-up
    out, secs = timed(lambda: lm.loglikelihood_rolling(reqs, disable_tqdm=True), device)
    lengths, n_tok = [], 0
    for d in docs:
        toks = tok(d, add_special_tokens=False)["input_ids"]
        n_tok += len(toks)
        for w in get_rolling_token_windows(toks, lm.prefix_token_id, ctx, 1):
            a, b = make_disjoint_window(w)
            lengths.append(len(a) + len(b) - 1)  # HFLM feeds (context + continuation)[:-1]
    flops = forward_flops(lengths, n_matmul, cfg.num_hidden_layers, cfg.hidden_size)
    return {
        "scored_tokens": n_tok,
        "seconds": round(secs, 4),
        "tokens_per_second": round(n_tok / secs, 1),
        "mfu": None if peak is None else round(flops / secs / (peak * 1e12), 4),
        "mean_nll": round(-sum(out) / n_tok, 5),
        "batch_size": batch,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    for name, entry in res["models"].items():
        line = ", ".join(
            f"{m}: {entry[m]['tokens_per_second']:.0f} tok/s"
            + ("" if entry[m]["mfu"] is None else f" (MFU {100 * entry[m]['mfu']:.1f}%)")
            for m in ("ours", "window50", "lm_eval")
        )
        print(f"{name} ({entry['params'] / 1e6:.0f}M): {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
