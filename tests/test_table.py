"""The LossTable schema: malformed input is refused with a message that names the problem and the fix;
persistence round trips; wide / xarray views; named averages that refuse to mix units or estimators."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_l2l.errors import LossTableError, UserInputError
from bayes_l2l.table import LossTable, read_table


def good_frame() -> pd.DataFrame:
    """2 runs x 2 checkpoints x (val/c4, val/pile_uc, test/piqa) in nats/token; valid."""
    rows = []
    for run, data in (("r1", "C4"), ("r2", "The Pile")):
        for step in (100, 200):
            for metric, base in (("val/c4", 3.5), ("val/pile_uc", 3.0), ("test/piqa", 2.5)):
                rows.append(
                    {
                        "run": run,
                        "checkpoint": f"step{step}",
                        "step": step,
                        "tokens": step * 1e6,
                        "params": 1e8,
                        "pretraining_data": data,
                        "context_length": 2048,
                        "metric": metric,
                        "kind": "validation" if metric.startswith("val/") else "test",
                        "value": base - step / 1000,
                        "unit": "nats/token",
                        "estimator": "est:a",
                        "n": 100,
                        "stderr": 0.01,
                    }
                )
    return pd.DataFrame(rows)


def _set(col: str, value: object, row: int = 2) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df[col] = df[col].astype(object)  # pandas 3 refuses to upcast in place
        df.loc[row, col] = value
        return df

    return edit


def _drop_col(col: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda df: df.drop(columns=col)


def _duplicate_row(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[0]]], ignore_index=True)


def _factor_varies(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[df.index[(df["run"] == "r1") & (df["checkpoint"] == "step200")], "pretraining_data"] = "Dolma"
    return df


def _step_varies_in_checkpoint(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[1, "step"] = 150  # row 0 and row 1 are both r1@step100
    return df


MALFORMED = [
    ("missing column", _drop_col("unit"), "missing required column(s) unit"),
    ("missing run column", _drop_col("run"), "missing required column(s) run"),
    ("empty run", _set("run", "  "), "column 'run' is empty in row 3"),
    ("empty estimator", _set("estimator", None), "column 'estimator' is empty in row 3"),
    ("NaN value", _set("value", np.nan), "column 'value' is missing (NaN) in row 3"),
    ("infinite value", _set("value", np.inf), "value is infinite"),
    ("non-numeric value", _set("value", "3.2 nats"), "'3.2 nats' is not a number"),
    ("non-numeric step", _set("step", "late"), "column 'step', row 3"),
    ("bad metric id", _set("metric", "C4 Loss"), "'C4 Loss' is not a canonical metric id"),
    ("metric without prefix", _set("metric", "c4"), "use val/<corpus> or test/<task>"),
    ("unknown kind", _set("kind", "train"), "'train' is not one of validation, test"),
    ("kind/prefix mismatch", _set("kind", "test", row=0), "val/* metrics are kind 'validation'"),
    ("unknown unit", _set("unit", "nats"), "'nats' is not a known unit"),
    ("percentage in a loss column", _set("value", 55.0), "outside the plausible range (0.0, 25.0]"),
    ("zero loss (an accuracy of 0?)", _set("value", 0.0), "is it an accuracy, a percentage or a perplexity"),
    ("negative loss (a log-likelihood?)", _set("value", -2.3), "outside the plausible range"),
    ("bits/byte too large", lambda df: _set("value", 20.0)(_set("unit", "bits/byte")(df)), "(0.0, 16.0]"),
    (
        "negative step",
        _set("step", -5.0),
        "column 'step', row 3 (run=r1, checkpoint=step100, metric=test/piqa)",
    ),
    ("negative tokens", _set("tokens", -1.0), "must be non-negative"),
    ("zero params", _set("params", 0.0), "column 'params', row 3"),
    ("zero n", _set("n", 0.0), "column 'n', row 3 (run=r1"),
    ("fractional n", _set("n", 2.5), "must be a positive count"),
    (
        "negative stderr",
        _set("stderr", -0.1),
        "column 'stderr', row 3 (run=r1, checkpoint=step100, metric=test/piqa)",
    ),
    ("duplicate checkpoint rows", _duplicate_row, "duplicate checkpoint rows: row 1"),
    (
        "factor not constant in a run",
        _factor_varies,
        "run 'r1' has several values of factor 'pretraining_data'",
    ),
    ("identity not constant in a checkpoint", _step_varies_in_checkpoint, "has different 'step' values"),
    ("empty table", lambda df: df.iloc[0:0], "the table has no rows"),
]


@pytest.mark.parametrize(("case", "edit", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frames_are_refused_with_a_useful_message(case: str, edit, message: str) -> None:
    with pytest.raises(LossTableError) as info:
        LossTable.from_frame(edit(good_frame()), source="bad.csv")
    text = str(info.value)
    assert text.startswith("bad.csv: "), text
    assert message in text, text


def test_table_errors_are_user_input_errors() -> None:
    assert issubclass(LossTableError, UserInputError)


def test_valid_frame_normalises_dtypes() -> None:
    t = LossTable.from_frame(good_frame(), source="ok")
    assert t.df["context_length"].dtype == "string"
    assert set(t.df["context_length"]) == {"2048"}  # 2048 (int) -> '2048', not '2048.0'
    assert t.df["step"].dtype == float
    assert t.factors == ["pretraining_data", "context_length"]
    assert t.runs == ["r1", "r2"]
    assert len(t.checkpoints()) == 4


# ------------------------------------------------------------------------------------------- files
def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LossTableError, match="no such file"):
        read_table(tmp_path / "nope.parquet")


def test_read_unknown_suffix(tmp_path: Path) -> None:
    p = tmp_path / "table.txt"
    p.write_text("run,checkpoint\n")
    with pytest.raises(LossTableError, match=r"unknown table format '\.txt'; expected \.parquet or \.csv"):
        read_table(p)


def test_read_unreadable_parquet(tmp_path: Path) -> None:
    p = tmp_path / "broken.parquet"
    p.write_text("not parquet at all")
    with pytest.raises(LossTableError, match="could not be read as parquet"):
        read_table(p)


def test_read_csv_that_is_not_a_loss_table(tmp_path: Path) -> None:
    p = tmp_path / "other.csv"
    pd.DataFrame({"model": ["a"], "loss": [3.0]}).to_csv(p, index=False)
    with pytest.raises(LossTableError, match=r"other\.csv: missing required column\(s\) run, checkpoint"):
        read_table(p)


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    t = LossTable.from_frame(good_frame())
    out = t.save(tmp_path / "t.parquet")
    before = out.read_bytes()
    with pytest.raises(
        LossTableError, match="exists already; choose another output path or pass --overwrite"
    ):
        t.save(out)
    assert out.read_bytes() == before
    t.save(out, overwrite=True)
    with pytest.raises(LossTableError, match="exists already"):
        t.to_csv(out)


def test_save_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(LossTableError, match=r"unknown output format '\.xlsx'"):
        LossTable.from_frame(good_frame()).save(tmp_path / "t.xlsx")


def test_parquet_round_trip_keeps_values_dtypes_and_warnings(tmp_path: Path) -> None:
    t = LossTable.from_frame(good_frame(), source="src.csv", warnings=["w1: something", "w2"])
    back = read_table(t.save(tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(back.df, t.df)
    assert back.warnings == ["w1: something", "w2"]
    assert back.source == str(tmp_path / "t.parquet")


def test_csv_round_trip_keeps_values(tmp_path: Path) -> None:
    t = LossTable.from_frame(good_frame(), warnings=["lost in CSV"])
    back = read_table(t.save(tmp_path / "t.csv"))
    pd.testing.assert_frame_equal(back.df, t.df, check_dtype=False)
    assert back.warnings == []  # documented: CSV has no metadata


def test_csv_round_trip_keeps_missing_factor_labels_missing(tmp_path: Path) -> None:
    df = good_frame()
    df["tokenizer"] = pd.NA
    back = read_table(LossTable.from_frame(df).save(tmp_path / "t.csv"))
    assert back.df["tokenizer"].isna().all()


# ------------------------------------------------------------------------------------------- views
def test_wide_view_one_row_per_checkpoint() -> None:
    t = LossTable.from_frame(good_frame())
    w = t.wide()
    assert len(w) == 4
    assert {"val/c4", "val/pile_uc", "test/piqa", "pretraining_data"} <= set(w.columns)
    row = w[(w["run"] == "r2") & (w["checkpoint"] == "step200")].iloc[0]
    assert row["val/c4"] == pytest.approx(3.3)
    assert row["pretraining_data"] == "The Pile"
    assert list(t.wide(metrics=["val/c4"]).filter(like="/").columns) == ["val/c4"]


def test_xarray_view() -> None:
    ds = LossTable.from_frame(good_frame()).to_xarray()
    assert ds["value"].dims == ("checkpoint_id", "metric")
    assert ds.sizes == {"checkpoint_id": 4, "metric": 3}
    v = ds["value"].sel(checkpoint_id="r1@step100", metric="test/piqa")
    assert float(v) == pytest.approx(2.4)
    assert "pretraining_data" in ds.coords


def test_where_selects_and_errors() -> None:
    t = LossTable.from_frame(good_frame())
    assert set(t.where(pretraining_data="C4").runs) == {"r1"}
    assert len(t.where(step="200").checkpoints()) == 2
    with pytest.raises(LossTableError, match="column 'optimizer'"):
        t.where(optimizer="adam")
    with pytest.raises(LossTableError, match="no rows match pretraining_data=Dolma"):
        t.where(pretraining_data="Dolma")


# ------------------------------------------------------------------------------------------- averages
def test_mean_of_two_metrics() -> None:
    t = LossTable.from_frame(good_frame())
    s = t.metric_series("mean(val/c4, val/pile_uc)")
    r = s[(s["run"] == "r1") & (s["checkpoint"] == "step100")].iloc[0]
    assert r["value"] == pytest.approx((3.4 + 2.9) / 2)
    assert r["unit"] == "nats/token"
    avg = t.with_average("mean(val/c4,val/pile_uc)")
    assert "val/mean_c4_pile_uc" in avg.metrics
    assert set(avg.df.loc[avg.df["metric"] == "val/mean_c4_pile_uc", "estimator"]) == {"mean(est:a)"}


def _paper_like() -> pd.DataFrame:
    """One checkpoint with the 5 validation corpora of val/avg5; SlimPajama by another estimator."""
    rows = []
    for i, corpus in enumerate(("c4", "fineweb_edu", "pile_uc", "refinedweb", "slimpajama")):
        rows.append(
            {
                "run": "r",
                "checkpoint": "final",
                "metric": f"val/{corpus}",
                "kind": "validation",
                "value": 3.0 + i / 10,
                "unit": "nats/token",
                "estimator": "window16" if corpus == "slimpajama" else "window50",
            }
        )
    return pd.DataFrame(rows)


def test_named_average_refuses_mixed_estimators_unless_allowed() -> None:
    t = LossTable.from_frame(_paper_like())
    with pytest.raises(LossTableError, match="refusing to average 'val/avg5' across different estimators"):
        t.metric_series("val/avg5")
    mixed = t.metric_series("val/avg5", allow_mixed=True)
    assert mixed["value"].iloc[0] == pytest.approx(3.2)
    four = t.metric_series("val/avg4")
    assert four["value"].iloc[0] == pytest.approx((3.0 + 3.1 + 3.2 + 3.3) / 4)


def test_average_refuses_mixed_units() -> None:
    df = _paper_like()
    df["estimator"] = "same"
    df.loc[0, ["unit", "value"]] = ["bits/byte", 1.0]
    with pytest.raises(LossTableError, match="across different units"):
        LossTable.from_frame(df).metric_series("val/avg4")


def test_average_needs_every_component() -> None:
    t = LossTable.from_frame(good_frame())
    with pytest.raises(
        LossTableError,
        match=r"metric\(s\) test/arc_challenge, test/arc_easy.*not in the table \(needed for .test/avg7.\)",
    ):
        t.metric_series("test/avg7")
    with pytest.raises(LossTableError, match="needs at least two metrics"):
        t.metric_series("mean(val/c4)")


def test_average_leaves_out_incomplete_checkpoints_with_a_warning() -> None:
    df = good_frame()
    df = df[~((df["run"] == "r2") & (df["checkpoint"] == "step100") & (df["metric"] == "val/c4"))]
    t = LossTable.from_frame(df)
    s = t.metric_series("mean(val/c4,val/pile_uc)")
    assert len(s) == 3
    assert any("1 checkpoint(s) lack one of its 2 components" in w for w in t.warnings)


def test_named_average_values_are_plain_means() -> None:
    t = LossTable.from_frame(_paper_like().assign(estimator="e"))
    assert t.metric_series("val/avg5")["value"].iloc[0] == pytest.approx(
        math.fsum(3.0 + i / 10 for i in range(5)) / 5
    )


# ------------------------------------------------------------------------------------ units, labels, flags
def _two_units() -> pd.DataFrame:
    base = {"run": "r", "checkpoint": "c", "metric": "val/c4", "kind": "validation", "estimator": "e"}
    return pd.DataFrame(
        [base | {"value": 3.0, "unit": "nats/token"}, base | {"value": 1.0, "unit": "bits/byte"}]
    )


def test_wide_and_xarray_refuse_a_metric_in_two_units_without_unit() -> None:
    df = pd.concat([_two_units(), _two_units().iloc[[0]].assign(metric="val/pile_uc")], ignore_index=True)
    t = LossTable.from_frame(df, source="two.parquet")
    with pytest.raises(LossTableError, match=r"two\.parquet: 1 metric\(s\) are stored in two units: val/c4 "
                       r"\(bits/byte, nats/token\); pass unit="):  # fmt: skip
        t.wide()
    with pytest.raises(LossTableError, match="pass unit="):
        t.to_xarray()
    # a metric selection in one unit needs no unit=; unit= picks the values
    assert t.wide(metrics=["val/pile_uc"])["val/pile_uc"].tolist() == [3.0]
    assert t.wide(unit="bits/byte")["val/c4"].tolist() == [1.0]
    assert t.wide(unit="nats/token")["val/c4"].tolist() == [3.0]
    assert float(t.to_xarray(unit="bits/byte")["value"].sel(checkpoint_id="r@c", metric="val/c4")) == 1.0


def test_csv_round_trip_keeps_factor_labels_verbatim(tmp_path: Path) -> None:
    labels = {"learning_rate": "3e-4", "weight_decay": "0.10", "optimizer": "NA", "scheduler": "None"}
    df = _two_units().assign(run="NA", checkpoint="0010", step=10, **labels)
    t = LossTable.from_frame(df)
    back = read_table(t.save(tmp_path / "t.csv"))
    for col, label in labels.items():
        assert back.df[col].tolist() == [label, label], col
    assert back.df["run"].tolist() == ["NA", "NA"] and back.df["checkpoint"].tolist() == ["0010", "0010"]
    assert back.df["step"].dtype == float and back.df["value"].tolist() == [3.0, 1.0]
    pd.testing.assert_frame_equal(back.df, t.df)


def test_flag_columns_are_not_factors_but_must_be_constant_in_a_run() -> None:
    df = good_frame().assign(flag_intervention_tokenizer=True)
    t = LossTable.from_frame(df)
    assert t.factors == ["pretraining_data", "context_length"]
    assert t.flags == ["flag_intervention_tokenizer"]
    assert set(t.checkpoints()["flag_intervention_tokenizer"]) == {"True"}
    df.loc[df["checkpoint"] == "step200", "flag_intervention_tokenizer"] = False
    with pytest.raises(
        LossTableError, match="run 'r1' has several values of factor 'flag_intervention_tokenizer'"
    ):
        LossTable.from_frame(df)
