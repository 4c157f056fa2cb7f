"""submitit job arrays shared by the evaluator and the survey: the job settings and a configured executor.

``cluster="slurm"`` submits an sbatch job array; ``cluster="local"`` is submitit's local executor, which runs
the same array as processes on this machine (the tests use it). Neither imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bayes_l2l.errors import UserInputError


@dataclass(frozen=True)
class ClusterOptions:
    """Job settings; the slurm_* ones only apply on SLURM. Memory in GB, time limit in minutes."""

    partition: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: float = 64.0
    timeout_min: int = 240
    array_parallelism: int | None = None  # SLURM default 32; local default 1
    checkpoints_per_job: int = 1
    """Work items per array element (checkpoints for the evaluator, loss pairs for the survey)."""
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    job_name: str = "bayes-l2l-eval"
    slurm_extra: dict[str, str] = field(default_factory=dict)

    def but(self, **changes: Any) -> ClusterOptions:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)


SURVEY_JOB = ClusterOptions(
    gpus_per_node=0, cpus_per_task=2, mem_gb=8.0, timeout_min=120, job_name="bayes-l2l-survey"
)
"""Defaults for a survey's jobs: CPU only, 2 cores and 8 GB per array element (one NUTS fit at a time)."""


def group_work[Item](items: list[Item], executor: str, opts: ClusterOptions) -> list[list[Item]]:
    """Array elements: SLURM = chunks of ``checkpoints_per_job`` items; local = ``array_parallelism``
    (default 1) groups dealt round-robin."""
    if not items:
        return []
    if executor == "local":
        k = max(1, min(opts.array_parallelism or 1, len(items)))
        return [items[i::k] for i in range(k)]
    size = max(1, opts.checkpoints_per_job)
    return [items[i : i + size] for i in range(0, len(items), size)]


def make_executor(executor: str, log_dir: Path, opts: ClusterOptions) -> Any:
    """A configured ``submitit.AutoExecutor`` for cluster 'local' or 'slurm'; logs go to ``log_dir``."""
    try:
        import submitit
    except ImportError as exc:
        raise UserInputError("--executor local|slurm needs submitit: pip install submitit") from exc
    if executor not in ("local", "slurm"):
        raise UserInputError(f"--executor {executor!r}: use inline, local or slurm")
    if executor == "slurm" and opts.partition is None:
        raise UserInputError("--executor slurm needs --partition (the SLURM partition to submit to)")
    try:
        ex = submitit.AutoExecutor(folder=str(log_dir), cluster=executor)
    except RuntimeError as exc:  # submitit's check for srun/sbatch
        raise UserInputError(
            f"--executor slurm: no SLURM found on this machine ({exc}); submit from a SLURM login node, "
            "or use --executor local"
        ) from exc
    params: dict[str, Any] = {
        "timeout_min": opts.timeout_min,
        "gpus_per_node": opts.gpus_per_node,
        "cpus_per_task": opts.cpus_per_task,
        "mem_gb": opts.mem_gb,
        "name": opts.job_name,
    }
    if not opts.gpus_per_node:
        params.pop("gpus_per_node")  # CPU jobs: no --gpus-per-node=0 line, which GPU-less clusters reject
    if executor == "slurm":
        params["slurm_partition"] = opts.partition
        params["slurm_array_parallelism"] = opts.array_parallelism or 32
        extra = dict(opts.slurm_extra)
        if opts.account:
            extra["account"] = opts.account
        if opts.qos:
            extra["qos"] = opts.qos
        if opts.constraint:
            extra["constraint"] = opts.constraint
        if extra:
            params["slurm_additional_parameters"] = extra
    else:
        params.pop("mem_gb")
        params.pop("cpus_per_task")
    ex.update_parameters(**params)
    return ex
