"""The mini study's own scripts on small inputs: data preparation (splits, no leaks, two tokenizers), one
short training run per architecture (checkpoints a transformers loader can read), the manifest the
study hands to the evaluator, and the bundled table's design."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parents[1] / "analysis" / "mini_study"
sys.path.insert(0, str(STUDY))

from conftest import shared_path  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("transformers")

import prepare  # noqa: E402
import run_study  # noqa: E402
import train  # noqa: E402


def test_chunks_cut_at_line_boundaries_and_keep_every_line() -> None:
    text = "".join(f"line {i} " + "x" * 50 + "\n" for i in range(40))
    docs = prepare.chunks(text, size=200)
    assert all(len(d) >= 150 for d in docs[:-1])
    assert "\n".join(docs).split() == text.split()


def test_cut_keeps_whole_lines_within_the_budget() -> None:
    text = "ab\ncd\nef\n"
    assert prepare.cut(text, 7) == "ab\ncd\n" and prepare.cut(text, 100) == text


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    shared = shared_path("evaldata", "corpora").parents[1]
    out = tmp_path_factory.mktemp("study")
    assert prepare.main(["--shared", str(shared), "--out", str(out)]) == 0
    return out / "data"


def test_prepare_writes_disjoint_splits_and_two_tokenizers(prepared) -> None:
    record = json.loads((prepared / "data.json").read_text())
    assert set(record["train"]) == {"c4", "stories", "code", "mix"}
    assert set(record["valid"]) == {"c4", "stories", "code", "wiki"}
    for name, info in record["train"].items():
        assert 1_900_000 < info["bytes"] <= prepare.TRAIN_BYTES, name
    for name, info in record["valid"].items():
        assert info["documents"] == prepare.EVAL_DOCS, name
    from transformers import AutoTokenizer

    sizes = {n: len(AutoTokenizer.from_pretrained(prepared / "tokenizers" / n)) for n in prepare.TOKENIZERS}
    assert sizes == prepare.TOKENIZERS
    assert record["tokenizers"]["bpe4k"]["trained_on"] == ["c4", "code", "stories"]  # not on the mixture
    mix = (prepared / "train" / "mix.txt").read_text()
    c4_lines = sum(line in mix for line in (prepared / "train" / "c4.txt").read_text().splitlines()[:50])
    assert (
        c4_lines == 50 and "Once upon a time" in mix
    )  # both halves present    # the held-out C4 documents come from documents the training split does not contain
    train_c4 = (prepared / "train" / "c4.txt").read_text()
    held = [json.loads(line)["text"] for line in (prepared / "valid" / "c4.jsonl").read_text().splitlines()]
    assert not any(d in train_c4 for d in held)


@pytest.mark.parametrize("arch", ["llama", "neox", "mamba"])
def test_train_saves_loadable_checkpoints_and_a_record(prepared, tmp_path, arch) -> None:
    out = tmp_path / arch
    args = ["--arch", arch, "--data", "code", "--tokenizer", "bpe1k", "--size", "s", "--lr", "3e-3"]
    args += ["--seed", "0", "--out", str(out), "--data-dir", str(prepared), "--steps", "20"]
    assert train.main(args) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["checkpoints"] == [20] and record["recipe"]["arch"] == arch
    first, last = record["log"][0]["loss"], record["log"][-1]["loss"]
    assert last < first  # 20 steps of AdamW lower the training loss from ln(V) ~ 6.9
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "step20")
    assert sum(p.numel() for p in model.parameters()) == record["params"]
    assert train.main(args) == 0  # a finished run is skipped, not retrained
    assert json.loads((out / "run.json").read_text()) == record


def test_manifest_is_valid_and_labels_the_intervention(tmp_path, monkeypatch) -> None:
    from bayes_l2l.evaluate.manifest import parse_manifest

    run = next(r for r in run_study.DESIGN if r.name == "arch-mamba")
    monkeypatch.setattr(run_study, "OUT", tmp_path)
    for step in (20, 40):
        (tmp_path / "ckpts" / run.name / f"step{step}").mkdir(parents=True)
        (tmp_path / "ckpts" / run.name / f"step{step}" / "config.json").write_text("{}")
    manifest = parse_manifest(run_study.manifest(run, 2048), source="test")
    ckpts = manifest.checkpoints
    assert [c.step for c in ckpts] == [20, 40] and ckpts[-1].tokens == 40 * 2048
    assert ckpts[0].factors["architecture"] == "Mamba" and ckpts[0].factors["pretraining_data"] == "C4"


def test_design_changes_one_factor_at_a_time() -> None:
    base = run_study.Run("base")
    fields = ("arch", "data", "tokenizer", "size", "lr")
    for run in run_study.DESIGN:
        changed = [f for f in fields if getattr(run, f) != getattr(base, f)]
        assert len(changed) <= 1, run.name
        assert (run.intervention in ("base", "seed")) == (not changed), run.name
