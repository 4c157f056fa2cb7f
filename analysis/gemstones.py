"""Gemstones (McLeish et al. 2025): does model shape (width x depth at fixed data and tokenizer) shift the
loss-to-loss curve?

Run: ``.venv/bin/python analysis/gemstones.py [--shared PATH] [--out out/analysis/gemstones] [--quick]``

22 decoder-only models (48M-2.0B parameters) of systematically varied width and depth, all on Dolma with
one tokenizer, 35 checkpoints each. The factor is a shape label from the aspect ratio width/depth:
``deep`` (< 20), ``balanced`` (20-80, the base: most runs) and ``wide`` (> 80). x = val/fineweb_edu;
y = (1) the mean loss of the paper's downstream tasks whose checkpoint-to-checkpoint jitter is below
0.1 nats (measured here; the others are too noisy to resolve a 0.02-nat gap), (2) val/dclm.

Tractability on 2 cores: every third checkpoint per run is kept (counting back from the final one), and
checkpoints before 10% of a run's training are dropped (early checkpoints deviate from the law).
Writes ``summary.md``, ``results.json``, ``figures/`` and ``posteriors/`` under --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import (
    Comparison,
    comparison_markdown,
    f3,
    header_lines,
    headline_table,
    log,
    main_guard,
    md_table,
    parse_args,
    prepare_out,
    run_comparison,
    save_combined_figures,
    write_results,
)

from bayes_l2l.design import Question
from bayes_l2l.io import import_table
from bayes_l2l.table import LossTable

FILES = (
    Path("data/gemstones/gemstones_val_losses_long.csv"),
    Path("data/gemstones/gemstones_task_losses_long.csv"),
)
X = "val/fineweb_edu"
CANDIDATE_TASKS = ("arc_challenge", "arc_easy", "hellaswag", "winogrande", "piqa", "openbookqa")
"""The paper's test/avg7 tasks that Gemstones has (no COPA)."""
MAX_JITTER = 0.1
"""Task kept in the y average when its median checkpoint-to-checkpoint jitter is below this (nats)."""
THIN = 3
MIN_FRACTION = 0.1
SHAPE_EDGES = (20.0, 80.0)
"""Aspect ratio width/depth: deep below the first edge, wide above the second, balanced between."""


def shape_label(width: float, depth: float) -> str:
    """'deep', 'balanced' or 'wide' from width/depth (see SHAPE_EDGES)."""
    ratio = width / depth
    return "deep" if ratio < SHAPE_EDGES[0] else "wide" if ratio > SHAPE_EDGES[1] else "balanced"


def with_shape(table: LossTable) -> LossTable:
    """The table with a run-level factor ``shape`` (from the width and depth columns)."""
    df = table.df.copy()
    w = pd.to_numeric(df["width"], errors="raise").to_numpy(float)
    d = pd.to_numeric(df["depth"], errors="raise").to_numpy(float)
    df["shape"] = [shape_label(a, b) for a, b in zip(w, d, strict=True)]
    return LossTable.from_frame(df, source=table.source, warnings=table.warnings)


def thin_checkpoints(table: LossTable, every: int = THIN) -> tuple[LossTable, int, int]:
    """Keep every ``every``-th checkpoint of each run, counting back from its last (by step).
    Returns the thinned table and the checkpoint counts before and after."""
    ck = table.checkpoints()[["run", "checkpoint", "step"]]
    ck = ck.sort_values(["run", "step"], ascending=[True, False])
    keep = ck[ck.groupby("run").cumcount() % every == 0][["run", "checkpoint"]]
    df = table.df.merge(keep, on=["run", "checkpoint"])
    return LossTable.from_frame(df, source=table.source, warnings=table.warnings), len(ck), len(keep)


def task_jitter(table: LossTable, skip_first: int = 12) -> dict[str, float]:
    """Per candidate task: median over runs of the sd of successive checkpoint differences / sqrt 2 (nats),
    after the first ``skip_first`` checkpoints: the checkpoint-level measurement noise of the task loss."""
    out = {}
    ck = table.checkpoints()[["run", "checkpoint", "step"]]
    for task in CANDIDATE_TASKS:
        s = (
            table.metric_series(f"test/{task}")
            .merge(ck, on=["run", "checkpoint"])
            .sort_values(["run", "step"])
        )
        per_run = [
            float(np.std(np.diff(g["value"].to_numpy()[skip_first:])) / np.sqrt(2))
            for _, g in s.groupby("run")
        ]
        out[task] = float(np.median(per_run))
    return out


