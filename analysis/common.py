"""Shared machinery of the analysis scripts (llm_line.py, gemstones.py, gadre.py).

One *comparison* = one question (x, y, one factor, filters) fitted with NUTS and compared level by level
against the base with :func:`bayes_l2l.evidence.compare_factor`. This module fits it with a stated retry
ladder (sampler settings tried in order until the diagnostics pass; every attempt is recorded), computes
the contrasts, draws the per-fit figures and renders the records as markdown. All losses are in nats/token.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bayes_l2l import infer, plots
from bayes_l2l.design import Question, build_design
from bayes_l2l.errors import UserInputError
from bayes_l2l.evidence import ContrastResult, compare_factor, hdi
from bayes_l2l.model import ModelConfig
from bayes_l2l.robust_fit import ATTEMPT_DIAGNOSTICS, fit_robust
from bayes_l2l.sampler_policy import Attempt, UserSettings
from bayes_l2l.table import LossTable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared"
ROPE = 0.02
"""Region of practical equivalence (nats): the evidence module's default, seed-to-seed loss variation."""
SEED = 0

QUICK = {"chains": 2, "draws": 300, "warmup": 300}
"""``--quick``: one short attempt, no retries (a smoke run)."""


@dataclass
class Comparison:
    """One fit + compare: ``question`` on ``table`` (or the script's table), contrasts of ``factor``."""

    key: str
    """Folder-safe id, also the stem of this comparison's figures."""
    title: str
    factor: str
    question: Question
    why: str = ""
    """Why this selection answers the question (shown in the summary)."""
    config: dict[str, Any] = field(default_factory=dict)
    """ModelConfig overrides (e.g. use_compute=False), applied on every rung of the ladder."""
    table: LossTable | None = None


@dataclass
class Outcome:
    """What a comparison produced: a JSON-able record plus the in-memory posterior and contrasts."""

    record: dict[str, Any]
    post: infer.Posterior | None = None
    contrasts: list[ContrastResult] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- CLI helpers
def parse_args(
    description: str,
    default_out: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], Any] | None = None,
) -> argparse.Namespace:
    """Common options: --shared, --out, --quick, --overwrite; ``extra`` adds a script's own."""
    ap = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(ap)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared folder (holds data/)")
    ap.add_argument("--out", type=Path, default=REPO / default_out, help="output folder")
    ap.add_argument(
        "--quick", action="store_true", help="2 chains x 300 draws, one sampler attempt (smoke run)"
    )
    ap.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    return ap.parse_args(argv)


def prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out``; refuse to replace an earlier run's summary unless ``overwrite``."""
    if (out / "summary.md").exists() and not overwrite:
        raise UserInputError(
            f"{out}: holds the results of an earlier run; choose another --out or pass --overwrite"
        )
    (out / "figures").mkdir(parents=True, exist_ok=True)


