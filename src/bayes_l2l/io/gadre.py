"""Importer for Gadre et al. 2024 (github.com/mlfoundations/scaling): one JSON per model in exp_data/models.

Final checkpoints only. Each JSON holds the training hyperparameters and ``results``: open_lm validation
losses on 8 sets (nats/token, token-pooled over packed 2048-token sequences) with token counts and 95%
intervals. The stored ``stderr`` is the half-width of the per-SEQUENCE interval divided by 1.96: tokens of
one sequence are correlated, so the per-token interval understates the uncertainty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_l2l.errors import UserInputError
from bayes_l2l.io.common import Z95, ensure_standard_factors, finish
from bayes_l2l.table import LossTable

ESTIMATOR = "gadre2024:open_lm-val;packed-seq2048;token-pooled"
DATASETS = {"c4_original": "C4", "rpj": "RedPajama", "rw_original": "RefinedWeb"}
# val_data path fragment -> metric id
VAL_SETS = {
    "val_tok_mult/openlm/": "val/openlm_mix",
    "eval_data/c4_val/": "val/c4",
    "paloma_c4_en/": "val/paloma_c4_en",
    "paloma_dolma_100_programing_languages/": "val/paloma_code",
    "paloma_falcon-refinedweb/": "val/paloma_refinedweb",
    "paloma_ptb/": "val/paloma_ptb",
    "paloma_redpajama/": "val/paloma_redpajama",
    "de-en/val_de-en_100": "val/c4_de",
}


def read_gadre(path: Path) -> LossTable:
    """Import a folder of model JSONs (or one JSON file) of Gadre et al. 2024 as a LossTable."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(
            f"{path}: no such file or folder; give exp_data/models of the scaling repository"
        )
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise UserInputError(f"{path}: no *.json model files in this folder; give exp_data/models")
    rows: list[dict[str, Any]] = []
    unknown_sets: set[str] = set()
    for file in files:
        rows += _model_rows(file, unknown_sets)
    warnings = [
        f"{path}: {len(files)} models (final checkpoints only: checkpoint='final', step unknown); stderr = "
        "half-width of the per-sequence 95% interval / 1.96, n = tokens scored"
    ]
    if unknown_sets:
        warnings.append(
            f"{path}: validation sets not in the known list, ids made from their paths: "
            f"{sorted(unknown_sets)}"
        )
    frame = ensure_standard_factors(pd.DataFrame(rows))
    return finish(frame, str(path), warnings)


def _model_rows(file: Path, unknown_sets: set[str]) -> list[dict[str, Any]]:
    try:
        doc = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{file}: not readable as JSON ({exc})") from exc
    try:
        name = doc["name"]
        hp = doc["hyperparameters"]
        dataset = doc["dataset_name"]
        results = doc["results"]
    except (KeyError, TypeError) as exc:
        raise UserInputError(
            f"{file}: missing key {exc}; a model JSON of Gadre et al. has name, dataset_name, "
            "hyperparameters, results"
        ) from exc
    if dataset not in DATASETS:
        raise UserInputError(
            f"{file}: dataset_name '{dataset}' is not one of {', '.join(DATASETS)}; add it to "
            "bayes_l2l.io.gadre.DATASETS with a readable label"
        )
    args = doc.get("open_lm_args") or []
    seed = args[args.index("--seed") + 1] if "--seed" in args else hp.get("seed")
    ident = {
        "run": name,
        "checkpoint": "final",
        "step": float("nan"),
        "tokens": hp.get("tokens"),
        "params": hp.get("params"),
        "pretraining_data": DATASETS[dataset],
        "tokenizer": "gpt-neox",
        "architecture": "open_lm",
        "learning_rate": hp.get("lr"),
        "weight_decay": hp.get("wd"),
        "seed": seed,
        "model_config": Path(str(hp.get("model", ""))).stem or None,
        "warmup": hp.get("warmup"),
        "global_bs": hp.get("global_bs"),
        "chinchilla_multiplier": hp.get("chinchilla_multiplier"),
    }
    out = []
    for i, res in enumerate(results):
        try:
            val_path = str(res["val_data"][0])
            loss = res["loss"]
        except (KeyError, IndexError, TypeError) as exc:
            raise UserInputError(f"{file}: results[{i}] lacks {exc}; expected loss and val_data") from exc
        metric = next((m for frag, m in VAL_SETS.items() if frag in val_path), None)
        if metric is None:
            stem = Path(val_path).parent.name or Path(val_path).stem
            metric = "val/" + "".join(ch if ch.isalnum() else "_" for ch in stem.lower()).strip("_")
            unknown_sets.add(val_path)
        lo, hi = res.get("loss_sequences_lower_95"), res.get("loss_sequences_upper_95")
        stderr = (hi - lo) / (2 * Z95) if lo is not None and hi is not None else float("nan")
        out.append(
            ident
            | {
                "metric": metric,
                "kind": "validation",
                "value": loss,
                "unit": "nats/token",
                "estimator": ESTIMATOR,
                "n": res.get("tokens"),
                "stderr": stderr,
            }
        )
    return out
