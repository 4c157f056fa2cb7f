"""Cloze task losses through lm-eval: the gold continuation's NLL per token and per byte, plus accuracy.

``lm_eval.simple_evaluate`` runs the tasks with :class:`~bayes_l2l.evaluate.lm_adapter.ScorerLM` (the same
loaded model and scorer as the validation pass) and ``log_samples=True``; for every question the loss is
minus the summed log-probability of the correct choice's continuation divided by the number of tokens
the scorer scored for it (nats/token), or by ln 2 times its UTF-8 bytes (bits/byte), then averaged over
questions. Accuracies (acc, and acc_norm where the task defines it) come from lm-eval's own results.
"""

from __future__ import annotations

import atexit
import logging
import math
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.config import EvalConfig, TaskSpec
from bayes_l2l.evaluate.task_data import OFFLINE_TASKS, check_task_data, render_task_configs
from bayes_l2l.evaluate.tokens import Prefix

CLOZE_ESTIMATOR_VERSION = "bayes-l2l/cloze-v1"
LN2 = math.log(2.0)


def cloze_estimator(num_fewshot: int, prefix_policy: str) -> str:
    """The estimator string recorded with every cloze row (the same for both units)."""
    prefix = Prefix(prefix_policy, None, 0).describe()
    return (
        f"{CLOZE_ESTIMATOR_VERSION}: lm-eval task prompts, {num_fewshot}-shot; {prefix}; loss = -log "
        "p(correct "
        "choice's continuation | context) / its scored token count (bits/byte: / ln 2 x its UTF-8 bytes), "
        "mean over questions; partial scoring where the task uses it (winogrande)"
    )


@dataclass
class TaskResult:
    """Cloze loss of one task in both units, lm-eval's accuracies, and per-question arrays."""

    task: str
    metric: str
    num_fewshot: int
    loss: float
    loss_stderr: float
    bpb: float
    bpb_stderr: float
    n_questions: int
    n_tokens: int
    n_bytes: int
    accuracy: dict[str, float] = field(default_factory=dict)
    question_loss: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    question_tokens: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    question_bytes: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    samples: list[dict[str, Any]] = field(default_factory=list, repr=False)  # lm-eval's logged samples

    def rows(self) -> list[dict[str, Any]]:
        """(unit, value, n, stderr) rows; n = number of questions."""
        return [
            {"unit": "nats/token", "value": self.loss, "n": self.n_questions, "stderr": self.loss_stderr},
            {"unit": "bits/byte", "value": self.bpb, "n": self.n_questions, "stderr": self.bpb_stderr},
        ]


@contextmanager
def _quiet_lm_eval():
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


_TM_CACHE: dict[tuple[Any, ...], Any] = {}
_RENDERED: list[Path] = []


def _remove_rendered() -> None:
    for p in _RENDERED:
        shutil.rmtree(p, ignore_errors=True)


@contextmanager
def task_manager(cfg: EvalConfig, specs: tuple[TaskSpec, ...]):
    """An lm-eval TaskManager that sees the rendered offline configs (when task data is given).

    Built once per process and settings (indexing lm-eval's stock tasks takes seconds); the rendered
    configs live in a temporary folder removed when the process exits.
    """
    from lm_eval.tasks import TaskManager

    names = [t.name for t in specs]
    offline: list[str] = []
    if cfg.task_data is not None:
        offline = [n for n in names if n in OFFLINE_TASKS]
        check_task_data(cfg.task_data, offline, {t.name: t.num_fewshot for t in specs})
    needs_defaults = cfg.task_data is None or any(n not in OFFLINE_TASKS for n in names)
    key = (
        str(cfg.task_data),
        tuple(sorted(offline)),
        tuple(str(p) for p in cfg.task_include),
        needs_defaults,
    )
    if key not in _TM_CACHE:
        include: list[str] = []
        if offline:
            assert cfg.task_data is not None
            rendered = render_task_configs(cfg.task_data, offline)
            if not _RENDERED:
                atexit.register(_remove_rendered)
            _RENDERED.append(rendered)
            include.append(str(rendered))
        include += [str(p) for p in cfg.task_include]
        with _quiet_lm_eval():
            _TM_CACHE[key] = TaskManager(include_path=include or None, include_defaults=needs_defaults)
    yield _TM_CACHE[key]