def log(msg: str) -> None:
    """Progress on stderr with a wall-clock stamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main_guard(run: Callable[[], int]) -> int:
    """Run ``run``; a UserInputError becomes a one-line message and exit status 2."""
    try:
        return run()
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------------------- fitting
def fit_comparison(
    design: Any, comp: Comparison, quick: bool
) -> tuple[infer.Posterior, list[dict[str, Any]]]:
    """Fit ``design`` with the library's robust fit (:func:`bayes_l2l.robust_fit.fit_robust`: sampler settings
    chosen from the table, retried from what failed); return the kept posterior and one flat record per
    attempt (settings + diagnostics). ``comp.config`` overrides the model configuration."""
    config = replace(ModelConfig(), **comp.config)
    user = UserSettings(**QUICK) if quick else UserSettings()
    post = fit_robust(
        design, config, user=user, seed=SEED, retry=not quick, progress=lambda m: log(f"  {comp.key}: {m}")
    )
    attempts = [
        {
            "label": Attempt(**{k: r[k] for k in Attempt.__dataclass_fields__ if k in r}).label(),
            "effect_prior": config.effect_prior,
            "mass": r["mass"],
            "target_accept": r["target_accept"],
            "chains": r["chains"],
            "draws": r["draws"],
            "warmup": r["warmup"],
            "compute_component": post.settings.get("compute_component"),
            "wall_time_s": r["wall_s"],
            **{k: r["diagnostics"].get(k) for k in DIAG_KEYS if k != "wall_time_s"},
        }
        for r in post.settings["attempts"]
    ]
    return post, attempts


def rung_label(rung: dict[str, Any]) -> str:
    """An attempt's settings in a few words (the policy's label; older records: 'normal/0.95[/dense]')."""
    if "label" in rung:
        return rung["label"]
    mass = rung.get("mass", infer.DEFAULT_MASS)
    return f"{rung['effect_prior']}/{rung['target_accept']}" + (
        "" if mass == infer.DEFAULT_MASS else f"/{mass}"
    )


DIAG_KEYS = (*ATTEMPT_DIAGNOSTICS, "wall_time_s")


def condition_params(post: infer.Posterior) -> list[dict[str, Any]]:
    """K, kappa, Ex, Ey per condition: posterior mean, 90% HDI and identification flag."""
    ident = post.identification
    rows = []
    for c, label in enumerate(post.design.conditions["condition"].astype(str)):
        row: dict[str, Any] = {"condition": label}
        for var in ("K", "kappa", "Ex", "Ey"):
            d = post.draws(var)[:, c]
            flag = None
            if ident is not None and f"{var}[{label}]" in ident.index:
                flag = str(ident.loc[f"{var}[{label}]", "identified"])
            row[var] = {"mean": float(np.mean(d)), "hdi90": list(hdi(d)), "identified": flag}
        rows.append(row)
    return rows


def run_comparison(table: LossTable, comp: Comparison, out: Path, quick: bool, rope: float = ROPE) -> Outcome:
    """Build the design, fit (ladder), compare, save the posterior and the per-fit figures; never raises on
    a question the data cannot answer (the record says why)."""
    t0 = time.perf_counter()
    log(f"{comp.key}: {comp.title}")
    source = comp.table if comp.table is not None else table
    record: dict[str, Any] = {
        "key": comp.key,
        "title": comp.title,
        "factor": comp.factor,
        "why": comp.why,
        "question": comp.question.to_dict(),
        "config_overrides": comp.config,
        "rope": rope,
    }
    try:
        design = build_design(source, comp.question)
    except UserInputError as exc:
        record["error"] = str(exc)
        log(f"  {comp.key}: cannot be fitted: {exc}")
        return Outcome(record)
    cond = design.conditions
    record["data"] = {
        "points": len(design.points),
        "runs": design.n_runs,
        "conditions": [
            {
                "condition": str(r.condition),
                "runs": int(r.n_runs),
                "points": int(r.n_points),
                "x_range": [float(r.min_x), float(r.max_x)],
                "y_range": [float(r.min_y), float(r.max_y)],
            }
            for r in cond.itertuples()
        ],
        "factor_levels": design.factor_levels,
        "dropped": design.dropped,
        "warnings": [w for w in design.warnings if w not in source.warnings],
        "run_list": {
            str(c): sorted(design.points.loc[design.points["condition"] == c, "run"].astype(str).unique())
            for c in cond["condition"]
        },
    }
    post, attempts = fit_comparison(design, comp, quick)
    record["attempts"] = attempts
    record["kept_attempt"] = post.settings.get("kept_attempt")
    record["diagnostics_ok"] = bool(post.diagnostics["ok"])
    post.save(out / "posteriors" / comp.key, overwrite=True)
    contrasts = compare_factor(post, comp.factor, rope=rope)
    record["contrasts"] = [c.to_dict() for c in contrasts]
    record["condition_params"] = condition_params(post)
    record["ppc_coverage"] = {str(k): v for k, v in plots.ppc_coverage(post).items()}
    record["figures"] = save_fit_figures(post, out / "figures", comp.key)
    record["wall_s"] = time.perf_counter() - t0
    return Outcome(record, post, contrasts)


def save_fit_figures(post: infer.Posterior, folder: Path, stem: str) -> list[str]:
    """Curves with 50/90% bands, posterior-predictive check and rank plots of one fit (PNG + SVG)."""
    import matplotlib.pyplot as plt

    written: list[str] = []
    makers: dict[str, Callable[[], Any]] = {
        "curves": lambda: plots.plot_curves(post),
        "ppc": lambda: plots.plot_ppc(post),
    }
    if int(post.dt["posterior"].sizes["chain"]) > 1:
        makers["rank"] = lambda: plots.plot_rank(post)
    for name, make in makers.items():
        fig = make()
        try:
            paths = plots.save_figure(fig, folder, f"{stem}_{name}", overwrite=True)
        finally:
            plt.close(fig)
        written += [str(p.relative_to(folder.parent)) for p in paths if p.suffix == ".png"]
    return written


def relabel(contrasts: Sequence[ContrastResult], label: str) -> list[ContrastResult]:
    """Copies with ``factor`` set to ``label`` (for combined forest plots of several fits)."""
    return [replace(c, factor=label) for c in contrasts]


def save_combined_figures(
    outcomes: Sequence[Outcome], folder: Path, label: Callable[[Outcome], str]
) -> list[str]:
    """Gap and parameter-effect forests of every contrast of every fit, and (with several fits) the ranking
    by max |gap|."""
    import matplotlib.pyplot as plt

    compares = {label(o): relabel(o.contrasts, label(o)) for o in outcomes if o.contrasts}
    if not compares:
        return []
    figs = {"gaps": plots.plot_gap_forest(compares, ROPE)}
    if any(c.params for cs in compares.values() for c in cs):
        figs["params"] = plots.plot_param_effects(compares)
    if len(compares) > 1:
        figs["ranking"] = plots.plot_factor_ranking(compares, ROPE)
    written = []
    for name, fig in figs.items():
        try:
            paths = plots.save_figure(fig, folder, name, overwrite=True)
        finally:
            plt.close(fig)
        written += [str(p.relative_to(folder.parent)) for p in paths if p.suffix == ".png"]
    return written


# ----------------------------------------------------------------------------------------- markdown
def f3(v: Any, fmt: str = ".3f") -> str:
    """A number for a table; '—' for None/NaN."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(v, fmt)


