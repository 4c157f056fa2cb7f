"""The persistent compilation cache: where it goes, how it is turned off, and that programs land in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from bayes_l2l import compile_cache

PROBE = """
import jax, jax.numpy as jnp
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
import bayes_l2l.infer as infer
jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.arange(3.0)).block_until_ready()
print(infer.COMPILE_CACHE, events.count("/jax/compilation_cache/cache_hits"))
"""


@pytest.fixture
def restore_jax_cache_config():
    keys = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_compilation_cache_max_size",
    )
    saved = {k: getattr(jax.config, k) for k in keys}
    yield
    for k, v in saved.items():
        jax.config.update(k, v)


def test_off_leaves_jax_alone(monkeypatch, restore_jax_cache_config):
    monkeypatch.setenv(compile_cache.ENV, "off")
    before = jax.config.jax_compilation_cache_dir
    assert compile_cache.configure_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir == before


def test_folder_from_the_environment(monkeypatch, tmp_path, restore_jax_cache_config):
    folder = tmp_path / "nested" / "cache"
    monkeypatch.setenv(compile_cache.ENV, str(folder))
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_MAX_SIZE", raising=False)
    assert compile_cache.configure_compilation_cache() == folder
    assert folder.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(folder)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == compile_cache.MIN_COMPILE_SECONDS
    assert jax.config.jax_compilation_cache_max_size == compile_cache.MAX_CACHE_BYTES


def test_a_jax_cache_the_user_set_wins(monkeypatch, tmp_path, restore_jax_cache_config):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "users"))
    before = jax.config.jax_compilation_cache_dir
    assert compile_cache.configure_compilation_cache() == tmp_path / "users"
    assert jax.config.jax_compilation_cache_dir == before  # not rewritten by bayes-l2l


def test_default_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_cache_dir() == tmp_path / "bayes-l2l" / "jax"


def test_an_unwritable_folder_means_no_cache(monkeypatch, tmp_path, restore_jax_cache_config):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(compile_cache.ENV, str(blocker / "cache"))
    assert compile_cache.configure_compilation_cache() is None


def test_compiled_programs_are_stored_and_reused_across_processes(tmp_path):
    env = {
        **os.environ,
        compile_cache.ENV: str(tmp_path / "cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",  # store even the probe's tiny program
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def probe() -> tuple[Path, int]:
        out = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
        )
        folder, hits = out.stdout.strip().splitlines()[-1].rsplit(" ", 1)
        return Path(folder), int(hits)

    assert probe() == (tmp_path / "cache", 0)
    assert any((tmp_path / "cache").iterdir()), "no compiled program was written to the cache"
    folder, hits = probe()
    assert folder == tmp_path / "cache" and hits >= 1  # the second process loads its programs, not compiles


def _compiled_function():
    f = jax.jit(lambda x: jax.numpy.cos(x) + 3.0)
    f(jax.numpy.arange(4.0)).block_until_ready()
    return f


@pytest.mark.skipif(compile_cache.memory_maps() is None, reason="no /proc/self/maps (not Linux)")
def test_memory_maps_counts_this_process():
    held, limit = compile_cache.memory_maps()
    assert 0 < held < limit


@pytest.mark.skipif(compile_cache.memory_maps() is None, reason="no /proc/self/maps (not Linux)")
def test_release_clears_jax_programs_past_the_share(capsys):
    f = _compiled_function()
    assert f._cache_size() == 1
    assert not compile_cache.release_compiled_programs(share=1.0)
    assert f._cache_size() == 1
    assert compile_cache.release_compiled_programs(share=0.0)
    assert f._cache_size() == 0
    assert "cleared JAX's in-memory compiled programs" in capsys.readouterr().err


def test_release_does_nothing_without_proc(monkeypatch, tmp_path):
    monkeypatch.setattr(compile_cache, "MAPS_FILE", tmp_path / "absent")
    f = _compiled_function()
    assert compile_cache.memory_maps() is None
    assert not compile_cache.release_compiled_programs(share=0.0)
    assert f._cache_size() == 1


def test_core_install_carries_what_the_cache_needs():
    """JAX's cache size cap needs filelock; without it every cache entry failed to load on a core install."""
    import importlib.metadata

    core = [r for r in importlib.metadata.requires("bayes-l2l") or [] if "extra ==" not in r]
    assert any(r.startswith("filelock") for r in core)
