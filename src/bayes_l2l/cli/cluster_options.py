"""The job-array options of `bayes-l2l survey` (submitit: SLURM, or its local executor), as one option set
(:func:`with_cluster_options`) the command receives as a :class:`~bayes_l2l.cluster.ClusterOptions`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bayes_l2l.cli.common import parse_assignments
from bayes_l2l.cli.fit_options import with_options
from bayes_l2l.cluster import SURVEY_JOB, ClusterOptions


def _cluster(*, slurm_extra: list[str] | None, **kwargs: Any) -> ClusterOptions:
    return SURVEY_JOB.but(**kwargs, slurm_extra=parse_assignments(slurm_extra, "--slurm-extra"))


_D = SURVEY_JOB
_CLUSTER_OPTIONS: dict[str, tuple[Any, Any]] = {
    "partition": (Annotated[str | None, typer.Option(help="slurm: the partition to submit to.")], None),
    "timeout_min": (
        Annotated[int, typer.Option("--time", help="slurm/local: time limit per array element (minutes).")],
        _D.timeout_min,
    ),
    "mem_gb": (Annotated[float, typer.Option(help="slurm: memory per array element (GB).")], _D.mem_gb),
    "cpus_per_task": (
        Annotated[int, typer.Option("--cpus", help="slurm: CPUs per array element.")],
        _D.cpus_per_task,
    ),
    "checkpoints_per_job": (
        Annotated[int, typer.Option("--pairs-per-job", min=1, help="slurm: pairs per array element.")],
        _D.checkpoints_per_job,
    ),
    "array_parallelism": (
        Annotated[
            int | None,
            typer.Option(help="Array elements running at once (slurm default 32; local: --jobs)."),
        ],
        None,
    ),
    "account": (Annotated[str | None, typer.Option(help="slurm: account.")], None),
    "qos": (Annotated[str | None, typer.Option(help="slurm: QOS.")], None),
    "constraint": (Annotated[str | None, typer.Option(help="slurm: node constraint.")], None),
    "slurm_extra": (
        Annotated[
            list[str] | None, typer.Option(help="slurm: extra sbatch parameter KEY=VALUE (repeatable).")
        ],
        None,
    ),
}

with_cluster_options = with_options(_CLUSTER_OPTIONS, "cluster", _cluster)
"""Give a command (which takes ``cluster: ClusterOptions``) the job-array options."""
