"""A survey: one factor's evidence over every loss pair of a table (issue 26).

For each (x, y) pair, the question "does changing FACTOR shift the curve of y against x?" is fitted with the
robust defaults into its own posterior folder under the survey's folder, then compared (curve gaps,
decisions, common support, confounders; no out-of-sample refits: the survey reads gaps). A second call
refits nothing whose folder holds the same fit (``bl.fit``'s reuse), so a killed survey loses at most the
pairs in flight. Pairs run in parallel worker processes with ``jobs > 1``.

Default pairs: every validation metric as x; as y every other validation metric, every task, and the named
averages the table can form (``test/avg7`` ...). Each axis keeps the unit the table stores it in.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l.cluster import SURVEY_JOB, ClusterOptions, group_work, make_executor
from bayes_l2l.errors import UserInputError
from bayes_l2l.table import NAMED_AVERAGES, LossTable

SURVEY_FILE = "survey.json"
"""The survey's JSON (every pair, its contrasts and diagnostics) in the survey folder."""


@dataclass
class PairResult:
    """One (x, y) pair of a survey: its folder, status and contrasts (``evidence.ContrastResult.to_dict``)."""

    x: str
    y: str
    folder: str
    status: str
    """"ok" (diagnostics passed), "in doubt" (the sampler failed its diagnostics: decisions withheld), or
    "error" (the pair could not be fitted: ``error`` says why)."""
    contrasts: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    x_unit: str | None = None
    y_unit: str | None = None
    rope: float | None = None
    reused: bool = False
    wall_s: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_pairs(table: LossTable, x: Sequence[str] = (), y: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The survey's (x, y) pairs: ``x`` (default: every validation metric) against ``y`` (default: every
    other validation metric, every task, and the named averages whose components are all in the table)."""
    metrics = table.metrics
    present = set(metrics)
    for spec in (*x, *y):
        table.metric_units(spec)  # raises naming the metric if it is absent
    xs = list(x) or [m for m in metrics if m.startswith("val/")]
    averages = [a for a, parts in NAMED_AVERAGES.items() if set(parts) <= present]
    ys = list(y) or [m for m in metrics if m.startswith(("val/", "test/"))] + averages
    pairs = [(a, b) for a in xs for b in ys if a != b and not _contains(b, a)]
    if not pairs:
        raise UserInputError(
            f"{table.source}: no (x, y) pair to survey; metrics are: {', '.join(metrics)}. Give --x and --y"
        )
    return pairs


def _contains(average: str, metric: str) -> bool:
    """True where ``average`` is a named average that includes ``metric`` (y would contain x)."""
    return metric in NAMED_AVERAGES.get(average, ())


def pair_folder(root: Path, x: str, y: str) -> Path:
    """The posterior folder of one pair: ``root/<y>_vs_<x>`` with path-safe names."""
    return Path(root) / re.sub(r"[^A-Za-z0-9=+._-]+", "-", f"{y}_vs_{x}")


def run_pair(
    table: LossTable | str | Path,
    x: str,
    y: str,
    factor: str,
    folder: str | Path,
    where: dict[str, str] | None,
    options: dict[str, Any],
) -> PairResult:
    """Fit (or reuse) and compare one pair; errors of the input become a PairResult with status "error"."""
    from bayes_l2l import api

    t0 = time.perf_counter()
    folder = Path(folder)
    try:
        marker = folder / "fit.json"
        before = marker.stat().st_mtime_ns if marker.exists() else None
        fit = api.fit(table, x, y, factor, where=where, output=folder, overwrite=True, **options)
        ev = fit.compare(factor, loo=False)
    except UserInputError as exc:
        return PairResult(x, y, str(folder), "error", wall_s=time.perf_counter() - t0, error=str(exc))
    payload = ev.to_dict()
    diagnostics = payload["diagnostics"]
    heavy = heavy_tailed(payload["contrasts"])
    if heavy:
        diagnostics = {**diagnostics, "ok": False, "problems": [*(diagnostics.get("problems") or []), heavy]}
    return PairResult(
        x=x,
        y=y,
        folder=str(folder),
        status="ok" if diagnostics.get("ok") else "in doubt",
        contrasts=payload["contrasts"],
        diagnostics=diagnostics,
        x_unit=payload["x_unit"],
        y_unit=payload["y_unit"],
        rope=payload["rope"],
        reused=before is not None and marker.stat().st_mtime_ns == before,
        wall_s=time.perf_counter() - t0,
    )


def heavy_tailed(contrasts: Sequence[dict[str, Any]]) -> str | None:
    """A problem where a contrast's mean gap lies outside its own 90% HDI: a few extreme draws dominate
    the mean (seen with the approximate path), so neither the mean nor the decision can be read."""
    bad = [
        c["level"]
        for c in contrasts
        if c["gap_mean"] == c["gap_mean"]
        and c["gap_hdi90"][0] == c["gap_hdi90"][0]
        and not c["gap_hdi90"][0] <= c["gap_mean"] <= c["gap_hdi90"][1]
    ]
    if not bad:
        return None
    return f"mean gap outside its 90% HDI for {', '.join(bad)}: heavy-tailed draws; refit with --method nuts"


def run_survey(
    table: LossTable | str | Path,
    factor: str,
    output: str | Path,
    *,
    x: Sequence[str] = (),
    y: Sequence[str] = (),
    where: dict[str, str] | None = None,
    jobs: int = 1,
    executor: str = "inline",
    cluster: ClusterOptions | None = None,
    wait: bool = True,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Survey ``factor`` over every pair (:func:`default_pairs`) into ``output``; returns the survey JSON
    (also written to ``output/survey.json``, the grid figure to ``output/grid.png``, the report to
    ``output/report.html``): {factor, pairs: [...], ranking, wall_s}.

    ``executor``: "inline" fits on this machine in ``jobs`` worker processes; "slurm" submits a job array
    through submitit (``cluster``: partition, time, memory...; default :data:`bayes_l2l.cluster.SURVEY_JOB`,
    ``checkpoints_per_job`` pairs per array element); "local" runs that same array with submitit's local
    executor (``jobs`` elements at once). With ``wait=False`` the jobs are submitted and
    {factor, job_ids, n_pairs, log_dir} returned; the same call with ``executor="inline"`` after they finish
    collects the results (every pair is reused)."""
    from bayes_l2l.api import read_table

    t0 = time.perf_counter()
    loss_table = table if isinstance(table, LossTable) else read_table(table)
    if factor not in loss_table.df.columns:
        raise UserInputError(
            f"{loss_table.source}: --factor {factor} is not a column; factors are: {', '.join(loss_table.factors)}"
        )
    if jobs < 1:
        raise UserInputError(f"--jobs {jobs}: give at least 1 process")
    if executor not in EXECUTORS:
        raise UserInputError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    root = Path(output)
    if root.exists() and not root.is_dir():
        raise UserInputError(f"-o {root}: is a file; the survey writes a folder")
    from bayes_l2l.output_paths import check_writable

    check_writable(root / SURVEY_FILE, "-o")
    root.mkdir(parents=True, exist_ok=True)
    pairs = default_pairs(loss_table, x, y)
    say = progress or (lambda _msg: None)
    args = [(x_, y_, factor, pair_folder(root, x_, y_), dict(where or {}), options) for x_, y_ in pairs]
    if executor == "inline":
        say(f"survey of {factor}: {len(pairs)} pairs into {root} ({jobs} process(es))")
        results = _run_inline(loss_table, args, jobs, say)
    else:
        opts = cluster or SURVEY_JOB
        if executor == "local" and opts.array_parallelism is None:
            opts = opts.but(array_parallelism=jobs)  # submitit's local executor: jobs elements at once
        if executor == "local":  # its elements hold many pairs each: the time limit is per pair
            per_element = -(-len(args) // max(1, opts.array_parallelism or 1))
            opts = opts.but(timeout_min=opts.timeout_min * per_element)
        results, job_ids = _run_array(loss_table, args, executor, opts, root / JOBS_FOLDER, wait, say)
        if not wait:
            return {
                "factor": factor,
                "n_pairs": len(pairs),
                "job_ids": job_ids,
                "log_dir": str(root / JOBS_FOLDER),
            }
    order = {p: i for i, p in enumerate(pairs)}
    results.sort(key=lambda r: order[(r.x, r.y)])
    out = {
        "factor": factor,
        "where": dict(where or {}),
        "executor": executor,
        "fit_options": dict(options),
        "n_pairs": len(results),
        "pairs": [r.to_dict() for r in results],
        "ranking": ranking(results).to_dict(orient="records"),
        "wall_s": time.perf_counter() - t0,
    }
    (root / SURVEY_FILE).write_text(json.dumps(out, indent=1, default=_json_default))
    write_outputs(out, root)
    return out


def _run_inline(
    table: LossTable, args: list[tuple[Any, ...]], jobs: int, say: Callable[[str], None]
) -> list[PairResult]:
    """Every pair in this process (``jobs == 1``) or in ``jobs`` worker processes."""
    results: list[PairResult] = []
    if jobs == 1:
        for i, a in enumerate(args, 1):
            results.append(run_pair(table, *a))
            say(_progress_line(i, len(args), results[-1]))
        return results
    # spawned, not forked: a forked JAX process inherits its threads and the compilation cache's file lock
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_pair, table, *a) for a in args]
        for i, fut in enumerate(as_completed(futures), 1):
            results.append(fut.result())
            say(_progress_line(i, len(args), results[-1]))
    return results