def load_tasks(tm: Any, specs: tuple[TaskSpec, ...]) -> dict[str, Any]:
    """{task name: lm-eval Task} with num_fewshot set; clear errors for unknown names or hub failures."""
    out = {}
    for spec in specs:
        try:
            with _quiet_lm_eval():
                loaded = tm.load([spec.name])
        except Exception as exc:  # noqa: BLE001 - unknown task, dataset download failure
            raise UserInputError(
                f"task '{spec.name}' could not be loaded by lm-eval ({type(exc).__name__}: {exc}); "
                "offline, pass "
                "--task-data DIR for the seven paper tasks or list local task YAML folders in tasks.include"
            ) from exc
        tasks = loaded["tasks"]
        if len(tasks) != 1:
            raise UserInputError(
                f"task '{spec.name}' is a group of {len(tasks)} tasks; list its member tasks one by one"
            )
        task = next(iter(tasks.values()))
        if task.get_config("output_type") not in ("multiple_choice", "loglikelihood"):
            raise UserInputError(
                f"task '{spec.name}' has output_type {task.get_config('output_type')!r}; cloze losses need "
                "multiple_choice (or loglikelihood) tasks"
            )
        task.set_config(key="num_fewshot", value=spec.num_fewshot)
        out[spec.name] = task
    return out


def gold_index(task: Any, doc: dict[str, Any]) -> int:
    """Index of the correct request among a question's requests, as lm-eval's process_results finds it."""
    if task.get_config("output_type") == "loglikelihood":
        return 0
    choices = task.doc_to_choice(doc)
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    if isinstance(gold, list):
        if len(gold) != 1:
            raise UserInputError(
                f"task {task.task_name}: a question has {len(gold)} correct answers; the cloze loss "
                "needs exactly one"
            )
        gold = gold[0]
    if isinstance(gold, str):
        if gold not in choices:
            raise UserInputError(f"task {task.task_name}: gold answer {gold!r} is not among the choices")
        gold = choices.index(gold)
    return int(gold)


def run_tasks(
    lm: Any, tasks: dict[str, Any], specs: tuple[TaskSpec, ...], cfg: EvalConfig, tm: Any
) -> list[TaskResult]:
    """Evaluate the tasks with ``lm`` in one lm-eval call and turn its samples into cloze losses."""
    from lm_eval import simple_evaluate

    with _quiet_lm_eval():
        res = simple_evaluate(
            model=lm,
            tasks=list(tasks.values()),
            task_manager=tm,
            num_fewshot=None,
            limit=cfg.task_limit,
            log_samples=True,
            bootstrap_iters=0,
            random_seed=cfg.seed,
            numpy_random_seed=cfg.seed,
            torch_random_seed=cfg.seed,
            fewshot_random_seed=cfg.seed,
        )
    if res is None:  # pragma: no cover - only on non-zero ranks
        raise RuntimeError("lm-eval returned no results")
    out = []
    for spec in specs:
        task = tasks[spec.name]
        samples = res["samples"].get(task.task_name) or res["samples"].get(spec.name)
        if not samples:
            raise RuntimeError(f"lm-eval logged no samples for task {spec.name}")
        out.append(_task_result(spec, task, samples, res["results"].get(task.task_name, {}), lm.scored))
    return out


def _task_result(
    spec: TaskSpec,
    task: Any,
    samples: list[dict[str, Any]],
    metrics: dict[str, Any],
    scored: dict[tuple[str, str], tuple[int, int]],
) -> TaskResult:
    losses, ntoks, nbytes, lls = [], [], [], []
    for s in sorted(samples, key=lambda x: x["doc_id"]):
        g = gold_index(task, s["doc"])
        ctx, cont = s["arguments"][g][0], s["arguments"][g][1]
        ll = float(s["filtered_resps"][g][0])
        n_tok, n_byte = scored[(ctx, cont)]
        losses.append(-ll / n_tok)
        ntoks.append(n_tok)
        nbytes.append(n_byte)
        lls.append(ll)
    q = np.array(losses)
    qt = np.array(ntoks, dtype=float)
    qb = np.array(nbytes, dtype=float)
    q_bpb = -np.array(lls) / (LN2 * qb)
    k = len(q)
    se = q.std(ddof=1) / math.sqrt(k) if k > 1 else math.nan
    se_b = q_bpb.std(ddof=1) / math.sqrt(k) if k > 1 else math.nan
    acc: dict[str, float] = {}
    for name in ("acc", "acc_norm"):
        v = metrics.get(f"{name},none")
        if isinstance(v, int | float):
            acc[name] = float(v)
            k_se = metrics.get(f"{name}_stderr,none")
            if isinstance(k_se, int | float):
                acc[f"{name}_stderr"] = float(k_se)
    return TaskResult(
        task=spec.name,
        metric=f"test/{spec.metric}",
        num_fewshot=spec.num_fewshot,
        loss=float(q.mean()),
        loss_stderr=float(se),
        bpb=float(q_bpb.mean()),
        bpb_stderr=float(se_b),
        n_questions=k,
        n_tokens=int(qt.sum()),
        n_bytes=int(qb.sum()),
        accuracy=acc,
        question_loss=q,
        question_tokens=qt,
        question_bytes=qb,
        samples=samples,
    )
