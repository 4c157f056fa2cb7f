"""Plan and run an evaluation: one model load per checkpoint serves every pending corpus and task.

``prepare`` reads the corpora, fingerprints the task data and opens the store namespace; ``pending``
lists what each checkpoint still lacks; ``evaluate_checkpoint`` loads the checkpoint once, scores the
pending validation corpora, then runs the pending tasks through lm-eval, writing each (checkpoint,
metric) record as soon as it is computed; ``run_checkpoints`` loops over checkpoints with a progress bar,
records failures and carries on.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.cloze import cloze_estimator
from bayes_l2l.evaluate.config import EvalConfig, fingerprint
from bayes_l2l.evaluate.corpora import Corpus, documents_sha256, load_corpus
from bayes_l2l.evaluate.manifest import Checkpoint
from bayes_l2l.evaluate.store import Namespace, ResultStore
from bayes_l2l.evaluate.task_data import OFFLINE_TASKS, task_data_fingerprint
from bayes_l2l.evaluate.validation import validation_estimator


@dataclass
class Prepared:
    """Everything a worker needs besides the checkpoints: config, corpora, the store namespace.

    Pickled for a cluster job it carries no documents: the job reads the namespace's corpus snapshot
    (``<namespace>/corpora/<name>.jsonl``, written once by :func:`prepare`) and checks its sha256.
    """

    cfg: EvalConfig
    corpora: tuple[Corpus, ...]
    store_root: str
    namespace: str

    def open(self) -> Namespace:
        return ResultStore(self.store_root).namespace(self.namespace)

    def __getstate__(self) -> dict[str, Any]:
        light = [Corpus(c.name, (), c.sha256, c.origin) for c in self.corpora]
        return {**self.__dict__, "corpora": tuple(light)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        ns = self.open()
        self.corpora = tuple(read_snapshot(ns, c) for c in state["corpora"])

    def metrics(self) -> list[str]:
        return [c.metric for c in self.corpora] + [f"test/{t.metric}" for t in self.cfg.tasks]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def namespace_meta(cfg: EvalConfig, corpora: tuple[Corpus, ...]) -> dict[str, Any]:
    """What defines the numbers: estimator settings + content hashes of corpora and task data."""
    task_names = [t.name for t in cfg.tasks]
    offline = [n for n in task_names if n in OFFLINE_TASKS]
    task_fp: dict[str, str] = {}
    if cfg.task_data is not None and offline:
        task_fp = task_data_fingerprint(cfg.task_data, offline)
    for n in task_names:
        task_fp.setdefault(n, f"lm-eval task '{n}' (stock or included config)")
    spec = {
        "estimator_settings": cfg.estimator_spec(),
        "corpora_sha256": {c.name: c.sha256 for c in corpora},
        "task_data_sha256": task_fp,
    }
    fp = fingerprint(spec)
    estimators = {"validation": validation_estimator(cfg, cfg.prefix)}
    for shots in sorted({t.num_fewshot for t in cfg.tasks}):
        estimators[f"cloze_{shots}shot"] = cloze_estimator(shots, cfg.prefix)
    summary = (
        f"ctx={cfg.context_length}, {cfg.truncation}, prefix={cfg.prefix}, pool={cfg.pool}, "
        f"corpora={','.join(c.name for c in corpora) or '-'}, tasks={','.join(task_names) or '-'}"
    )
    return {
        **spec,
        "fingerprint": fp,
        "summary": summary,
        "estimators": estimators,
        "config": cfg.to_dict(),
        "versions": {"bayes_l2l": _version("bayes-l2l"), "lm_eval": _version("lm_eval")},
    }


def prepare(cfg: EvalConfig, store_root: str, *, create: bool = True) -> Prepared:
    """Load the corpora (first N documents) and open (or, with ``create``, make) the store namespace.

    With ``create=False`` and no store at ``store_root`` nothing is written (a dry run's plan).
    """
    corpora = tuple(load_corpus(c) for c in cfg.corpora)
    meta = namespace_meta(cfg, corpora)
    key = "ns-" + meta["fingerprint"][:12]
    if create:
        ns = ResultStore(store_root, create=True).namespace(key, meta)
        for c in corpora:
            write_snapshot(ns, c)
    return Prepared(cfg=cfg, corpora=corpora, store_root=str(store_root), namespace=key)


def _snapshot_path(ns: Namespace, name: str) -> Path:
    return ns.root / "corpora" / f"{name}.jsonl"


def write_snapshot(ns: Namespace, corpus: Corpus) -> None:
    """Keep the exact documents evaluated in the namespace (once; jobs and audits read them)."""
    path = _snapshot_path(ns, corpus.name)
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for d in corpus.documents:
            fh.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_snapshot(ns: Namespace, corpus: Corpus) -> Corpus:
    """The documents of ``corpus`` from the namespace snapshot, checked against its sha256."""
    path = _snapshot_path(ns, corpus.name)
    if not path.is_file():
        raise UserInputError(f"{path}: corpus snapshot missing; re-run `bayes-l2l eval` to recreate it")
    with path.open(encoding="utf-8") as fh:
        docs = tuple(json.loads(line)["text"] for line in fh if line.strip())
    if documents_sha256(docs) != corpus.sha256:
        raise UserInputError(f"{path}: corpus snapshot does not match its hash; delete it and re-run")
    return Corpus(corpus.name, docs, corpus.sha256, corpus.origin)


def pending(prep: Prepared, checkpoints: list[Checkpoint]) -> dict[str, list[str]]:
    """{checkpoint key: metrics without a record} for the checkpoints that still need work."""
    wanted = prep.metrics()
    ns = None
    if ResultStore.exists(prep.store_root) and prep.namespace in ResultStore(prep.store_root).namespaces():
        ns = prep.open()
    out = {}
    for c in checkpoints:
        done = ns.done_metrics(c.run, c.checkpoint) if ns is not None else set()
        todo = [m for m in wanted if m not in done]
        if todo:
            out[c.key] = todo
    return out


# ------------------------------------------------------------------------------------------- one checkpoint
def _identity(ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "run": ckpt.run,
        "checkpoint": ckpt.checkpoint,
        "step": None if math.isnan(ckpt.step) else ckpt.step,
        "tokens": None if math.isnan(ckpt.tokens) else ckpt.tokens,
        "params": None if math.isnan(ckpt.params) else ckpt.params,
        "factors": dict(ckpt.factors),
    }


def evaluate_checkpoint(prep: Prepared, ckpt: Checkpoint, todo: list[str]) -> list[str]:
    """Load ``ckpt`` once and compute the ``todo`` metrics, writing a record per metric; returns them."""
    from bayes_l2l.evaluate.engine import load_checkpoint

    cfg = prep.cfg
    ns = prep.open()
    if not cfg.engine.progress:
        _quiet_progress_bars()
    t0 = time.perf_counter()
    loaded = load_checkpoint(ckpt, cfg.engine)
    try:
        written = _score_loaded(prep, ckpt, loaded, todo, time.perf_counter() - t0)
    finally:
        _release(loaded)  # also after a failure: the next checkpoint needs the memory
    ns.clear_failure(ckpt.run, ckpt.checkpoint)
    return written


def _score_loaded(prep: Prepared, ckpt: Checkpoint, loaded: Any, todo: list[str], load_s: float) -> list[str]:
    """The pending corpora, then the pending tasks, of one loaded checkpoint; a record per metric."""
    from bayes_l2l.evaluate.scorer import Scorer
    from bayes_l2l.evaluate.tokens import ByteCounter, resolve_prefix
    from bayes_l2l.evaluate.validation import score_corpus

    cfg = prep.cfg
    ns = prep.open()
    model_info = {
        "source": ckpt.source,
        "revision": ckpt.revision,
        "load_seconds": round(load_s, 2),
        **loaded.info,
    }
    versions = {
        "bayes_l2l": _version("bayes-l2l"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "lm_eval": _version("lm_eval"),
    }
    prefix = resolve_prefix(loaded.tokenizer, cfg.prefix)
    scorer = Scorer(
        loaded.model,
        device=loaded.device,
        max_length=cfg.context_length,
        batch_tokens=cfg.engine.batch_tokens,
        max_batch_size=cfg.engine.max_batch_size,
        pad_id=loaded.pad_id,
        progress=cfg.engine.progress,
    )
    written: list[str] = []
    counter = ByteCounter(loaded.tokenizer)
    val_est = validation_estimator(cfg, cfg.prefix)
    for corpus in prep.corpora:
        if corpus.metric not in todo:
            continue
        t1 = time.perf_counter()
        res = score_corpus(corpus, loaded.tokenizer, scorer, cfg, prefix, counter)
        ns.write_documents(
            ckpt.run,
            ckpt.checkpoint,
            corpus.metric,
            nll=res.doc_nll.astype(np.float64),
            tokens=res.doc_tokens.astype(np.int64),
            bytes=res.doc_bytes.astype(np.int64),
        )  # the per-document losses give the part of the stderr independent across checkpoints
        ns.write(
            {
                **_identity(ckpt),
                "metric": corpus.metric,
                "kind": "validation",
                "estimator": val_est,
                "rows": res.rows(cfg.pool),
                "details": {
                    "documents": res.n_docs,
                    "scored_tokens": res.n_tokens,
                    "scored_bytes": res.n_bytes,
                    "truncated_documents": res.n_truncated,
                    "skipped_documents": res.n_skipped,
                    "byte_methods": res.byte_methods,
                    "prefix_token_id": prefix.token_id,
                    "corpus_sha256": corpus.sha256,
                    "corpus_origin": corpus.origin,
                    "seconds": round(time.perf_counter() - t1, 2),
                },
                "model": model_info,
                "versions": versions,
            }
        )
        written.append(corpus.metric)
    task_specs = tuple(t for t in cfg.tasks if f"test/{t.metric}" in todo)
    if task_specs:
        written += _run_cloze(prep, ckpt, loaded, scorer, prefix, task_specs, model_info, versions, ns)
    return written


def _run_cloze(
    prep: Prepared,
    ckpt: Checkpoint,
    loaded: Any,
    scorer: Any,
    prefix: Any,
    specs: tuple[Any, ...],
    model_info: dict[str, Any],
    versions: dict[str, Any],
    ns: Namespace,
) -> list[str]:
    from bayes_l2l.evaluate.cloze import load_tasks, run_tasks, task_manager
    from bayes_l2l.evaluate.lm_adapter import ScorerLM

    cfg = prep.cfg
    written = []
    lm = ScorerLM(loaded.tokenizer, scorer, prefix, cfg.context_length)
    t1 = time.perf_counter()
    with task_manager(cfg, specs) as tm:
        tasks = load_tasks(tm, specs)
        results = run_tasks(lm, tasks, specs, cfg, tm)  # one lm-eval call for all pending tasks
    seconds = round(time.perf_counter() - t1, 2)
    for spec, res in zip(specs, results, strict=True):
        ns.write(
            {
                **_identity(ckpt),
                "metric": res.metric,
                "kind": "test",
                "estimator": cloze_estimator(spec.num_fewshot, cfg.prefix),
                "rows": res.rows(),
                "accuracy": res.accuracy,
                "details": {
                    "task": spec.name,
                    "num_fewshot": spec.num_fewshot,
                    "questions": res.n_questions,
                    "gold_tokens": res.n_tokens,
                    "gold_bytes": res.n_bytes,
                    "limit": cfg.task_limit,
                    "prefix_token_id": prefix.token_id,
                    "task_data": str(cfg.task_data) if cfg.task_data else None,
                    "seconds_all_tasks": seconds,
                },
                "model": model_info,
                "versions": versions,
            }
        )
        written.append(res.metric)
    return written


def _quiet_progress_bars() -> None:
    """Turn off the progress bars of transformers (weight loading) and datasets (map)."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def _release(loaded: Any) -> None:
    import gc

    import torch

    del loaded.model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------- many checkpoints
@dataclass
class RunReport:
    """What a run did: checkpoints evaluated / skipped / failed and the records written."""

    namespace: str
    evaluated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    records: int = 0
    seconds: float = 0.0
    user_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "evaluated": self.evaluated,
            "skipped": self.skipped,
            "failed": self.failed,
            "records_written": self.records,
            "seconds": round(self.seconds, 2),
        }

    def merge(self, other: RunReport) -> None:
        self.evaluated += other.evaluated
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.records += other.records
        self.user_errors += other.user_errors


