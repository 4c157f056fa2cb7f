"""Importer for the Gemstones suite (McLeish et al. 2025, github.com/mcleish7/gemstone-scaling-laws).

Reads ``gemstones_val_losses_long.csv`` (model, checkpoint, step, corpus, loss, width, depth) and/or
``gemstones_task_losses_long.csv`` (model, checkpoint, step, task, mean_loss, n, width, depth).

Derived identity, following the authors' own code:

* tokens = step x 2048 x 2048 (world batch 2048 sequences of 2048 tokens; ``benchmarks/bhagia_fit.py``);
* params = :func:`gemstone_params` (width, depth), the authors' ``param_counter`` in
  ``benchmarks/plot_lighteval.py``, which reproduces their logged ``params_active_precise``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayes_l2l.errors import UserInputError
from bayes_l2l.io.common import ensure_standard_factors, finish, read_csv, require_columns
from bayes_l2l.table import LossTable

TOKENS_PER_STEP = 2048 * 2048
VOCAB = 50304
HEAD_SIZE = 128
VAL_ESTIMATOR = "gemstones:docs>=2049tok;first2049tok;ctx2048;token-mean;first10Mtok"
TASK_ESTIMATOR = (
    "gemstones:correct-answer-loss(Bhagia-et-al-2024-ladder);normalisation-undocumented;mean-over-items"
)
TASKS = {
    "arcc": "arc_challenge",
    "arce": "arc_easy",
    # 1221 items = the CommonsenseQA validation split; the authors' lighteval task list calls it so
    "coqa": "commonsense_qa",
    "openbook": "openbookqa",
    "siqa": "social_iqa",
    "hellaswag__indomain": "hellaswag_indomain",
    "hellaswag__zeroshot": "hellaswag_zeroshot",
}


def gemstone_params(width: int, depth: int, vocab: int = VOCAB) -> int:
    """Parameters of a Gemstone: untied embeddings, GQA with 2 queries per KV head, 3 MLP matrices 4x wide.

    Includes embedding and output matrices; matches the authors' ``params_active_precise``.
    """
    n_head = int(width / HEAD_SIZE)
    n_groups = int(n_head / 2)
    attn = width * (n_head + 2 * n_groups) * HEAD_SIZE + HEAD_SIZE * n_head * width
    mlp = 3 * width * 4 * width
    block = attn + mlp + 2 * width
    return depth * block + 2 * vocab * width + width


def read_gemstones(path: Path) -> LossTable:
    """Import one of the Gemstones long CSVs (validation or task losses) as a LossTable."""
    path = Path(path)
    raw = read_csv(path)
    source = str(path)
    if "corpus" in raw.columns:
        require_columns(
            raw, ("model", "checkpoint", "step", "corpus", "loss", "width", "depth"), source, "the val file"
        )
        metric = "val/" + raw["corpus"].astype(str)
        value, n, kind, est = raw["loss"], None, "validation", VAL_ESTIMATOR
    elif "task" in raw.columns:
        require_columns(
            raw,
            ("model", "checkpoint", "step", "task", "mean_loss", "n", "width", "depth"),
            source,
            "the task file",
        )
        names = raw["task"].astype(str)
        metric = "test/" + names.map(lambda t: TASKS.get(t, t.replace("__", "_")))
        value, n, kind, est = raw["mean_loss"], raw["n"], "test", TASK_ESTIMATOR
    else:
        raise UserInputError(
            f"{source}: neither a Gemstones validation file (column 'corpus') nor a task file (column "
            "'task'); "
            "give gemstones_val_losses_long.csv or gemstones_task_losses_long.csv"
        )
    for col in ("width", "depth", "step"):
        bad = pd.to_numeric(raw[col], errors="coerce").isna()
        if bad.any():
            row = int(bad.idxmax())
            raise UserInputError(
                f"{source}: column '{col}', data row {row + 1}: '{raw.at[row, col]}' is not a number"
            )
    frame = pd.DataFrame(
        {
            "run": raw["model"],
            "checkpoint": raw["checkpoint"],
            "step": raw["step"].astype(float),
            "tokens": raw["step"].astype(float) * TOKENS_PER_STEP,
            "params": [
                float(gemstone_params(int(w), int(d)))
                for w, d in zip(raw["width"], raw["depth"], strict=True)
            ],
            "pretraining_data": "Dolma",
            "tokenizer": "gemstones",
            "architecture": "Gemma",
            "context_length": "2048",
            "width": raw["width"],
            "depth": raw["depth"],
            "metric": metric,
            "kind": kind,
            "value": value,
            "unit": "nats/token",
            "estimator": est,
        }
    )
    if n is not None:
        frame["n"] = n
    empty = frame["value"].isna()
    warnings = [
        f"{source}: tokens = step x 2048 x 2048 and params from width/depth (the authors' formulas); "
        f"{frame['run'].nunique()} models, {frame[['run', 'checkpoint']].drop_duplicates().shape[0]} "
        "checkpoints"
    ]
    if kind == "test":
        warnings.append(
            f"{source}: task losses are the authors' mean per-item answer loss (Bhagia et al. 2024 style); "
            "the source does not document its length normalisation, so do not mix it with other task-loss "
            "estimators"
        )
    if empty.any():
        warnings.append(f"{source}: {int(empty.sum())} empty loss cell(s) left out (not stored as NaN)")
    frame = ensure_standard_factors(frame[~empty])
    return finish(frame, source, warnings)