def iv(lohi: Sequence[Any], fmt: str = ".3f") -> str:
    return f"[{f3(lohi[0], fmt)}, {f3(lohi[1], fmt)}]"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_markdown(rec: dict[str, Any]) -> str:
    """One comparison: question, data used/dropped, diagnostics of every attempt, contrasts, parameters."""
    q = rec["question"]
    out = [f"### {rec['title']}", ""]
    where = ", ".join(f"{k}={v}" for k, v in q["where"].items()) or "none"
    out.append(
        f"**Question.** x = `{q['x']}`, y = `{q['y']}` ({q['unit']}); factor `{rec['factor']}`; "
        f"filter: {where}"
        + (
            f"; checkpoints before {q['min_fraction']:g} of their run's training dropped"
            if q.get("min_fraction")
            else ""
        )
        + (f"; model overrides {rec['config_overrides']}" if rec.get("config_overrides") else "")
        + "."
    )
    if rec.get("why"):
        out += ["", rec["why"]]
    if "error" in rec:
        out += ["", f"**Not fitted:** {rec['error']}", ""]
        return "\n".join(out)
    data = rec["data"]
    out += [
        "",
        f"**Data.** {data['points']} checkpoints of {data['runs']} runs; base level "
        f"`{data['factor_levels'][rec['factor']][0]}`.",
        "",
        md_table(
            ["condition", "runs", "checkpoints", "x range", "y range"],
            [
                [c["condition"], c["runs"], c["points"], iv(c["x_range"]), iv(c["y_range"])]
                for c in data["conditions"]
            ],
        ),
        "",
    ]
    for cond, runs in data["run_list"].items():
        out.append(f"- `{cond}`: {', '.join(runs)}")
    dropped = data["dropped"] or [{"reason": "nothing dropped", "count": 0}]
    out += ["", "Dropped: " + "; ".join(f"{d['reason']} ({d['count']})" for d in dropped) + "."]
    for w in data["warnings"]:
        out.append(f"- warning: {w}")
    out += ["", "**Sampler diagnostics** (every attempt; the first that passed, else the best, is used):", ""]
    out.append(
        md_table(
            [
                "#",
                "settings",
                "max R-hat",
                "min bulk / tail ESS",
                "divergences",
                "min BFMI",
                "wall s",
                "result",
            ],
            [
                [
                    i + 1,
                    rung_label(a),
                    f"{f3(a['max_rhat'])} ({a['worst_rhat']})",
                    f"{f3(a['min_ess_bulk'], '.0f')} / {f3(a['min_ess_tail'], '.0f')}",
                    a["divergences"],
                    f3(a["min_bfmi"], ".2f"),
                    f3(a["wall_time_s"], ".0f"),
                    "ok" if a["ok"] else "FAILED: " + "; ".join(a["problems"]),
                ]
                for i, a in enumerate(rec["attempts"])
            ],
        )
    )
    cov = rec["ppc_coverage"]
    out += [
        "",
        f"Posterior-predictive coverage of the observed checkpoints: {float(cov['0.5']):.0%} inside their 50% "
        f"interval, {float(cov['0.9']):.0%} inside their 90% interval. "
        f"Joint compute-to-loss component: {'on' if rec['attempts'][-1]['compute_component'] else 'off'}.",
    ]
    if not rec["diagnostics_ok"]:
        out += ["", "**The diagnostics failed on every attempt: read the numbers below as unreliable.**"]
    out += [
        "",
        f"**Contrasts** (gap = level − base over the common x support, nats; ROPE ±{rec['rope']:g}):",
        "",
    ]
    out.append(contrast_table(rec["contrasts"]))
    out += ["", "Parameter differences (level − base), mean [90% HDI], identification:", ""]
    rows = []
    for c in rec["contrasts"]:
        if not c["params"]:
            continue
        rows.append(
            [f"{c['level']} vs {c['base']}"]
            + [
                f"{f3(p['mean'])} {iv(p['hdi90'])} {p['identified']}"
                for p in (c["params"][k] for k in ("delta_log_K", "delta_log_kappa", "delta_Ex", "delta_Ey"))
            ]
        )
    if rows:
        out.append(md_table(["contrast", "Δ log K", "Δ log κ", "Δ Ex (nats)", "Δ Ey (nats)"], rows))
    out += ["", "Figures: " + ", ".join(f"[{Path(p).name}]({p})" for p in rec["figures"]), ""]
    return "\n".join(out)


