"""Importer of the llm-line paper's tables: a small file in each layout, then the real ones in ../shared."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.io import import_table
from bayes_l2l.io.llm_line import SLIM_EST, TASK_EST, VAL_EST, read_llm_line

HEADER = (
    "Name,Architecture,Size,Pretraining Data,Dimensions,Steps,Tokenizer,Tokens,Learning Rate,"
    "C4 Validation Loss,C4 Validation BPB,Slimpajama Validation Loss,ARC-Easy Accuracy,ARC-Easy Loss,"
    "ARC-Easy BPB,MMLU Loss,Hugging Face,Intervention,Intervention"
)
SUBHEADER = "," * 17 + "Tokenizer,Size"
ROWS = [
    # run A: two steps and a 'final' row that repeats step 2000's losses (different tokens)
    "org/a,Llama,1000000,C4,,1000.0,gpt2-HF,2000000,,3.5,0.9,4.4,0.3,6.0,1.0,,True,True,False",
    "org/a,Llama,1000000,C4,,2000.0,gpt2-HF,4000000,,3.4,0.8,4.3,0.4,5.9,0.95,,True,True,True",
    "org/a,Llama,1000000,C4,,,gpt2-HF,9000000,,3.4,0.8,4.3,0.4,5.9,0.95,,True,True,False",
    # run B: OLMo-like, two unlabelled revisions, no size/tokens/tokenizer, one missing C4 cell
    "org/b,olmo,,Dolma,,,,,,3.3,0.85,4.1,0.5,5.5,0.9,,True,True,True",
    "org/b,olmo,,Dolma,,,,,,,,4.0,0.55,5.4,0.88,,True,True,True",
    # run C: a single final model
    "org/c,GPT,2000000,The Pile,,,gpt-neox,3000000,,3.6,0.95,4.6,0.35,6.2,1.05,,True,True,True",
]


@pytest.fixture
def latest_csv(tmp_path: Path) -> Path:
    p = tmp_path / "latest_pm_hf.csv"
    p.write_text("\n".join([HEADER, SUBHEADER, *ROWS]) + "\n")
    return p


def test_layout_and_identity(latest_csv: Path) -> None:
    t = read_llm_line(latest_csv)
    ck = t.checkpoints().set_index(["run", "checkpoint"])
    assert sorted(ck.index) == [
        ("org/a", "final"),
        ("org/a", "step1000"),
        ("org/a", "step2000"),
        ("org/b", "rev-unknown-row4"),
        ("org/b", "rev-unknown-row5"),
        ("org/c", "final"),
    ]
    assert ck.loc[("org/a", "step2000"), "tokens"] == 4e6
    assert ck.loc[("org/a", "step2000"), "params"] == 1e6
    assert pd.isna(ck.loc[("org/b", "rev-unknown-row4"), "step"])
    assert pd.isna(ck.loc[("org/b", "rev-unknown-row4"), "tokenizer"])
    assert ck.loc[("org/c", "final"), "pretraining_data"] == "The Pile"
    assert "learning_rate" in t.factors  # standard factor, all missing
    assert "d_model" not in t.factors  # extra column empty in every row: not imported


def test_duplicate_measurement_kept_as_both_rows_and_reported(latest_csv: Path) -> None:
    t = read_llm_line(latest_csv)
    ck = t.checkpoints().set_index(["run", "checkpoint"])
    assert ck.loc[("org/a", "final"), "tokens"] == 9e6 and pd.isna(ck.loc[("org/a", "final"), "step"])
    a = t.df[t.df["run"] == "org/a"].pivot_table(
        index="checkpoint", columns=["metric", "unit"], values="value"
    )
    pd.testing.assert_series_equal(a.loc["final"], a.loc["step2000"], check_names=False)
    (warning,) = [w for w in t.warnings if "duplicate measurement" in w]
    assert "in run org/a: data row 2 (checkpoint 'step2000') and data row 3 (checkpoint 'final')" in warning
    assert "tokens 4e+06 vs 9e+06" in warning
    assert (
        "one measurement recorded twice: both rows are kept, as checkpoints 'step2000' and 'final'" in warning
    )
    assert "fits (`bayes-l2l fit`) drop the repeated measurement" in warning


def test_same_step_twice_with_the_same_losses_is_held_once(tmp_path: Path) -> None:
    p = tmp_path / "twice.csv"
    p.write_text("\n".join([HEADER, SUBHEADER, ROWS[0], ROWS[0], ROWS[5]]) + "\n")
    t = read_llm_line(p)
    assert sorted(t.checkpoints()["checkpoint"]) == ["final", "step1000"]
    (warning,) = [w for w in t.warnings if "exact duplicate rows" in w]
    assert "data row 1 (checkpoint 'step1000') and data row 2 (checkpoint 'step1000')" in warning
    assert "kept once, as checkpoint 'step1000'; data row(s) 2 dropped" in warning


def test_unlabelled_rows_get_unique_ids_and_a_warning(latest_csv: Path) -> None:
    t = read_llm_line(latest_csv)
    (warning,) = [w for w in t.warnings if "record no revision" in w]
    assert "2 rows of org/b (2)" in warning
    assert "'rev-unknown-row<N>' (N = data row; file line N+2)" in warning
    assert "tokenizer missing" in warning


def test_metrics_units_estimators_and_no_nan(latest_csv: Path) -> None:
    t = read_llm_line(latest_csv)
    df = t.df
    assert df["value"].notna().all()
    got = set(zip(df["metric"], df["unit"], df["estimator"], strict=True))
    assert ("val/c4", "nats/token", VAL_EST) in got
    assert ("val/slimpajama", "nats/token", SLIM_EST) in got
    assert ("test/arc_easy", "nats/token", TASK_EST) in got
    assert any(
        m == "val/c4" and u == "bits/byte" and e.endswith("bpb=loss/(ln2*bytes_per_token_const)")
        for m, u, e in got
    )
    # org/b row 5 has no C4 cells: left out, counted in a warning, not stored as NaN
    b5 = df[(df["run"] == "org/b") & (df["checkpoint"] == "rev-unknown-row5")]
    assert "val/c4" not in set(b5["metric"])
    assert any(
        "val/c4 (nats/token), val/c4 (bits/byte): no value for 1 checkpoint(s)" in w for w in t.warnings
    )
    assert any("MMLU" in w or "test/mmlu (nats/token)" in w for w in t.warnings)
    assert any("accuracy column(s) not imported" in w for w in t.warnings)
    assert any("16-token windows" in w for w in t.warnings)
    assert any("off-by-one" in w for w in t.warnings)


def test_flags_constant_per_run_kept_varying_dropped(latest_csv: Path) -> None:
    t = read_llm_line(latest_csv)
    assert "flag_intervention_tokenizer" in t.df.columns
    assert "flag_intervention_size" not in t.df.columns  # varies within org/a
    assert any("flag column 'flag_intervention_size' varies within run(s) org/a" in w for w in t.warnings)


def test_single_header_row_variant(tmp_path: Path) -> None:
    p = tmp_path / "resaved.csv"
    header = HEADER.replace("Intervention,Intervention", "Intervention Tokenizer,Intervention Size")
    p.write_text("\n".join([header, *ROWS]) + "\n")
    t = read_llm_line(p)
    assert len(t.checkpoints()) == 6  # the first data row is not eaten as a second header row


def test_not_an_llm_line_file(tmp_path: Path) -> None:
    p = tmp_path / "other.csv"
    p.write_text("model,loss\na,3.0\n")
    with pytest.raises(UserInputError, match=r"other\.csv: not a table of the llm-line paper"):
        read_llm_line(p)
    with pytest.raises(UserInputError, match="no such file"):
        read_llm_line(tmp_path / "missing.csv")


def test_bad_number_names_column_and_row(tmp_path: Path) -> None:
    rows = list(ROWS)
    rows[1] = rows[1].replace(",3.4,0.8,", ",3.4x,0.8,", 1)
    p = tmp_path / "bad.csv"
    p.write_text("\n".join([HEADER, SUBHEADER, *rows]) + "\n")
    with pytest.raises(
        UserInputError,
        match=r"bad\.csv: column 'C4 Validation Loss', data row 2 \(line 4 of the file\): '3\.4x' is not a number",
    ):
        read_llm_line(p)


def test_missing_factor_and_loss_columns_are_reported(tmp_path: Path) -> None:
    header = HEADER.split(",")
    drop = [header.index("Pretraining Data"), header.index("C4 Validation Loss")]

    def cut(line: str) -> str:
        return ",".join(v for i, v in enumerate(line.split(",")) if i not in drop)

    p = tmp_path / "cut.csv"
    p.write_text("\n".join([cut(HEADER), SUBHEADER[2:], *map(cut, ROWS)]) + "\n")
    t = read_llm_line(p)
    text = "\n".join(t.warnings)
    assert "factor column(s) 'Pretraining Data'" in text and "pretraining_data" in text
    assert "loss column(s) 'C4 Validation Loss'" in text
    c4_nats = (t.df["metric"] == "val/c4") & (t.df["unit"] == "nats/token")
    assert not c4_nats.any() and t.checkpoints()["pretraining_data"].isna().all()


# ------------------------------------------------------------------------------------------- real files
def test_real_latest_table(shared) -> None:
    path = shared.path("data", "llm_line", "latest_pm_hf.csv")
    raw = pd.read_csv(path, header=[0, 1])
    assert len(raw) == 129  # every data row is read (the second header row is not data)
    t = import_table("llm-line", [path])
    assert not [w for w in t.warnings if "column(s)" in w and "missing;" in w]  # no standard column absent
    ck = t.checkpoints()
    # every row is a checkpoint, the FineWeb-Edu 'final' row that repeats step 130000's losses included
    assert len(ck) == 129
    assert ck["run"].nunique() == 27
    assert ck["architecture"].value_counts().to_dict() == {
        "Llama": 61,
        "olmo": 46,
        "GPT": 12,
        "Mamba": 5,
        "Mamba2": 5,
    }
    assert ck["pretraining_data"].value_counts().to_dict() == {
        "Dolma": 46,
        "C4": 26,
        "The Pile": 22,
        "FineWeb-Edu": 18,
        "The Pile Deduped": 17,
    }
    assert ck["tokenizer"].fillna("<NA>").value_counts().to_dict() == {
        "gpt2-HF": 65,
        "<NA>": 46,
        "gpt-neox": 18,
    }
    assert ck.groupby("run").size()["HuggingFaceFW/ablation-model-fineweb-edu"] == 18
    metrics = set(t.metrics)
    assert {"val/c4", "val/pile_uc", "val/refinedweb", "val/slimpajama", "val/fineweb_edu"} <= metrics
    assert {"test/arc_easy", "test/hellaswag", "test/piqa", "test/copa", "test/social_iqa"} <= metrics
    assert "test/mmlu" not in metrics  # empty in the file
    assert t.df["value"].notna().all()
    text = "\n".join(t.warnings)
    assert (
        "duplicate measurement in run HuggingFaceFW/ablation-model-fineweb-edu: data row 26 (checkpoint "
        "'final') and data row 69 (checkpoint 'step130000')" in text
    )
    assert "both rows are kept, as checkpoints 'final' and 'step130000'" in text
    assert "HuggingFaceFW/ablation-model-c4 @ step20000, step135000" in text  # C4 rows lacking FineWeb-Edu
    assert "allenai/OLMo-1B (19), allenai/OLMo-7B (27)" in text
    # the file's raw counts (../shared/data/README.md) are the checkpoint counts
    flat = raw.droplevel(1, axis=1)
    assert flat["Architecture"].value_counts().to_dict() == {
        "Llama": 61,
        "olmo": 46,
        "GPT": 12,
        "Mamba": 5,
        "Mamba2": 5,
    }
    assert flat["Tokenizer"].fillna("<empty>").value_counts().to_dict() == {
        "gpt2-HF": 65,
        "<empty>": 46,
        "gpt-neox": 18,
    }


def test_real_older_export(shared) -> None:
    path = shared.path("data", "llm_line", "df_hf_pretrained_20250127-100514.csv")
    t = import_table("llm-line", [path])
    ck = t.checkpoints()
    assert len(ck) == 68  # 68 rows, two of them the same measurement (kept, reported)
    assert set(ck["architecture"]) == {"Llama", "GPT", "Mamba", "Mamba2"}
    assert "FineWeb-Edu" in set(ck["pretraining_data"])
    assert ck["tokenizer"].isna().all() and ck["step"].isna().all()
    assert "test/mmlu" in t.metrics
    slim = set(t.df.loc[t.df["metric"] == "val/slimpajama", "estimator"])
    assert slim and SLIM_EST not in slim
    (warning,) = [w for w in t.warnings if "exact duplicate rows" in w]
    assert "data row 30 (checkpoint 'rev-unknown-row30') and data row 49" in warning
