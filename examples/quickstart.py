"""The paper's question end to end from Python: does pretraining data shift the FineWeb-Edu -> C4 curve of
the Llama runs? (bayes-l2l's Python API, docs/api.md.)

    .venv/bin/python examples/quickstart.py [OUT_FOLDER]

Reads the paper's table from ../shared/data/llm_line/latest_pm_hf.csv (beside the repository) and writes
OUT_FOLDER (default out/quickstart): post/ (the posterior), report.html, curves.png, gaps.png. Sampler
settings are the library's: chosen from the table and retried on failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bayes_l2l as bl

REPO = Path(__file__).resolve().parents[1]
PAPER_CSV = REPO.parent / "shared" / "data" / "llm_line" / "latest_pm_hf.csv"


def main(out: Path) -> int:
    if not PAPER_CSV.exists():
        print(
            f"the paper's table is not at {PAPER_CSV}; put ../shared beside the repository", file=sys.stderr
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)
    table = bl.import_table(PAPER_CSV, format="llm-line")
    post = bl.fit(
        table,
        x="val/fineweb_edu",
        y="val/c4",
        factors=["pretraining_data"],
        where={"architecture": "Llama"},
        progress=print,
    )
    print(post)
    print("diagnostics ok:", post.diagnostics["ok"], "-", post.diagnostics["attempts"])

    ev = post.compare("pretraining_data", progress=print)
    print(ev.to_dataframe()[["level", "base", "gap_mean", "gap_lo90", "gap_hi90", "p_shift", "decision"]])
    ev.plot().savefig(out / "gaps.png", dpi=120)
    post.plot_curves().savefig(out / "curves.png", dpi=120)

    print(post.predict(x=[3.3, 3.4], level={"pretraining_data": "C4"}).to_dataframe())
    c4 = table.select(where={"pretraining_data": "C4", "architecture": "Llama"})
    print(post.test(c4, against={"pretraining_data": "FineWeb-Edu"}).to_dict()["decision"])

    post.report(out / "report.html", evidence=ev, overwrite=True)
    post.save(out / "post", overwrite=True)
    again = bl.load(out / "post")
    print(
        "reloaded:",
        again.question.y,
        "vs",
        again.question.x,
        "- DataTree groups:",
        list(again.datatree.children),
    )
    print(
        bl.baseline(table, x="val/fineweb_edu", y="val/c4", by="pretraining_data").to_dataframe().iloc[:, :6]
    )
    return 0 if post.ok else 3


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "out" / "quickstart"))
