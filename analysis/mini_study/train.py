"""Step 2 of the mini study: train one tiny decoder LM from scratch and save checkpoints along the way.

One run = one recipe (architecture, data, tokenizer, size, learning rate, seed). The model is built
from a transformers config (``LlamaForCausalLM``, ``GPTNeoXForCausalLM`` or ``MambaForCausalLM``;
Mamba uses transformers' own PyTorch path on CPU and the mamba-ssm kernels where installed), trained
with AdamW on random windows of the tokenised training split (the same windows for the same seed and
tokenizer, whatever the architecture), linear warm-up then cosine decay to 10% of the peak rate.
Checkpoints (``save_pretrained`` of model and tokenizer) go to ``<out>/step<N>``, on a schedule that
is dense early and sparse late, plus ``run.json`` (recipe, parameter count, tokens per step, train
loss every 10 steps, wall time). A run that finds its last checkpoint already written is skipped, so
the study is resumable run by run.

Usage: ``python analysis/mini_study/train.py --arch llama --data c4 --tokenizer bpe4k --size s
--lr 3e-3 --seed 0 --out out/mini_study/ckpts/<run>``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

CONTEXT = 256  # tokens per training window
BATCH = 8  # windows per step (2,048 tokens)
SIZES = {  # width, layers (the same for every architecture; run.json and the table record the parameter counts)
    "s": (96, 3),
    "m": (160, 4),
}
CHECKPOINTS = (20, 40, 60, 90, 130, 180, 250, 340, 450, 600, 780, 1000)  # steps; dense early, sparse late


def build_model(arch: str, size: str, vocab: int, seed: int):
    import torch
    from transformers import (
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        MambaConfig,
        MambaForCausalLM,
    )

    torch.manual_seed(seed)
    width, layers = SIZES[size]
    heads = width // 32
    if arch == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=width,
            intermediate_size=int(8 * width / 3 / 16 + 1) * 16,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=CONTEXT + 1,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=0,
        )
        return LlamaForCausalLM(cfg)
    if arch == "neox":
        cfg = GPTNeoXConfig(
            vocab_size=vocab,
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            rotary_pct=0.25,
            max_position_embeddings=CONTEXT + 1,
            use_parallel_residual=True,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=0,
        )
        return GPTNeoXForCausalLM(cfg)
    if arch == "mamba":
        import importlib.util

        if importlib.util.find_spec("mambapy") is None:  # else transformers loops over positions (~6x slower)
            raise SystemExit("error: Mamba on CPU needs mambapy: pip install -e '.[eval]'")
        cfg = MambaConfig(
            vocab_size=vocab,
            hidden_size=width,
            num_hidden_layers=layers,
            state_size=16,
            expand=2,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
            use_mambapy=True,
        )
        return MambaForCausalLM(cfg)
    raise SystemExit(f"error: unknown --arch {arch!r}; use llama, neox or mamba")


def lr_at(step: int, peak: float, total: int) -> float:
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=["llama", "neox", "mamba"])
    ap.add_argument(
        "--data", required=True, help="training split name (out/mini_study/data/train/<name>.txt)"
    )
    ap.add_argument(
        "--tokenizer", required=True, help="tokenizer name (out/mini_study/data/tokenizers/<name>)"
    )
    ap.add_argument("--size", required=True, choices=sorted(SIZES))
    ap.add_argument("--lr", type=float, required=True, help="peak learning rate")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=Path("out/mini_study/data"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=CHECKPOINTS[-1])
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoTokenizer

    checkpoints = [s for s in CHECKPOINTS if s <= args.steps]
    if (args.out / f"step{checkpoints[-1]}" / "config.json").is_file():
        print(f"{args.out}: already trained, skipped")
        return 0
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.data_dir / "tokenizers" / args.tokenizer)
    text = (args.data_dir / "train" / f"{args.data}.txt").read_text(encoding="utf-8")
    ids = torch.tensor(tok(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
    model = build_model(args.arch, args.size, len(tok), args.seed)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    batches = torch.Generator().manual_seed(args.seed)  # the windows depend on seed and tokenizer only

    log: list[dict] = []
    started = time.time()
    model.train()
    for step in range(1, checkpoints[-1] + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, args.lr, checkpoints[-1])
        starts = torch.randint(0, len(ids) - CONTEXT - 1, (BATCH,), generator=batches)
        batch = torch.stack([ids[s : s + CONTEXT + 1] for s in starts])
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        # labels=input_ids: transformers shifts internally, so the model predicts token t+1 from 0..t
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 10 == 0 or step == 1:
            value = loss.item()
            log.append({"step": step, "loss": round(value, 4), "seconds": round(time.time() - started, 1)})
            print(
                f"{args.out.name} step {step}/{checkpoints[-1]} loss {value:.3f} "
                f"{time.time() - started:.0f}s",
                flush=True,
            )
        if step in checkpoints:
            target = args.out / f"step{step}"
            model.save_pretrained(target, safe_serialization=True)
            tok.save_pretrained(target)
    record = {
        "recipe": {k: getattr(args, k) for k in ("arch", "data", "tokenizer", "size", "lr", "seed")},
        "params": params,
        "context": CONTEXT,
        "batch": BATCH,
        "tokens_per_step": CONTEXT * BATCH,
        "train_tokens_available": len(ids),
        "checkpoints": checkpoints,
        "threads": args.threads,
        "torch": torch.__version__,
        "wall_seconds": round(time.time() - started, 1),
        "log": log,
    }
    (args.out / "run.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
