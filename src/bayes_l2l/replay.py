"""Passes of the model over many draws: its structure (sites, transforms, shapes) read by an abstract trace,
the compiled program that replays latent draws into deterministic sites, pointwise log-likelihoods and the
likelihood's parameters, the prior draws (run in a background thread beside the mode search and the sampler),
and the DataTree built from them."""

from __future__ import annotations

from bayes_l2l.jax_host import DEFAULT_CHAINS  # noqa: F401 - first: XLA's host devices before jax starts

# isort: split

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import arviz as az
import jax
import numpy as np
import numpyro

from bayes_l2l.model import ModelConfig, ModelData, l2l_model

OBSERVED_SITES = ("y", "x_obs")
"""The model's observed sites: in prior_predictive (not prior) of a posterior's DataTree, as az.from_numpyro."""


@dataclass(frozen=True)
class _ModelStructure:
    """The model's sites, read by tracing it abstractly (jax.eval_shape: no op is executed or compiled)."""

    transforms: dict[str, Any]
    """Latent site -> bijection from the unconstrained space onto the site's support."""
    shapes: dict[str, tuple[int, ...]]
    deterministic: tuple[str, ...]
    observed: tuple[str, ...]
    """Observed sample sites, including numpyro.factor sites (as numpyro's log_likelihood lists them)."""


