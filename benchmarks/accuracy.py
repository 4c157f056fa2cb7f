"""Accuracy on real tables: leave-late-out prediction of y, bayes-l2l against the point-fit baselines.

Each run's checkpoints are split by training progress: the earliest 70% (the highest x) are fitted, y of the
latest 30% is predicted from their x. Compared on the held-out checkpoints:

- bayes-l2l: one hierarchical fit of all runs of the table (library defaults, NUTS 4 x 1000), predictive
  mean and 90% predictive interval of a further checkpoint of the same run (``evidence.predict(run=...)``:
  the condition's curve + that run's posterior offset + checkpoint noise);
- the baselines of ``bayes_l2l.point_fits``, fitted per run on the same points: the free least-squares fit of
  the law, the paper's two-stage fit, a pure power law y = K x^kappa and a straight line.

Tables:
1. the paper's three Llama ablation runs (../shared/data/llm_line/latest_pm_hf.csv; C4, FineWeb-Edu, The
   Pile Deduped), y = test/avg7, x = val/avg5 (the 5 validation corpora; its SlimPajama member uses another
   estimator, allowed here as in the paper) and x = val/fineweb_edu; factor pretraining_data;
2. Gemstones (22 models on one data set): x = val/fineweb_edu, y = the mean of the hellaswag and piqa task
   losses (the tasks analysis/gemstones.py finds resolvable); no factor (one shared curve, run offsets).

Metrics per run: MAE (nats) of each method, and the coverage of bayes-l2l's 90% intervals. Whether bayes-l2l's
MAE differs from a baseline's beyond the noise of the few held-out checkpoints is measured by a paired bootstrap
of the absolute errors (``paired_difference``: per run over its held-out checkpoints; pooled over runs by
resampling whole runs where there are at least ``MIN_RUNS_FOR_RUN_BOOTSTRAP``).
Run: ``.venv/bin/python benchmarks/accuracy.py [--shared ../shared] [--out out/benchmarks/accuracy]``
Writes ``results.json`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from bayes_l2l.design import Question, build_design
from bayes_l2l.evidence import predict
from bayes_l2l.io import import_table
from bayes_l2l.model import add_model_arguments
from bayes_l2l.point_fits import baseline_points, fit_group
from bayes_l2l.robust_fit import fit_robust, sampler_from_args
from bayes_l2l.sampler_policy import Attempt
from bayes_l2l.table import LossTable

REPO = Path(__file__).resolve().parents[1]
FIT_FRACTION = 0.7
BASELINES = ("free", "two_stage", "power_law", "linear")
GEMSTONES_Y = "mean(test/hellaswag,test/piqa)"
BOOTSTRAP_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 9999
MIN_RUNS_FOR_RUN_BOOTSTRAP = 5


def _verdict(lo: float, hi: float) -> str:
    return "better" if hi < 0 else "worse" if lo > 0 else "within noise"


def _paired_percentile_ci(u: np.ndarray, v: np.ndarray, statistic: Any, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``statistic(u, v, axis)`` over paired resamples of (u, v)."""
    ci = bootstrap(
        (u, v),
        statistic,
        paired=True,
        vectorized=True,
        confidence_level=BOOTSTRAP_LEVEL,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return float(ci.low), float(ci.high)


def paired_difference(bayes_err: np.ndarray, base_err: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """MAE of bayes-l2l minus a baseline's on the same held-out checkpoints (nats), with a 95% percentile
    bootstrap interval over the checkpoints (paired). Held-out checkpoints of one run are serially
    correlated, so this interval is, if anything, too narrow: "within noise" is a conservative verdict,
    "better" / "worse" an optimistic one."""
    a, b = np.asarray(bayes_err, float), np.asarray(base_err, float)
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or np.allclose(a - b, (a - b)[0]):
        return {"diff": diff, "lo": diff, "hi": diff, "verdict": _verdict(diff, diff), "n": len(a)}
    lo, hi = _paired_percentile_ci(
        a, b, lambda u, v, axis: np.mean(u, axis=axis) - np.mean(v, axis=axis), seed
    )
    return {"diff": diff, "lo": lo, "hi": hi, "verdict": _verdict(lo, hi), "n": len(a)}


def pooled_difference(rows: list[dict[str, Any]], method: str, seed: int = 0) -> dict[str, Any] | None:
    """Pooled (checkpoint-weighted) MAE difference bayes-l2l minus ``method`` over the runs where the method
    is defined, with a 95% interval from resampling whole runs (a cluster bootstrap, which keeps each run's
    correlated checkpoints together); None with fewer than ``MIN_RUNS_FOR_RUN_BOOTSTRAP`` such runs."""
    use = [r for r in rows if r.get(f"{method}_abs_err") is not None]
    if len(use) < MIN_RUNS_FOR_RUN_BOOTSTRAP:
        return None
    dsum = np.array([np.sum(np.subtract(r["bayes_abs_err"], r[f"{method}_abs_err"])) for r in use])
    n = np.array([r["n_test"] for r in use], dtype=float)
    diff = float(dsum.sum() / n.sum())
    lo, hi = _paired_percentile_ci(
        dsum, n, lambda d, m, axis: np.sum(d, axis=axis) / np.sum(m, axis=axis), seed
    )
    return {"diff": diff, "lo": lo, "hi": hi, "verdict": _verdict(lo, hi), "runs": len(use)}


def split_runs(pts: pd.DataFrame, frac: float = FIT_FRACTION) -> pd.DataFrame:
    """Mark each checkpoint ``fit`` (the round(frac * n) with the highest x of its run) or held out."""
    pts = pts.sort_values(["run", "x"], ascending=[True, False]).copy()
    rank = pts.groupby("run").cumcount()
    n_fit = pts.groupby("run")["x"].transform(lambda s: int(round(frac * len(s))))
    pts["fit"] = rank < n_fit
    return pts


def restrict(table: LossTable, keep: pd.DataFrame) -> LossTable:
    """The table limited to the (run, checkpoint) pairs of ``keep``."""
    df = table.df.merge(keep[["run", "checkpoint"]].drop_duplicates(), on=["run", "checkpoint"])
    return LossTable.from_frame(df, source=f"{table.source} (fitted part)", warnings=list(table.warnings))


def _diagnostics(dg: dict[str, Any]) -> dict[str, Any]:
    return {k: dg.get(k) for k in ("max_rhat", "min_ess_bulk", "divergences", "ok", "problems")}


def evaluate(
    name: str,
    table: LossTable,
    question: Question,
    sampler: dict[str, Any],
    log: Any,
    min_fraction: float = 0.0,
) -> dict[str, Any]:
    """Leave-late-out of one (table, question): per run, MAE of every method and the 90% coverage.
    ``min_fraction`` > 0 leaves fitted checkpoints before that fraction of their run's training (tokens,
    else step) out of every method's fit; the held-out checkpoints do not change. A fit that fails the
    fit is the library's robust fit (``sampler``: "user" settings, "config", "retry"); every attempt is
    recorded and the kept one scored."""
    pts = baseline_points(table, question.x, question.y, unit=question.unit, allow_mixed=question.allow_mixed)
    if question.where:
        runs = table.checkpoints()
        for col, val in question.where.items():
            runs = runs[runs[col].astype(str) == str(val)]
        pts = pts[pts["run"].isin(set(runs["run"]))]
    pts = split_runs(pts)
    dropped_early = 0
    if min_fraction > 0:
        progress = pts["tokens"].where(pts["tokens"].notna(), pts["step"]).astype(float)
        frac = progress / progress.groupby(pts["run"]).transform("max")
        early = pts["fit"] & (frac < min_fraction)
        dropped_early = int(early.sum())
        pts = pts[~early]
    design = build_design(restrict(table, pts[pts["fit"]]), question)
    post = fit_robust(
        design, sampler["config"], user=sampler["user"], seed=0, retry=sampler.get("retry", True)
    )
    dg = post.diagnostics
    fit_s = post.wall_time_s
    attempts = [
        {
            "settings": Attempt(**{k: a[k] for k in Attempt.__dataclass_fields__ if k in a}).label(),
            "target_accept": a["target_accept"],
            "fit_s": a["wall_s"],
            **_diagnostics(a["diagnostics"]),
        }
        for a in post.settings["attempts"]
    ]
    log(
        f"{name}: {len(design.points)} fitted checkpoints of {design.n_runs} runs, {fit_s:.0f} s; "
        + (dg.get("attempts") or "")
        + ("" if dg["ok"] else "; " + "; ".join(dg["problems"]))
    )
    rows = []
    for run, g in pts.groupby("run", sort=True):
        train, test = g[g["fit"]], g[~g["fit"]]
        if test.empty or run not in design.runs:
            continue
        pred = predict(post, test["x"].to_numpy(float), run=str(run))
        y = test["y"].to_numpy(float)
        bayes_err = np.abs(pred["mean"].to_numpy() - y)
        row: dict[str, Any] = {
            "run": str(run),
            "n_fit": len(train),
            "n_test": len(test),
            "x_fit": [float(train["x"].min()), float(train["x"].max())],
            "x_test": [float(test["x"].min()), float(test["x"].max())],
            "bayes_mae": float(np.mean(bayes_err)),
            "bayes_abs_err": bayes_err.tolist(),
            "bayes_cover90": float(np.mean((y >= pred["lo90"].to_numpy()) & (y <= pred["hi90"].to_numpy()))),
            "bayes_width90": float(np.mean(pred["hi90"].to_numpy() - pred["lo90"].to_numpy())),
        }
        group = fit_group(train.assign(group=str(run)), str(run), BASELINES)
        for method in BASELINES:
            res = group.fits.get(method)
            err = np.abs(res.predict(test["x"].to_numpy(float)) - y) if res is not None else None
            # A fit whose E_x lies above a held-out x cannot predict it (the law is undefined there): no
            # MAE for that run; the number of such checkpoints is recorded.
            defined = err is not None and bool(np.isfinite(err).all())
            row[f"{method}_mae"] = float(np.mean(err)) if defined else None
            row[f"{method}_abs_err"] = err.tolist() if defined else None
            row[f"{method}_diff"] = paired_difference(bayes_err, err) if defined else None
            row[f"{method}_undefined"] = int((~np.isfinite(err)).sum()) if err is not None else None
        present = {m: row[f"{m}_mae"] for m in BASELINES if row[f"{m}_mae"] is not None}
        row["best_baseline"] = min(present, key=present.get) if present else None
        rows.append(row)
    return {
        "name": name,
        "question": question.to_dict(),
        "fit_s": fit_s,
        "min_fraction": min_fraction,
        "model": post.config.to_dict(),
        "dropped_early_fit_checkpoints": dropped_early,
        "diagnostics": _diagnostics(dg),
        "attempts": attempts,
        "runs": rows,
        "pooled": pooled(rows),
    }


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Held-out-checkpoint-weighted MAE of every method and the pooled 90% coverage."""
    n = np.array([r["n_test"] for r in rows], dtype=float)
    out = {"n_test": int(n.sum())}
    for key in ["bayes_mae", "bayes_cover90", *(f"{m}_mae" for m in BASELINES)]:
        vals = np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=float)
        ok = np.isfinite(vals)
        out[key] = float(np.sum(vals[ok] * n[ok]) / np.sum(n[ok])) if ok.any() else None
    for m in BASELINES:
        out[f"{m}_runs_defined"] = sum(r[f"{m}_mae"] is not None for r in rows)
    out["bayes_at_least_as_good_as_best_baseline"] = sum(
        r["best_baseline"] is None or r["bayes_mae"] <= r[f"{r['best_baseline']}_mae"] for r in rows
    )
    out["runs"] = len(rows)
    out["diff_vs"] = {m: pooled_difference(rows, m) for m in BASELINES}
    best = [r[f"{r['best_baseline']}_diff"] for r in rows if r["best_baseline"] is not None]
    out["runs_vs_best_baseline"] = {
        v: sum(d["verdict"] == v for d in best) for v in ("better", "within noise", "worse")
    }
    return out


def diff_cell(d: dict[str, Any] | None) -> str:
    """``+0.012 [-0.004, +0.030] within noise`` (nats), or a dash."""
    if d is None:
        return "—"
    return f"{d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] {d['verdict']}"


def markdown(results: list[dict[str, Any]], header: str) -> str:
    def f(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}"

    lines = [header, ""]
    for res in results:
        q = res["question"]
        dg = res["diagnostics"]
        p = res["pooled"]
        lines += [
            f"## {res['name']}",
            "",
            f"x = `{q['x']}`, y = `{q['y']}`"
            + (
                f"; fitted checkpoints before {res['min_fraction']:g} of their run's training left out of "
                f"every fit ({res['dropped_early_fit_checkpoints']})"
                if res["min_fraction"]
                else ""
            )
            + "".join(
                f"; attempt {i + 1} ({a['settings']}) failed ({'; '.join(a['problems'])})"
                for i, a in enumerate(res.get("attempts", []))
                if not a["ok"]
            )
            + f"; bayes-l2l fit {res['fit_s']:.0f} s in all"
            + ", max R-hat "
            f"{f(dg['max_rhat'])}, min bulk ESS {dg['min_ess_bulk']:.0f}, {dg['divergences']} divergences"
            + ("" if dg["ok"] else " — **diagnostics failed: " + "; ".join(dg["problems"]) + "**")
            + ".",
            "",
            "| run | fit / held out | bayes-l2l MAE | 90% PI coverage | free | two-stage | power law | linear "
            "| best baseline | bayes-l2l minus best [95% CI] |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["runs"]:
            lines.append(
                f"| {r['run']} | {r['n_fit']} / {r['n_test']} | **{f(r['bayes_mae'])}** | "
                f"{r['bayes_cover90']:.0%} | "
                + " | ".join(
                    f"undefined at {r[f'{m}_undefined']} x" if r.get(f"{m}_undefined") else f(r[f"{m}_mae"])
                    for m in BASELINES
                )
                + f" | {r['best_baseline']} | {diff_cell(r.get(f'{r["best_baseline"]}_diff'))} |"
            )
        lines += [
            f"| **pooled** | {p['n_test']} held out | **{f(p['bayes_mae'])}** | {p['bayes_cover90']:.0%} | "
            + " | ".join(
                f(p[f"{m}_mae"])
                + ("" if p[f"{m}_runs_defined"] == p["runs"] else f" ({p[f'{m}_runs_defined']} runs)")
                for m in BASELINES
            )
            + f" | bayes-l2l <= best baseline in {p['bayes_at_least_as_good_as_best_baseline']}/{p['runs']} runs |"
            + (
                " against the best: "
                + ", ".join(f"{k} {v}" for k, v in p["runs_vs_best_baseline"].items())
                + " |"
                if p.get("runs_vs_best_baseline")
                else " |"
            ),
            "",
        ]
        pooled_diffs = {m: d for m, d in p.get("diff_vs", {}).items() if d is not None}
        if pooled_diffs:
            lines += [
                "Pooled MAE of bayes-l2l minus each baseline's (runs where it is defined; 95% CI from resampling "
                "whole runs): "
                + "; ".join(f"{m} {diff_cell(d)} over {d['runs']} runs" for m, d in pooled_diffs.items())
                + ".",
                "",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "accuracy")
    ap.add_argument("--chains", type=int, default=None, help="default: the library's robust fit chooses")
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument(
        "--target-accept", type=float, default=None, help="NUTS target acceptance (default: policy)"
    )
    ap.add_argument("--no-retry", action="store_true", help="one attempt only (no retries on failure)")
    ap.add_argument("--skip-gemstones", action="store_true")
    ap.add_argument(
        "--min-fraction",
        type=float,
        default=0.0,
        help="leave fitted checkpoints before this fraction of their run's training out of every fit",
    )
    add_model_arguments(ap)
    args = ap.parse_args(argv)
    sampler = sampler_from_args(args)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {msg}", file=sys.stderr, flush=True)

    results = []
    paper = args.shared / "data" / "llm_line" / "latest_pm_hf.csv"
    if paper.exists():
        table = import_table("llm-line", [paper])
        for x in ("val/avg5", "val/fineweb_edu"):
            q = Question(
                x=x,
                y="test/avg7",
                factors=["pretraining_data"],
                where={"architecture": "Llama"},
                base={"pretraining_data": "FineWeb-Edu"},
                allow_mixed=True,
            )
            results.append(
                evaluate(
                    f"Paper table, Llama ablation runs, x = {x}",
                    table,
                    q,
                    sampler,
                    log,
                    args.min_fraction,
                )
            )
    else:
        log(f"skipped the paper's table: {paper} is absent")
    gem = [
        args.shared / "data" / "gemstones" / f
        for f in ("gemstones_val_losses_long.csv", "gemstones_task_losses_long.csv")
    ]
    if args.skip_gemstones:
        log("skipped Gemstones (--skip-gemstones)")
    elif all(p.exists() for p in gem):
        table = import_table("gemstones", gem)
        q = Question(x="val/fineweb_edu", y=GEMSTONES_Y, factors=[])
        results.append(evaluate("Gemstones, 22 models", table, q, sampler, log, args.min_fraction))
    else:
        log(f"skipped Gemstones: {', '.join(str(p) for p in gem if not p.exists())} absent")
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        "# Accuracy: leave-late-out prediction on real tables\n\n"
        f"Fit the earliest {FIT_FRACTION:.0%} of each run's checkpoints (highest x), predict y of the rest; MAE "
        f"in nats. bayes-l2l: NUTS {args.chains} x {args.draws} (+{args.warmup} warm-up), predictive mean and "
        f"90% interval of a further checkpoint of the same run. Machine: {platform.node()} "
        f"({platform.machine()}), {time.strftime('%Y-%m-%d')}; total {(time.perf_counter() - started) / 60:.1f} "
        f"min. Command: `{' '.join(sys.argv)}`."
    )
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    md = markdown(results, header)
    (args.out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
