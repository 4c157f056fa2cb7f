"""JAX's persistent compilation cache for bayes-l2l's fits (compiled programs kept on disk between runs).

Every fit compiles its model (the NUTS chain, the optimiser's gradient, the prior and posterior replays): about
6 s of a 6,000-checkpoint fit on 2 cores, and most of ``--method approx`` (benchmarks/RESULTS.md). The programs
hold the model options and the table's values as constants, so a second fit of the same table, in a new
process, can load them instead; another table, even of the same size, compiles anew (measured:
benchmarks/RESULTS.md, fixed costs III). Where the cache lives:

- ``BAYES_L2L_COMPILE_CACHE=off`` (or ``0``, ``false``, ``no``): no cache;
- ``BAYES_L2L_COMPILE_CACHE=<folder>``: that folder;
- otherwise, unless the user configured JAX's own cache (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.jax_compilation_cache_dir``, which are left as they are): ``$XDG_CACHE_HOME/bayes-l2l/jax``
  (``~/.cache/bayes-l2l/jax``), capped at :data:`MAX_CACHE_BYTES` (JAX evicts the least recently used).

The cache is an optimisation: a folder that cannot be created means no cache, never an error. JAX treats the
cache as trusted code, so it goes in the user's own folder.

JAX also keeps every program it compiled in memory for the life of the process; since each fit compiles new
ones, a process that fits many tables (a calibration benchmark, a loop over questions) gathers them until Linux
refuses new memory maps. :func:`release_compiled_programs` clears them before that (every fit calls it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax

ENV = "BAYES_L2L_COMPILE_CACHE"
OFF = ("off", "0", "false", "no")
MAX_CACHE_BYTES = 2**30
"""1 GiB; a 6,000-checkpoint fit writes about 2 MB."""
MIN_COMPILE_SECONDS = 0.2
"""Programs that compile faster than this are not stored (JAX's default is 1 s, which skips most of ours)."""
MAP_SHARE_TO_CLEAR = 0.25
"""Clear JAX's in-memory programs once the process holds this share of the memory maps Linux allows it."""
MAPS_FILE = Path("/proc/self/maps")
MAX_MAP_COUNT_FILE = Path("/proc/sys/vm/max_map_count")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bayes-l2l/jax``, or ``~/.cache/bayes-l2l/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayes-l2l" / "jax"


def use_cache_dir(folder: Path | str | None) -> str | None:
    """Point JAX's persistent compilation cache at ``folder`` (None: off) from the next compilation on, also
    after JAX has opened a cache; returns the folder it pointed at before."""
    from jax.experimental.compilation_cache import compilation_cache

    before = jax.config.jax_compilation_cache_dir
    compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", None if folder is None else str(folder))
    return before


def configure_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at bayes-l2l's folder; returns the folder in use, or None."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in OFF:
        return None
    if not setting:
        user_dir = os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir
        if user_dir:
            return Path(user_dir)
    folder = Path(setting).expanduser() if setting else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    use_cache_dir(folder)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ:
        jax.config.update("jax_compilation_cache_max_size", MAX_CACHE_BYTES)
    return folder


def memory_maps() -> tuple[int, int] | None:
    """(memory maps this process holds, the most Linux allows it: ``vm.max_map_count``); None off Linux."""
    try:
        with MAPS_FILE.open("rb") as f:
            held = sum(1 for _ in f)
        limit = int(MAX_MAP_COUNT_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return held, limit


def release_compiled_programs(share: float = MAP_SHARE_TO_CLEAR) -> bool:
    """Clear JAX's in-memory caches of compiled programs when the process holds more than ``share`` of the
    memory maps Linux allows it; returns whether it cleared them (a line on stderr says so).

    Each fit compiles new programs (they hold the table's values) and JAX keeps them all: about 740 memory
    maps and 100 MB per fit of a 72-point table. Past ``vm.max_map_count`` (65,530 by default) LLVM cannot
    map the next program, and a benchmark died after 85 fits in one process with "LLVM compilation error:
    Cannot allocate memory" (benchmarks/RESULTS.md). Clearing loses nothing a later fit of another table
    could use except small helper programs; the persistent cache on disk is untouched. Off Linux, nothing.
    """
    maps = memory_maps()
    if maps is None or maps[0] <= share * maps[1]:
        return False
    jax.clear_caches()
    after = memory_maps()
    print(
        f"bayes-l2l: cleared JAX's in-memory compiled programs ({maps[0]:,} memory maps of the "
        f"{maps[1]:,} allowed; {after[0] if after else 0:,} after)",
        file=sys.stderr,
    )
    return True
