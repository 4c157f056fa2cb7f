"""The reference paper's own table (Mayilvahanan et al. 2025, "LLMs on the Line"): which of its findings
does the posterior evidence support?

Run: ``.venv/bin/python analysis/llm_line.py [--shared PATH] [--out out/analysis/llm_line] [--quick]``

Comparisons (x = val/fineweb_edu throughout; y = val/c4 (train-to-train) and test/avg7 (train-to-test)):

(a) pretraining data: the three HuggingFaceFW ablation runs (same 1.7B Llama, gpt2-HF tokenizer) on C4,
    FineWeb-Edu and The Pile Deduped; base FineWeb-Edu;
(b) architecture: GPT (Pythia, GPT-NeoX-20B) vs Mamba vs Mamba2, all on The Pile with the gpt-neox
    tokenizer; base GPT;
(c) tokenizer: gpt2-HF (GPT-Neo, GPT-J) vs gpt-neox (Pythia, GPT-NeoX-20B), GPT architecture on The Pile;
(d) The Pile vs The Pile Deduped: a design check (is there a matched pair at all?), no fit.

Then the Figure-1 question over every loss pair: ``bl.survey`` of (a), (b) and (c) with the same filters and
bases (every validation corpus as x, every other metric as y), one dot per pair with its 90% HDI in
``figures/survey_summary.png``, a ranking per factor in summary.md, each survey in ``surveys/<factor>/``
(resumable). ``--quick`` surveys with the approximate path; ``--no-survey`` skips it.

Writes ``summary.md``, ``results.json``, ``figures/`` and ``posteriors/`` under --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Comparison,
    Outcome,
    comparison_markdown,
    contrast_table,
    f3,
    header_lines,
    headline_table,
    iv,
    log,
    main_guard,
    md_table,
    parse_args,
    prepare_out,
    run_comparison,
    save_combined_figures,
    write_results,
)

import bayes_l2l as bl
from bayes_l2l.contrasts import matched_contrasts
from bayes_l2l.design import Question
from bayes_l2l.io import import_table
from bayes_l2l.table import LossTable

X = "val/fineweb_edu"
YS = ("val/c4", "test/avg7")
DATA_FILE = Path("data/llm_line/latest_pm_hf.csv")


def comparisons() -> list[Comparison]:
    """(a)-(c), each for both y axes."""
    out = []
    for y in YS:
        tag = y.split("/")[1]
        out += [
            Comparison(
                key=f"a_data_{tag}",
                title=f"(a) Pretraining data, y = {y}",
                factor="pretraining_data",
                question=Question(
                    x=X,
                    y=y,
                    factors=["pretraining_data"],
                    where={"architecture": "Llama"},
                    base={"pretraining_data": "FineWeb-Edu"},
                ),
                why="The three HuggingFaceFW ablation runs: same 1.7B Llama recipe and gpt2-HF tokenizer, only "
                "the pretraining data differ (the paper's cleanest data intervention). Checkpoints over training.",
            ),
            Comparison(
                key=f"b_arch_{tag}",
                title=f"(b) Architecture, y = {y}",
                factor="architecture",
                question=Question(
                    x=X,
                    y=y,
                    factors=["architecture"],
                    where={"pretraining_data": "The Pile", "tokenizer": "gpt-neox"},
                    base={"architecture": "GPT"},
                ),
                why="Final models of several sizes, all trained on The Pile with the gpt-neox tokenizer: GPT = "
                "Pythia 70M-12B and GPT-NeoX-20B, Mamba and Mamba2 130M-2.8B. One checkpoint per run, so the "
                "curve of each architecture is traced by model size.",
            ),
            Comparison(
                key=f"c_tok_{tag}",
                title=f"(c) Tokenizer, y = {y}",
                factor="tokenizer",
                question=Question(
                    x=X,
                    y=y,
                    factors=["tokenizer"],
                    where={"pretraining_data": "The Pile", "architecture": "GPT"},
                    base={"tokenizer": "gpt2-HF"},
                ),
                why="GPT architecture on The Pile: gpt2-HF = GPT-Neo 125M/1.3B/2.7B and GPT-J-6B, gpt-neox = "
                "Pythia and GPT-NeoX-20B. Caveat: the two groups are different model families (EleutherAI's "
                "GPT-Neo/J vs Pythia/NeoX codebases and hyperparameters); the table labels both 'GPT', so the "
                "contrast is tokenizer plus whatever else differs between the families.",
            ),
        ]
    return out


# ----------------------------------------------------------------------------------------- (d) and units
def pile_dedup_check(table: LossTable) -> dict[str, Any]:
    """Is 'The Pile' vs 'The Pile Deduped' a matched contrast (other factors equal) anywhere in the table?

    Uses the evidence module's own matching (bayes_l2l.contrasts.matched_contrasts) on the checkpoints that
    have both x and one of the y metrics; no fit is needed to answer it.
    """
    ck = table.checkpoints()
    ck = ck[ck["pretraining_data"].astype(str).isin(["The Pile", "The Pile Deduped"])]
    xs = table.metric_series(X, unit="nats/token")[["run", "checkpoint"]]
    ck = ck.merge(xs, on=["run", "checkpoint"])
    others = ["architecture", "tokenizer"]
    (con,) = matched_contrasts(ck, "pretraining_data", others, base="The Pile")
    levels = (
        ck.groupby(["pretraining_data", *others], dropna=False)["run"]
        .agg(lambda r: sorted(set(map(str, r))))
        .reset_index()
    )
    decision = (
        "matched" if con.matched else f"not identifiable: confounded with {', '.join(con.confounded_with)}"
    )
    return {
        "factor": "pretraining_data",
        "level": "The Pile Deduped",
        "base": "The Pile",
        "matched_on": [s for s, _, _ in con.matched_pairs],
        "decision": decision,
        "cells": [
            {
                "pretraining_data": str(r.pretraining_data),
                "architecture": str(r.architecture),
                "tokenizer": str(r.tokenizer),
                "runs": r.run,
            }
            for r in levels.itertuples()
        ],
    }


def bytes_per_token(table: LossTable, metrics: list[str]) -> dict[str, dict[str, float]]:
    """Per tokenizer, the bytes per token implied by the table's own nats/token and bits/byte columns
    (nats / (ln 2 * bits/byte)), per metric: if the tokenizers differ here, per-token losses are not on
    one scale across tokenizers."""
    df = table.df
    nat = df[df["unit"] == "nats/token"].set_index(["run", "checkpoint", "metric"])["value"]
    bpb = df[df["unit"] == "bits/byte"].set_index(["run", "checkpoint", "metric"])["value"]
    ratio = (nat / (np.log(2) * bpb)).dropna().rename("bpt").reset_index()
    ratio = ratio.merge(table.checkpoints()[["run", "checkpoint", "tokenizer"]], on=["run", "checkpoint"])
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        sel = ratio[ratio["metric"] == m]
        out[m] = {
            str(k): float(v) for k, v in sel.groupby(sel["tokenizer"].astype(str))["bpt"].mean().items()
        }
    return out


# ----------------------------------------------------------------------------------------- surveys
SURVEYS = (
    ("pretraining data", "pretraining_data", {"architecture": "Llama"}, {"pretraining_data": "FineWeb-Edu"}),
    (
        "architecture",
        "architecture",
        {"pretraining_data": "The Pile", "tokenizer": "gpt-neox"},
        {"architecture": "GPT"},
    ),
    (
        "tokenizer",
        "tokenizer",
        {"pretraining_data": "The Pile", "architecture": "GPT"},
        {"tokenizer": "gpt2-HF"},
    ),
)
"""(label, factor, filters, base) of the three surveys: the filters and bases of comparisons (a)-(c)."""


def run_surveys(table: LossTable, out: Path, quick: bool, jobs: int) -> dict[str, dict[str, Any]]:
    """The three surveys into ``out/surveys/<factor>/`` (robust NUTS defaults; ``quick``: approx)."""
    results = {}
    for label, factor, where, base in SURVEYS:
        log(f"survey of {factor} ({', '.join(f'{k}={v}' for k, v in where.items())})")
        results[label] = bl.survey(
            table,
            factor,
            out / "surveys" / factor,
            where=where,
            base=base,
            jobs=jobs,
            method="approx" if quick else "nuts",
            progress=lambda m: log(f"  {m}"),
        )
    return results


def survey_markdown(surveys: dict[str, dict[str, Any]], figure: str) -> list[str]:
    """The survey part of summary.md: per factor the ranking across pairs, then the pairs in doubt."""
    md = [
        "## Every loss pair: data vs architecture vs tokenizer",
        "",
        f"![survey summary]({figure})",
        "",
        "One survey per factor (`bl.survey`, robust defaults, no sampler options), with the filters and base "
        "of (a)-(c): every validation corpus as x, every other validation corpus, task and named average as y. "
        "Share shift = pairs decided shift among those whose decision stands (diagnostics passed, enough "
        "common support); pairs share checkpoints, so the share summarises, it does not test.",
        "",
    ]
    rows = []
    for label, survey in surveys.items():
        for r in survey["ranking"]:
            rows.append(
                [
                    label,
                    str(r["level"]),
                    str(r["pairs"]),
                    str(r["decided"]),
                    "—" if r["share_shift"] != r["share_shift"] else f"{r['share_shift']:.0%}",
                    f3(r["median_gap"], "+.3f"),
                    iv((r["lo"], r["hi"])),
                    r.get("units", ""),
                ]
            )
    md.append(
        md_table(
            [
                "factor",
                "level",
                "pairs",
                "standing",
                "share shift",
                "median mean gap",
                "5-95% of pairs",
                "units",
            ],
            rows,
        )
    )
    doubt = [
        f"{label}: {p['y']} vs {p['x']} ({p['status']}: {p.get('error') or '; '.join(p['diagnostics'].get('problems') or [])})"
        for label, survey in surveys.items()
        for p in survey["pairs"]
        if p["status"] != "ok"
    ]
    walls = ", ".join(f"{label} {survey['wall_s']:.0f} s" for label, survey in surveys.items())
    md += ["", f"Survey wall time (this call; reused pairs are not refitted): {walls}.", ""]
    if doubt:
        md += [f"Pairs without a standing decision ({len(doubt)}):", ""] + [f"- {d}" for d in doubt] + [""]
    return md


# ----------------------------------------------------------------------------------------- verdicts
PAPER_FINDINGS = (
    ("pretraining data", "large shift", "a_data"),
    ("tokenizer (gpt2-HF vs gpt-neox)", "little shift", "c_tok"),
    ("architecture (GPT vs Mamba vs Mamba2)", "limited shift", "b_arch"),
    ("model size, context length, optimizer", "no practical shift", None),
    ("The Pile vs The Pile Deduped", "same curve", "d"),
)


VERDICT_RULES = (
    "Verdict rules: 'large shift' -> supports if every contrast is a 'shift', refutes if any is 'no practical "
    "shift'. 'little'/'limited shift' -> supports if every contrast is 'no practical shift' or a shift whose "
    "max |gap| 90% HDI lies entirely below the lower HDI bound of the smallest data contrast (same y): a "
    "shift, but clearly smaller than the data's; refutes if a shift's max |gap| interval reaches the data "
    "contrasts'. Failed diagnostics or undecided contrasts -> cannot decide."
)


def verdict(claim: str, recs: list[dict[str, Any]], data_recs: list[dict[str, Any]]) -> tuple[str, str]:
    """(verdict, reason) of one paper finding against our contrasts for one y (rules: VERDICT_RULES)."""
    if not recs or any("contrasts" not in r for r in recs):
        return "cannot decide", "not fitted"
    if not all(r["diagnostics_ok"] for r in recs):
        return "cannot decide", "sampler diagnostics failed"
    cons = [c for r in recs for c in r["contrasts"]]
    decisions = [c["decision"] for c in cons]
    if claim == "large shift":
        if all(d == "shift" for d in decisions):
            return "supports", "every contrast: shift"
        if any(d == "no practical shift" for d in decisions):
            return "refutes", "a contrast is within the ROPE"
        return "cannot decide", "undecided contrast(s)"
    data_lo = [
        c["gap_maxabs_hdi90"][0] for r in data_recs if r.get("diagnostics_ok") for c in r.get("contrasts", [])
    ]
    floor = min(data_lo) if data_lo else float("nan")
    reasons = []
    for c in cons:
        if c["decision"] == "no practical shift":
            reasons.append(f"{c['level']}: within ROPE")
        elif c["decision"] == "shift" and np.isfinite(floor) and c["gap_maxabs_hdi90"][1] < floor:
            reasons.append(
                f"{c['level']}: shift, max|gap| <= {c['gap_maxabs_hdi90'][1]:.3f} < data's >= {floor:.3f}"
            )
        elif c["decision"] == "shift":
            return (
                "refutes",
                f"{c['level']}: shift as large as the data contrasts' (max|gap| HDI reaches {floor:.3f})",
            )
        else:
            return "cannot decide", f"{c['level']}: undecided"
    return "supports", "; ".join(reasons)


def takeaway_table(records: dict[str, dict[str, Any]], dedup: dict[str, Any]) -> str:
    rows = []
    for finding, claim, prefix in PAPER_FINDINGS:
        cells = []
        for y in YS:
            tag = y.split("/")[1]
            if prefix is None:
                cells.append(
                    "cannot decide: the table has no matched size, context-length or optimizer "
                    "intervention (flag_intervention_size/context_length/optimizer are False on every row)"
                )
                continue
            if prefix == "d":
                cells.append(f"cannot decide: {dedup['decision']}")
                continue
            recs = [records[f"{prefix}_{tag}"]]
            data_recs = [records[f"a_data_{tag}"]]
            v, why = verdict(claim, recs, data_recs)
            summary = "; ".join(
                f"{c['level']} {f3(c['gap_mean'])} {iv(c['gap_hdi90'])} -> {c['decision']}"
                for c in recs[0].get("contrasts", [])
            )
            cells.append(f"**{v}** ({why}). {summary}")
        rows.append([finding, claim, *cells])
    return md_table(["finding", "paper", *(f"our evidence, y = {y}" for y in YS)], rows)


# ----------------------------------------------------------------------------------------- main
def run(argv: list[str] | None = None) -> int:
    args = parse_args(
        __doc__.splitlines()[0],
        "out/analysis/llm_line",
        argv,
        extra=lambda ap: (
            ap.add_argument("--no-survey", action="store_true", help="skip the surveys over every loss pair"),
            ap.add_argument("--jobs", type=int, default=2, help="survey pairs fitted at once (processes)"),
        ),
    )
    path = args.shared / DATA_FILE
    if not path.exists():
        print(f"skipped: {path} is absent (the paper's table lives in the shared data folder; pass --shared)")
        return 0
    prepare_out(args.out, args.overwrite)
    started = time.perf_counter()
    table = import_table("llm-line", [path])
    log(f"imported {path}: {len(table.df)} rows")

    outcomes: list[Outcome] = [run_comparison(table, comp, args.out, args.quick) for comp in comparisons()]
    records = {o.record["key"]: o.record for o in outcomes}
    dedup = pile_dedup_check(table)
    units = bytes_per_token(table, [X, "val/c4", *table.resolve_metric("test/avg7")[1]])
    combined = save_combined_figures(
        outcomes, args.out / "figures", lambda o: f"{o.record['factor']} [y={o.record['question']['y']}]"
    )

    md = header_lines("LLMs on the Line: the paper's table, Bayesian re-analysis", args, table, started)
    md += ["", "## Headline", ""]
    dedup_row = [
        "(d) The Pile vs The Pile Deduped",
        "The Pile Deduped vs The Pile",
        "—",
        "—",
        "—",
        dedup["decision"],
        "no fit (design check)",
    ]
    md.append(headline_table(outcomes, [dedup_row]))
    md += ["", "## The paper's takeaways vs our evidence", "", takeaway_table(records, dedup), ""]
    md.append(VERDICT_RULES)
    md += ["", "Combined figures: " + ", ".join(f"[{Path(p).name}]({p})" for p in combined), ""]
    surveys: dict[str, dict[str, Any]] = {}
    if not args.no_survey:
        import matplotlib.pyplot as plt

        from bayes_l2l.survey_plots import plot_factor_summary

        surveys = run_surveys(table, args.out, args.quick, args.jobs)
        fig = plot_factor_summary(surveys)
        fig.savefig(args.out / "figures" / "survey_summary.png", dpi=150)
        plt.close(fig)
        md += survey_markdown(surveys, "figures/survey_summary.png")
    md += ["## Comparisons", ""]
    for o in outcomes:
        md += [comparison_markdown(o.record), ""]
    md += ["### (d) The Pile vs The Pile Deduped", ""]
    md.append(
        "Design check with the evidence module's matching (bayes_l2l.contrasts.matched_contrasts) over the "
        f"checkpoints with `{X}`, other factors architecture and tokenizer:"
    )
    md += [
        "",
        md_table(
            ["pretraining data", "architecture", "tokenizer", "runs"],
            [
                [c["pretraining_data"], c["architecture"], c["tokenizer"], ", ".join(c["runs"])]
                for c in dedup["cells"]
            ],
        ),
        "",
    ]
    md.append(
        f"Result: **{dedup['decision']}**. The only deduplicated-Pile runs are the HuggingFaceFW Llama ablation "
        "(gpt2-HF tokenizer); no Llama was trained on the non-deduplicated Pile in this table and no GPT/Mamba "
        "on the deduplicated one, so a curve gap between them would measure architecture (and tokenizer) as "
        "much as deduplication. The paper's 'same curve' finding comes from Pythia vs Pythia-deduped, which "
        "this table does not hold."
    )
    md += ["", "### Units check for the tokenizer comparison", ""]
    md.append(
        "Bytes per token implied by the table's nats/token and bits/byte columns (nats / (ln 2 x bits/byte)), "
        "mean per tokenizer. Where the two tokenizers differ, per-token losses are not on one scale: a "
        "relative difference d in bytes/token moves a loss of L nats/token by about d x L."
    )
    md += [
        "",
        md_table(
            ["metric", *sorted({t for v in units.values() for t in v})],
            [
                [m, *(f3(v.get(t), ".4f") for t in sorted({t for w in units.values() for t in w}))]
                for m, v in units.items()
            ],
        ),
        "",
    ]
    md += ["## All contrasts", ""]
    for o in outcomes:
        if o.record.get("contrasts"):
            md += [f"**{o.record['title']}**", "", contrast_table(o.record["contrasts"]), ""]
    payload = {
        "source": str(path),
        "comparisons": [o.record for o in outcomes],
        "pile_vs_deduped": dedup,
        "bytes_per_token": units,
        "figures": combined,
        "surveys": {
            label: {k: v[k] for k in ("factor", "where", "n_pairs", "ranking", "wall_s")}
            | {"folder": str(args.out / "surveys" / v["factor"])}
            for label, v in surveys.items()
        },
    }
    return write_results(args, started, payload, md)


if __name__ == "__main__":
    sys.exit(main_guard(run))
