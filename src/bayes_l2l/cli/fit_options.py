"""The one option set of a fit (question filters, model, sampler, budget), shared by every command that fits:
``fit``, ``compare TABLE``. :func:`with_fit_options` adds the options to a command's signature and hands the
command one :class:`FitCommandOptions`; the help texts live here only."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from bayes_l2l.errors import UserInputError
from bayes_l2l.sampler_policy import DEFAULT_BUDGET_S


def _pair(text: str | None, option: str) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        mean, sd = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise UserInputError(f"{option} {text!r}: expected MEAN,SD in nats, e.g. {option} 1.8,0.3") from exc
    if sd <= 0:
        raise UserInputError(f"{option} {text!r}: the SD must be positive")
    return mean, sd


def _auto(value: str) -> str | None:
    return None if value == "auto" else value


@dataclass
class FitCommandOptions:
    """The shared options as the command line gave them."""

    unit: str | None
    x_unit: str | None
    y_unit: str | None
    convert_units: bool
    allow_mixed: bool
    max_x: float | None
    min_fraction: float | None
    early_fraction: float
    early_weight: float
    method: str
    chains: int | None
    draws: int | None
    warmup: int | None
    seed: int
    paper_mode: bool
    compute: str
    measurement_error: str
    prior_ex: str | None
    prior_ey: str | None
    effect_prior: str
    shape: str
    run_offsets: str
    target_accept: float | None
    mass: str
    budget: float
    retry: bool

    def question_kwargs(self) -> dict[str, Any]:
        """The :class:`~bayes_l2l.design.Question` fields these options set."""
        if not 0 <= self.early_fraction < 1 or not 0 < self.early_weight <= 1:
            raise UserInputError("--early-fraction must be in [0, 1) and --early-weight in (0, 1]")
        return {
            "unit": self.unit,
            "x_unit": self.x_unit,
            "y_unit": self.y_unit,
            "convert_units": self.convert_units,
            "allow_mixed": self.allow_mixed,
            "max_x": self.max_x,
            "min_fraction": self.min_fraction,
            "early_fraction": self.early_fraction,
            "early_weight": self.early_weight,
        }

    def fit_options(self) -> Any:
        """The library's :class:`~bayes_l2l.robust_fit.FitOptions`."""
        from bayes_l2l.robust_fit import FitOptions

        return FitOptions(
            method=self.method,
            chains=self.chains,
            draws=self.draws,
            warmup=self.warmup,
            seed=self.seed,
            target_accept=self.target_accept,
            mass=_auto(self.mass),
            shape=self.shape,
            run_offsets=_auto(self.run_offsets),
            effect_prior=self.effect_prior,
            compute=self.compute,
            measurement_error=self.measurement_error,
            prior_ex=_pair(self.prior_ex, "--prior-ex"),
            prior_ey=_pair(self.prior_ey, "--prior-ey"),
            paper_mode=self.paper_mode,
            budget_s=self.budget,
            retry=self.retry,
        )


