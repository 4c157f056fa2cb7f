"""Simulation-based calibration (SBC, Talts et al. 2018) of the model and its sampler: truths drawn from the prior.

``benchmarks/calibration.py`` checks coverage at one planted, paper-shaped truth. This script checks the
inference itself: draw parameters from the model's own prior, draw y from the model given them, fit, and rank
each true quantity among the posterior draws. If the model is fitted correctly, every rank is uniform and every
90% interval covers its truth in 90% of the draws (averaged over the prior); a sampler that is biased, too
narrow or too wide shows as a sloped, U-shaped or hump-shaped rank histogram.

The design is fixed: x, runs and conditions of one small simulated table (``design_for``: a base recipe and two
one-at-a-time factors, ``--runs`` runs of ``--checkpoints`` checkpoints per condition). The prior's centres for
the height and the log slope are fixed from that table (``ModelConfig.prior_centres``): by default the library
takes them from the data (median y, pooled slope), which would make the prior depend on y and break SBC's
premise. Everything else is the library default (log kappa shape, non-centred offsets, learned Student-t
degrees of freedom, NUTS with ``--mass laplace``).

Quantities ranked, per contrast (each non-base condition against the base): the mean gap between the curves over
their common x support (what ``compare`` decides on) and the differences of log K, log kappa, Ex and Ey; and the
checkpoint noise sigma and run-offset sd sigma_run. Fits that fail the diagnostics gate are kept (dropping them
would condition on the data and bias the ranks) and counted; the summary also gives the ranks of the passing
fits alone.

Run: ``.venv/bin/python benchmarks/sbc.py --sims 100``. Resumable: each draw's record is written to
``--out/sim_NNN.json`` and skipped when present. Writes ``summary.json``, ``summary.md`` and
``rank_histograms.png`` to ``--out`` (default ``out/benchmarks/sbc``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from numpyro.infer import Predictive
from scipy.stats import binom, chisquare

from bayes_l2l.design import Design, Question, build_design
from bayes_l2l.evidence import gap_draws, gap_from_params, gap_summary_draws, param_delta_draws
from bayes_l2l.model import ModelConfig, ModelData, l2l_model
from bayes_l2l.robust_fit import fit_robust
from bayes_l2l.sampler_policy import UserSettings
from bayes_l2l.simulate import RANK_DRAWS, SimulationSpec, rank_among_draws, simulate_table

REPO = Path(__file__).resolve().parents[1]
BINS = 10
INTERVAL = 0.9
CONTRAST_QUANTITIES = ("mean_gap", "delta_log_K", "delta_log_kappa", "delta_Ex", "delta_Ey")
GLOBAL_QUANTITIES = ("sigma", "sigma_run")
PRIOR_POOL = 1000
"""Prior draws made at start; sim i fits draw i, so records stay valid when --sims changes (resuming)."""


def design_for(runs: int, checkpoints: int) -> Design:
    """The fixed design: x, runs and conditions of one simulated table (y is replaced by prior draws)."""
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"], "tokenizer": ["bpe32k", "bpe50k"]},
        effects={},
        runs_per_condition=runs,
        checkpoints_per_run=checkpoints,
        sizes=[160e6],
    )
    table, _ = simulate_table(spec, 0)
    return build_design(table, Question(x=spec.x_metric, y=spec.y_metric, factors=list(spec.factors)))


def fixed_centre_config(design: Design, config: ModelConfig | None = None) -> ModelConfig:
    """``config`` with the prior centres the library would take from this design's y, fixed."""
    data = ModelData.from_design(design, config or ModelConfig())
    return dataclasses.replace(config or ModelConfig(), prior_centres=(data.h_center, data.logs_center))


def prior_draws(design: Design, config: ModelConfig, n: int, seed: int) -> dict[str, np.ndarray]:
    """n joint draws of the parameters and of y from the model's prior (NumPyro Predictive, y unobserved)."""
    data = ModelData.from_design(design, config, with_y=False)
    out = Predictive(l2l_model, num_samples=n)(jax.random.PRNGKey(seed), data, config)
    return {k: np.asarray(v) for k, v in out.items()}


def _quantity_record(truth: float, draws: np.ndarray) -> dict[str, Any]:
    lo, hi = np.quantile(draws, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2])
    return {
        "truth": float(truth),
        "mean": float(np.mean(draws)),
        "interval": [float(lo), float(hi)],
        "covered": bool(lo <= truth <= hi),
        "rank": rank_among_draws(truth, draws),
    }


