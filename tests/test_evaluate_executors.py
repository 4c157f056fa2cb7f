"""submitit scale-out: how checkpoints become array elements, and the sbatch script a SLURM run submits
(checked against a stand-in `srun`; the local executor runs for real in test_evaluate_cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("submitit")

from bayes_l2l.errors import UserInputError  # noqa: E402
from bayes_l2l.evaluate.executors import ClusterOptions, group_checkpoints, make_executor  # noqa: E402
from bayes_l2l.evaluate.manifest import parse_manifest  # noqa: E402


def _checkpoints(n: int):
    m = parse_manifest({"models": [{"repo": "a/b", "revisions": [f"step{i}" for i in range(n)]}]})
    return list(m.checkpoints)


def test_grouping_for_slurm_and_local():
    ck = _checkpoints(5)
    slurm = group_checkpoints(ck, "slurm", ClusterOptions())
    assert [len(g) for g in slurm] == [1, 1, 1, 1, 1]
    assert [len(g) for g in group_checkpoints(ck, "slurm", ClusterOptions(checkpoints_per_job=2))] == [
        2,
        2,
        1,
    ]
    local = group_checkpoints(ck, "local", ClusterOptions(array_parallelism=2))
    assert [[c.checkpoint for c in g] for g in local] == [["step0", "step2", "step4"], ["step1", "step3"]]
    assert len(group_checkpoints(ck, "local", ClusterOptions())) == 1  # local default: one process
    assert group_checkpoints([], "slurm", ClusterOptions()) == []


def test_slurm_job_script_carries_the_options(tmp_path: Path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    opts = ClusterOptions(
        partition="gpu-a100",
        gpus_per_node=2,
        cpus_per_task=12,
        mem_gb=96,
        timeout_min=90,
        array_parallelism=8,
        account="lab",
        constraint="a100",
        slurm_extra={"reservation": "paper"},
    )
    ex = make_executor("slurm", tmp_path / "logs", opts)
    params = ex._executor.parameters
    assert params["array_parallelism"] == 8
    script = ex._executor._make_submission_file_text("python -m job", "uid")
    for line in (
        "--partition=gpu-a100",
        "--gpus-per-node=2",
        "--cpus-per-task=12",
        "--mem=96GB",
        "--time=90",
        "--account=lab",
        "--constraint=a100",
        "--reservation=paper",
    ):
        assert f"#SBATCH {line}" in script


def test_slurm_needs_a_partition_and_a_cluster(tmp_path: Path, monkeypatch):
    with pytest.raises(UserInputError, match="--partition"):
        make_executor("slurm", tmp_path, ClusterOptions())
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun anywhere
    with pytest.raises(UserInputError, match="no SLURM found"):
        make_executor("slurm", tmp_path, ClusterOptions(partition="gpu"))
    with pytest.raises(UserInputError, match="use inline, local or slurm"):
        make_executor("k8s", tmp_path, ClusterOptions())
