"""Factor levels print as the table wrote them: text verbatim, numbers as their shortest exact text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bayes_l2l.contrasts import condition_labels
from bayes_l2l.io import import_table
from bayes_l2l.io.describe import describe
from bayes_l2l.table import LossTable

BASE = dict(checkpoint="c", metric="val/c4", kind="validation", value=3.0, unit="nats/token", estimator="e")
NUMBERS = [1.5e-05, 3.0, 300000000.0, 0.1]


def _frame(values: list[object]) -> pd.DataFrame:
    return pd.DataFrame([dict(run=f"r{i}", learning_rate=v, **BASE) for i, v in enumerate(values)])


def test_numbers_are_their_shortest_exact_text() -> None:
    t = LossTable.from_frame(_frame(NUMBERS))
    assert t.df["learning_rate"].tolist() == ["1.5e-05", "3", "300000000", "0.1"]


def test_float32_numbers_keep_float32s_shortest_text(tmp_path: Path) -> None:
    frame = _frame(NUMBERS).astype({"learning_rate": "float32"})
    assert LossTable.from_frame(frame).df["learning_rate"].tolist() == ["1.5e-05", "3", "300000000", "0.1"]
    path = tmp_path / "f32.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path)
    levels = describe(LossTable.read(path))["factors"]["learning_rate"]["levels"]
    assert set(levels) == {"1.5e-05", "3", "300000000", "0.1"}
    assert float(np.float32(1.5e-05)) != 1.5e-05  # not the float64 1.5e-05, but prints as written


def test_csv_text_is_kept_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _frame(["1.5e-05", "3.0", "3e8", "0.10"]).to_csv(path, index=False)
    t = LossTable.read(path)
    assert t.df["learning_rate"].tolist() == ["1.5e-05", "3.0", "3e8", "0.10"]
    labels = condition_labels(t.checkpoints(), ["learning_rate"]).tolist()
    assert labels == ["learning_rate=1.5e-05", "learning_rate=3.0", "learning_rate=3e8", "learning_rate=0.10"]


def test_generic_import_keeps_the_factor_text_of_its_csv(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("model,lr,ctx,c4\nm1,3.0,2048,3.1\nm2,1e-3,2048.0,3.2\nm3,0.10,,3.3\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "identity: {run: model, checkpoint: {value: final}}\nfactors: {learning_rate: lr, context_length: {column: ctx}}\n"
        "metrics:\n  val/c4: {column: c4, unit: nats/token, estimator: e}\n"
    )
    t = import_table("generic", [data], mapping)
    ck = t.checkpoints().set_index("run")
    assert ck["learning_rate"].tolist() == ["3.0", "1e-3", "0.10"]
    assert ck["context_length"].tolist()[:2] == ["2048", "2048.0"] and pd.isna(ck["context_length"].iloc[2])
