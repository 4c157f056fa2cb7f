"""`bayes-l2l fit`: table + question -> posterior folder, with a compact summary and diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bayes_l2l.cli.common import app, console, err_console, parse_assignments, print_json, print_table
from bayes_l2l.errors import DiagnosticsError, UserInputError
from bayes_l2l.posterior_files import check_posterior_folder


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


def fit_from_options(
    table_path: Path,
    *,
    x: str,
    y: str,
    factors: list[str],
    base: list[str] | None = None,
    where: list[str] | None = None,
    unit: str = "nats/token",
    allow_mixed: bool = False,
    max_x: float | None = None,
    min_fraction: float | None = None,
    early_fraction: float = 0.0,
    early_weight: float = 1.0,
    method: str = "nuts",
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = 0,
    paper_mode: bool = False,
    compute: str = "auto",
    prior_ex: str | None = None,
    prior_ey: str | None = None,
    effect_prior: str = "normal",
    shape: str = "logkappa",
    run_offsets: str = "noncentred",
    target_accept: float = 0.95,
    mass: str = "laplace",
    progress: bool = False,
) -> Any:
    """Read the table, build the design and fit; shared by `fit` and the commands that fit first."""
    from bayes_l2l.design import Question, build_design
    from bayes_l2l.infer import check_mass, fit, paper_mode_config
    from bayes_l2l.model import ModelConfig
    from bayes_l2l.table import LossTable

    if method not in ("nuts", "approx"):
        raise UserInputError(f"--method {method!r}: use nuts or approx")
    if effect_prior not in ("normal", "hierarchical"):
        raise UserInputError(f"--effect-prior {effect_prior!r}: use normal or hierarchical")
    if not 0.5 <= target_accept < 1:
        raise UserInputError(f"--target-accept {target_accept}: use a value in [0.5, 1), e.g. 0.95 or 0.99")
    check_mass(mass)
    if compute not in ("auto", "on", "off"):
        raise UserInputError(f"--compute {compute!r}: use auto, on or off")
    if not 0 <= early_fraction < 1 or not 0 < early_weight <= 1:
        raise UserInputError("--early-fraction must be in [0, 1) and --early-weight in (0, 1]")
    table = LossTable.read(table_path)
    question = Question(
        x=x,
        y=y,
        factors=list(factors),
        base=parse_assignments(base, "--base"),
        where=parse_assignments(where, "--where"),
        unit=unit,
        allow_mixed=allow_mixed,
        max_x=max_x,
        min_fraction=min_fraction,
        early_fraction=early_fraction,
        early_weight=early_weight,
    )
    unknown_base = [f for f in question.base if f not in question.factors]
    if unknown_base:
        raise UserInputError(f"--base names {', '.join(unknown_base)}, which is not a --factor of this fit")
    design = build_design(table, question)
    config = ModelConfig(
        use_compute={"auto": "auto", "on": True, "off": False}[compute],
        prior_Ex=_pair(prior_ex, "--prior-ex"),
        prior_Ey=_pair(prior_ey, "--prior-ey"),
        effect_prior=effect_prior,
        shape=shape,
        run_offsets=run_offsets,
    )
    if paper_mode:
        config, notes = paper_mode_config(design, config)
        design.warnings.extend(f"paper mode: {n}" for n in notes)
    with console.status(
        f"fitting {design.n_conditions} condition(s), {len(design.points)} points ({method})"
    ):
        return fit(
            design,
            config,
            target_accept=target_accept,
            method=method,
            chains=chains,
            draws=draws,
            warmup=warmup,
            seed=seed,
            progress=progress,
            mass=mass,
        )


def posterior_report(post: Any) -> dict[str, Any]:
    """JSON-able summary of a fit: question, design sizes, parameters, diagnostics, identification."""
    from bayes_l2l.infer import prior_check, summary_table

    summ = summary_table(post)
    d = post.design
    return {
        "question": d.question.to_dict(),
        "method": post.method,
        "settings": post.settings,
        "n_points": len(d.points),
        "n_runs": d.n_runs,
        "conditions": d.conditions.to_dict(orient="records"),
        "factor_levels": d.factor_levels,
        "dropped": d.dropped,
        "warnings": d.warnings,
        "parameters": summ.reset_index(names="name").to_dict(orient="records"),
        "diagnostics": post.diagnostics,
        "prior_check": prior_check(post),
        "wall_time_s": post.wall_time_s,
    }


def print_posterior_summary(post: Any) -> None:
    """Rich rendering of :func:`posterior_report`."""
    from bayes_l2l.infer import summary_table

    d = post.design
    q = d.question
    console.print(
        f"[bold]{escape(q.y)}[/] vs [bold]{escape(q.x)}[/] ({q.unit}); factors: {', '.join(q.factors) or 'none'}; "
        f"{len(d.points)} checkpoints, {d.n_runs} runs, {d.n_conditions} conditions; method {post.method}"
    )
    if d.factor_levels:
        bases = ", ".join(f"{f}={levels[0]}" for f, levels in d.factor_levels.items())
        console.print(f"base level(s): {escape(bases)} (change with --base FACTOR=LEVEL)")
    for item in d.dropped:
        console.print(f"[yellow]dropped[/] {item['count']}: {escape(item['reason'])}")
    n_import = d.n_import_warnings
    if n_import:
        err_console.print(
            f"[yellow]{n_import} warning(s) from the table's import[/] (listed by `bayes-l2l inspect TABLE`; "
            "kept in design.json and --json)",
            soft_wrap=True,
        )
    for w in d.warnings[n_import:]:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    summ = summary_table(post)
    table = Table(title="posterior (90% HDI)", show_lines=False)
    for col in ("quantity", "mean", "90% HDI", "r_hat", "ess_bulk", "identified"):
        table.add_column(col, justify="left" if col in ("quantity", "identified") else "right")
    for name, row in summ.iterrows():
        ident = row.get("identified")
        ident_s = "" if not isinstance(ident, str) else ident
        style = {"not identified": "red", "weak": "yellow"}.get(ident_s, "")
        table.add_row(
            escape(str(name)),
            f"{row['mean']:.4g}",
            f"[{row['lo']:.4g}, {row['hi']:.4g}]",
            "" if row.get("r_hat") != row.get("r_hat") else f"{row['r_hat']:.3f}",
            "" if row.get("ess_bulk") != row.get("ess_bulk") else f"{row['ess_bulk']:.0f}",
            f"[{style}]{ident_s}[/]" if style else ident_s,
        )
    print_table(table)
    dg = post.diagnostics
    if post.method == "nuts":
        console.print(
            f"diagnostics: max R-hat {_number(dg['max_rhat'], '.4f')}, "
            f"min bulk ESS {_number(dg['min_ess_bulk'], '.0f')}, min tail ESS {_number(dg['min_ess_tail'], '.0f')}, "
            f"divergences {dg['divergences']}, min BFMI {_number(dg['min_bfmi'], '.2f')}, "
            f"tree-depth saturation {_number(dg.get('tree_depth_saturation'), '.1%')}; "
            f"wall {post.wall_time_s:.1f} s -> " + ("[green]ok[/]" if dg["ok"] else "[red]FAILED[/]")
        )
    else:
        console.print(f"[yellow]{escape(dg['note'])}[/]; wall {post.wall_time_s:.1f} s")
    for problem in dg.get("problems", []):
        err_console.print(f"[red]diagnostic problem:[/] {escape(problem)}")


def _number(value: float | None, fmt: str) -> str:
    """A diagnostic formatted, or 'n/a' where it could not be computed (R-hat of one chain)."""
    return "n/a" if value is None else format(value, fmt)


@app.command("fit")
def fit_command(
    table: Annotated[Path, typer.Argument(help="Loss table (.parquet or .csv).")],
    x: Annotated[str, typer.Option("--x", help="x metric id, named average (val/avg5) or mean(a,b,...).")],
    y: Annotated[str, typer.Option("--y", help="y metric id, named average (test/avg7) or mean(a,b,...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Posterior folder to write.")],
    factor: Annotated[
        list[str] | None, typer.Option("--factor", help="Factor of interest (repeatable).")
    ] = None,
    base: Annotated[
        list[str] | None, typer.Option("--base", help="Base level FACTOR=LEVEL (repeatable).")
    ] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="Keep rows with COLUMN=VALUE.")] = None,
    method: Annotated[
        str, typer.Option(help="nuts (exact) or approx (Laplace approximation, seconds; not calibrated).")
    ] = "nuts",
    chains: Annotated[int, typer.Option(min=1, help="NUTS chains (run in parallel).")] = 4,
    draws: Annotated[int, typer.Option(min=1, help="Posterior draws per chain.")] = 1000,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up iterations per chain.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same numbers).")] = 0,
    unit: Annotated[str, typer.Option(help="Unit of both axes: nats/token or bits/byte.")] = "nats/token",
    allow_mixed: Annotated[bool, typer.Option(help="Allow averages over different estimators.")] = False,
    max_x: Annotated[
        float | None, typer.Option(help="Drop checkpoints with x above this (early ones).")
    ] = None,
    min_fraction: Annotated[
        float | None, typer.Option(help="Drop checkpoints before this fraction of their run's training.")
    ] = None,
    early_fraction: Annotated[
        float, typer.Option(help="Down-weight checkpoints before this fraction.")
    ] = 0.0,
    early_weight: Annotated[float, typer.Option(help="Likelihood weight of those early checkpoints.")] = 1.0,
    paper_mode: Annotated[bool, typer.Option(help="Fix Ex, Ey from the paper's two-stage fit.")] = False,
    compute: Annotated[str, typer.Option(help="Joint compute-to-loss component: auto, on, off.")] = "auto",
    prior_ex: Annotated[str | None, typer.Option(help="User prior MEAN,SD (nats) on the base Ex.")] = None,
    prior_ey: Annotated[str | None, typer.Option(help="User prior MEAN,SD (nats) on the base Ey.")] = None,
    effect_prior: Annotated[
        str,
        typer.Option(help="Effect prior: normal (fixed scales) or hierarchical (scale learned per factor)."),
    ] = "normal",
    shape: Annotated[
        str,
        typer.Option(
            help="Third linear predictor: logkappa (default) or curvature ((kappa - 1) / (x_ref - Ex), the "
            "direction the data identify; with --run-offsets centred it sampled a 6,000-checkpoint table 10x "
            "faster, but with divergences on some tables: benchmarks/RESULTS.md)."
        ),
    ] = "logkappa",
    run_offsets: Annotated[
        str,
        typer.Option(
            help="Run offsets: noncentred (default; right when runs are few or short), centred (faster "
            "when there are many runs with many checkpoints each, e.g. 60 runs of 100; check the diagnostics) "
            "or split (condition means non-centred, contrasts between runs centred; what --method approx uses)."
        ),
    ] = "noncentred",
    target_accept: Annotated[
        float, typer.Option(help="NUTS target acceptance (raise to 0.99 on divergences).")
    ] = 0.95,
    mass: Annotated[
        str,
        typer.Option(
            help="NUTS mass matrix: laplace (default: NUTS in coordinates whitened by the Laplace "
            "covariance, then diagonal adaptation; passes the convergence checks far more often on "
            "paper-shaped tables, benchmarks/RESULTS.md), dense or diag (NumPyro's dense or diagonal "
            "adaptation in the model's own coordinates)."
        ),
    ] = "laplace",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing posterior folder.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Fit the hierarchical loss-to-loss model; write the posterior folder; exit 3 if diagnostics fail."""
    check_posterior_folder(output, overwrite=overwrite)
    post = fit_from_options(
        table,
        x=x,
        y=y,
        factors=factor or [],
        base=base,
        where=where,
        unit=unit,
        allow_mixed=allow_mixed,
        max_x=max_x,
        min_fraction=min_fraction,
        early_fraction=early_fraction,
        early_weight=early_weight,
        method=method,
        chains=chains,
        draws=draws,
        warmup=warmup,
        seed=seed,
        paper_mode=paper_mode,
        compute=compute,
        prior_ex=prior_ex,
        prior_ey=prior_ey,
        effect_prior=effect_prior,
        shape=shape,
        run_offsets=run_offsets,
        target_accept=target_accept,
        mass=mass,
    )
    post.save(output, overwrite=overwrite)
    if json_out:
        print_json({**posterior_report(post), "output": str(output)})
    else:
        print_posterior_summary(post)
        console.print(f"posterior written to {escape(str(output))}")
    if not post.diagnostics["ok"]:
        hint = ""
        one_chain = post.settings.get("chains", 4) < 2
        if one_chain:
            hint = "; run --chains 2 or more (the default is 4) so that R-hat can be computed"
        elif post.diagnostics.get("divergences"):
            hint = (
                "; divergences: try --target-accept 0.99, or --effect-prior hierarchical --target-accept 0.99"
            )
        elif post.diagnostics.get("max_rhat") and post.diagnostics["max_rhat"] > 1.01:
            hint = "; try more --warmup and --draws"
        if post.method == "nuts" and post.settings.get("mass") == "laplace" and not one_chain:
            # measured: on single-run conditions the whitened sampler can mix worse than dense adaptation
            hint += ("; or" if hint else "; try") + " --mass dense (it passes some tables laplace does not)"
        raise DiagnosticsError(
            "; ".join(post.diagnostics["problems"]) + f" (posterior kept in {output}){hint}"
        )
    return 0


@app.command("show")
def show_command(
    posterior: Annotated[Path, typer.Argument(help="Posterior folder written by `bayes-l2l fit`.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Print the summary of a saved posterior."""
    from bayes_l2l.infer import load

    post = load(posterior)
    if json_out:
        print_json(posterior_report(post))
    else:
        print_posterior_summary(post)
    return 0
