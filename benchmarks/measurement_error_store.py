"""Measurement error on a store the evaluator wrote (issue 27): tiny Llama models trained here on two
synthetic "pretraining data" mixes, evaluated by ``bayes-l2l eval`` on two validation corpora, then fitted
with the error model off, as auto chooses (the store's per-document losses give ``stderr_independent``),
and on.

The models are 2-layer Llamas (hidden 32) on a 300-token BPE, trained with AdamW on CPU; ``uniform`` draws
words uniformly, ``skewed`` from a Zipf-like weighting. Each run saves ``--checkpoints`` checkpoints; two runs
(seeds) per mix. x = val/uniform, y = val/skewed (``--documents`` documents each). These are toy models:
the point is the pipeline (per-document losses -> stderr_independent -> the error model's choice and its
effect on the decisions), not the size of any gap.

Run: ``.venv/bin/python benchmarks/measurement_error_store.py`` (needs the eval extra). Writes the store, the
table, ``summary.json`` and ``summary.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from eval_fixtures.tiny import WORDS, build_model, build_tokenizer, write_jsonl  # noqa: E402

MIXES = {"uniform": None, "skewed": [1.0 / (i + 1) for i in range(len(WORDS))]}


def sentences(n: int, seed: int, weights: list[float] | None) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(WORDS, weights=weights, k=rng.randint(4, 14))
        s = " ".join(words)
        out.append(s[0].upper() + s[1:] + ".")
    return out


def train_run(folder: Path, mix: str, seed: int, steps: int, checkpoints: int) -> list[dict[str, Any]]:
    """Train one tiny Llama on ``mix``; save ``checkpoints`` revisions (sub-directories step<N>)."""
    import torch

    tok = build_tokenizer()
    model = build_model("llama", tok, seed=seed)
    with torch.no_grad():  # a usual small init, so that training moves the loss a long way
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
    model.train()
    text = sentences(4000, 100 + seed, MIXES[mix])
    ids = [tok(s)["input_ids"] + [tok.eos_token_id] for s in text]
    flat = torch.tensor([t for s in ids for t in s])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    save_at = set(np.unique(np.geomspace(5, steps, checkpoints).astype(int)).tolist())
    g = torch.Generator().manual_seed(seed)
    revisions = []
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(flat) - 65, (16,), generator=g)
        batch = torch.stack([flat[s : s + 64] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in save_at:
            model.eval()
            model.save_pretrained(folder / f"step{step}")
            tok.save_pretrained(folder / f"step{step}")
            model.train()
            revisions.append({"revision": f"step{step}", "step": step, "tokens": float(step * 16 * 64)})
    return revisions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--checkpoints", type=int, default=8)
    ap.add_argument("--documents", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "measurement_error_store")
    args = ap.parse_args(argv)
    import yaml

    from bayes_l2l import api
    from bayes_l2l.cli import main as cli

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    models = []
    for mix in MIXES:
        for seed in (1, 2):
            run = f"tiny-{mix}-s{seed}"
            folder = out / "ckpt" / run
            if not (folder / "done.json").exists():
                revs = train_run(folder, mix, seed, args.steps, args.checkpoints)
                (folder / "done.json").write_text(json.dumps(revs))
            revs = json.loads((folder / "done.json").read_text())
            models.append(
                {"run": run, "path": str(folder), "architecture": "Llama", "tokenizer": "bpe300",
                 "pretraining_data": mix, "seed": str(seed), "revisions": revs}
            )  # fmt: skip
    print(f"trained {len(models)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    (out / "manifest.yaml").write_text(yaml.safe_dump({"schema": "bayes-l2l/manifest/v1", "models": models}))
    for mix, weights in MIXES.items():
        docs = [" ".join(sentences(5, 10_000 + i, weights)) for i in range(args.documents)]
        write_jsonl(out / f"{mix}.jsonl", [{"text": d} for d in docs])
    config = {
        "context_length": 64,
        "bootstrap": 200,
        "corpora": {mix: {"path": str(out / f"{mix}.jsonl"), "documents": args.documents} for mix in MIXES},
        "engine": {"progress": False},
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    store = out / "store"
    code = cli(
        ["eval", str(out / "manifest.yaml"), "--config", str(out / "config.yaml"), "--store", str(store)]
    )
    if code != 0:
        return code
    table = api.read_table(store)
    table.save(out / "table.parquet", overwrite=True)
    val = table.df[table.df["unit"] == "nats/token"]
    res: dict[str, Any] = {
        "runs": len(models),
        "checkpoints": int(val[["run", "checkpoint"]].drop_duplicates().shape[0]),
        "stderr": {m: float(g["stderr"].median()) for m, g in val.groupby("metric")},
        "stderr_independent": {m: float(g["stderr_independent"].median()) for m, g in val.groupby("metric")},
        "modes": {},
    }
    for mode in ("off", "auto", "on"):
        fit = api.fit(table, "val/uniform", "val/skewed", "pretraining_data", measurement_error=mode)
        (c,) = fit.compare("pretraining_data", loo=False).contrasts["pretraining_data"]
        me = fit.posterior.settings["measurement_error"]
        res["modes"][mode] = {
            "used": me["used"],
            "reason": me["reason"],
            "ok": bool(fit.diagnostics["ok"]),
            "sigma": float(np.median(fit.posterior.draws("sigma"))),
            "level": c.level,
            "gap_mean": c.gap_mean,
            "gap_hdi90": c.gap_hdi90,
            "decision": c.decision,
        }
    res["wall_s"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(res, indent=1, default=float))
    lines = [
        f"{res['runs']} runs, {res['checkpoints']} checkpoints; median stderr "
        + ", ".join(f"{m} {v:.4f}" for m, v in res["stderr"].items())
        + "; median stderr_independent "
        + ", ".join(f"{m} {v:.4f}" for m, v in res["stderr_independent"].items())
        + " (nats/token)",
        "",
        "| error model | used | median sigma | skewed vs uniform: mean gap [90% HDI] | decision | diagnostics |",
        "|---|---|---|---|---|---|",
    ]
    for mode, m in res["modes"].items():
        lo, hi = m["gap_hdi90"]
        lines.append(
            f"| {mode} | {m['used']} | {m['sigma']:.4f} | {m['gap_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
            f"{m['decision']} | {'ok' if m['ok'] else 'FAILED'} |"
        )
    lines += ["", *(f"- {mode}: {m['reason']}" for mode, m in res["modes"].items())]
    md = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
