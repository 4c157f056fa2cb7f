"""The main job end to end: data -> fit -> compare -> figures -> report, into one output folder.

Without a table of its own the demo uses the project's own measured table, ``data/mini_study.parquet``
(tiny LMs trained and evaluated here by ``analysis/mini_study``; see ``data/README.md``), with its own
question (:data:`MINI_STUDY_QUESTION`). ``--simulated`` uses a SIMULATED table instead
(``simulate_table`` with a fixed seed and a spec that mirrors the reference paper's design: pretraining
data shifts the curve, architecture a little, model size not at all), labelled as simulated on the
console, in the report title and in evidence.json. The run is resumable: a posterior already in ``out/posterior`` is reused when it answers
the same question on the same data with the same settings; nothing outside ``out/`` is written.

Files: ``report.html``, ``evidence.json``, ``figures/*.png|svg``, ``posterior/`` (with ``shared_<F>/``
caches of the one-shared-curve fits), and for the simulated default ``simulated_table.parquet`` and
``simulated_truth.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bayes_l2l.errors import UserInputError
from bayes_l2l.simulate import SimulationSpec, simulate_table
from bayes_l2l.table import LossTable

DEMO_SEED = 20250601
"""Seed of the simulated default table (fixed: the same table on every machine)."""
DEMO_MIN_FRACTION = 0.005
"""The simulated runs deviate from the law at their first checkpoints (as real runs do); the demo drops
checkpoints before 0.5% of a run's training (the first two of each run), and says so in the report."""
DEMO_X = "val/simulated"
DEMO_Y = "test/simulated"

MINI_STUDY_MIN_FRACTION = 0.05
"""Checkpoints before 5% of a run's training (steps 20 and 40 of 1,000) are dropped: there the models
are still leaving the uniform-prediction regime and sit off the law (analysis/mini_study/findings.md)."""
MINI_STUDY = Path(__file__).resolve().parents[2] / "data" / "mini_study.parquet"
"""The bundled measured table (in the repository's data/ folder, beside src/)."""
MINI_STUDY_QUESTION: dict[str, Any] = {
    "x": "val/c4",
    "y": "test/avg7",
    "factors": ["pretraining_data", "tokenizer", "architecture", "size", "learning_rate"],
    "min_fraction": MINI_STUDY_MIN_FRACTION,
}
"""The default question on the mini study: loss on the base recipe's own data (C4, held out) -> mean
loss on the seven cloze tasks, every intervention of the design as a factor (seed is not a factor: the
two base seeds are two runs of one condition)."""


def demo_spec(quick: bool = False) -> SimulationSpec:
    """The simulated default: paper-like effects (data large, architecture small, size none), in nats.

    Full: 6 conditions (3 data, 2 architectures, 3 sizes, one factor changed at a time) x 2 seeds x 12
    checkpoints = 144 checkpoints, 120 after the early filter. Quick: 4 conditions x 1 run x 8 checkpoints.
    """
    factors = {
        "pretraining_data": ["FineWeb-Edu", "C4", "The Pile"],
        "architecture": ["Llama", "GPT"],
        "size": ["410M", "160M", "1B"],
    }
    effects: dict[str, dict[str, dict[str, float]]] = {
        "pretraining_data": {"C4": {"E_y": 0.2, "log_K": 0.1}, "The Pile": {"E_x": 0.1, "E_y": 0.15}},
        "architecture": {"GPT": {"E_y": 0.008}},
    }
    runs, ckpts = 2, 12
    if quick:
        factors = {
            "pretraining_data": ["FineWeb-Edu", "C4"],
            "architecture": ["Llama", "GPT"],
            "size": ["410M", "160M"],
        }
        effects = {
            "pretraining_data": {"C4": effects["pretraining_data"]["C4"]},
            "architecture": effects["architecture"],
        }
        runs, ckpts = 1, 8
    return SimulationSpec.from_dict(
        {
            "factors": factors,
            "effects": effects,
            "runs_per_condition": runs,
            "checkpoints_per_run": ckpts,
            "x_metric": DEMO_X,
            "y_metric": DEMO_Y,
        },
        source="demo spec",
    )


