"""Result store: atomic records, namespaces, reading as a LossTable, and the `table` command (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.cli import main
from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.store import (
    MARKER,
    ResultStore,
    accuracy_frame,
    atomic_write_json,
    pick_namespace,
    slug,
)
from bayes_l2l.table import LossTable, read_store

EST = "bayes-l2l/val-v1: test estimator"


def _record(run: str, ckpt: str, metric: str, value: float, **extra) -> dict:
    kind = "validation" if metric.startswith("val/") else "test"
    return {
        "run": run,
        "checkpoint": ckpt,
        "step": 100.0,
        "tokens": 2e8,
        "params": None,
        "factors": {"architecture": "Llama", "pretraining_data": "C4"},
        "metric": metric,
        "kind": kind,
        "estimator": EST,
        "rows": [
            {"unit": "nats/token", "value": value, "n": 1000, "stderr": 0.01},
            {"unit": "bits/byte", "value": value / 2.8, "n": 4000, "stderr": 0.004},
        ],
        "model": {"params_counted": 12345},
        **extra,
    }


def _store(tmp_path: Path) -> tuple[ResultStore, object]:
    st = ResultStore(tmp_path / "store", create=True)
    ns = st.namespace("ns-abc", {"fingerprint": "abc", "summary": "test settings"})
    ns.write(_record("r1", "step100", "val/c4", 3.5))
    ns.write(_record("r1", "step100", "test/arc_easy", 2.5, accuracy={"acc": 0.4, "acc_stderr": 0.05}))
    ns.write(_record("r1", "step/200", "val/c4", 3.2))
    return st, ns


def test_records_read_back_as_loss_table(tmp_path: Path):
    st, ns = _store(tmp_path)
    assert ns.done_metrics("r1", "step100") == {"val/c4", "test/arc_easy"}
    assert ns.done_metrics("r1", "step/200") == {"val/c4"}
    assert ns.done_metrics("r2", "x") == set()
    table = read_store(st.root)
    assert isinstance(table, LossTable) and len(table) == 6
    df = table.df
    assert set(df["checkpoint"]) == {"step100", "step/200"}
    assert set(df["params"]) == {12345.0}  # counted from the model when the manifest gives none
    row = df[(df["metric"] == "val/c4") & (df["unit"] == "bits/byte") & (df["checkpoint"] == "step100")]
    assert row["value"].item() == pytest.approx(3.5 / 2.8) and row["n"].item() == 4000
    acc = accuracy_frame(ns)
    assert acc.to_dict("records") == [
        {"run": "r1", "checkpoint": "step100", "metric": "test/arc_easy", "acc": 0.4, "acc_stderr": 0.05}
    ]


def test_atomic_write_leaves_no_temporary_and_ignores_stale_ones(tmp_path: Path):
    st, ns = _store(tmp_path)
    path = ns.record_path("r1", "step100", "val/c4")
    assert path.name == "val__c4.json" and not list(path.parent.glob(".*tmp*"))
    stale = path.parent / ".val__c9.json.tmp-99999"  # what a killed writer leaves behind
    stale.write_text('{"half": ', encoding="utf-8")
    assert len(read_store(st.root)) == 6
    atomic_write_json(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}


def test_store_refuses_foreign_or_other_version(tmp_path: Path):
    d = tmp_path / "notastore"
    d.mkdir()
    (d / "file.txt").write_text("user data")
    with pytest.raises(UserInputError, match="not an empty directory or a bayes-l2l store"):
        ResultStore(d, create=True)
    with pytest.raises(UserInputError, match="not a bayes-l2l result store"):
        ResultStore(d)
    st, _ = _store(tmp_path)
    (st.root / MARKER).write_text(json.dumps({"layout": "bayes-l2l-store", "version": 99}))
    with pytest.raises(UserInputError, match="v99 is not readable"):
        ResultStore(st.root)


def test_several_namespaces_need_a_choice(tmp_path: Path):
    st, _ = _store(tmp_path)
    other = st.namespace("ns-def", {"fingerprint": "def", "summary": "ctx=64"})
    other.write(_record("r1", "step100", "val/c4", 9.0))
    with pytest.raises(UserInputError, match="2 different evaluation configs .* --namespace"):
        pick_namespace(st, None)
    assert read_store(st.root, "ns-def").df["value"].max() == 9.0
    with pytest.raises(UserInputError, match="no namespace 'ns-zzz'"):
        read_store(st.root, "ns-zzz")
    with pytest.raises(UserInputError, match="different settings"):
        st.namespace("ns-def", {"fingerprint": "other"})


def test_failures_are_recorded_and_cleared(tmp_path: Path):
    _, ns = _store(tmp_path)
    ns.write_failure("r1", "step300", "OSError: gone", "user")
    assert [f["checkpoint"] for f in ns.failures()] == ["step300"]
    ns.clear_failure("r1", "step300")
    assert ns.failures() == []


def test_slug_is_file_safe():
    assert slug("val/c4") == "val__c4"
    assert slug("main") == "main" and slug("a b:c") == "a_b_c" and slug("..") == "_.._"


def test_table_command(tmp_path: Path, capsys):
    st, _ = _store(tmp_path)
    out = tmp_path / "t.parquet"
    acc = tmp_path / "acc.csv"
    assert main(["table", str(st.root), "-o", str(out), "--accuracy", str(acc), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 6 and summary["namespace"] == "ns-abc" and summary["runs"] == ["r1"]
    assert LossTable.read(out).df.equals(read_store(st.root).df)
    assert pd.read_csv(acc)["acc"].tolist() == [0.4]
    assert main(["table", str(st.root), "-o", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["table", str(st.root), "-o", str(out), "--overwrite"]) == 0
    assert main(["table", str(st.root)]) == 0  # summary only
    assert "val/c4" in capsys.readouterr().out
    assert main(["table", str(tmp_path / "nowhere")]) == 2
    assert "not a bayes-l2l result store" in capsys.readouterr().err
    assert main(["table", str(st.root), "-o", str(tmp_path / "t.xlsx")]) == 2


def test_prepared_jobs_carry_no_documents_and_read_the_snapshot(tmp_path: Path):
    import pickle

    from bayes_l2l.evaluate.config import parse_config
    from bayes_l2l.evaluate.runner import prepare

    data = tmp_path / "c.jsonl"
    docs = [f"document {i} " + "wörds " * 200 for i in range(50)]
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    prep = prepare(parse_config({"corpora": {"c": {"path": str(data)}}}), str(tmp_path / "store"))
    blob = pickle.dumps(prep)
    assert len(blob) < 5000 < sum(len(d) for d in docs)  # the job gets the hash, not the text
    data.unlink()  # a cluster job may not see the original file: it reads the namespace's snapshot
    again = pickle.loads(blob)
    assert again.corpora[0].documents == tuple(docs) and again.namespace == prep.namespace
    snap = tmp_path / "store" / prep.namespace / "corpora" / "c.jsonl"
    snap.write_text(json.dumps({"text": "tampered"}) + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="does not match its hash"):
        pickle.loads(blob)
