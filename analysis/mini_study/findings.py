"""Step 4 of the mini study: the posterior evidence for each intervention, one factor at a time.

Run: ``.venv/bin/python analysis/mini_study/findings.py [--out out/analysis/mini_study] [--quick]``

Reads ``data/mini_study.parquet`` (written by ``run_study.py``). As in the paper's causal design, each
factor is compared on the runs that differ from the base recipe (Llama, C4, bpe4k, size s, peak LR 3e-3)
in that factor only: the two base seeds plus the intervention's runs. x = val/c4 (held-out loss on the
base's own data); y = (1) test/avg7, the mean loss of the seven cloze tasks (train-to-test), and
(2) val/wiki, the held-out WikiText-2 loss that no run trains on (train-to-train). Checkpoints before
5% of training (steps 20 and 40 of 1,000) are dropped (see ``bayes_l2l.demo.MINI_STUDY_MIN_FRACTION``).
Writes ``summary.md``, ``results.json``, ``figures/`` and ``posteriors/`` under --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # analysis/common.py

from common import (  # noqa: E402
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

from bayes_l2l.demo import MINI_STUDY, MINI_STUDY_MIN_FRACTION  # noqa: E402
from bayes_l2l.design import Question  # noqa: E402
from bayes_l2l.table import LossTable  # noqa: E402

BASE = {
    "pretraining_data": "C4",
    "tokenizer": "bpe4k",
    "architecture": "Llama",
    "size": "s",
    "learning_rate": "0.003",
}
"""The base recipe's factor levels, as the table writes them."""
X = "val/c4"
YS = {"tasks": "test/avg7", "wiki": "val/wiki"}
PAPER = {
    "pretraining_data": "shifts the curve (the strongest effect)",
    "tokenizer": "shifts it, less than data",
    "architecture": "little or no shift",
    "size": "no shift",
    "learning_rate": "no shift (optimizer settings)",
}
"""The reference paper's takeaways (Mayilvahanan et al. 2025), per factor."""


def comparisons(table: LossTable) -> list[Comparison]:
    """One comparison per (factor, y): the factor's runs plus the base runs, every other factor at base."""
    comps = []
    for factor in BASE:
        where = {f: level for f, level in BASE.items() if f != factor}
        for key, y in YS.items():
            comps.append(
                Comparison(
                    key=f"{factor}_{key}",
                    title=f"{factor}, y = {y}",
                    factor=factor,
                    question=Question(
                        x=X,
                        y=y,
                        factors=[factor],
                        base={factor: BASE[factor]},
                        where=where,
                        min_fraction=MINI_STUDY_MIN_FRACTION,
                    ),
                    why=f"Runs with {', '.join(f'{k}={v}' for k, v in where.items())}; "
                    f"paper's takeaway for {factor}: {PAPER[factor]}.",
                )
            )
    # nats/token under two tokenizers count different units of text: the same tokenizer question per byte
    where = {f: level for f, level in BASE.items() if f != "tokenizer"}
    comps.append(
        Comparison(
            key="tokenizer_tasks_bytes",
            title="tokenizer, y = test/avg7, both axes in bits/byte",
            factor="tokenizer",
            question=Question(
                x=X,
                y=YS["tasks"],
                factors=["tokenizer"],
                base={"tokenizer": BASE["tokenizer"]},
                where=where,
                min_fraction=MINI_STUDY_MIN_FRACTION,
                unit="bits/byte",
            ),
            why="Per token, a 1,024-token vocabulary predicts shorter pieces than a 4,096-token one, so "
            "nats/token differ for the same text; bits/byte put both tokenizers on the same scale.",
        )
    )
    return comps


def run(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], "out/analysis/mini_study", argv)
    if not MINI_STUDY.is_file():
        print(f"skipped: {MINI_STUDY} absent; run analysis/mini_study/run_study.py first")
        return 0
    prepare_out(args.out, args.overwrite)
    started = time.perf_counter()
    table = LossTable.read(MINI_STUDY)
    log(f"read {len(table.df)} rows of {table.df['run'].nunique()} runs")
    outcomes = [run_comparison(table, c, args.out, args.quick) for c in comparisons(table)]
    combined = {}
    for key in YS:
        chosen = [o for o in outcomes if o.record["key"].endswith(f"_{key}")]  # nats/token fits
        combined[key] = save_combined_figures(
            chosen, args.out / "figures" / key, lambda o: o.record["factor"]
        )
    md = header_lines("Mini study: which interventions shift the loss-to-loss curve?", args, table, started)
    md += ["", "## Headline", "", headline_table(outcomes), ""]
    md += ["## The paper's takeaways", ""]
    md.append(md_table(["factor", "paper (LLMs on the Line)"], [[f, t] for f, t in PAPER.items()]))
    md += ["", "## Comparisons", ""]
    md += [comparison_markdown(o.record) + "\n" for o in outcomes]
    payload: dict[str, Any] = {
        "table": str(MINI_STUDY),
        "x": X,
        "ys": YS,
        "base": BASE,
        "comparisons": [o.record for o in outcomes],
        "figures": combined,
    }
    return write_results(args, started, payload, md)


if __name__ == "__main__":
    sys.exit(main_guard(run))