def run_checkpoints(prep: Prepared, checkpoints: list[Checkpoint]) -> RunReport:
    """Evaluate checkpoints one after another (skipping done ones); failures are recorded, not fatal."""
    t0 = time.perf_counter()
    report = RunReport(namespace=prep.namespace)
    todo = pending(prep, checkpoints)
    ns = prep.open()
    bar = _overall_bar(len(checkpoints), prep.cfg.engine.progress)
    try:
        for c in checkpoints:
            if c.key not in todo:
                report.skipped.append(c.key)
                bar.update(1)
                continue
            bar.set_description(c.key)
            try:
                report.records += len(evaluate_checkpoint(prep, c, todo[c.key]))
                report.evaluated.append(c.key)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - one bad checkpoint must not stop the others
                kind = "user" if isinstance(exc, UserInputError) else "internal"
                report.user_errors += kind == "user"
                msg = f"{type(exc).__name__}: {exc}"
                ns.write_failure(
                    c.run, c.checkpoint, msg + ("" if kind == "user" else "\n" + traceback.format_exc()), kind
                )
                report.failed[c.key] = msg
            bar.update(1)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _overall_bar(total: int, enabled: bool) -> Any:
    from bayes_l2l.evaluate.scorer import _NoBar

    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="checkpoints", unit="ckpt", position=0, dynamic_ncols=True)
