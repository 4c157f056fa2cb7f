"""Importer of the Gemstones long CSVs; parameter counts against the authors' own logged counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.io import import_table
from bayes_l2l.io.gemstones import TOKENS_PER_STEP, gemstone_params, read_gemstones

# params_active_precise logged by the authors (github.com/mcleish7/gemstone-scaling-laws, commit 1fb97a2,
# wandb_dfs/wandb_df_for_fitting_cool_end.jsonl): an independent check of the formula, including widths
# whose head count is odd (384 -> 3 heads, 1 KV group).
AUTHORS_PARAMS = {
    (256, 23): 48377600,
    (384, 13): 66758784,
    (384, 36): 116518272,
    (512, 16): 114442752,
    (768, 3): 103814400,
    (1024, 28): 543482880,
    (1536, 50): 1924161024,
    (3072, 12): 2007837696,
}

VAL = """model,checkpoint,step,corpus,loss,width,depth
Gemstone-256x23,main,83475,dclm,3.30,256,23
Gemstone-256x23,step_00002385,2385,dclm,3.70,256,23
Gemstone-256x23,main,83475,fineweb_edu,3.10,256,23
Gemstone-384x13,main,83475,dclm,3.20,384,13
"""
TASK = """model,checkpoint,step,task,mean_loss,n,width,depth
Gemstone-256x23,main,83475,arcc,4.4,1172,256,23
Gemstone-256x23,main,83475,coqa,7.9,1221,256,23
Gemstone-256x23,main,83475,hellaswag__indomain,3.0,5001,256,23
Gemstone-256x23,step_00002385,2385,siqa,8.0,1954,256,23
"""


@pytest.mark.parametrize(("shape", "expected"), list(AUTHORS_PARAMS.items()))
def test_params_match_the_authors_counts(shape: tuple[int, int], expected: int) -> None:
    assert gemstone_params(*shape) == expected


def test_val_and_task_files_together(tmp_path: Path) -> None:
    (tmp_path / "val.csv").write_text(VAL)
    (tmp_path / "task.csv").write_text(TASK)
    t = import_table("gemstones", [tmp_path / "val.csv", tmp_path / "task.csv"])
    assert set(t.metrics) == {
        "val/dclm",
        "val/fineweb_edu",
        "test/arc_challenge",
        "test/commonsense_qa",
        "test/hellaswag_indomain",
        "test/social_iqa",
    }
    ck = t.checkpoints().set_index(["run", "checkpoint"])
    main = ck.loc[("Gemstone-256x23", "main")]
    assert main["step"] == 83475
    assert main["tokens"] == 83475 * TOKENS_PER_STEP
    assert main["params"] == 48377600
    assert main["pretraining_data"] == "Dolma" and main["width"] == "256" and main["depth"] == "23"
    arcc = t.df[t.df["metric"] == "test/arc_challenge"].iloc[0]
    assert arcc["n"] == 1172 and arcc["value"] == pytest.approx(4.4)
    assert any("length normalisation" in w for w in t.warnings)


def test_wrong_files(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("model,loss\na,1\n")
    with pytest.raises(UserInputError, match="neither a Gemstones validation file"):
        read_gemstones(p)
    p.write_text("model,checkpoint,step,corpus,loss,width\na,main,1,dclm,3,256\n")
    with pytest.raises(UserInputError, match=r"missing column\(s\) 'depth' expected in the val file"):
        read_gemstones(p)
    p.write_text("model,checkpoint,step,corpus,loss,width,depth\na,main,1,dclm,3,wide,2\n")
    with pytest.raises(UserInputError, match=r"column 'width', data row 1: 'wide' is not a number"):
        read_gemstones(p)


def test_real_files(shared) -> None:
    val = shared.path("data", "gemstones", "gemstones_val_losses_long.csv")
    task = shared.path("data", "gemstones", "gemstones_task_losses_long.csv")
    t = import_table("gemstones", [val, task])
    ck = t.checkpoints()
    assert ck["run"].nunique() == 22 and len(ck) == 22 * 35
    assert ck["params"].min() == 48377600 and ck["params"].max() == gemstone_params(3072, 12)
    assert ck.loc[ck["checkpoint"] == "main", "tokens"].unique().tolist() == [83475 * TOKENS_PER_STEP]
    counts = t.df.groupby("metric").size()
    assert counts["val/dclm"] == 770 and counts["val/fineweb"] == 88
    assert counts["test/commonsense_qa"] == 770
    assert set(t.df.loc[t.df["metric"] == "test/commonsense_qa", "n"]) == {1221}
