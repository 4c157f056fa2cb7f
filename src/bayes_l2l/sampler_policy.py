"""Which sampler settings to try on a design, and what to try next when an attempt fails its diagnostics.

No jax here: the rules read the design's shape and an attempt's diagnostics, and return settings. The fit
itself (running attempts within a time budget, recording them) is :mod:`bayes_l2l.robust_fit`.

The first attempt, from the table's shape (each rule's measurements: benchmarks/RESULTS.md, "Robust
defaults"):

* **Run offsets, per run.** A run's offset is centred where its checkpoints pin it — at least
  :data:`PIN_CHECKPOINTS` checkpoints, and another offset run in its condition, so that the data see the
  offset as a contrast between runs rather than as the condition's own height — and non-centred where they
  don't (a lone run's offset is confounded with its condition's curve; few checkpoints leave it to the
  prior). NumPyro's ``LocScaleReparam`` takes the per-run choice (``ModelConfig.run_centering``).
* **Shape.** Where runs are long (centred offsets), the Ex–kappa ridge of the log-kappa form sets the step
  size: the curvature parametrisation (kappa - 1) / (x_ref - Ex) is used there (``shape='auto'``; a shape
  the user names is kept).
* **Warm-up** :data:`SHORT_WARMUP` where the whitened, centred geometry needs little adaptation (long runs);
  the full :data:`WARMUP` otherwise.
* **Target acceptance** :data:`TARGET_ACCEPT_LONG` on long runs, :data:`TARGET_ACCEPT_SINGLE` where most
  runs have one checkpoint (many final models: no offsets, a funnel between the effects and sigma), the
  NumPyro-style 0.95 otherwise.
* **Mass**: NUTS in Laplace-whitened coordinates, except on small tables (< :data:`SMALL_TABLE` points) whose
  runs mostly have one checkpoint, where NumPyro's dense adaptation is used at acceptance 0.99 (on the paper's
  architecture question one whitened chain stuck, R-hat 4.2; dense passed). Larger tables of final models
  (hundreds of single-checkpoint runs) keep the whitening, with :data:`LONE_RUN_DRAWS` draws per chain. Where
  every offset run is alone in its condition (its offset and its curve height are confounded, sigma_run set
  by its prior), :data:`LONE_RUN_DRAWS` draws per chain at acceptance 0.99.

On failure (:func:`next_attempt`): divergences -> higher target acceptance (:data:`ACCEPT_LADDER`, two steps), then the other
parametrisation (centred runs made non-centred, then the other mass); tree-depth saturation -> the other
parametrisation; R-hat or ESS alone -> twice the warm-up and draws. Settings the user gave explicitly are
the first attempt as they are, and a retry changes only what the user left open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

PIN_CHECKPOINTS = 80
"""Checkpoints from which a run's offset counts as pinned by its data (centred). The textbook ratio n_r
sigma_run^2 / sigma^2 is about 1.2 n_r on the speed family; centred offsets converged at ~100 checkpoints per
run on four of four tables and failed at 15-50 (benchmarks/RESULTS.md)."""
SHORT_WARMUP = 500
WARMUP = 1000
DRAWS = 1000
CHAINS = 4
TARGET_ACCEPT = 0.95
TARGET_ACCEPT_LONG = 0.97
"""Long runs, curvature and centred offsets: 0 divergences on four of four 6,000-checkpoint tables (0.95: 2
divergences on one of four)."""
TARGET_ACCEPT_SINGLE = 0.99
"""Most runs with one checkpoint: 1 divergence at 0.95 on a 500-run table, a stuck chain (R-hat 4.25) on the
paper's architecture question; both pass at 0.99."""
ACCEPT_LADDER = (0.99, 0.995, 0.999)
"""Target acceptances a retry after divergences climbs, one step per attempt and at most :data:`LADDER_STEPS`
steps above the first attempt's, before it changes the parametrisation: on the paper's architecture and
tokenizer questions (12-18 final models, dense mass) 1-8 divergences remained at 0.99 and 0.995 over seeds
0-2; at 0.999, 0 in 2 of 5 (question, seed) fits (benchmarks/RESULTS.md, robust defaults)."""
LADDER_STEPS = 2
SMALL_TABLE = 100
"""Points below which a table of mostly single-checkpoint runs is sampled with dense mass adaptation: with tens
of points the posterior is far from the Gaussian at its mode (the paper's architecture and tokenizer questions,
12-18 final models: a whitened chain stuck at R-hat 4.2-4.3; dense passed or left 1-2 divergences at 0.99)."""
LONE_RUN_DRAWS = 2000
"""Draws per chain where every offset run is alone in its condition: its offset is confounded with its curve's
height and set by the prior (a funnel in sigma_run). The paper's data question mixed slowly there: bulk ESS 350
of 4,000 draws at 0.95, 2 of 4 attempts with one divergence; at 0.99 with 2x the draws it passed."""
SATURATION_MAX = 0.05
"""Share of draws at the maximal tree depth above which the geometry, not the chain length, is the problem."""
LONGER = 2
"""An attempt that fails on R-hat / ESS alone is repeated with this many times the warm-up and draws."""
MAX_ATTEMPTS = 4
DEFAULT_BUDGET_S = 300.0
"""Default wall-clock budget of all attempts together (seconds): a new attempt is started only if the time
spent plus its estimated wall (from the last attempt's) fits. Every question of the robustness suite needs
well under it (benchmarks/RESULTS.md)."""
SHAPE_AUTO = "auto"
POLICY_REVISION = 4
"""Bumped whenever a rule here changes: a saved fit is reused only for the same request under the same rules."""