def true_condition_params(draws: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Draw i's K, kappa, Ex, Ey per condition, shaped (1, conditions) like a posterior's."""
    return {k: draws[k][i][None, :] for k in ("K", "kappa", "Ex", "Ey")}


def one_sim(
    design: Design, config: ModelConfig, draws: dict[str, np.ndarray], i: int, sampler: dict[str, Any]
) -> dict[str, Any]:
    """Fit prior draw i's y; the ranks and interval coverage of every quantity."""
    y = draws["y"][i]
    rec: dict[str, Any] = {"sim": i}
    if not np.isfinite(y).all():
        return {**rec, "failed": "the prior draw of y is not finite"}
    design_i = dataclasses.replace(design, points=design.points.assign(y=y))
    post = fit_robust(design_i, config, user=sampler["user"], seed=i, retry=sampler.get("retry", True))
    dg = post.diagnostics
    rec["wall_s"] = post.wall_time_s
    rec["diagnostics"] = {k: dg.get(k) for k in ("max_rhat", "min_ess_bulk", "divergences", "ok", "problems")}
    rec["attempts"] = dg.get("attempts")
    params = post.condition_params()
    truth = true_condition_params(draws, i)
    base = 0
    quantities: dict[str, dict[str, Any]] = {}
    for c in range(1, design.n_conditions):
        label = str(design.conditions["condition"].iloc[c])
        gaps, _ = gap_draws(post, c, base)
        true_gap, _ = gap_from_params(truth, design.conditions, c, base)
        quantities[f"{label}: mean_gap"] = _quantity_record(
            float(gap_summary_draws(true_gap)[0][0]), gap_summary_draws(gaps)[0]
        )
        true_deltas = param_delta_draws(truth, c, base)
        for name, d in param_delta_draws(params, c, base).items():
            quantities[f"{label}: {name}"] = _quantity_record(float(true_deltas[name][0]), d)
    for name in GLOBAL_QUANTITIES:
        quantities[name] = _quantity_record(float(draws[name][i]), post.draws(name).reshape(-1))
    rec["quantities"] = quantities
    return rec


def _kind(name: str) -> str:
    return name.split(": ")[-1]


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per quantity kind: coverage of the 90% intervals, rank counts in BINS bins and a chi-square test of
    uniformity, for all fits and for the fits passing the diagnostics gate."""
    done = [r for r in records if "quantities" in r]
    passing = [r for r in done if r["diagnostics"]["ok"]]
    out: dict[str, Any] = {
        "sims": len(records),
        "fitted": len(done),
        "failed": [{"sim": r["sim"], "why": r["failed"]} for r in records if "failed" in r],
        "passing_gate": len(passing),
        "median_fit_s": float(np.median([r["wall_s"] for r in done])) if done else None,
        "kinds": {},
    }
    kinds = list(CONTRAST_QUANTITIES) + list(GLOBAL_QUANTITIES)
    for subset_name, subset in (("all", done), ("passing", passing)):
        for kind in kinds:
            qs = [q for r in subset for name, q in r["quantities"].items() if _kind(name) == kind]
            if not qs:
                continue
            ranks = np.array([q["rank"] for q in qs])
            counts = np.histogram(ranks, bins=BINS, range=(0, RANK_DRAWS + 1))[0]
            covered = int(sum(q["covered"] for q in qs))
            out["kinds"].setdefault(kind, {})[subset_name] = {
                "n": len(qs),
                "covered": covered,
                "coverage": covered / len(qs),
                "coverage_ci95": [float(v) / len(qs) for v in binom.interval(0.95, len(qs), INTERVAL)],
                "rank_counts": counts.tolist(),
                "uniformity_p": float(chisquare(counts).pvalue),
                "mean_rank": float(ranks.mean()),
            }
    return out


def rank_histograms(summary: dict[str, Any], path: Path) -> None:
    """One panel per quantity kind (all fits), with the 99% band of a uniform histogram's bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(summary["kinds"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(2.5 * len(kinds), 2.6), sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), kinds, strict=True):
        s = summary["kinds"][kind]["all"]
        counts = np.array(s["rank_counts"])
        n = counts.sum()
        lo, hi = binom.interval(0.99, n, 1 / BINS)
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.axhline(n / BINS, color="k", lw=0.8, ls="--")
        ax.bar(np.arange(BINS), counts, width=0.9, color="#4c72b0")
        ax.set_title(
            f"{kind.replace('delta_', 'Δ ')}\ncover {s['coverage']:.0%}, p = {s['uniformity_p']:.2f}",
            fontsize=9,
        )
        ax.set_xticks([0, BINS - 1], ["low", "high"])
        ax.set_xlabel("rank of truth", fontsize=8)
    fig.suptitle(
        f"SBC: rank of the prior-drawn truth among {RANK_DRAWS} posterior draws, {summary['fitted']} fits "
        "(grey: 99% band for uniform ranks)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown(summary: dict[str, Any], args: argparse.Namespace, design: Design) -> str:
    lines = [
        "# Simulation-based calibration (truths drawn from the prior)",
        "",
        f"Design: {len(design.points)} points, {design.n_conditions} conditions x {args.runs} runs x "
        f"{args.checkpoints} checkpoints; NUTS "
        + (
            "with the library's robust defaults (settings chosen per table and retried)"
            if args.draws is None and args.target_accept is None
            else f"{args.chains or 'policy'} x {args.draws or 'policy'} (+{args.warmup or 'policy'} warm-up), "
            f"target accept {args.target_accept or 'policy'}"
        )
        + f". {summary['fitted']} of {summary['sims']} prior draws fitted "
        f"({len(summary['failed'])} not fittable), {summary['passing_gate']} pass the diagnostics gate; median "
        f"fit {summary['median_fit_s']:.1f} s. Machine: {platform.node()}, {time.strftime('%Y-%m-%d')}. "
        f"Command: `{' '.join(sys.argv)}`.",
        "",
        "| quantity | intervals | 90% coverage [95% range if exact] | rank counts (10 bins, low to high) | "
        "uniformity p (chi-square) | passing fits: coverage, p |",
        "|---|---|---|---|---|---|",
    ]
    for kind, s in summary["kinds"].items():
        a, p = s["all"], s.get("passing")
        lo, hi = a["coverage_ci95"]
        lines.append(
            f"| {kind} | {a['n']} | {a['covered']}/{a['n']} = {a['coverage']:.0%} [{lo:.0%}, {hi:.0%}] | "
            f"{' '.join(str(c) for c in a['rank_counts'])} | {a['uniformity_p']:.2f} | "
            + (f"{p['coverage']:.0%}, {p['uniformity_p']:.2f} |" if p else "— |")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=100, help="prior draws to fit")
    ap.add_argument("--runs", type=int, default=2, help="runs per condition")
    ap.add_argument("--checkpoints", type=int, default=12, help="checkpoints per run")
    ap.add_argument("--chains", type=int, default=None, help="default: the library's robust fit chooses")
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--target-accept", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0, help="seed of the prior draws")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "sbc")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"fit": "robust_fit", **{k: v for k, v in vars(args).items() if k not in ("sims", "out")}}
    settings_path = args.out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        print(f"error: {args.out} holds draws run with other settings; choose another --out", file=sys.stderr)
        return 2
    settings_path.write_text(json.dumps(settings, indent=1))
    design = design_for(args.runs, args.checkpoints)
    config = fixed_centre_config(design)
    if not 0 < args.sims <= PRIOR_POOL:
        print(f"error: --sims must be between 1 and {PRIOR_POOL}", file=sys.stderr)
        return 2
    draws = prior_draws(design, config, PRIOR_POOL, args.seed)
    sampler = {
        "user": UserSettings(
            chains=args.chains, draws=args.draws, warmup=args.warmup, target_accept=args.target_accept
        )
    }
    records = []
    t0 = time.perf_counter()
    for i in range(args.sims):
        path = args.out / f"sim_{i:03d}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
            continue
        rec = one_sim(design, config, draws, i, sampler)
        path.write_text(json.dumps(rec, indent=1))
        records.append(rec)
        state = rec.get("failed") or (
            "ok" if rec["diagnostics"]["ok"] else "; ".join(rec["diagnostics"]["problems"])
        )
        print(
            f"[{i + 1}/{args.sims}] {rec.get('wall_s', 0):.0f} s, {state} "
            f"(elapsed {(time.perf_counter() - t0) / 60:.1f} min)",
            file=sys.stderr,
            flush=True,
        )
    summary = summarise(records)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    rank_histograms(summary, args.out / "rank_histograms.png")
    md = markdown(summary, args, design)
    (args.out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