def run_pairs(table: LossTable, args: list[tuple[Any, ...]]) -> list[PairResult]:
    """What one array element runs: its pairs, one after the other (module level, so submitit pickles it
    by reference)."""
    return [run_pair(table, *a) for a in args]


def _run_array(
    table: LossTable,
    args: list[tuple[Any, ...]],
    executor: str,
    opts: ClusterOptions,
    log_dir: Path,
    wait: bool,
    say: Callable[[str], None],
) -> tuple[list[PairResult], list[str]]:
    """The pairs as a submitit job array; with ``wait``, block and gather every element's results (a
    crashed element's pairs become "error" pairs naming the job)."""
    groups = group_work(args, executor, opts)
    ex = make_executor(executor, log_dir, opts)
    jobs = ex.map_array(run_pairs, [table] * len(groups), groups)
    ids = [str(j.job_id) for j in jobs]
    results: list[PairResult] = []
    if not wait:
        return results, ids
    say(f"submitted {len(jobs)} {executor} job(s) for {len(args)} pairs; logs in {log_dir}")
    for job, group in zip(jobs, groups, strict=True):
        try:
            part = job.result()
        except Exception as exc:  # noqa: BLE001 - a crashed element: its unfinished pairs are shown as errors
            reason = str(exc).strip().splitlines()[-1][:500] if str(exc).strip() else type(exc).__name__
            part = [
                run_pair(table, *a)  # fitted before the element died: reused from its folder
                if (Path(a[3]) / "fit.json").exists()
                else PairResult(a[0], a[1], str(a[3]), "error", error=f"job {job.job_id} failed: {reason}")
                for a in group
            ]
        for r in part:
            results.append(r)
            say(_progress_line(len(results), len(args), r))
    return results, ids


