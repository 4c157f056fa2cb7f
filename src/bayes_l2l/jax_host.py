"""JAX's start-up for the library: as many CPU devices as chains (so that chains run in parallel), 64-bit
floats, the persistent compilation cache. Imported first by every module that runs jax."""

from __future__ import annotations

import os

DEFAULT_CHAINS = 4


def configure_host(n_devices: int = DEFAULT_CHAINS) -> None:
    """Expose ``n_devices`` CPU devices to jax so chains run in parallel (must precede jax start-up)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n_devices}".strip()


configure_host()

import jax  # noqa: E402
import numpyro  # noqa: E402
import numpyro.infer  # noqa: E402, F401 - whole, before arviz: arviz_base's from_numpyro reads numpyro.infer.initialization

from bayes_l2l.compile_cache import configure_compilation_cache  # noqa: E402

numpyro.enable_x64()
COMPILE_CACHE = configure_compilation_cache()
"""Folder of JAX's persistent compilation cache (None: off); see :mod:`bayes_l2l.compile_cache`."""

__all__ = ["COMPILE_CACHE", "DEFAULT_CHAINS", "configure_host", "jax"]
