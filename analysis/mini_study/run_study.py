"""Run the whole mini study: prepare data, train every run, evaluate every checkpoint, build the table.

Each run is a chain "train -> evaluate" (``train.py``, then ``bayes-l2l eval`` into the run's own
result store); chains go to ``--workers`` parallel processes of one thread each, longest first. Every
step is resumable: training skips finished runs, evaluation skips stored records. When all chains are
done the stores are merged into ``data/mini_study.parquet`` and ``data/mini_study.json`` (the design,
per-run wall times, device, versions).

Usage: ``python analysis/mini_study/run_study.py [--workers 2] [--only RUN ...]``
(about 50 minutes on 2 CPU cores; logs in ``out/mini_study/logs/<run>.log``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "out" / "mini_study"
TABLE = ROOT / "data" / "mini_study.parquet"

ARCH_LABEL = {"llama": "Llama", "neox": "GPT-NeoX", "mamba": "Mamba"}
DATA_LABEL = {"c4": "C4", "stories": "TinyStories", "code": "Linux kernel C", "mix": "C4+TinyStories"}


@dataclass(frozen=True)
class Run:
    """One training recipe; the base recipe is Llama, C4, bpe4k, size s, peak LR 3e-3, seed 0."""

    name: str
    arch: str = "llama"
    data: str = "c4"
    tokenizer: str = "bpe4k"
    size: str = "s"
    lr: float = 3e-3
    seed: int = 0
    intervention: str = "base"
    cost: float = 1.0  # relative CPU time, to start the longest chains first


DESIGN = (
    Run("base-seed0"),
    Run("base-seed1", seed=1, intervention="seed"),
    Run("data-stories", data="stories", intervention="pretraining data"),
    Run("data-code", data="code", intervention="pretraining data"),
    Run("data-mix", data="mix", intervention="pretraining data"),
    Run("tokenizer-bpe1k", tokenizer="bpe1k", intervention="tokenizer"),
    Run("arch-neox", arch="neox", intervention="architecture"),
    Run("arch-mamba", arch="mamba", intervention="architecture", cost=5.0),
    Run("size-m", size="m", intervention="size", cost=1.6),
    Run("lr-1e-3", lr=1e-3, intervention="learning rate"),
)


def manifest(run: Run, tokens_per_step: int) -> dict:
    ckpts = OUT / "ckpts" / run.name
    steps = sorted(int(p.name[4:]) for p in ckpts.glob("step*") if (p / "config.json").is_file())
    return {
        "schema": "bayes-l2l/manifest/v1",
        "models": [
            {
                "run": run.name,
                "path": str(ckpts),
                "revisions": [f"step{s}" for s in steps],
                "tokens_per_step": tokens_per_step,
                "architecture": ARCH_LABEL[run.arch],
                "pretraining_data": DATA_LABEL[run.data],
                "tokenizer": run.tokenizer,
                "context_length": 256,
                "optimizer": "AdamW",
                "learning_rate": run.lr,
                "weight_decay": 0.1,
                "scheduler": "cosine",
                "seed": run.seed,
                "labels": {"size": run.size},
            }
        ],
    }


def sh(cmd: list[str], log: Path) -> float:
    started = time.time()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {done.returncode}); see {log}")
    return time.time() - started


def chain(run: Run) -> dict:
    import yaml

    log = OUT / "logs" / f"{run.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    train_s = sh(
        [
            py,
            str(HERE / "train.py"),
            "--arch",
            run.arch,
            "--data",
            run.data,
            "--tokenizer",
            run.tokenizer,
            "--size",
            run.size,
            "--lr",
            str(run.lr),
            "--seed",
            str(run.seed),
            "--out",
            str(OUT / "ckpts" / run.name),
            "--data-dir",
            str(OUT / "data"),
        ],
        log,
    )
    record = json.loads((OUT / "ckpts" / run.name / "run.json").read_text())
    path = OUT / "manifests" / f"{run.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(manifest(run, record["tokens_per_step"]), sort_keys=False))
    cli = str(Path(py).with_name("bayes-l2l"))
    eval_s = sh(
        [
            cli,
            "eval",
            str(path),
            "--config",
            str(HERE / "eval.yaml"),
            "--store",
            str(OUT / "stores" / run.name),
        ],
        log,
    )
    return {
        "run": run.name,
        "train_seconds_this_call": round(train_s, 1),
        "train_wall_seconds": record["wall_seconds"],
        "eval_seconds_this_call": round(eval_s, 1),
        "params": record["params"],
    }


def build_table(runs: tuple[Run, ...], timings: list[dict], started: float) -> None:
    import pandas as pd

    from bayes_l2l.evaluate.store import ResultStore, pick_namespace, records_frame
    from bayes_l2l.table import LossTable

    frames = []
    for run in runs:
        ns = pick_namespace(ResultStore(OUT / "stores" / run.name), None)
        frames.append(records_frame(ns))
    table = LossTable.from_frame(pd.concat(frames, ignore_index=True), source="mini study stores")
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(TABLE, overwrite=True)  # the study's own product, rebuilt from the stores
    import torch
    import transformers

    meta = {
        "design": [asdict(r) for r in runs],
        "timings": timings,
        "wall_minutes_this_call": round((time.time() - started) / 60, 1),
        "device": f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), no GPU",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "data": json.loads((OUT / "data" / "data.json").read_text()),
    }
    TABLE.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))
    print(f"wrote {TABLE} ({len(table.df)} rows) and {TABLE.with_suffix('.json')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="run names (default: all)")
    args = ap.parse_args(argv)
    started = time.time()
    if not (OUT / "data" / "data.json").is_file():
        subprocess.run([sys.executable, str(HERE / "prepare.py"), "--out", str(OUT)], check=True, cwd=ROOT)
    runs = tuple(r for r in DESIGN if not args.only or r.name in args.only)
    timings = []
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(chain, r): r for r in sorted(runs, key=lambda r: -r.cost)}
        for i, fut in enumerate(as_completed(futures), 1):
            run = futures[fut]
            try:
                timings.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - report every failed chain, keep the others going
                print(f"[{i}/{len(runs)}] {run.name} FAILED: {exc}", flush=True)
                continue
            print(f"[{i}/{len(runs)}] {run.name} done at {(time.time() - started) / 60:.1f} min", flush=True)
    if len(timings) < len(runs):
        print("some runs failed; rerun to resume (finished steps are skipped)", file=sys.stderr)
        return 1
    if not args.only:
        build_table(runs, timings, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
