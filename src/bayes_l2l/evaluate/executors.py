"""Scale-out with submitit: job arrays over checkpoints on SLURM, or submitit's local executor.

Both go through ``submitit.AutoExecutor(...).map_array(run_job, groups)``: every array element evaluates
its group of checkpoints with :func:`bayes_l2l.evaluate.runner.run_checkpoints` and writes into the same
result store as an in-process run. SLURM: one checkpoint per array element by default, at most
``array_parallelism`` running at once. Local: the checkpoints are dealt round-robin into
``array_parallelism`` groups (default 1), each group one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.manifest import Checkpoint
from bayes_l2l.evaluate.runner import Prepared, RunReport, run_checkpoints


@dataclass(frozen=True)
class ClusterOptions:
    """Job settings; the slurm_* ones only apply on SLURM."""

    partition: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: float = 64.0
    timeout_min: int = 240
    array_parallelism: int | None = None  # SLURM default 32; local default 1
    checkpoints_per_job: int = 1
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    job_name: str = "bayes-l2l-eval"
    slurm_extra: dict[str, str] = field(default_factory=dict)


def run_job(prep: Prepared, checkpoints: list[Checkpoint]) -> dict[str, Any]:
    """The function each array element runs (module level, so submitit can pickle it by reference)."""
    return run_checkpoints(prep, checkpoints).as_dict()


def group_checkpoints(
    checkpoints: list[Checkpoint], executor: str, opts: ClusterOptions
) -> list[list[Checkpoint]]:
    """Array elements: SLURM = chunks of ``checkpoints_per_job``; local = ``array_parallelism`` "
    "round-robin."""
    if not checkpoints:
        return []
    if executor == "local":
        k = max(1, min(opts.array_parallelism or 1, len(checkpoints)))
        return [checkpoints[i::k] for i in range(k)]
    size = max(1, opts.checkpoints_per_job)
    return [checkpoints[i : i + size] for i in range(0, len(checkpoints), size)]


def make_executor(executor: str, log_dir: Path, opts: ClusterOptions) -> Any:
    """A configured ``submitit.AutoExecutor`` for cluster 'local' or 'slurm'."""
    try:
        import submitit
    except ImportError as exc:
        raise UserInputError("--executor local|slurm needs submitit: install bayes-l2l[eval]") from exc
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


def submit(
    prep: Prepared,
    checkpoints: list[Checkpoint],
    executor: str,
    opts: ClusterOptions,
    log_dir: Path,
    *,
    wait: bool,
) -> tuple[list[str], RunReport | None]:
    """Submit the array; with ``wait`` block until done and merge the jobs' reports."""
    groups = group_checkpoints(checkpoints, executor, opts)
    if not groups:
        return [], RunReport(namespace=prep.namespace)
    ex = make_executor(executor, log_dir, opts)
    jobs = ex.map_array(run_job, [prep] * len(groups), groups)
    ids = [str(j.job_id) for j in jobs]
    if not wait:
        return ids, None
    report = RunReport(namespace=prep.namespace)
    for job, group in zip(jobs, groups, strict=True):
        try:
            part = job.result()
        except Exception as exc:  # noqa: BLE001 - a crashed job: its checkpoints count as failed
            for c in group:
                report.failed[c.key] = f"job {job.job_id} failed: {str(exc).strip().splitlines()[-1][:500]}"
            continue
        report.evaluated += part["evaluated"]
        report.skipped += part["skipped"]
        report.failed.update(part["failed"])
        report.records += part["records_written"]
    return ids, report