@dataclass(frozen=True)
class TableShape:
    """What the first attempt is chosen from: the design's runs, checkpoints and conditions."""

    points: int
    runs: int
    conditions: int
    offset_runs: int
    """Runs with at least two checkpoints (they carry a run offset)."""
    single_checkpoint_runs: int
    checkpoints_per_offset_run: list[int]
    """In Design.offset_runs order."""
    offset_runs_in_condition: list[int]
    """For each offset run, how many offset runs its condition has (itself included)."""

    @classmethod
    def of(cls, design: Any) -> TableShape:
        counts = design.points.groupby("run_idx").size()
        offset_idx = [i for i in counts.index if counts[i] >= 2]
        cond_of = np.asarray(design.offset_run_cond_idx, dtype=int)
        per_cond = np.bincount(cond_of, minlength=design.n_conditions) if cond_of.size else np.zeros(0, int)
        return cls(
            points=len(design.points),
            runs=int(design.n_runs),
            conditions=int(design.n_conditions),
            offset_runs=len(offset_idx),
            single_checkpoint_runs=int((counts == 1).sum()),
            checkpoints_per_offset_run=[int(counts[i]) for i in offset_idx],
            offset_runs_in_condition=[int(per_cond[c]) for c in cond_of],
        )

    def centering(self) -> list[float]:
        """Per offset run: 1.0 (centred) where its checkpoints pin its offset, else 0.0."""
        return [
            1.0 if n >= PIN_CHECKPOINTS and m >= 2 else 0.0
            for n, m in zip(self.checkpoints_per_offset_run, self.offset_runs_in_condition, strict=True)
        ]

    @property
    def mostly_single(self) -> bool:
        return self.runs > 0 and self.single_checkpoint_runs > self.runs / 2

    @property
    def lone_runs_only(self) -> bool:
        """Every offset run is alone in its condition (offsets confounded with the curves' heights)."""
        return bool(self.offset_runs_in_condition) and max(self.offset_runs_in_condition) == 1

    def to_dict(self) -> dict[str, Any]:
        n = np.asarray(self.checkpoints_per_offset_run)
        return {
            "points": self.points,
            "runs": self.runs,
            "conditions": self.conditions,
            "offset_runs": self.offset_runs,
            "single_checkpoint_runs": self.single_checkpoint_runs,
            "median_checkpoints_per_offset_run": float(np.median(n)) if n.size else 0.0,
            "lone_offset_runs": int(sum(m == 1 for m in self.offset_runs_in_condition)),
        }


