"""Scale-out with submitit: job arrays over checkpoints on SLURM, or submitit's local executor.

Both go through ``submitit.AutoExecutor(...).map_array(run_job, groups)``: every array element evaluates
its group of checkpoints with :func:`bayes_l2l.evaluate.runner.run_checkpoints` and writes into the same
result store as an in-process run. SLURM: one checkpoint per array element by default, at most
``array_parallelism`` running at once. Local: the checkpoints are dealt round-robin into
``array_parallelism`` groups (default 1), each group one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bayes_l2l.cluster import ClusterOptions, group_work, make_executor
from bayes_l2l.evaluate.manifest import Checkpoint
from bayes_l2l.evaluate.runner import Prepared, RunReport, run_checkpoints

group_checkpoints = group_work
"""Checkpoints -> array elements (:func:`bayes_l2l.cluster.group_work`)."""

__all__ = ["ClusterOptions", "group_checkpoints", "make_executor", "run_job", "submit"]


def run_job(prep: Prepared, checkpoints: list[Checkpoint]) -> dict[str, Any]:
    """The function each array element runs (module level, so submitit can pickle it by reference)."""
    return run_checkpoints(prep, checkpoints).as_dict()


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
    groups = group_work(checkpoints, executor, opts)
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
