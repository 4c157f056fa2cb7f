"""Calibration on simulated truth: interval coverage, decision rates and rank histograms across seeds.

Each seed simulates one paper-shaped table (bayes_l2l.simulate) with three two-level factors around a base
recipe (one-at-a-time design, as in the paper's ablations):

- ``pretraining_data`` web -> code: a planted vertical shift of the curve, E_y + ``--gap`` nats
  (so the true gap is exactly ``--gap`` at every x);
- ``architecture`` llama -> gptneox: no effect (the null factor);
- ``tokenizer`` bpe32k -> bpe50k: a shape change (log K + 0.1, log kappa + 0.05), whose gap varies with x.

Every condition has ``--runs`` seeds at each of 2 model sizes, ``--checkpoints`` checkpoints per run, run-level
offsets (sd 0.02 nats), checkpoint noise (sd 0.02) and an early-checkpoint deviation, as the simulator's
defaults. The library fits it with its defaults (NUTS, --mass laplace, target accept 0.95) and compares each
factor (bayes_l2l.evidence.compare_factor, ROPE 0.02 nats).

Measured per seed: each contrast's decision, whether the 90% HDIs of the mean gap and of the parameter
differences contain the truth, and the rank of the truth among the posterior draws (for rank histograms:
uniform when the posterior is calibrated at this truth). The truth is fixed across seeds (only the noise is
redrawn), so this is a frequentist calibration check at the planted truth, not prior-sampled SBC.

Run: ``.venv/bin/python benchmarks/calibration.py --seeds 40 --gap 0.1``
Resumable: each seed's record is written to ``--out/seed_NNN.json`` and skipped when present.
Writes ``summary.json``, ``summary.md`` and ``rank_histograms.png`` to ``--out``.
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
from bayes_l2l.evidence import (
    DEFAULT_ROPE,
    compare_factor,
    gap_draws,
    gap_summary_draws,
    param_delta_draws,
    rope_thresholds,
)
from bayes_l2l.infer import MASS_CHOICES
from bayes_l2l.model import add_model_arguments
from bayes_l2l.robust_fit import fit_robust, sampler_from_args
from bayes_l2l.simulate import RANK_DRAWS, SimulationSpec, rank_among_draws, simulate_table

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"delta_log_K": "log_K", "delta_log_kappa": "log_kappa", "delta_Ex": "E_x", "delta_Ey": "E_y"}
"""Contrast parameter name -> simulator effect name."""
ROPE_CURVE = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.03)
"""ROPEs (nats) at which every contrast is also decided, from the same posterior draws: the decision rule's
operating curve ("shift" rate for the planted gap against the null factor's) as the ROPE varies."""


def scenario(gap: float, runs: int, checkpoints: int) -> SimulationSpec:
    """The simulated design (see the module docstring)."""
    return SimulationSpec(
        factors={
            "pretraining_data": ["web", "code"],
            "architecture": ["llama", "gptneox"],
            "tokenizer": ["bpe32k", "bpe50k"],
        },
        effects={
            "pretraining_data": {"code": {"E_y": gap}},
            "tokenizer": {"bpe50k": {"log_K": 0.1, "log_kappa": 0.05}},
        },
        runs_per_condition=runs,
        checkpoints_per_run=checkpoints,
        sizes=[160e6, 410e6],
    )


def inside(interval: list[float], value: float) -> bool:
    return bool(interval[0] <= value <= interval[1])


def one_seed(spec: SimulationSpec, seed: int, sampler: dict[str, Any], rope: float) -> dict[str, Any]:
    """Simulate, fit, compare every factor; the record of one seed."""
    table, truth = simulate_table(spec, seed)
    design = build_design(table, Question(x=spec.x_metric, y=spec.y_metric, factors=list(spec.factors)))
    post = fit_robust(design, sampler["config"], user=sampler["user"], seed=seed, retry=sampler["retry"])
    dg = post.diagnostics
    rec: dict[str, Any] = {
        "seed": seed,
        "points": len(design.points),
        "wall_s": post.wall_time_s,
        "diagnostics": {k: dg.get(k) for k in ("max_rhat", "min_ess_bulk", "divergences", "ok", "problems")},
        "attempts": dg.get("attempts"),
        "contrasts": {},
    }
    params = post.condition_params()
    for factor in spec.factors:
        (c,) = compare_factor(post, factor, rope=rope)
        t = truth.true_gap_summary(factor, c.level)
        c_l, c_b = design.condition_of({factor: c.level}), design.condition_of({})
        gaps, _ = gap_draws(post, c_l, c_b)
        mean_d, maxabs_d = gap_summary_draws(gaps)
        deltas = param_delta_draws(params, c_l, c_b)
        planted = spec.effects.get(factor, {}).get(c.level, {})
        true_params = {name: float(planted.get(eff, 0.0)) for name, eff in PARAMS.items()}
        rec["contrasts"][factor] = {
            "level": c.level,
            "decision": c.decision_if_converged or c.decision,
            "shown_decision": c.decision,
            "p_shift": c.p_shift,
            "p_equivalent": c.p_equivalent,
            "true_mean_gap": t["mean_gap"],
            "true_max_abs_gap": t["max_abs_gap"],
            "gap_mean": c.gap_mean,
            "gap_hdi90": c.gap_hdi90,
            "gap_covered": inside(c.gap_hdi90, t["mean_gap"]),
            "gap_rank": rank_among_draws(t["mean_gap"], mean_d),
            "shift_if_rope_below": rope_thresholds(mean_d, maxabs_d)[0],
            "params": {
                name: {
                    "truth": true_params[name],
                    "mean": c.params[name]["mean"],
                    "hdi90": c.params[name]["hdi90"],
                    "covered": inside(c.params[name]["hdi90"], true_params[name]),
                    "rank": rank_among_draws(true_params[name], deltas[name]),
                }
                for name in PARAMS
            },
        }
    return rec


def binom_ci(k: int, n: int) -> list[float]:
    """95% Clopper-Pearson interval of a proportion k/n (scipy)."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95)
    return [float(ci.low), float(ci.high)]


def summarise(records: list[dict[str, Any]], spec: SimulationSpec) -> dict[str, Any]:
    """Coverage, decision rates (with 95% binomial intervals), diagnostics and timing over seeds."""
    n = len(records)
    out: dict[str, Any] = {
        "seeds": n,
        "factors": {},
        "fits_passing": sum(bool(r["diagnostics"]["ok"]) for r in records),
    }
    gap_hits, param_hits = [], []
    for factor in spec.factors:
        cs = [r["contrasts"][factor] for r in records]
        decisions = [c["decision"] for c in cs]
        n_shift = sum(d == "shift" for d in decisions)
        n_eq = sum(d == "no practical shift" for d in decisions)
        gap_cov = sum(c["gap_covered"] for c in cs)
        gap_hits += [c["gap_covered"] for c in cs]
        par = {}
        for name in PARAMS:
            hits = [c["params"][name]["covered"] for c in cs]
            param_hits += hits
            par[name] = {"truth": cs[0]["params"][name]["truth"], "coverage": float(np.mean(hits))}
        out["factors"][factor] = {
            "level": cs[0]["level"],
            "true_mean_gap": float(np.mean([c["true_mean_gap"] for c in cs])),
            "true_max_abs_gap": float(np.mean([c["true_max_abs_gap"] for c in cs])),
            "shift_rate": n_shift / n,
            "shift_rate_ci95": binom_ci(n_shift, n),
            "no_shift_rate": n_eq / n,
            "undecided_rate": (n - n_shift - n_eq) / n,
            "gap_coverage": gap_cov / n,
            "gap_coverage_ci95": binom_ci(gap_cov, n),
            "mean_abs_error_gap": float(np.mean([abs(c["gap_mean"] - c["true_mean_gap"]) for c in cs])),
            "params": par,
        }
    out["rope_curve"] = rope_curve(records, spec)
    out["gap_coverage_all"] = float(np.mean(gap_hits))
    out["gap_coverage_all_ci95"] = binom_ci(int(np.sum(gap_hits)), len(gap_hits))
    out["param_coverage_all"] = float(np.mean(param_hits))
    out["param_coverage_all_ci95"] = binom_ci(int(np.sum(param_hits)), len(param_hits))
    dg = [r["diagnostics"] for r in records]
    out["diagnostics"] = {
        "fits_ok": sum(bool(d["ok"]) for d in dg),
        "max_rhat": _extreme(max, [d["max_rhat"] for d in dg]),
        "min_ess_bulk": _extreme(min, [d["min_ess_bulk"] for d in dg]),
        "fits_with_divergences": sum((d["divergences"] or 0) > 0 for d in dg),
        "total_divergences": int(sum(d["divergences"] or 0 for d in dg)),
    }
    out["fit_wall_s"] = {
        "median": float(np.median([r["wall_s"] for r in records])),
        "max": float(np.max([r["wall_s"] for r in records])),
    }
    return out


def rope_curve(records: list[dict[str, Any]], spec: SimulationSpec) -> dict[str, Any]:
    """Per factor and ROPE of ROPE_CURVE: the rate of "shift" decisions (with its 95% interval) over the seeds
    whose records hold the contrast's ROPE threshold (records written before it existed lack it)."""
    with_curve = [r for r in records if all("shift_if_rope_below" in c for c in r["contrasts"].values())]
    out: dict[str, Any] = {"seeds": len(with_curve), "factors": {}}
    for factor in spec.factors if with_curve else []:
        rates = {}
        for rope in ROPE_CURVE:
            k = sum(rope < r["contrasts"][factor]["shift_if_rope_below"] for r in with_curve)
            rates[f"{rope:g}"] = {
                "shift_rate": k / len(with_curve),
                "shift_rate_ci95": binom_ci(k, len(with_curve)),
            }
        out["factors"][factor] = rates
    return out


def _extreme(pick: Any, values: list[float | None]) -> float:
    """max/min over the values that exist (R-hat needs >= 2 chains); NaN when none does."""
    known = [float(v) for v in values if v is not None and np.isfinite(v)]
    return pick(known) if known else float("nan")


def rank_histograms(records: list[dict[str, Any]], spec: SimulationSpec, path: Path) -> None:
    """One panel per factor: ranks of the true mean gap and of the true parameter differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["gap", *PARAMS]
    fig, axes = plt.subplots(
        len(spec.factors), len(names), figsize=(2.6 * len(names), 2.2 * len(spec.factors)), sharex=True
    )
    bins = np.linspace(0, RANK_DRAWS + 1, 11)
    expected = len(records) / (len(bins) - 1)
    for i, factor in enumerate(spec.factors):
        for j, name in enumerate(names):
            ax = axes[i, j]
            cs = [r["contrasts"][factor] for r in records]
            ranks = [c["gap_rank"] if name == "gap" else c["params"][name]["rank"] for c in cs]
            ax.hist(ranks, bins=bins, color="#4c72b0", edgecolor="white")
            ax.axhline(expected, color="k", lw=0.8, ls="--")
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name.replace("delta_", "Δ "), fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{factor}\n{cs[0]['level']}", fontsize=8)
            if i == len(spec.factors) - 1:
                ax.set_xlabel("rank of truth", fontsize=8)
    fig.suptitle(
        f"Rank of the true value among {RANK_DRAWS} posterior draws, {len(records)} simulated seeds "
        "(dashed: uniform)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown(summary: dict[str, Any], args: argparse.Namespace, spec: SimulationSpec) -> str:
    def pct(v: float) -> str:
        return f"{100 * v:.0f}%"

    lines = [
        f"# Calibration on simulated truth (planted data gap {args.gap:g} nats)",
        "",
        f"{summary['seeds']} seeds; NUTS through the library's robust fit"
        + (" (one attempt per seed)" if args.no_retry else " (settings chosen per table, retried on failure)")
        + "; given explicitly: "
        + (
            ", ".join(
                f"{k} {v}"
                for k, v in (
                    ("chains", args.chains),
                    ("draws", args.draws),
                    ("warm-up", args.warmup),
                    ("target accept", args.target_accept),
                    ("mass", args.mass),
                )
                if v is not None
            )
            or "nothing (the defaults)"
        )
        + f"; {summary.get('fits_passing', '?')} of {summary['seeds']} kept fits pass the diagnostics gate; ROPE "
        f"{args.rope:g} nats; {spec.runs_per_condition} runs per condition and size x 2 sizes, "
        f"{spec.checkpoints_per_run} checkpoints per run. Machine: {platform.node()}, "
        f"{platform.processor() or platform.machine()}. Command: `{' '.join(sys.argv)}`.",
        "",
        "| factor (level) | true mean gap | true max abs gap | 'shift' [95% CI] | 'no practical shift' | "
        "undecided | gap 90% HDI coverage [95% CI] | Δ log K / Δ log κ / Δ Ex / Δ Ey coverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for factor, f in summary["factors"].items():
        p = f["params"]
        lo, hi = f["shift_rate_ci95"]
        clo, chi = f["gap_coverage_ci95"]
        lines.append(
            f"| {factor} ({f['level']}) | {f['true_mean_gap']:.3f} | {f['true_max_abs_gap']:.3f} | "
            f"{pct(f['shift_rate'])} [{pct(lo)}, {pct(hi)}] | {pct(f['no_shift_rate'])} | "
            f"{pct(f['undecided_rate'])} | {pct(f['gap_coverage'])} [{pct(clo)}, {pct(chi)}] | "
            + " / ".join(pct(p[n]["coverage"]) for n in PARAMS)
            + " |"
        )
    d = summary["diagnostics"]
    lines += [
        "",
        f"All gap intervals: {pct(summary['gap_coverage_all'])} coverage; all parameter-difference intervals: "
        f"{pct(summary['param_coverage_all'])}. Diagnostics: {d['fits_ok']}/{summary['seeds']} fits pass "
        f"(max R-hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
        f"{d['fits_with_divergences']} fits with divergences, {d['total_divergences']} in all). "
        f"Fit wall time median {summary['fit_wall_s']['median']:.0f} s, max {summary['fit_wall_s']['max']:.0f} s.",
        "",
        "![rank histograms](rank_histograms.png)",
        "",
    ]
    curve = summary.get("rope_curve", {})
    if curve.get("factors"):
        ropes = [f"{r:g}" for r in ROPE_CURVE]
        lines += [
            f'Decided "shift" as the ROPE varies (the same {curve["seeds"]} fits; P(|mean gap| > ROPE) >= 0.95):',
            "",
            "| factor (level) | true mean gap | " + " | ".join(f"ROPE {r}" for r in ropes) + " |",
            "|---|---|" + "---|" * len(ropes),
        ]
        for factor, rates in curve["factors"].items():
            f = summary["factors"][factor]
            cells = []
            for r in ropes:
                lo, hi = rates[r]["shift_rate_ci95"]
                cells.append(f"{pct(rates[r]['shift_rate'])} [{pct(lo)}, {pct(hi)}]")
            lines.append(
                f"| {factor} ({f['level']}) | {f['true_mean_gap']:.3f} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--gap", type=float, default=0.1, help="planted E_y shift of the data factor (nats)")
    ap.add_argument("--runs", type=int, default=2, help="runs per condition and size")
    ap.add_argument("--checkpoints", type=int, default=15, help="checkpoints per run")
    ap.add_argument("--chains", type=int, default=None, help="default: the library's robust fit chooses")
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--rope", type=float, default=DEFAULT_ROPE)
    ap.add_argument(
        "--target-accept", type=float, default=None, help="NUTS target acceptance (default: policy)"
    )
    ap.add_argument("--mass", choices=MASS_CHOICES, default=None, help="NUTS mass matrix (default: policy)")
    ap.add_argument("--no-retry", action="store_true", help="one sampler attempt per seed")
    add_model_arguments(ap)
    ap.add_argument("--out", type=Path, default=None, help="default out/benchmarks/calibration_gap<G>")
    args = ap.parse_args(argv)
    out = args.out or REPO / "out" / "benchmarks" / f"calibration_gap{args.gap:g}"
    out.mkdir(parents=True, exist_ok=True)
    spec = scenario(args.gap, args.runs, args.checkpoints)
    settings = {
        "fit": "robust_fit (sampler settings chosen from the table, retried; None = the policy's choice)",
        "target_accept": args.target_accept,
        "run_offsets": args.run_offsets,
        "shape": args.shape,
        "mass": args.mass,
        "spec": spec.to_dict(),
        "chains": args.chains,
        "draws": args.draws,
        "warmup": args.warmup,
        "rope": args.rope,
        "retry": not args.no_retry,
    }
    settings_path = out / "settings.json"
    earlier = json.loads(settings_path.read_text()) if settings_path.exists() else None
    if earlier is not None and earlier != json.loads(json.dumps(settings)):
        print(f"error: {out} holds seeds run with other settings; choose another --out", file=sys.stderr)
        return 2
    settings_path.write_text(json.dumps(settings, indent=1))
    sampler = sampler_from_args(args)
    records = []
    t0 = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for i, seed in enumerate(seeds):
        path = out / f"seed_{seed:03d}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
            continue
        rec = one_seed(spec, seed, sampler, args.rope)
        path.write_text(json.dumps(rec, indent=1))
        records.append(rec)
        dec = ", ".join(f"{f}: {c['decision']}" for f, c in rec["contrasts"].items())
        print(
            f"[{i + 1}/{len(seeds)}] seed {seed}: {rec['wall_s']:.0f} s, "
            f"{'ok' if rec['diagnostics']['ok'] else 'DIAGNOSTICS FAILED'}; {dec} "
            f"(elapsed {(time.perf_counter() - t0) / 60:.1f} min)",
            file=sys.stderr,
            flush=True,
        )
    summary = summarise(records, spec)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    rank_histograms(records, spec, out / "rank_histograms.png")
    (out / "summary.md").write_text(markdown(summary, args, spec))
    print(markdown(summary, args, spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
