"""Gadre et al. 2024 (github.com/mlfoundations/scaling): does the pretraining data (C4 vs RedPajama vs
RefinedWeb) shift the loss-to-loss curve, across model sizes and token budgets?

Run: ``.venv/bin/python analysis/gadre.py [--shared PATH] [--out out/analysis/gadre] [--quick]``

104 open_lm models (11M-6.9B parameters, 0.25-32x Chinchilla tokens), final checkpoints only: every run
has one checkpoint, so each data set's curve is traced by size and token budget, and there are no run
offsets. x = val/c4 (the C4 validation loss every model has, Gadre et al.'s main validation metric);
y = val/paloma_redpajama and val/paloma_refinedweb (train-to-train; each training set is in-distribution
on exactly one of the three axes). Base: C4.

The library turns its joint compute-to-loss component on here (N and D both vary): it shares A, B,
alpha, beta of L(N, D) across the three data sets, which is an assumption; a sensitivity fit with the
component off is run for the first y.
Writes ``summary.md``, ``results.json``, ``figures/`` and ``posteriors/`` under --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from common import (
    Comparison,
    comparison_markdown,
    header_lines,
    headline_table,
    log,
    main_guard,
    md_table,
    parse_args,
    prepare_out,
    run_comparison,
    save_combined_figures,
    write_results,
)

from bayes_l2l.design import Question
from bayes_l2l.io import import_table

MODELS = Path("data/gadre2024/exp_data/models")
X = "val/c4"
YS = ("val/paloma_redpajama", "val/paloma_refinedweb")
WHY = (
    "All 104 models, final checkpoints. The three data sets share the model sizes and the hyperparameters "
    "of each size (the 6.9B models use lr 3e-4 and wd 0.33 instead of 3e-3 and 0.033, in all three data "
    "sets); the token budgets are nearly but not exactly matched (grid below)."
)


def design_grid(table: Any) -> str:
    """Markdown: per (parameters, tokens/params multiplier), which data sets have a model."""
    ck = table.checkpoints()
    ck = ck.assign(size=(ck["params"] / 1e6).round().astype(int).astype(str) + "M")
    grid = ck.groupby(["size", "chinchilla_multiplier"], sort=False)["pretraining_data"].agg(
        lambda s: ", ".join(sorted(set(map(str, s))))
    )
    grid = grid.reset_index().sort_values(
        ["size", "chinchilla_multiplier"], key=lambda c: c.str.rstrip("M").astype(float)
    )
    return md_table(
        ["params", "tokens / (20 x params)", "data sets"],
        [[r.size, r.chinchilla_multiplier, r.pretraining_data] for r in grid.itertuples()],
    )


def comparisons() -> list[Comparison]:
    out = []
    for y in YS:
        q = Question(x=X, y=y, factors=["pretraining_data"], base={"pretraining_data": "C4"})
        tag = y.removeprefix("val/paloma_")
        out.append(Comparison(f"data_{tag}", f"Pretraining data, y = {y}", "pretraining_data", q, WHY))
    q = Question(x=X, y=YS[0], factors=["pretraining_data"], base={"pretraining_data": "C4"})
    out.append(
        Comparison(
            f"data_{YS[0].removeprefix('val/paloma_')}_nocompute",
            f"Pretraining data, y = {YS[0]}, compute-to-loss component off (sensitivity)",
            "pretraining_data",
            q,
            WHY + " Sensitivity: the same question without the joint L(N, D) component.",
            config={"use_compute": False},
        )
    )
    return out


def run(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], "out/analysis/gadre", argv)
    path = args.shared / MODELS
    if not path.exists():
        print(f"skipped: {path} is absent (Gadre et al.'s model JSONs live in the shared data folder)")
        return 0
    prepare_out(args.out, args.overwrite)
    started = time.perf_counter()
    table = import_table("gadre", [path])
    log(f"imported {path}: {len(table.df)} rows")
    outcomes = [run_comparison(table, c, args.out, args.quick) for c in comparisons()]
    combined = save_combined_figures(outcomes, args.out / "figures", lambda o: o.record["key"])

    md = header_lines(
        "Gadre et al. 2024: does pretraining data shift the loss-to-loss curve?", args, table, started
    )
    md += ["", "## Headline", ""]
    md.append(headline_table(outcomes))
    md += ["", "Paper's finding (LLMs on the Line): pretraining data causes a large shift.", ""]
    md += ["Combined figures: " + ", ".join(f"[{Path(p).name}]({p})" for p in combined), ""]
    md += ["## Design grid", "", design_grid(table), ""]
    md += ["## Comparisons", ""]
    md += [comparison_markdown(o.record) + "\n" for o in outcomes]
    payload: dict[str, Any] = {
        "source": str(path),
        "comparisons": [o.record for o in outcomes],
        "figures": combined,
    }
    return write_results(args, started, payload, md)


if __name__ == "__main__":
    sys.exit(main_guard(run))