EXECUTORS = ("inline", "local", "slurm")
"""Where a survey's pairs run: this machine's processes, submitit's local executor, a SLURM job array."""
JOBS_FOLDER = "_jobs"
"""submitit's logs and pickles, inside the survey folder."""
GRID_FILE = "grid.png"
"""The grid figure of a survey, beside its JSON."""
REPORT_FILE = "report.html"
"""The survey's HTML report (ranking, grid, every pair, caveats)."""


def write_outputs(survey: dict[str, Any], root: Path) -> list[Path]:
    """Draw the grid (:func:`bayes_l2l.survey_plots.plot_survey_grid`, PNG at 150 dpi) and write the HTML
    report into ``root``."""
    import matplotlib.pyplot as plt

    from bayes_l2l.survey_plots import plot_survey_grid
    from bayes_l2l.survey_report import build_survey_report

    fig = plot_survey_grid(survey)
    try:
        fig.savefig(root / GRID_FILE, dpi=150)
        build_survey_report(survey, root / REPORT_FILE, fig)
    finally:
        plt.close(fig)
    return [root / GRID_FILE, root / REPORT_FILE]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _progress_line(i: int, n: int, r: PairResult) -> str:
    status = "reused" if r.reused else f"{r.wall_s:.0f} s"
    decisions = ", ".join(f"{c['level']}: {c['decision']}" for c in r.contrasts) or (r.error or r.status)
    return f"[{i}/{n}] {r.y} vs {r.x} ({status}, {r.status}): {decisions}"


