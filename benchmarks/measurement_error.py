"""Measurement error on both axes (issue 27): calibration with planted x and y noise, and the cost at 6,000
checkpoints, each with the error model (``measurement_error='on'``) and without (``'off'``) on the same tables.

Calibration (``--seeds N``): each seed simulates a table (bayes_l2l.simulate) with two two-level factors,
``pretraining_data`` web -> code with a planted E_y shift of ``--gap`` nats and ``architecture`` llama ->
gptneox with none (the null), 2 runs per condition at 2 sizes, ``--checkpoints`` checkpoints per run, the
simulator's run offsets (sd 0.02) and a small residual (sd ``--residual``). Then measurement noise at the
mini study's levels is added to the observed x and y: per checkpoint a standard error drawn uniformly in
[0.5, 1.5] x ``--se-x`` (x) and x ``--se-y`` (y), split into a part shared by every checkpoint of the metric
(the same documents: one draw per metric, share ``--shared`` of the variance) and an independent part. The
table states ``stderr`` (the total) and ``stderr_independent`` (the independent part), as the evaluator
writes them. The truth is the noise-free curve: the 90% HDI of each contrast's mean gap should contain the
true gap 90% of the time, and the null factor should be called "shift" rarely.

Speed (``--speed``): ``benchmarks/speed.py``'s paper-scale table, 60 runs x 100 checkpoints (6,000), with
measurement noise and stderr, fitted at the robust defaults with and without the error model, each compiled
from scratch, in this one process.

Side by side on a real table (``--table T --x X --y Y --factor F [--where C=V]``): the decisions of the fit with
the error model forced on (``on``), as ``auto`` chooses, and without (``off``), from one process.

Run: ``.venv/bin/python benchmarks/measurement_error.py --seeds 30 --shared 0.8`` (resumable: one record per
seed in --out), ``--speed``, and e.g. ``--table data/mini_study.parquet --x val/c4 --y val/wiki --factor
pretraining_data``. Writes ``summary.json`` and ``summary.md`` to ``--out``.
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

from bayes_l2l.design import Question, build_design
from bayes_l2l.evidence import DEFAULT_ROPE, compare_factor
from bayes_l2l.robust_fit import FitOptions, fit_design_with
from bayes_l2l.simulate import SimulationSpec, simulate_table
from bayes_l2l.table import LossTable

REPO = Path(__file__).resolve().parents[1]
MODES = ("off", "on")


def scenario(gap: float, checkpoints: int, residual: float, runs: int = 2) -> SimulationSpec:
    return SimulationSpec(
        factors={"pretraining_data": ["web", "code"], "architecture": ["llama", "gptneox"]},
        effects={"pretraining_data": {"code": {"E_y": gap}}},
        runs_per_condition=runs,
        checkpoints_per_run=checkpoints,
        sizes=[160e6, 410e6],
        x_noise_sd=0.0,
        noise_sd=residual,
    )


def add_measurement_noise(
    table: LossTable,
    spec: SimulationSpec,
    seed: int,
    se_x: float,
    se_y: float,
    shared: float,
    noisy: tuple[str, str, float] | None = None,
) -> LossTable:
    """The table with its x and y replaced by noisy measurements, and their stderr / stderr_independent.
    ``noisy`` (factor, level, times): that level's checkpoints are measured on fewer documents, their
    standard errors ``times`` as large (a table assembled from evaluations of different sizes)."""
    rng = np.random.default_rng(10_000 + seed)
    df = table.df.copy()
    df["stderr"] = np.nan
    df["stderr_independent"] = np.nan
    for metric, se in ((spec.x_metric, se_x), (spec.y_metric, se_y)):
        rows = df["metric"] == metric
        n = int(rows.sum())
        s = se * rng.uniform(0.5, 1.5, n)
        if noisy is not None:
            s = s * np.where(df.loc[rows, noisy[0]].astype(str).to_numpy() == noisy[1], noisy[2], 1.0)
        z_shared = rng.normal()  # one draw of documents for every checkpoint of this metric
        noise = s * (np.sqrt(shared) * z_shared + np.sqrt(1 - shared) * rng.normal(size=n))
        df.loc[rows, "value"] = df.loc[rows, "value"].to_numpy() + noise
        df.loc[rows, "stderr"] = s
        df.loc[rows, "stderr_independent"] = s * np.sqrt(1 - shared)
    return LossTable.from_frame(df, f"simulated seed {seed} with measurement noise")


def noisy_level(args: argparse.Namespace) -> tuple[str, str, float] | None:
    """--noisy-level F=L with --noisy-times M, or None."""
    if not args.noisy_level:
        return None
    factor, level = args.noisy_level.split("=", 1)
    return factor, level, args.noisy_times


def one_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    spec = scenario(args.gap, args.checkpoints, args.residual)
    clean, truth = simulate_table(spec, seed)
    table = add_measurement_noise(clean, spec, seed, args.se_x, args.se_y, args.shared, noisy_level(args))
    rec: dict[str, Any] = {"seed": seed, "modes": {}}
    for mode in MODES:
        design = build_design(table, Question(x=spec.x_metric, y=spec.y_metric, factors=list(spec.factors)))
        post = fit_design_with(design, FitOptions(seed=seed, measurement_error=mode))
        dg = post.diagnostics
        out: dict[str, Any] = {
            "wall_s": post.wall_time_s,
            "ok": bool(dg["ok"]),
            "max_rhat": dg.get("max_rhat"),
            "divergences": dg.get("divergences"),
            "measurement_error": post.settings.get("measurement_error"),
            "sigma_mean": float(np.mean(post.draws("sigma"))),
            "contrasts": {},
        }
        for factor in spec.factors:
            (c,) = compare_factor(post, factor, rope=args.rope)
            t = truth.true_gap_summary(factor, c.level)
            out["contrasts"][factor] = {
                "level": c.level,
                "decision": c.decision_if_converged or c.decision,
                "true_mean_gap": t["mean_gap"],
                "gap_mean": c.gap_mean,
                "gap_hdi90": c.gap_hdi90,
                "covered": bool(c.gap_hdi90[0] <= t["mean_gap"] <= c.gap_hdi90[1]),
                "hdi_width": float(c.gap_hdi90[1] - c.gap_hdi90[0]),
            }
        rec["modes"][mode] = out
    return rec


def binom_ci(k: int, n: int) -> list[float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95)
    return [float(ci.low), float(ci.high)]


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": len(records), "modes": {}}
    for mode in MODES:
        m: dict[str, Any] = {
            "fits_ok": sum(r["modes"][mode]["ok"] for r in records),
            "median_wall_s": float(np.median([r["modes"][mode]["wall_s"] for r in records])),
            "used": sum(bool((r["modes"][mode]["measurement_error"] or {}).get("used")) for r in records),
            "factors": {},
        }
        for factor in ("pretraining_data", "architecture"):
            cs = [r["modes"][mode]["contrasts"][factor] for r in records]
            cov = sum(c["covered"] for c in cs)
            shift = sum(c["decision"] == "shift" for c in cs)
            m["factors"][factor] = {
                "true_mean_gap": float(np.mean([c["true_mean_gap"] for c in cs])),
                "coverage": cov / len(cs),
                "coverage_ci95": binom_ci(cov, len(cs)),
                "shift_rate": shift / len(cs),
                "shift_rate_ci95": binom_ci(shift, len(cs)),
                "median_hdi_width": float(np.median([c["hdi_width"] for c in cs])),
                "mean_abs_error": float(np.mean([abs(c["gap_mean"] - c["true_mean_gap"]) for c in cs])),
            }
        out["modes"][mode] = m
    return out


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """The robust-default fit with and without the error model on the 6,000-checkpoint speed table.

    The table is ``benchmarks/speed.py``'s paper-scale design (60 runs x 100 checkpoints, six factors; the
    robustness suite's ``speed_6000`` question) with measurement noise and its stderr added. Each mode fits
    with ``FitOptions`` at their defaults (retries included) from an empty compile cache, in this process.
    """
    import tempfile

    from speed import paper_scale_spec

    from bayes_l2l.compile_cache import use_cache_dir

    spec = paper_scale_spec(100)
    clean, _ = simulate_table(spec, 0)
    table = add_measurement_noise(clean, spec, 0, args.se_x, args.se_y, args.shared)
    design = build_design(table, Question(x=spec.x_metric, y=spec.y_metric, factors=list(spec.factors)))
    out: dict[str, Any] = {"points": len(design.points), "runs": design.n_runs, "modes": {}}
    users_cache = None
    for mode in args.speed_modes:
        before = use_cache_dir(Path(tempfile.mkdtemp(prefix="me_speed_")))  # empty: compiles from scratch
        users_cache = users_cache or before
        t0 = time.perf_counter()
        post = fit_design_with(design, FitOptions(seed=args.speed_seed, measurement_error=mode))
        wall = time.perf_counter() - t0
        dg = post.diagnostics
        out["modes"][mode] = {
            "wall_s": wall,
            "sampler_wall_s": post.wall_time_s,
            "ok": bool(dg["ok"]),
            "min_ess_bulk": dg.get("min_ess_bulk"),
            "max_rhat": dg.get("max_rhat"),
            "divergences": dg.get("divergences"),
            "attempts": len(post.settings.get("attempts", [])) or None,
            "used": bool(post.settings["measurement_error"]["used"]),
            "reason": post.settings["measurement_error"].get("reason"),
        }
        print(f"speed {mode}: {wall:.1f} s, ok={dg['ok']}", file=sys.stderr, flush=True)
    use_cache_dir(users_cache)
    modes = out["modes"]
    if "on" in modes and "off" in modes:
        out["ratio_on_over_off"] = modes["on"]["wall_s"] / modes["off"]["wall_s"]
    return out


def side_by_side(args: argparse.Namespace) -> dict[str, Any]:
    """Decisions on a real table with the error model off, as auto chooses, and on."""
    from bayes_l2l import api

    where = dict(w.split("=", 1) for w in args.where or [])
    out: dict[str, Any] = {
        "table": str(args.table),
        "x": args.x,
        "y": args.y,
        "factor": args.factor,
        "where": where,
        "modes": {},
    }
    for mode in ("off", "auto", "on"):
        fit = api.fit(str(args.table), args.x, args.y, args.factor, where=where, measurement_error=mode)
        ev = fit.compare(args.factor, loo=False)
        me = fit.posterior.settings["measurement_error"]
        out["modes"][mode] = {
            "used": me["used"],
            "reason": me["reason"],
            "ok": bool(fit.diagnostics["ok"]),
            "sigma": float(np.median(fit.posterior.draws("sigma"))),
            "contrasts": [
                {"level": c.level, "gap_mean": c.gap_mean, "gap_hdi90": c.gap_hdi90, "decision": c.decision}
                for c in ev.contrasts[args.factor]
            ],
        }
        print(f"{mode}: {me['reason']}", file=sys.stderr, flush=True)
    return out


def side_by_side_markdown(res: dict[str, Any]) -> str:
    lines = [
        f"`{res['y']}` vs `{res['x']}`, factor {res['factor']}, filters {res['where'] or 'none'}; robust defaults.",
        "",
        "| level | " + " | ".join(f"{m}: mean gap [90% HDI], decision" for m in res["modes"]) + " |",
        "|---|" + "---|" * len(res["modes"]),
    ]
    levels = [c["level"] for c in next(iter(res["modes"].values()))["contrasts"]]
    for i, level in enumerate(levels):
        cells = []
        for m in res["modes"].values():
            c = m["contrasts"][i]
            lo, hi = c["gap_hdi90"]
            cells.append(f"{c['gap_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] {c['decision']}")
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    lines.append("")
    for mode, m in res["modes"].items():
        lines.append(
            f"- {mode}: used={m['used']}, median sigma {m['sigma']:.4f}, diagnostics ok={m['ok']}: {m['reason']}"
        )
    return "\n".join(lines) + "\n"


def markdown(summary: dict[str, Any], args: argparse.Namespace) -> str:
    def pct(v: float) -> str:
        return f"{100 * v:.0f}%"

    lines = [
        f"Settings: --seeds {summary['seeds']} --gap {args.gap} --checkpoints {args.checkpoints} --residual "
        f"{args.residual} --se-x {args.se_x} --se-y {args.se_y} --shared {args.shared} --rope {args.rope}"
        + (
            f" --noisy-level {args.noisy_level} --noisy-times {args.noisy_times:g}"
            if args.noisy_level
            else ""
        )
        + "; "
        "library defaults otherwise (robust NUTS).",
        "",
        "| error model | factor (truth) | gap 90% coverage [95% CI] | shift rate [95% CI] | median HDI width | "
        "mean abs error | fits ok | model used |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in summary["modes"].items():
        for factor, f in m["factors"].items():
            lo, hi = f["coverage_ci95"]
            slo, shi = f["shift_rate_ci95"]
            lines.append(
                f"| {mode} | {factor} ({f['true_mean_gap']:+.3f}) | {pct(f['coverage'])} [{pct(lo)}, {pct(hi)}] | "
                f"{pct(f['shift_rate'])} [{pct(slo)}, {pct(shi)}] | {f['median_hdi_width']:.4f} | "
                f"{f['mean_abs_error']:.4f} | {m['fits_ok']}/{summary['seeds']} | {m['used']}/{summary['seeds']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--gap", type=float, default=0.05, help="planted E_y shift of the data factor (nats)")
    ap.add_argument("--checkpoints", type=int, default=12, help="checkpoints per run")
    ap.add_argument("--residual", type=float, default=0.005, help="residual sd beyond measurement (nats)")
    ap.add_argument("--se-x", type=float, default=0.02, help="median stderr of x (nats; mini study: 0.019)")
    ap.add_argument("--se-y", type=float, default=0.05, help="median stderr of y (nats; mini study: 0.053)")
    ap.add_argument(
        "--shared", type=float, default=0.8, help="share of the error variance shared by checkpoints"
    )
    ap.add_argument(
        "--noisy-level", default=None, help="F=L: that level's standard errors are --noisy-times as large"
    )
    ap.add_argument("--noisy-times", type=float, default=3.0)
    ap.add_argument("--rope", type=float, default=DEFAULT_ROPE)
    ap.add_argument("--speed", action="store_true", help="time 6,000 checkpoints instead of calibrating")
    ap.add_argument(
        "--speed-modes", nargs="+", default=list(MODES), choices=MODES, help="modes --speed times"
    )
    ap.add_argument("--speed-seed", type=int, default=0, help="the fit's seed in --speed")
    ap.add_argument("--table", type=Path, default=None, help="a real table: decisions off / auto / on")
    ap.add_argument("--x", default="val/c4")
    ap.add_argument("--y", default="val/wiki")
    ap.add_argument("--factor", default="pretraining_data")
    ap.add_argument("--where", action="append", default=None, help="COLUMN=VALUE (repeatable)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    tag = "speed" if args.speed else f"shared{args.shared:g}_gap{args.gap:g}"
    if args.noisy_level:
        tag += f"_{args.noisy_level.replace('=', '-')}x{args.noisy_times:g}"
    if args.table is not None:
        tag = f"real_{args.table.stem}_{args.y.replace('/', '-')}_vs_{args.x.replace('/', '-')}"
    out = args.out or REPO / "out" / "benchmarks" / f"measurement_error_{tag}"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "argv": sys.argv[1:]}
    if args.table is not None:
        res = side_by_side(args)
        (out / "summary.json").write_text(json.dumps({**meta, **res}, indent=1, default=float))
        md = side_by_side_markdown(res)
        (out / "summary.md").write_text(md)
        print(md)
        return 0
    if args.speed:
        result = speed(args)
        (out / "summary.json").write_text(json.dumps({**meta, **result}, indent=1))
        print(json.dumps(result, indent=1))
        return 0
    records = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        path = out / f"seed_{seed:03d}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
            continue
        t0 = time.perf_counter()
        rec = one_seed(args, seed)
        path.write_text(json.dumps(rec, indent=1, default=float))
        records.append(rec)
        brief = "; ".join(
            f"{mode}: " + ", ".join(
                f"{f} {c['decision']} {'in' if c['covered'] else 'OUT'}" for f, c in rec["modes"][mode]["contrasts"].items()
            )
            for mode in MODES
        )  # fmt: skip
        print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): {brief}", file=sys.stderr, flush=True)
    summary = summarise(records)
    (out / "summary.json").write_text(json.dumps({**meta, **summary}, indent=1))
    md = markdown(summary, args)
    (out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