_OPTIONS: dict[str, tuple[Any, Any]] = {
    "unit": (
        Annotated[str | None, typer.Option(help="Unit of both axes (shorthand for --x-unit U --y-unit U).")],
        None,
    ),
    "x_unit": (
        Annotated[
            str | None,
            typer.Option(help="x's unit when the table stores x in several (default: the one it has)."),
        ],
        None,
    ),
    "y_unit": (
        Annotated[
            str | None,
            typer.Option(help="y's unit, that of every gap and the ROPE (default: the one the table has)."),
        ],
        None,
    ),
    "convert_units": (
        Annotated[
            bool,
            typer.Option(
                "--convert-units", help="Convert nats <-> bits of the same denominator where asked."
            ),
        ],
        False,
    ),
    "allow_mixed": (
        Annotated[bool, typer.Option("--allow-mixed", help="Allow averages over different estimators.")],
        False,
    ),
    "max_x": (
        Annotated[float | None, typer.Option(help="Drop checkpoints with x above this (early ones).")],
        None,
    ),
    "min_fraction": (
        Annotated[
            float | None, typer.Option(help="Drop checkpoints before this fraction of their run's training.")
        ],
        None,
    ),
    "early_fraction": (
        Annotated[float, typer.Option(help="Down-weight checkpoints before this fraction.")],
        0.0,
    ),
    "early_weight": (
        Annotated[float, typer.Option(help="Likelihood weight of those early checkpoints.")],
        1.0,
    ),
    "method": (
        Annotated[
            str, typer.Option(help="nuts (exact) or approx (Laplace approximation, seconds; not calibrated).")
        ],
        "nuts",
    ),
    "chains": (
        Annotated[int | None, typer.Option(min=1, help="NUTS chains, run in parallel (default 4).")],
        None,
    ),
    "draws": (
        Annotated[
            int | None,
            typer.Option(
                min=1, help="Posterior draws per chain (default: chosen from the table, 1000-2000)."
            ),
        ],
        None,
    ),
    "warmup": (
        Annotated[
            int | None,
            typer.Option(
                min=0, help="Warm-up iterations per chain (default: chosen from the table, 500-1000)."
            ),
        ],
        None,
    ),
    "seed": (Annotated[int, typer.Option(help="Random seed (same seed, same numbers).")], 0),
    "paper_mode": (
        Annotated[bool, typer.Option("--paper-mode", help="Fix Ex, Ey from the paper's two-stage fit.")],
        False,
    ),
    "compute": (Annotated[str, typer.Option(help="Joint compute-to-loss component: auto, on, off.")], "auto"),
    "measurement_error": (
        Annotated[
            str,
            typer.Option(
                help="Errors-in-variables from the table's stderr: auto (on where the table gives "
                "stderr_independent and it is not negligible against the checkpoints' scatter), on (all of "
                "stderr where that is missing) or off."
            ),
        ],
        "auto",
    ),
    "prior_ex": (
        Annotated[str | None, typer.Option(help="User prior MEAN,SD (nats) on the base Ex.")],
        None,
    ),
    "prior_ey": (
        Annotated[str | None, typer.Option(help="User prior MEAN,SD (nats) on the base Ey.")],
        None,
    ),
    "effect_prior": (
        Annotated[
            str,
            typer.Option(
                help="Effect prior: normal (fixed scales) or hierarchical (scale learned per factor)."
            ),
        ],
        "normal",
    ),
    "shape": (
        Annotated[
            str,
            typer.Option(
                help="Third linear predictor: auto (default: the curvature (kappa - 1) / (x_ref - Ex) on tables "
                "of long runs, where log kappa and Ex form a ridge; log kappa otherwise), logkappa or curvature."
            ),
        ],
        "auto",
    ),
    "run_offsets": (
        Annotated[
            str,
            typer.Option(
                help="Run offsets: auto (default: centred per run where its checkpoints pin its offset, "
                "non-centred elsewhere), noncentred, centred or split."
            ),
        ],
        "auto",
    ),
    "target_accept": (
        Annotated[
            float | None,
            typer.Option(help="NUTS target acceptance (default: chosen from the table, 0.95-0.99)."),
        ],
        None,
    ),
    "mass": (
        Annotated[
            str,
            typer.Option(
                help="NUTS mass matrix: auto (default: laplace = coordinates whitened by the Laplace covariance "
                "then diagonal adaptation; dense where most runs have one checkpoint), laplace, dense or diag."
            ),
        ],
        "auto",
    ),
    "budget": (
        Annotated[
            float,
            typer.Option(
                help="Seconds all sampler attempts may take together; a retry starts only if it fits "
                f"(default {DEFAULT_BUDGET_S:.0f})."
            ),
        ],
        DEFAULT_BUDGET_S,
    ),
    "retry": (
        Annotated[
            bool,
            typer.Option(
                "--retry/--no-retry",
                help="When an attempt fails the diagnostics, try the next settings chosen from what failed.",
            ),
        ],
        True,
    ),
}


def with_options(
    options: dict[str, tuple[Any, Any]], param: str, build: Callable[..., Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator giving a command (which takes ``param``) every option of ``options`` ({name: (annotation,
    default)}); the command receives ``build(**those options)`` as ``param``. Decorators stack."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(command)
        hints = typing.get_type_hints(command, include_extras=True)
        own = [
            p.replace(annotation=hints.get(name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
            for name, p in sig.parameters.items()
            if name != param
        ]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, (annotation, default) in options.items()
        ]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            shared = {name: kwargs.pop(name) for name in options}
            return command(**kwargs, **{param: build(**shared)})

        wrapper.__signature__ = sig.replace(parameters=own + added)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
        return wrapper

    return decorate


with_fit_options = with_options(_OPTIONS, "fit_opts", FitCommandOptions)
"""Give a command (which takes ``fit_opts: FitCommandOptions``) every option of a fit (the options after
the command's own)."""