def _model_structure(data: ModelData, config: ModelConfig) -> _ModelStructure:
    """Latent sites with their transforms and shapes, deterministic and observed site names.

    NumPyro's ``initialize_model`` finds the same by running the model and its gradient op by op, which costs
    several seconds of per-primitive compilation in a fresh process; the supports here are static."""
    from numpyro.distributions.transforms import biject_to

    found: dict[str, Any] = {}

    def trace_once() -> int:
        tr = numpyro.handlers.trace(numpyro.handlers.seed(l2l_model, 0)).get_trace(data, config)
        latent = {k: s for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
        found["transforms"] = {k: biject_to(s["fn"].support) for k, s in latent.items()}
        found["shapes"] = {k: tuple(np.shape(s["value"])) for k, s in latent.items()}
        found["deterministic"] = tuple(k for k, s in tr.items() if s["type"] == "deterministic")
        found["observed"] = tuple(k for k, s in tr.items() if s["type"] == "sample" and s["is_observed"])
        return 0

    jax.eval_shape(trace_once)
    return _ModelStructure(**found)


def _datatree(
    latent: dict[str, np.ndarray],
    data: ModelData,
    config: ModelConfig,
    *,
    coords,  # noqa: ANN001
    dims,  # noqa: ANN001
    sample_stats: dict[str, np.ndarray],
    structure: _ModelStructure,
    replay: Any,
    prior: _InBackground,
):
    """The DataTree of draws of the latent sites (each of shape (chain, draw, ...)): deterministic sites,
    pointwise log-likelihood, prior draws (``prior``: :func:`_prior_job` running in the background) and
    observed data added as ``az.from_numpyro`` would. The posterior and the prior draws are replayed by the
    same compiled program, ``replay`` (:func:`_replayer`)."""
    n_chain, n_draw = next(iter(latent.values())).shape[:2]
    flat = {k: np.asarray(v).reshape(n_chain * n_draw, *v.shape[2:]) for k, v in latent.items()}
    derived, ll, _ = replay(flat, keep=("deterministic", "log_likelihood"))

    def by_chain(v) -> np.ndarray:  # noqa: ANN001
        v = np.asarray(v)
        return v.reshape(n_chain, n_draw, *v.shape[1:])

    latent_or_derived = set(flat) | set(structure.deterministic)
    prior = prior.result()
    return az.from_dict(
        {
            "posterior": {k: by_chain(v) for k, v in {**flat, **derived}.items()},
            "prior": {k: np.asarray(v)[None] for k, v in prior.items() if k in latent_or_derived},
            "prior_predictive": {k: np.asarray(v)[None] for k, v in prior.items() if k in OBSERVED_SITES},
            "log_likelihood": {k: by_chain(v) for k, v in ll.items()},
            "observed_data": {
                "y": np.asarray(data.y),
                **({"x_obs": np.asarray(data.x)} if "x_obs" in ll else {}),
            },
            "sample_stats": sample_stats,
        },
        coords=coords,
        dims=dims,
    )


PRIOR_DRAWS = 2000


def _prior_job(
    data: ModelData,
    config: ModelConfig,
    seed: int,
    n: int = PRIOR_DRAWS,
    structure: _ModelStructure | None = None,
    replay: Any = None,
) -> Any:
    """A function returning ``n`` joint draws from the prior: the latent sites (the model run forward from ``n``
    keys; a small program, since nothing else it computes is returned), their deterministic sites and the
    observed sites' likelihood parameters (``replay``: the program that replays the posterior draws,
    :func:`_replayer`), and the observed sites' prior predictive (y, and x_obs of the compute component) drawn
    in numpy from each draw's Student-t / Normal. JAX's Student-t sampler (a gamma rejection loop) took 15 s for
    2,000 x 6,000 values on the 2-core CPU, numpy 0.5 s (benchmarks/RESULTS.md, fixed costs). The model is
    traced here, so that the function may run in another thread. The function compiles its programs, then
    waits for its optional argument ``start`` (a :class:`_StartSignal`) before running them ({} if abandoned)."""
    structure = structure or _model_structure(data, config)
    replay = replay or _replayer(data, config, structure)

    def one(key):  # noqa: ANN001, ANN202
        tr = numpyro.handlers.trace(numpyro.handlers.seed(l2l_model, key)).get_trace(data, config)
        return {k: tr[k]["value"] for k in structure.shapes}

    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    latent_program = _compile_once(
        jax.jit(jax.vmap(one), compiler_options=PRIOR_LATENT_COMPILER_OPTIONS).lower(keys)
    )

    def draw(start: _StartSignal | None = None) -> dict[str, np.ndarray]:
        program = latent_program()
        replay.compile()
        if start is not None:
            start.wait()
            if start.abandoned:
                return {}
        latent = jax.tree.map(np.asarray, program(keys))
        derived, _, params = replay(latent, keep=("deterministic", "params"))
        out = {**latent, **derived}
        rng = np.random.default_rng(seed)
        for k, (loc, scale, df) in params.items():
            out[k] = loc + scale * (rng.standard_normal(loc.shape) if df is None else rng.standard_t(df))
        return out

    return draw


REPLAY_ELEMENTS = 16_000_000
"""Draws x points per vectorised batch when running the model on many draws (bounds memory to about 1 GB on
the CPU; 2,000 draws of a 6,000-point table run as one batch)."""
REPLAY_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
"""XLA's CPU backend at level 1 (default 2) for the passes over draws: measured on the 6,000-checkpoint speed
table when the prior's latent and deterministic sites were one program, it compiled in 1.74 s instead of 2.73 s,
with the same run time (0.14 s) and the same numbers (benchmarks/RESULTS.md, fixed costs III)."""


PRIOR_LATENT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
"""The prior's latent program (2,000 keys -> the latent sites; 0.02 s to run) at XLA level 0: on the 6,000-checkpoint
speed table it compiled in 0.61 s instead of 0.95 s at level 1, its draws equal to 1e-13 relative (rounding;
benchmarks/RESULTS.md, fixed costs V)."""


def _trace_at(draw: dict[str, Any], data: ModelData, config: ModelConfig) -> dict[str, Any]:
    """The model's trace with its latent sites set to one draw."""
    model = numpyro.handlers.substitute(numpyro.handlers.seed(l2l_model, 0), data=draw)
    return numpyro.handlers.trace(model).get_trace(data, config)


def _replay_batch(points: int) -> int:
    """Draws per batch of a replay: PRIOR_DRAWS, or fewer where draws x points would exceed REPLAY_ELEMENTS.
    One size per table, so that the prior draws and the posterior draws (1 or 2 batches for the default
    2,000 approximate or 4 x 1,000 NUTS draws) run the same compiled program."""
    return max(1, min(PRIOR_DRAWS, REPLAY_ELEMENTS // max(points, 1)))


REPLAY_PARTS = ("deterministic", "log_likelihood", "params")


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a``, marked read-only like the views of JAX's buffers that a replay of one batch returns (so that a
    fit's arrays behave the same whatever the number of batches)."""
    a.flags.writeable = False
    return a


def _leading(tree: Any, size: int) -> Any:
    """The first ``size`` entries along the leading axis of every array of a pytree, as numpy arrays."""
    return jax.tree.map(lambda v: np.asarray(v)[:size], tree)


def _replayer(data: ModelData, config: ModelConfig, structure: _ModelStructure) -> Any:
    """A function of latent draws (a dict of arrays with a leading draw axis) and the parts to keep, returning
    (deterministic sites, pointwise log-likelihood, observed sites' (loc, scale, df)) as numpy arrays ({} for
    a part not kept): what Predictive and NumPyro's log_likelihood give, from one compiled program run in
    equal batches of :func:`_replay_batch` draws (the last batch padded with copies of the last draw). The
    arrays are read-only (views of JAX's buffers, not copied); copy one before writing into it.

    The model is traced here, in the calling thread (NumPyro's effect handlers are global, so models must not
    be traced in two threads at once); the program is compiled on first use, in whichever thread that is, or
    by ``replay.compile()``."""
    observed = [k for k in OBSERVED_SITES if k in structure.observed]

    def one(draw):  # noqa: ANN001, ANN202
        tr = _trace_at(draw, data, config)
        det = {k: tr[k]["value"] for k in structure.deterministic}
        ll = {k: tr[k]["fn"].log_prob(tr[k]["value"]) for k in structure.observed}
        params = {k: (tr[k]["fn"].loc, tr[k]["fn"].scale, getattr(tr[k]["fn"], "df", None)) for k in observed}
        return det, ll, params

    batch = _replay_batch(data.y.size)
    example = {k: jax.ShapeDtypeStruct((batch, *shape), np.float64) for k, shape in structure.shapes.items()}
    run = _compile_once(jax.jit(jax.vmap(one), compiler_options=REPLAY_COMPILER_OPTIONS).lower(example))

    def replay(latent: dict[str, Any], keep: tuple[str, ...] = REPLAY_PARTS) -> tuple[dict, dict, dict]:
        n = len(next(iter(latent.values())))
        kept: list[list[Any]] = []
        for start in range(0, n, batch):
            size = min(batch, n - start)
            chunk = {k: np.asarray(v[start : start + size], dtype=np.float64) for k, v in latent.items()}
            if size < batch:
                chunk = {
                    k: np.concatenate([v, np.repeat(v[-1:], batch - size, axis=0)]) for k, v in chunk.items()
                }
            out = dict(zip(REPLAY_PARTS, run()(chunk), strict=True))
            kept.append([_leading(out[p], size) if p in keep else {} for p in REPLAY_PARTS])
        if len(kept) == 1:  # one batch: no copy (copying 2,000 x 6,000 arrays took 0.2 s)
            return tuple(kept[0])
        return tuple(
            jax.tree.map(lambda *v: _read_only(np.concatenate(v)), *part) for part in zip(*kept, strict=True)
        )

    replay.compile = run
    return replay


def _compile_once(lowered: Any) -> Any:
    """A function returning ``lowered.compile()``, compiled at its first call (one compilation when several
    threads call it)."""
    lock = threading.Lock()
    compiled: list[Any] = []

    def get() -> Any:
        with lock:
            if not compiled:
                compiled.append(lowered.compile())
        return compiled[0]

    return get


class _StartSignal(threading.Event):
    """Set when a fit's prior draws may run (its mode is found); ``abandoned`` when the fit failed before that
    and they should not run at all."""

    abandoned: bool = False


class _InBackground:
    """A function of no arguments run in a background thread; ``result()`` waits for it (and re-raises its
    error). The prior draws of a fit (compiling and running their programs, 2 s cold on the 6,000-checkpoint
    table) compile beside the start and the mode search and run beside the sampler: everything they trace is
    traced before the thread starts."""

    def __init__(self, work: Any) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bayes-l2l-prior")
        self._future = self._pool.submit(work)
        self._pool.shutdown(wait=False)

    def result(self) -> Any:
        return self._future.result()
