"""The README opens with exactly two set-up commands, and CI runs the second one verbatim."""

from __future__ import annotations

import pytest
from conftest import REPO


def _setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = _setup_commands()
    assert len(commands) == 2
    assert "bayes-l2l demo" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert _setup_commands()[1] in ci.splitlines()


def _tour_commands() -> list[list[str]]:
    """The quick tour's first bash block: one argv per command (continuation lines joined, comments off)."""
    import shlex

    text = (REPO / "README.md").read_text()
    block = text.split("## Quick tour", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            assert argv[0] == "bayes-l2l", line
            commands.append(argv[1:])
    return commands


def test_the_quick_tour_uses_only_data_the_repository_ships() -> None:
    commands = _tour_commands()
    assert len(commands) >= 8
    text = " ".join(" ".join(c) for c in commands)
    assert "../shared" not in text and "new_checkpoints" not in text


@pytest.mark.slow
def test_every_line_of_the_quick_tour_runs(tmp_path, monkeypatch, capsys) -> None:
    """From a fresh clone: each command of the tour exits 0, in order, with no sampler options."""
    from bayes_l2l.cli import main

    for folder in ("data", "examples"):
        (tmp_path / folder).symlink_to(REPO / folder)
    monkeypatch.chdir(tmp_path)
    for argv in _tour_commands():
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, f"bayes-l2l {' '.join(argv)} -> {code}\n{err[-2000:]}"
