"""The top-level CLI: --version, --help without '<bool>', a quiet exit when stdout's reader goes away."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.cli import EXIT_BROKEN_PIPE, main
from bayes_l2l.table import LossTable

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = ["import", "inspect", "simulate", "baseline", "fit", "show", "compare", "test", "predict"]
COMMANDS += ["report", "demo", "eval", "table"]


def test_version_prints_the_package_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bayes-l2l {importlib.metadata.version('bayes-l2l')}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_flags_without_a_value_type(command: str | None, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main([command, "--help"] if command else ["--help"]) == 0
    out = capsys.readouterr().out
    assert "--help" in out
    assert "<bool>" not in out
    assert "--no-overwrite" not in out and "--no-json" not in out and "--no-allow-mixed" not in out


def test_overwrite_is_one_plain_flag(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    for command in ("fit", "compare", "report", "import"):
        assert main([command, "--help"]) == 0
        assert "--overwrite" in capsys.readouterr().out


def _many_runs_table(tmp_path: Path, runs: int = 200) -> Path:
    rows = [
        dict(run=f"run{i:03d}", checkpoint="final", metric="val/c4", kind="validation", value=3.0,
             unit="nats/token", estimator="e", pretraining_data="C4" if i % 2 else "Pile")
        for i in range(runs)
    ]  # fmt: skip
    path = tmp_path / "many.parquet"
    LossTable.from_frame(pd.DataFrame(rows)).save(path)
    return path


def test_broken_pipe_exits_quietly(tmp_path: Path) -> None:
    table = _many_runs_table(tmp_path, runs=3000)
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "80"}
    code = "from bayes_l2l.cli import main; main()"
    proc = subprocess.run(
        ["bash", "-c", f'"$0" -c "{code}" inspect --all "$1" | head -1; echo "rc=${{PIPESTATUS[0]}}" >&2',
         sys.executable, str(table)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.stdout.count("\n") == 1 and "3000 checkpoints" in proc.stdout
    assert f"rc={EXIT_BROKEN_PIPE}" in proc.stderr
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


@pytest.mark.parametrize("command", ["show", "report", "predict", "test"])
def test_a_folder_without_a_posterior_is_refused_before_jax(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "not_a_posterior"
    folder.mkdir()
    (folder / "fit.json").write_text("{}")
    extra = {"report": ["-o", str(tmp_path / "r.html")], "predict": ["--x", "3"], "test": ["t.csv"]}
    args = [command, str(folder), *extra.get(command, [])]
    script = (
        "import sys; from bayes_l2l.cli import main; code = main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'numpyro', 'arviz'))); "
        "sys.exit(code)"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "300"}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout.strip() == "[]"  # refused before the model was imported
    assert str(folder) in proc.stderr and "posterior.nc, design.json missing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_inspect_cuts_long_lists_unless_all(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    table = _many_runs_table(tmp_path, runs=200)
    assert main(["inspect", str(table)]) == 0
    short = capsys.readouterr().out
    assert "Runs (200)" in short and "... 190 more (--all to list every one)" in short
    assert "run009" in short and "run010" not in short
    assert len(short.splitlines()) < 60
    assert main(["inspect", str(table), "--all"]) == 0
    full = capsys.readouterr().out
    assert "run199" in full and "more (--all" not in full