def ranking(results: Sequence[PairResult]) -> pd.DataFrame:
    """Per level of the factor across pairs: pairs compared, the share decided "shift" among the pairs
    whose decision stands (diagnostics passed, enough common support), the median mean gap and the 5-95%
    range of the pairs' mean gaps (each in its pair's y unit), most-shifting level first. A pair in doubt
    (failed diagnostics, heavy-tailed draws) counts as compared, not as decided."""
    rows = []
    for r in results:
        for c in r.contrasts:
            rows.append(
                {
                    "level": c["level"],
                    "decision": c["decision"] if r.status == "ok" else "in doubt (sampler)",
                    "gap": c["gap_mean"],
                    "unit": r.y_unit,
                }
            )
    if not rows:
        return pd.DataFrame(columns=["level", "pairs", "decided", "share_shift", "median_gap", "lo", "hi"])
    df = pd.DataFrame(rows)
    out = []
    for level, g in df.groupby("level", sort=False):
        decided = g[g["decision"].isin(["shift", "no practical shift", "undecided"])]
        gaps = decided["gap"].astype(float).dropna()
        out.append(
            {
                "level": level,
                "pairs": int(len(g)),
                "decided": int(len(decided)),
                "share_shift": float((decided["decision"] == "shift").mean())
                if len(decided)
                else float("nan"),
                "median_gap": float(gaps.median()) if len(gaps) else float("nan"),
                "lo": float(gaps.quantile(0.05)) if len(gaps) else float("nan"),
                "hi": float(gaps.quantile(0.95)) if len(gaps) else float("nan"),
                "units": "+".join(sorted(set(g["unit"].dropna().astype(str)))),
            }
        )
    return pd.DataFrame(out).sort_values(
        ["share_shift", "median_gap"], ascending=False, key=lambda s: s.abs()
    )


def read_survey(folder: str | Path) -> dict[str, Any]:
    """The survey JSON written by :func:`run_survey`."""
    path = Path(folder) / SURVEY_FILE
    if not path.exists():
        raise UserInputError(
            f"{folder}: no {SURVEY_FILE}; run `bayes-l2l survey TABLE --factor F -o {folder}`"
        )
    return json.loads(path.read_text())


def survey_of(folder: str | Path | None) -> dict[str, Any] | None:
    """The survey a posterior folder belongs to (its parent holds a survey.json listing it), else None."""
    if folder is None:
        return None
    folder = Path(folder)
    path = folder.parent / SURVEY_FILE
    if not path.exists():
        return None
    try:
        survey = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = {Path(p.get("folder", "")).name for p in survey.get("pairs", [])}
    return survey if folder.name in names else None