def demo_options(quick: bool = False) -> Any:
    """The demo's fit options: the library's robust defaults (no sampler settings: the policy chooses and
    retries); quick: a smoke run of 2 chains x 150 draws without retries, whose diagnostics may well fail."""
    from bayes_l2l.robust_fit import FitOptions

    if quick:
        return FitOptions(chains=2, draws=150, warmup=150, retry=False)
    return FitOptions()


def _default_axes(table: LossTable, source: Path) -> tuple[str, str]:
    val = [m for m in table.metrics if m.startswith("val/")]
    test = [m for m in table.metrics if m.startswith("test/")]
    if len(val) == 1 and len(test) == 1:
        return val[0], test[0]
    raise UserInputError(
        f"{source}: pass --x and --y (the table has metrics {', '.join(table.metrics)}; "
        "named averages such as val/avg5 and test/avg7 work too)"
    )


def _default_factors(table: LossTable) -> list[str]:
    out = []
    for f in table.factors:
        if f == "seed":
            continue
        if table.df[f].dropna().astype(str).nunique() > 1:
            out.append(f)
    return out


def run_demo(
    out: str | Path = "out",
    *,
    table: str | Path | None = None,
    x: str | None = None,
    y: str | None = None,
    factors: list[str] | None = None,
    where: dict[str, str] | None = None,
    quick: bool = False,
    rope: float | None = None,
    simulated: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out``; ``progress`` receives one line per step and sampler attempt. Returns
    {"evidence": the evidence.json content, "problems": diagnostic problems (empty when the sampler
    diagnostics passed), "warnings", "files": paths written, "written": the main outputs, "posterior",
    "compares": contrasts per factor}."""
    import matplotlib.pyplot as plt

    from bayes_l2l import plots
    from bayes_l2l.comparisons import (
        check_rope,
        compare_factors,
        evidence_payload,
        fit_problems,
        fit_question,
    )
    from bayes_l2l.design import Question, build_design
    from bayes_l2l.jsonable import to_json
    from bayes_l2l.report import build_report

    say = progress or (lambda _msg: None)

    def step(i: int, text: str) -> None:
        say(f"[{i}/5] {text}")

    if simulated and table is not None:
        raise UserInputError("--simulated and --table exclude each other")
    if table is None and (x or y or factors or where):
        raise UserInputError(
            "--x, --y, --factor and --where apply to --table; the default tables have their own question "
            "(pass --table data/mini_study.parquet to ask the mini study another)"
        )

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: is a file; the demo needs a folder")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    files: list[Path] = []
    truth = None

    t0 = time.perf_counter()
    if table is None and not simulated:
        if not MINI_STUDY.is_file():
            raise UserInputError(
                f"the bundled table {MINI_STUDY} is missing (it ships with the repository, not with a "
                "wheel); pass --table YOUR_TABLE or --simulated"
            )
        table = MINI_STUDY
        x, y = MINI_STUDY_QUESTION["x"], MINI_STUDY_QUESTION["y"]
        factors = list(MINI_STUDY_QUESTION["factors"])
        min_fraction: float | None = MINI_STUDY_QUESTION["min_fraction"]
        data_label = (
            f"measured: the project's mini study ({table.name}; tiny LMs trained and evaluated by "
            "analysis/mini_study, see data/README.md)"
        )
        step(1, f"data: {table} (the project's own measured mini study)")
        loss_table = LossTable.read(table)
    elif table is None:
        spec = demo_spec(quick)
        step(1, f"data: SIMULATED table (simulate_table, seed {DEMO_SEED}{', quick' if quick else ''})")
        loss_table, truth = simulate_table(spec, DEMO_SEED)
        files.append(loss_table.save(out / "simulated_table.parquet", overwrite=True))
        files.append(truth.save(out / "simulated_truth.json", overwrite=True))
        x, y, factors = DEMO_X, DEMO_Y, list(spec.factors)
        min_fraction = DEMO_MIN_FRACTION
        data_label = (
            f"simulated (bayes_l2l.simulate.simulate_table, seed {DEMO_SEED}, {'quick' if quick else 'full'} "
            "demo spec in simulated_truth.json): NOT a measurement of real models"
        )
        say("SIMULATED DATA: planted effects, not real models")
    else:
        table = Path(table)
        step(1, f"data: {table}")
        loss_table = LossTable.read(table)
        if where:
            loss_table = loss_table.where(**where)
        if not (x and y):
            x, y = _default_axes(loss_table, table)
        factors = list(dict.fromkeys(factors or _default_factors(loss_table)))
        data_label = f"table {table}"
        min_fraction = None
    question = Question(x=x, y=y, factors=factors, where=dict(where or {}), min_fraction=min_fraction)
    design = build_design(loss_table, question)
    say(
        f"  {len(design.points)} checkpoints, {design.n_runs} runs, {design.n_conditions} conditions; "
        f"factors: {', '.join(design.factor_levels) or 'none'}"
    )
    timings["data_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    options = demo_options(quick)
    folder = out / "posterior"
    step(2, f"fit: NUTS on {design.n_conditions} conditions (sampler settings chosen from the table)")
    post, reused = fit_question(design, options, output=folder, overwrite=True, progress=progress)
    if not reused:
        say(f"  {post.diagnostics.get('attempts', '')}")
    timings["fit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    compare = [f for f in design.factor_levels if len(design.factor_levels[f]) > 1]
    step(
        3,
        f"compare: {', '.join(compare) or 'no factor with two levels'}"
        + (" (no LOO: --quick)" if quick else ""),
    )
    rope = check_rope(rope, post.design.question.y_unit)
    compares, shared_info = (
        compare_factors(post, compare, rope=rope, loo=not quick, cache=folder) if compare else ({}, {})
    )
    timings["compare_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step(4, f"figures: {out / 'figures'}")
    figs = plots.make_figures(post, compares, rope)
    try:
        files += plots.write_figures(figs, out / "figures", overwrite=True)
        step(5, f"report: {out / 'report.html'}")
        truth_gaps = truth.gap_summaries() if truth is not None else None
        notes = [] if truth is not None else [f"Data: {data_label}."]
        if quick:
            notes.append("--quick: short chains and no leave-one-run-out comparison; a smoke run only.")
        report = build_report(
            post,
            compares,
            out / "report.html",
            rope=rope,
            simulated=True if truth is not None else None,
            truth=truth_gaps,
            notes=notes,
            overwrite=True,
            figures=figs,
        )
    finally:
        for fig in figs.values():
            plt.close(fig)
    files.append(report)
    timings["figures_report_s"] = time.perf_counter() - t0

    problems, warnings = fit_problems(post, shared_info)
    ok = not problems
    evidence = {
        "data": data_label,
        **evidence_payload(post, compares, rope, shared_info),
        "loo": "skipped (--quick)" if quick else "leave-one-run-out vs one shared curve per factor",
        "settings": {k: v for k, v in post.settings.items() if k != "requested"},
        "timings_s": timings,
        "diagnostics_ok": ok,
        "problems": problems,
    }
    if truth_gaps is not None:
        evidence["truth"] = json.loads(truth_gaps.to_json(orient="records"))
    (out / "evidence.json").write_text(to_json(evidence))
    files.append(out / "evidence.json")
    written = [str(report), str(out / "evidence.json"), f"{out / 'figures'}/"]
    return {
        "evidence": evidence,
        "problems": problems,
        "warnings": warnings,
        "files": [str(p) for p in files],
        "written": written,
        "posterior": post,
        "compares": compares,
        "rope": rope,
    }
