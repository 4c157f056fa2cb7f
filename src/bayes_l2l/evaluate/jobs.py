"""One evaluation request end to end: validate it, plan it against the result store (what is done, what is
pending), and run the pending checkpoints in this process or through submitit (local or SLURM). What
``bayes-l2l eval`` runs; no printing here. Nothing heavy at import: torch and friends load only when
checkpoints are evaluated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_l2l.errors import UserInputError

EXECUTORS = ("inline", "local", "slurm")


@dataclass
class EvalRequest:
    """What to evaluate and how: the manifest's checkpoints (``runs``: only these; ``limit``: the first N
    pending), the eval config with its overrides, the store, the executor and its cluster options."""

    manifest: Path
    config: Path
    store: Path
    runs: list[str] = field(default_factory=list)
    limit: int | None = None
    device: str | None = None
    batch_tokens: int | None = None
    task_data: Path | None = None
    progress: bool | None = None
    executor: str = "inline"
    cluster: Any = None
    """:class:`~bayes_l2l.evaluate.executors.ClusterOptions` for the local and slurm executors."""
    log_dir: Path | None = None
    wait: bool = False

    def check(self) -> None:
        from bayes_l2l.evaluate.config import DEVICES

        if self.executor not in EXECUTORS:
            raise UserInputError(f"--executor {self.executor!r}: use one of {', '.join(EXECUTORS)}")
        if self.limit is not None and self.limit < 1:
            raise UserInputError("--limit must be a positive number of checkpoints")
        if self.device is not None and not DEVICES.match(self.device):
            raise UserInputError(f"--device {self.device!r}: use auto, cpu, cuda or cuda:N")
        if self.batch_tokens is not None and self.batch_tokens < 1:
            raise UserInputError("--batch-tokens must be a positive number of tokens")


@dataclass
class EvalPlan:
    """The request checked against the store: the prepared store namespace, every checkpoint of the
    manifest, the keys still to do, and those this call evaluates."""

    request: EvalRequest
    prepared: Any
    checkpoints: list[Any]
    todo: set[str]
    selected: list[Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.request.manifest),
            "store": str(self.request.store),
            "namespace": self.prepared.namespace,
            "checkpoints": len(self.checkpoints),
            "done": len(self.checkpoints) - len(self.todo),
            "to_evaluate": [c.key for c in self.selected],
            "metrics": self.prepared.metrics(),
            "executor": self.request.executor,
        }


def plan_evaluation(req: EvalRequest, *, dry_run: bool = False) -> EvalPlan:
    """Validate the request (config, corpora, offline task data, runs) and plan it against the store (created
    unless ``dry_run``)."""
    from bayes_l2l.evaluate.config import load_config
    from bayes_l2l.evaluate.corpora import check_paths
    from bayes_l2l.evaluate.manifest import expand, load_manifest
    from bayes_l2l.evaluate.runner import pending, prepare

    req.check()
    cfg = load_config(req.config).with_task_data(req.task_data)
    cfg = cfg.with_engine(device=req.device, batch_tokens=req.batch_tokens, progress=req.progress)
    check_paths(cfg.corpora)
    if cfg.task_data is not None:
        from bayes_l2l.evaluate.task_data import OFFLINE_TASKS, check_task_data

        offline = [t.name for t in cfg.tasks if t.name in OFFLINE_TASKS]
        check_task_data(cfg.task_data, offline, {t.name: t.num_fewshot for t in cfg.tasks})
    man = load_manifest(req.manifest)
    checkpoints = expand(man)
    if req.runs:
        unknown = sorted(set(req.runs) - {c.run for c in checkpoints})
        if unknown:
            raise UserInputError(
                f"--run {', '.join(unknown)}: not in {req.manifest}; runs are {', '.join(man.runs())}"
            )
        checkpoints = [c for c in checkpoints if c.run in set(req.runs)]
    if not dry_run:
        from bayes_l2l.evaluate.engine import require_eval_extra

        require_eval_extra()
    prep = prepare(cfg, str(req.store), create=not dry_run)
    todo = pending(prep, checkpoints)
    selected = [c for c in checkpoints if c.key in todo]
    if req.limit is not None:
        selected = selected[: req.limit]
    return EvalPlan(req, prep, checkpoints, todo, selected)


def run_evaluation(plan: EvalPlan) -> tuple[dict[str, Any], Any]:
    """Evaluate the plan's selected checkpoints; returns (the `eval --json` payload, the RunReport or None
    when the jobs were submitted without waiting)."""
    req = plan.request
    if req.executor == "inline":
        from bayes_l2l.evaluate.runner import run_checkpoints

        report = run_checkpoints(plan.prepared, plan.selected)
        job_ids: list[str] = []
    else:
        from bayes_l2l.evaluate.executors import ClusterOptions, submit

        log_dir = req.log_dir or (req.store / "_jobs")
        opts = req.cluster or ClusterOptions()
        job_ids, report = submit(plan.prepared, plan.selected, req.executor, opts, log_dir, wait=req.wait)
    out: dict[str, Any] = {**plan.to_dict(), "job_ids": job_ids}
    if report is not None:
        report.skipped = [c.key for c in plan.checkpoints if c.key not in plan.todo] + report.skipped
        out.update(report.as_dict())
    return out, report