def contrast_table(contrasts: Sequence[dict[str, Any]]) -> str:
    return md_table(
        [
            "level vs base",
            "x support",
            "mean gap [90% HDI]",
            "max abs gap [90% HDI]",
            "P(shift)",
            "P(within ROPE)",
            "decision",
        ],
        [
            [
                f"{c['level']} vs {c['base']}",
                iv(c["support"], ".2f"),
                f"{f3(c['gap_mean'])} {iv(c['gap_hdi90'])}",
                f"{f3(c['gap_maxabs'])} {iv(c['gap_maxabs_hdi90'])}",
                f3(c["p_shift"], ".2f"),
                f3(c["p_equivalent"], ".2f"),
                c["decision"] + (f" ({c['note']})" if c.get("note") else ""),
            ]
            for c in contrasts
        ],
    )


HEADLINE_HEADER = (
    "comparison",
    "contrast",
    "mean gap [90% HDI] (nats)",
    "max abs gap [90% HDI]",
    "P(shift)",
    "decision",
    "diagnostics",
)


def headline_rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """One row per contrast of every comparison (and one per comparison that could not be fitted)."""
    rows = []
    for o in outcomes:
        r = o.record
        for c in r.get("contrasts", []):
            rows.append(
                [
                    r["title"],
                    f"{c['level']} vs {c['base']}",
                    f"{f3(c['gap_mean'])} {iv(c['gap_hdi90'])}",
                    f"{f3(c['gap_maxabs'])} {iv(c['gap_maxabs_hdi90'])}",
                    f3(c["p_shift"], ".2f"),
                    c["decision"],
                    attempts_line(r),
                ]
            )
        if "error" in r:
            rows.append([r["title"], "—", "—", "—", "—", f"not fitted: {r['error']}", "—"])
    return rows