def y_spec(jitter: dict[str, float]) -> tuple[str, list[str]]:
    """The y metric: mean of the tasks with jitter < MAX_JITTER (or the least noisy task alone)."""
    tasks = [t for t, j in jitter.items() if j < MAX_JITTER]
    if not tasks:
        tasks = [min(jitter, key=jitter.get)]
    if len(tasks) == 1:
        return f"test/{tasks[0]}", tasks
    return "mean(" + ",".join(f"test/{t}" for t in tasks) + ")", tasks


def run(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], "out/analysis/gemstones", argv)
    paths = [args.shared / f for f in FILES]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(
            f"skipped: {', '.join(map(str, missing))} absent (the Gemstones tables live in the shared data folder)"
        )
        return 0
    prepare_out(args.out, args.overwrite)
    started = time.perf_counter()
    full = with_shape(import_table("gemstones", paths))
    log(f"imported {len(full.df)} rows")
    jitter = task_jitter(full)
    y_task, tasks = y_spec(jitter)
    table, n_before, n_after = thin_checkpoints(full)
    runs = full.checkpoints().groupby("run")[["width", "depth", "params", "shape"]].first().reset_index()
    runs[["width", "depth", "params"]] = runs[["width", "depth", "params"]].apply(
        pd.to_numeric, errors="raise"
    )
    why_common = (
        f"Shape classes by width/depth: deep < {SHAPE_EDGES[0]:g} <= balanced <= {SHAPE_EDGES[1]:g} < wide. "
        f"Checkpoints thinned to every {THIN}rd per run ({n_before} -> {n_after}) and those before "
        f"{MIN_FRACTION:g} of a run's training dropped. Caveat: shape is correlated with size (the deep class "
        "holds no model above 475M parameters); the model assumes size alone does not shift the curve (the "
        "paper's finding), so a size effect would show up as a shape effect."
    )
    comps = [
        Comparison(
            key="shape_tasks",
            title=f"Shape, y = mean task loss ({', '.join(tasks)})",
            factor="shape",
            question=Question(
                x=X, y=y_task, factors=["shape"], base={"shape": "balanced"}, min_fraction=MIN_FRACTION
            ),
            why=why_common + f" y averages the tasks with jitter < {MAX_JITTER:g} nats (table below).",
        ),
        Comparison(
            key="shape_dclm",
            title="Shape, y = val/dclm",
            factor="shape",
            question=Question(
                x=X, y="val/dclm", factors=["shape"], base={"shape": "balanced"}, min_fraction=MIN_FRACTION
            ),
            why=why_common + " Train-to-train: both axes are validation corpora.",
        ),
    ]
    outcomes = [run_comparison(table, c, args.out, args.quick) for c in comps]
    combined = save_combined_figures(
        outcomes, args.out / "figures", lambda o: f"shape [y={o.record['key'][6:]}]"
    )

    md = header_lines("Gemstones: does model shape shift the loss-to-loss curve?", args, full, started)
    md += ["", "## Headline", ""]
    md.append(headline_table(outcomes))
    md += [
        "",
        "Paper's prediction (LLMs on the Line): architecture shape at fixed data and tokenizer should not "
        "shift the curve ('no practical shift').",
        "",
    ]
    md += ["Combined figures: " + ", ".join(f"[{Path(p).name}]({p})" for p in combined), ""]
    md += ["## Choice of y: task-loss jitter", ""]
    md.append(
        md_table(
            ["task", "median jitter (nats)", "used"],
            [[t, f3(j, ".4f"), "yes" if t in tasks else "no"] for t, j in jitter.items()],
        )
    )
    md += ["", "## Runs and shape classes", ""]
    md.append(
        md_table(
            ["run", "width", "depth", "width/depth", "params", "shape"],
            [
                [
                    r.run,
                    int(r.width),
                    int(r.depth),
                    f"{r.width / r.depth:.1f}",
                    f"{r.params / 1e6:.0f}M",
                    r.shape,
                ]
                for r in runs.sort_values(["shape", "params"]).itertuples()
            ],
        )
    )
    md += ["", "## Comparisons", ""]
    md += [comparison_markdown(o.record) + "\n" for o in outcomes]
    payload: dict[str, Any] = {
        "sources": [str(p) for p in paths],
        "task_jitter": jitter,
        "y_tasks": tasks,
        "checkpoints_before_after_thinning": [n_before, n_after],
        "runs": runs.to_dict(orient="records"),
        "comparisons": [o.record for o in outcomes],
        "figures": combined,
    }
    return write_results(args, started, payload, md)


if __name__ == "__main__":
    sys.exit(main_guard(run))