@dataclass(frozen=True)
class Attempt:
    """One attempt's settings: the model's geometry (run offsets, shape) and NUTS's."""

    run_offsets: str
    run_centering: list[float] | None
    shape: str
    mass: str
    target_accept: float
    warmup: int
    draws: int
    chains: int = CHAINS
    max_tree_depth: int = 10
    reason: str = ""
    """Why this attempt: 'first: ...' or what failed before it."""

    def label(self) -> str:
        """A one-line description: 'curvature, 60/60 runs centred, laplace, accept 0.97, 500+1000'."""
        if self.run_offsets == "mixed":
            cen = sum(v >= 0.5 for v in self.run_centering or [])
            offsets = f"{cen}/{len(self.run_centering or [])} runs centred"
        else:
            offsets = f"offsets {self.run_offsets}"
        return (
            f"{self.shape}, {offsets}, mass {self.mass}, accept {self.target_accept:g}, "
            f"{self.chains}x({self.warmup}+{self.draws})"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["run_centering"] is not None:  # long lists: the count says it
            d["centred_runs"] = int(sum(v >= 0.5 for v in d["run_centering"]))
        return d


@dataclass(frozen=True)
class UserSettings:
    """Settings the user named explicitly (None = the policy chooses)."""

    run_offsets: str | None = None
    shape: str | None = None
    mass: str | None = None
    target_accept: float | None = None
    warmup: int | None = None
    draws: int | None = None
    chains: int | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _offsets(centering: list[float]) -> tuple[str, list[float] | None]:
    """('centred' | 'noncentred' | 'mixed', per-run centering or None)."""
    if not centering or all(v == 0.0 for v in centering):
        return "noncentred", None
    if all(v == 1.0 for v in centering):
        return "centred", None
    return "mixed", list(centering)


def first_attempt(
    shape: TableShape, user: UserSettings | None = None, *, paper_mode: bool = False
) -> Attempt:
    """The first attempt for a table of this shape; the user's explicit settings win."""
    user = user or UserSettings()
    reasons = []
    if user.run_offsets is not None:
        offsets, centering = user.run_offsets, None
    else:
        offsets, centering = _offsets(shape.centering())
        if offsets != "noncentred":
            cen = sum(v == 1.0 for v in shape.centering())
            reasons.append(
                f"{cen} of {shape.offset_runs} runs have >= {PIN_CHECKPOINTS} checkpoints beside another run"
            )
    long_runs = offsets in ("centred", "mixed") or (user.run_offsets == "centred")
    model_shape = user.shape if user.shape not in (None, SHAPE_AUTO) else None
    if model_shape is None:
        model_shape = "curvature" if long_runs and not paper_mode else "logkappa"
        if model_shape == "curvature":
            reasons.append("long runs: curvature shape (the Ex-kappa ridge)")
    draws = DRAWS
    small_single = shape.mostly_single and shape.points < SMALL_TABLE and not long_runs
    if user.mass is not None:
        mass = user.mass
    elif small_single:
        mass = "dense"
        reasons.append(
            f"{shape.single_checkpoint_runs} of {shape.runs} runs have one checkpoint, {shape.points} points: dense mass"
        )
    else:
        mass = "laplace"
    if user.target_accept is not None:
        ta = user.target_accept
    elif long_runs:
        ta = TARGET_ACCEPT_LONG
    elif small_single or shape.lone_runs_only:
        ta = TARGET_ACCEPT_SINGLE
        reasons.append("accept 0.99")
    else:
        ta = TARGET_ACCEPT
    if shape.lone_runs_only and not long_runs:
        draws = LONE_RUN_DRAWS
        reasons.append(f"every offset run is alone in its condition: {LONE_RUN_DRAWS} draws")
    elif shape.mostly_single and not small_single:
        draws = LONE_RUN_DRAWS
        reasons.append(f"{shape.single_checkpoint_runs} final models: {LONE_RUN_DRAWS} draws")
    warmup = user.warmup if user.warmup is not None else (SHORT_WARMUP if long_runs else WARMUP)
    return Attempt(
        run_offsets=offsets,
        run_centering=centering,
        shape=model_shape,
        mass=mass,
        target_accept=ta,
        warmup=warmup,
        draws=user.draws if user.draws is not None else draws,
        chains=user.chains if user.chains is not None else CHAINS,
        reason="first: " + ("; ".join(reasons) if reasons else "the defaults for this table's shape"),
    )


def _failure(diagnostics: dict[str, Any]) -> str:
    """'divergences', 'saturation', 'mixing' (R-hat / ESS / BFMI only) or 'none'."""
    if diagnostics.get("ok"):
        return "none"
    if diagnostics.get("divergences"):
        return "divergences"
    if (diagnostics.get("tree_depth_saturation") or 0.0) > SATURATION_MAX:
        return "saturation"
    return "mixing"


def _other_parametrisation(prev: Attempt, user: UserSettings) -> Attempt | None:
    """Centred runs made non-centred; else the other mass matrix; None when both are the user's."""
    if prev.run_offsets in ("centred", "mixed") and user.run_offsets is None:
        return replace(prev, run_offsets="noncentred", run_centering=None, warmup=max(prev.warmup, WARMUP))
    if user.mass is None:
        return replace(prev, mass="dense" if prev.mass == "laplace" else "laplace")
    return None


def next_attempt(
    history: list[tuple[Attempt, dict[str, Any]]], user: UserSettings | None = None
) -> Attempt | None:
    """The next attempt after the last one of ``history`` (attempt, diagnostics) failed, or None when
    nothing new is left to try. Never repeats an attempt's settings."""
    user = user or UserSettings()
    prev, dg = history[-1]
    failure = _failure(dg)
    if failure == "none" or len(history) >= MAX_ATTEMPTS:
        return None
    tried = {_key(a) for a, _ in history}
    candidates: list[tuple[Attempt | None, str]] = []
    problems = "; ".join(dg.get("problems") or [])
    if failure == "divergences":
        start = history[0][0].target_accept
        rungs = [v for v in ACCEPT_LADDER if v > start + 1e-9][:LADDER_STEPS]
        higher = [v for v in rungs if v > prev.target_accept + 1e-9]
        if user.target_accept is None and higher:
            candidates.append((replace(prev, target_accept=higher[0]), "higher target acceptance"))
        candidates.append((_other_parametrisation(prev, user), "other parametrisation"))
    elif failure == "saturation":
        candidates.append((_other_parametrisation(prev, user), "other parametrisation"))
    if failure in ("mixing", "saturation", "divergences"):
        if user.warmup is None and user.draws is None:
            longer = replace(prev, warmup=max(prev.warmup, WARMUP) * LONGER, draws=prev.draws * LONGER)
            if prev.draws <= history[0][0].draws:  # lengthen once
                candidates.append((longer, f"{LONGER}x the warm-up and draws"))
        candidates.append((_other_parametrisation(prev, user), "other parametrisation"))
    for cand, why in candidates:
        if cand is not None and _key(cand) not in tried:
            return replace(cand, reason=f"attempt {len(history)} failed ({problems}): {why}")
    return None


def _key(a: Attempt) -> tuple:
    return (
        a.run_offsets,
        tuple(a.run_centering or ()),
        a.shape,
        a.mass,
        a.target_accept,
        a.warmup,
        a.draws,
        a.chains,
    )


def estimated_wall(prev: Attempt, prev_wall_s: float, nxt: Attempt) -> float:
    """The next attempt's wall time from the last one's (seconds), by the iterations; a higher target
    acceptance takes smaller steps (1.5x, measured 0.95 -> 0.99 on the paper's table)."""
    iters = (nxt.warmup + nxt.draws) / max(prev.warmup + prev.draws, 1)
    step = 1.5 if nxt.target_accept > prev.target_accept else 1.0
    return prev_wall_s * iters * step


def badness(dg: dict[str, Any]) -> tuple:
    """Orders failed attempts, best first: fewest problems, then the smallest R-hat, then the largest ESS."""
    return (
        len(dg.get("problems") or []),
        dg.get("max_rhat") or 0.0,
        int(dg.get("divergences") or 0),
        -(dg.get("min_ess_bulk") or 0.0),
    )
