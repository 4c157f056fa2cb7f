"""The posterior folder on disk: checks before writing one, and removal that keeps the user's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.posterior_files import POSTERIOR_FILES, check_posterior_folder, remove_posterior


def _posterior(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in POSTERIOR_FILES:
        (folder / name).write_text("x")
    return folder


def test_check_refuses_a_file_a_posterior_and_clashing_names(tmp_path: Path) -> None:
    check_posterior_folder(tmp_path / "new")  # absent: fine
    (tmp_path / "t.parquet").write_text("table")
    with pytest.raises(UserInputError, match="is a file"):
        check_posterior_folder(tmp_path / "t.parquet", overwrite=True)
    post = _posterior(tmp_path / "post")
    with pytest.raises(UserInputError, match="holds a posterior already"):
        check_posterior_folder(post)
    check_posterior_folder(post, overwrite=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    check_posterior_folder(mine)  # other files: fine, they are kept
    (mine / "posterior.nc").write_text("mine too")
    with pytest.raises(UserInputError, match="posterior.nc, which writing the posterior would replace"):
        check_posterior_folder(mine)


def test_remove_keeps_the_users_files(tmp_path: Path) -> None:
    post = _posterior(tmp_path / "post")
    (post / "notes.txt").write_text("mine")
    _posterior(post / "shared_pretraining_data")
    (post / "shared_mine").mkdir()  # not a posterior: kept
    (post / "shared_mine" / "a.txt").write_text("mine")
    remove_posterior(post)
    assert sorted(p.name for p in post.iterdir()) == ["notes.txt", "shared_mine"]
    assert (post / "shared_mine" / "a.txt").read_text() == "mine"
