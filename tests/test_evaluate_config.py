"""Evaluation configs and corpus reading: validation with clear messages, namespaces, local formats."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.config import PAPER_TASKS, CorpusSpec, load_config, parse_config
from bayes_l2l.evaluate.corpora import load_corpus
from bayes_l2l.evaluate.runner import namespace_meta

REPO = Path(__file__).resolve().parents[1]


def _cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_configs_load():
    paper = load_config(REPO / "configs" / "eval" / "paper.yaml")
    assert [c.name for c in paper.corpora] == ["c4", "fineweb_edu", "pile_uc", "refinedweb", "slimpajama"]
    assert {c.documents for c in paper.corpora} == {5000}
    assert tuple(sorted(t.name for t in paper.tasks)) == tuple(sorted(PAPER_TASKS))
    assert paper.context_length == 2048 and paper.pool == "tokens" and paper.truncation == "keep_start"
    offline = load_config(REPO / "configs" / "eval" / "offline.yaml")
    assert offline.corpora[0].path is not None and offline.corpora[0].path.name.endswith(".jsonl")
    assert offline.task_data is not None and offline.task_data.name == "tasks"


def test_relative_paths_and_task_forms(tmp_path: Path):
    p = _cfg(
        tmp_path,
        """
context_length: 128
corpora:
  web: {path: data/web.jsonl, documents: 10}
tasks:
  names: [arc_easy, {name: hellaswag, metric: hs, num_fewshot: 0}]
  data_dir: tasks
  limit: 5
engine: {device: cpu, batch_tokens: 4096}
""",
    )
    cfg = load_config(p)
    assert cfg.corpora[0].path == (tmp_path / "data" / "web.jsonl").resolve()
    assert [(t.name, t.metric) for t in cfg.tasks] == [("arc_easy", "arc_easy"), ("hellaswag", "hs")]
    assert cfg.task_data == (tmp_path / "tasks").resolve() and cfg.task_limit == 5
    assert cfg.engine.batch_tokens == 4096 and cfg.engine.device == "cpu"
    (tmp_path / "other").mkdir()
    assert cfg.with_task_data(tmp_path / "other").task_data == (tmp_path / "other").resolve()
    with pytest.raises(UserInputError, match="--task-data"):
        cfg.with_task_data(tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("corpora: {}\n", "nothing to evaluate"),
        ("context_lenght: 10\ntasks: [copa]\n", "unknown key(s) context_lenght"),
        ("truncation: middle\ntasks: [copa]\n", "'truncation' is 'middle'"),
        ("prefix: bos\ntasks: [copa]\n", "expected one of bos_or_eos, tokenizer, none"),
        ("context_length: 1\ntasks: [copa]\n", "'context_length' must be an integer >= 2"),
        ("corpora:\n  C4: {path: x.jsonl}\n", "lowercase snake_case"),
        ("corpora:\n  c4: {path: x.jsonl, hub: {dataset: a}}\n", "exactly one of 'path'"),
        ("corpora:\n  c4: {path: x.csv}\n", "unsupported file type"),
        ("corpora:\n  c4: {path: x.jsonl, documents: 0}\n", "'documents' must be an integer >= 1"),
        ("corpora:\n  c4: {path: x.jsonl, docs: 3}\n", "unknown key(s) docs"),
        ("corpora:\n  c4: {hub: {name: en}}\n", "'hub' must be"),
        ("tasks: [copa, {name: copa}]\n", "used twice"),
        ("tasks: {names: [copa], num_fewshot: -1}\n", "num_fewshot"),
        ("tasks: {names: [copa], include: [nowhere]}\n", "not a directory"),
        ("tasks: [copa]\nengine: {device: tpu}\n", "engine.device"),
        ("tasks: [copa]\nengine: {batch_size: 3}\n", "unknown key(s) batch_size"),
        ("tasks: [copa]\nengine: {dtype: int8}\n", "engine.dtype"),
        ("schema: bayes-l2l/eval-config/v7\ntasks: [copa]\n", "not supported"),
        ("tasks: [copa\n", "not valid YAML"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, needle: str):
    p = _cfg(tmp_path, text)
    with pytest.raises(UserInputError) as err:
        load_config(p)
    assert needle in str(err.value)
    assert str(p) in str(err.value)


def test_namespace_depends_on_estimator_and_data_not_engine(tmp_path: Path):
    data = tmp_path / "c.jsonl"
    data.write_text('{"text": "hello world"}\n{"text": "second doc"}\n', encoding="utf-8")
    base = {"corpora": {"c": {"path": str(data)}}, "context_length": 64}
    cfg = parse_config(base, "a")
    corpora = (load_corpus(cfg.corpora[0]),)
    fp = namespace_meta(cfg, corpora)["fingerprint"]
    assert namespace_meta(cfg.with_engine(device="cpu", batch_tokens=7), corpora)["fingerprint"] == fp
    assert namespace_meta(parse_config({**base, "context_length": 32}, "b"), corpora)["fingerprint"] != fp
    assert namespace_meta(parse_config({**base, "pool": "documents"}, "b"), corpora)["fingerprint"] != fp
    data.write_text('{"text": "hello world!"}\n{"text": "second doc"}\n', encoding="utf-8")
    changed = (load_corpus(cfg.corpora[0]),)
    assert namespace_meta(cfg, changed)["fingerprint"] != fp  # same config, different data


def test_corpus_formats(tmp_path: Path):
    rows = [{"text": f"doc {i}", "id": i} for i in range(5)] + [{"text": "   ", "id": 9}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "a.json").write_text(json.dumps(rows), encoding="utf-8")
    pd.DataFrame({"body": [r["text"] for r in rows]}).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "a.txt").write_text("doc 0\n\ndoc 1\nmore\n \n\ndoc 2", encoding="utf-8")
    jl = load_corpus(CorpusSpec("a", path=tmp_path / "a.jsonl", documents=3))
    assert jl.documents == ("doc 0", "doc 1", "doc 2") and len(jl.sha256) == 64
    assert load_corpus(CorpusSpec("a", path=tmp_path / "a.json", documents=10)).documents[-1] == "doc 4"
    pq = load_corpus(CorpusSpec("a", path=tmp_path / "a.parquet", text_field="body", documents=10))
    assert len(pq.documents) == 5  # the blank document is skipped
    txt = load_corpus(CorpusSpec("a", path=tmp_path / "a.txt", split="blank_lines", documents=10))
    assert txt.documents == ("doc 0", "doc 1\nmore", "doc 2")
    assert len(load_corpus(CorpusSpec("a", path=tmp_path / "a.txt", split="lines")).documents) == 4
    assert (
        load_corpus(CorpusSpec("a", path=tmp_path / "a.txt", split="whole")).documents[0].startswith("doc 0")
    )


def test_corpus_errors(tmp_path: Path):
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"text": "ok"}\n{not json}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"b.jsonl, line 2: not valid JSON"):
        load_corpus(CorpusSpec("b", path=bad))
    bad.write_text('{"content": "ok"}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"no field 'text' \(found: content\); set 'text_field'"):
        load_corpus(CorpusSpec("b", path=bad))
    with pytest.raises(UserInputError, match="not found"):
        load_corpus(CorpusSpec("b", path=tmp_path / "none.jsonl"))


def test_shared_c4_sample_reads(shared):
    path = shared.path("evaldata", "corpora", "c4", "c4_en_train_first1000.jsonl")
    c = load_corpus(CorpusSpec("c4", path=path, documents=5000))
    assert len(c.documents) == 1000  # the file holds 1,000 documents; all of them are used