def headline_table(outcomes: Sequence[Outcome], extra_rows: Sequence[Sequence[str]] = ()) -> str:
    """The summary's headline: every contrast with its gap, P(shift), decision and diagnostics."""
    return md_table(HEADLINE_HEADER, [*headline_rows(outcomes), *extra_rows])


def attempts_line(rec: dict[str, Any]) -> str:
    """Short diagnostics of the attempt used: 'R-hat 1.004, ESS 812, 0 div., ok (attempt 2 of 2)'."""
    if "attempts" not in rec:
        return "not fitted"
    kept = rec.get("kept_attempt") or len(rec["attempts"])
    a = rec["attempts"][kept - 1]
    status = "ok" if a["ok"] else "FAILED"
    return (
        f"R-hat {f3(a['max_rhat'])}, bulk ESS {f3(a['min_ess_bulk'], '.0f')}, {a['divergences']} div., "
        f"{status} (attempt {kept} of {len(rec['attempts'])}, {rung_label(a)})"
    )


def write_results(
    args: argparse.Namespace, started: float, payload: dict[str, Any], markdown: Sequence[str]
) -> int:
    """Write results.json (every number, plus the run's settings and wall time) and summary.md to
    ``args.out``; log it; exit status 0."""
    payload = {"quick": args.quick, "rope": ROPE, **payload, "wall_s": time.perf_counter() - started}
    (args.out / "results.json").write_text(json.dumps(payload, indent=1, default=_json_default))
    (args.out / "summary.md").write_text("\n".join(markdown) + "\n")
    log(f"wrote {args.out / 'summary.md'} and results.json in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def header_lines(title: str, args: argparse.Namespace, table: LossTable, started: float) -> list[str]:
    """Title, how it was run, sampler settings, the data source and the importer's warnings."""
    wall = time.perf_counter() - started
    lines = [
        f"# {title}",
        "",
        f"Generated by `{' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}` on {time.strftime('%Y-%m-%d %H:%M')}; "
        f"total wall time {wall / 60:.1f} min on this machine. NUTS with the library's robust defaults "
        "(bayes_l2l.robust_fit: sampler settings chosen from each table's shape, retried from what failed until "
        "R-hat <= 1.01, ESS >= 400, 0 divergences and BFMI pass; every attempt is listed), seed "
        f"{SEED}"
        + (
            f" — **--quick smoke run: one attempt of {QUICK['chains']} x {QUICK['draws']} draws, too few for "
            "trustworthy diagnostics**"
            if args.quick
            else ""
        )
        + f". Decision rule (bayes_l2l.evidence): shift if P(|mean gap| > {ROPE:g}) >= 0.95, no practical "
        f"shift if P(max |gap| < {ROPE:g}) >= 0.95, else undecided.",
        "",
        f"Data: `{table.source}`.",
    ]
    if table.warnings:
        lines += ["", "<details><summary>Importer warnings</summary>", ""]
        lines += [f"- {w}" for w in table.warnings]
        lines += ["", "</details>"]
    return lines
