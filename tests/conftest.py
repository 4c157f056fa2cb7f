"""Shared fixtures: where ../shared lives (skip with a visible reason where it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BAYES_L2L_SHARED", REPO.parent / "shared"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Compiled programs of the tests' fits go to the checkout (ignored by git), not the user's ~/.cache; fits of the
# same tables in one run, and later runs, load them instead of compiling (bayes_l2l.compile_cache).
os.environ.setdefault("BAYES_L2L_COMPILE_CACHE", str(REPO / ".jax-cache"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason if it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is absent (set BAYES_L2L_SHARED to its folder)")
    return path


@pytest.fixture
def shared() -> type:
    """Access to ../shared for tests: ``shared.path('data', 'llm_line', 'latest_pm_hf.csv')``."""

    class _Shared:
        root = SHARED
        path = staticmethod(shared_path)

    return _Shared
