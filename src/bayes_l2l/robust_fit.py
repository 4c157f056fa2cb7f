"""Fit a design robustly: the first attempt chosen from the table's shape, retries chosen from what failed,
within a time budget, every attempt recorded. The one fitting entry point of the CLI, the demo, the analysis
scripts and the benchmarks (rules: :mod:`bayes_l2l.sampler_policy`).

The returned :class:`~bayes_l2l.infer.Posterior` is the first attempt that passed the diagnostics gate, or,
when every attempt failed, the best of them (fewest problems, then the smallest R-hat); its ``settings``
hold ``attempts`` (one record per attempt: settings, wall, diagnostics), ``policy`` (the table's shape, the
budget, whether retries were allowed) and ``requested`` (what the caller asked for, which decides whether a
saved fit can be reused).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bayes_l2l import infer
from bayes_l2l.design import Design
from bayes_l2l.errors import UserInputError
from bayes_l2l.measurement import check_mode as check_measurement_mode
from bayes_l2l.model import SHAPES, ModelConfig
from bayes_l2l.sampler_policy import (
    DEFAULT_BUDGET_S,
    POLICY_REVISION,
    SHAPE_AUTO,
    Attempt,
    TableShape,
    UserSettings,
    badness,
    estimated_wall,
    first_attempt,
    next_attempt,
)

ATTEMPT_DIAGNOSTICS = (
    "ok",
    "problems",
    "max_rhat",
    "worst_rhat",
    "min_ess_bulk",
    "min_ess_tail",
    "divergences",
    "min_bfmi",
    "tree_depth_saturation",
)


def requested(
    config: ModelConfig, user: UserSettings, *, method: str, seed: int, retry: bool, budget_s: float
) -> dict[str, Any]:
    """What a caller asked for: a saved fit with the same request (and the same question and data) is
    reused instead of refitted."""
    return {
        "policy_revision": POLICY_REVISION,
        "method": method,
        "seed": seed,
        "retry": retry,
        "budget_s": budget_s,
        "user": user.given(),
        "config": {k: v for k, v in config.to_dict().items() if k not in ("run_centering",)},
    }


def fit_robust(
    design: Design,
    config: ModelConfig | None = None,
    *,
    method: str = "nuts",
    user: UserSettings | None = None,
    seed: int = 0,
    retry: bool = True,
    budget_s: float = DEFAULT_BUDGET_S,
    max_tree_depth: int = 10,
    progress: Callable[[str], None] | None = None,
) -> infer.Posterior:
    """Fit ``design`` (NUTS with the policy's attempts, or ``method='approx'`` once); see the module doc.

    ``config`` holds the model's priors and options; its ``shape`` and ``run_offsets`` are the policy's to
    choose unless ``user`` names them. ``user``: sampler settings the caller gave explicitly (they form the
    first attempt and no retry changes them). ``budget_s``: wall-clock seconds for all attempts together;
    an attempt is started only if its estimated wall fits in what is left (the first always runs).
    ``progress`` receives one line per attempt started and finished.
    """
    if method not in ("nuts", "approx"):
        raise UserInputError(f"--method {method!r}: use nuts or approx")
    if budget_s <= 0:
        raise UserInputError(
            f"--budget {budget_s}: give the seconds all attempts may take together, e.g. 300"
        )
    config = config or ModelConfig()
    user = user or UserSettings()
    say = progress or (lambda _msg: None)
    shape = TableShape.of(design)
    asked = requested(config, user, method=method, seed=seed, retry=retry, budget_s=budget_s)
    if method == "approx":
        attempt = first_attempt(shape, user, paper_mode=config.paper_mode)
        post = infer.fit(
            design,
            _config_for(config, attempt),
            method="approx",
            draws=attempt.draws,
            seed=seed,
            max_tree_depth=max_tree_depth,
        )
        record = {**attempt.to_dict(), "wall_s": post.wall_time_s, "diagnostics": _diag(post.diagnostics)}
        return _finish(post, [record], shape, asked, passed=0)

    t0 = time.perf_counter()
    history: list[tuple[Attempt, dict[str, Any]]] = []
    records: list[dict[str, Any]] = []
    posts: list[infer.Posterior] = []
    attempt: Attempt | None = first_attempt(shape, user, paper_mode=config.paper_mode)
    while attempt is not None:
        n = len(records) + 1
        say(f"attempt {n}: {attempt.label()} ({attempt.reason})")
        post = infer.fit(
            design,
            _config_for(config, attempt),
            method="nuts",
            chains=attempt.chains,
            draws=attempt.draws,
            warmup=attempt.warmup,
            seed=seed,
            target_accept=attempt.target_accept,
            mass=attempt.mass,
            max_tree_depth=max_tree_depth,
        )
        dg = post.diagnostics
        records.append({**attempt.to_dict(), "wall_s": post.wall_time_s, "diagnostics": _diag(dg)})
        say(
            f"attempt {n}: {post.wall_time_s:.0f} s, "
            + ("diagnostics passed" if dg["ok"] else "failed: " + "; ".join(dg["problems"]))
        )
        history.append((attempt, dg))
        posts.append(post)
        if dg["ok"]:
            return _finish(post, records, shape, asked, passed=len(records) - 1)
        nxt = next_attempt(history, user) if retry else None
        if nxt is not None:
            spent = time.perf_counter() - t0
            need = estimated_wall(attempt, post.wall_time_s, nxt)
            if spent + need > budget_s:
                say(
                    f"not starting attempt {n + 1} ({nxt.label()}): it would take about {need:.0f} s, and "
                    f"{budget_s - spent:.0f} s of the {budget_s:.0f} s budget are left (--budget)"
                )
                records[-1]["next_skipped"] = {"settings": nxt.label(), "estimated_s": need}
                nxt = None
        attempt = nxt
    best = min(range(len(posts)), key=lambda i: badness(posts[i].diagnostics))
    return _finish(posts[best], records, shape, asked, passed=None, kept=best)


def _config_for(config: ModelConfig, attempt: Attempt) -> ModelConfig:
    """The model configuration of an attempt: the caller's priors with the attempt's geometry."""
    return replace(
        config, run_offsets=attempt.run_offsets, run_centering=attempt.run_centering, shape=attempt.shape
    )


def _diag(dg: dict[str, Any]) -> dict[str, Any]:
    return {k: dg.get(k) for k in ATTEMPT_DIAGNOSTICS if k in dg}


def _finish(
    post: infer.Posterior,
    records: list[dict[str, Any]],
    shape: TableShape,
    asked: dict[str, Any],
    *,
    passed: int | None,
    kept: int | None = None,
) -> infer.Posterior:
    """Record the attempts on the posterior that is returned (and on its diagnostics)."""
    kept = passed if kept is None else kept
    post.settings = {
        **post.settings,
        "attempts": records,
        "policy": {"table_shape": shape.to_dict(), "budget_s": asked["budget_s"], "retry": asked["retry"]},
        "requested": asked,
        "kept_attempt": kept + 1 if kept is not None else None,
    }
    post.diagnostics = {**post.diagnostics, "attempts": attempts_summary(post)}
    post.wall_time_s = float(sum(r["wall_s"] for r in records))
    return post


def attempts_summary(post: infer.Posterior) -> str:
    """'attempt 2 of 3 passed: ...' or 'all 3 attempts failed; kept attempt 2: ...' (one line)."""
    records = post.settings.get("attempts") or []
    if not records:
        return ""
    kept = post.settings.get("kept_attempt") or len(records)
    rec = records[kept - 1]
    label = Attempt(**{k: rec[k] for k in Attempt.__dataclass_fields__ if k in rec}).label()
    total = sum(r["wall_s"] for r in records)
    if rec["diagnostics"].get("ok"):
        return f"attempt {kept} of {len(records)} passed: {label} ({total:.0f} s in all)"
    return (
        f"all {len(records)} attempt(s) failed the diagnostics; kept attempt {kept}, the best: {label} "
        f"({total:.0f} s in all)"
    )


@dataclass
class FitOptions:
    """Every model and sampler option of a fit, as ``bayes-l2l fit`` and ``compare TABLE`` take them. None
    (or 'auto') leaves the choice to the policy; a value given is honoured as the first attempt."""

    method: str = "nuts"
    chains: int | None = None
    draws: int | None = None
    warmup: int | None = None
    seed: int = 0
    target_accept: float | None = None
    mass: str | None = None
    shape: str = SHAPE_AUTO
    run_offsets: str | None = None
    effect_prior: str = "normal"
    compute: str = "auto"
    measurement_error: str = "auto"
    prior_ex: tuple[float, float] | None = None
    prior_ey: tuple[float, float] | None = None
    paper_mode: bool = False
    budget_s: float = DEFAULT_BUDGET_S
    retry: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("nuts", "approx"):
            raise UserInputError(f"--method {self.method!r}: use nuts or approx")
        if self.effect_prior not in ("normal", "hierarchical"):
            raise UserInputError(f"--effect-prior {self.effect_prior!r}: use normal or hierarchical")
        if self.target_accept is not None and not 0.5 <= self.target_accept < 1:
            raise UserInputError(
                f"--target-accept {self.target_accept}: use a value in [0.5, 1), e.g. 0.95 or 0.99"
            )
        if self.mass is not None:
            infer.check_mass(self.mass)
        if self.compute not in ("auto", "on", "off"):
            raise UserInputError(f"--compute {self.compute!r}: use auto, on or off")
        check_measurement_mode(self.measurement_error)
        if self.shape not in (SHAPE_AUTO, *SHAPES):
            raise UserInputError(f"--shape {self.shape!r}: use auto, {' or '.join(SHAPES)}")
        if self.run_offsets is not None and self.run_offsets not in ("noncentred", "centred", "split"):
            raise UserInputError(
                f"--run-offsets {self.run_offsets!r}: use auto, noncentred, centred or split"
            )
        for name in ("chains", "draws"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserInputError(f"--{name} {getattr(self, name)}: use 1 or more")
        if self.budget_s <= 0:
            raise UserInputError(f"--budget {self.budget_s}: give seconds, e.g. 300")

    def user_settings(self) -> UserSettings:
        return UserSettings(
            run_offsets=self.run_offsets,
            shape=None if self.shape == SHAPE_AUTO else self.shape,
            mass=self.mass,
            target_accept=self.target_accept,
            warmup=self.warmup,
            draws=self.draws,
            chains=self.chains,
        )

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            use_compute={"auto": "auto", "on": True, "off": False}[self.compute],
            prior_Ex=self.prior_ex,
            prior_Ey=self.prior_ey,
            effect_prior=self.effect_prior,
            shape="logkappa" if self.shape == SHAPE_AUTO else self.shape,
            measurement_error=self.measurement_error,
        )


def sampler_from_args(args: Any) -> dict[str, Any]:
    """The benchmark scripts' argparse flags (``--chains`` ... ``--shape``, ``--run-offsets`` of
    :func:`bayes_l2l.model.add_model_arguments`, ``--no-retry``; absent or None = the policy's choice) as
    {"user": UserSettings, "config": ModelConfig, "retry": bool} for :func:`fit_robust`."""

    def given(name: str) -> Any:
        value = getattr(args, name, None)
        return None if value == SHAPE_AUTO else value

    user = UserSettings(**{k: given(k) for k in UserSettings.__dataclass_fields__})
    return {
        "user": user,
        "config": ModelConfig(shape=user.shape or "logkappa"),
        "retry": not getattr(args, "no_retry", False),
    }


def fit_design_with(
    design: Design, options: FitOptions | None = None, *, progress: Callable[[str], None] | None = None
) -> infer.Posterior:
    """:func:`fit_robust` of ``design`` with ``options`` (paper mode's fixed E taken from this design)."""
    options = options or FitOptions()
    config = options.model_config()
    if options.paper_mode:
        config, notes = infer.paper_mode_config(design, config)
        design.warnings.extend(f"paper mode: {n}" for n in notes)
    return fit_robust(
        design,
        config,
        method=options.method,
        user=options.user_settings(),
        seed=options.seed,
        retry=options.retry,
        budget_s=options.budget_s,
        progress=progress,
    )
