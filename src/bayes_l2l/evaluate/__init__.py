"""The GPU evaluator: checkpoint manifests + an eval config in, a result store / LossTable out.

Importing this package needs neither torch nor transformers; the modules that do (engine, scorer,
lm_adapter, cloze at run time) import them inside the functions that use them.

Main entry points::

    from bayes_l2l.evaluate import load_manifest, load_config, evaluate, read_store
    report = evaluate("models/pythia.yaml", "configs/eval/paper.yaml", "store/", task_data="evaldata/tasks")
    table = read_store("store/")          # a validated LossTable
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bayes_l2l.evaluate.config import EvalConfig, load_config
from bayes_l2l.evaluate.manifest import Checkpoint, Manifest, expand, load_manifest
from bayes_l2l.evaluate.store import ResultStore
from bayes_l2l.table import read_store

__all__ = [
    "Checkpoint",
    "EvalConfig",
    "Manifest",
    "ResultStore",
    "evaluate",
    "expand",
    "load_config",
    "load_manifest",
    "read_store",
]


def evaluate(
    manifest: str | Path,
    config: str | Path,
    store: str | Path,
    *,
    task_data: str | Path | None = None,
    runs: list[str] | None = None,
) -> Any:
    """Evaluate every pending checkpoint of ``manifest`` in this process; returns a RunReport."""
    from bayes_l2l.evaluate.engine import require_eval_extra
    from bayes_l2l.evaluate.runner import prepare, run_checkpoints

    require_eval_extra()
    cfg = load_config(config).with_task_data(task_data)
    ckpts = expand(load_manifest(manifest))
    if runs:
        ckpts = [c for c in ckpts if c.run in set(runs)]
    prep = prepare(cfg, str(store))
    return run_checkpoints(prep, ckpts)
