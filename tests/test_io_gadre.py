"""Importer of Gadre et al. 2024 model JSONs: a handmade folder in the released layout, then the real one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.io import import_table
from bayes_l2l.io.gadre import ESTIMATOR, read_gadre


def _result(path: str, loss: float, lo: float, hi: float, tokens: int) -> dict:
    return {
        "loss": loss,
        "loss_sequences_lower_95": lo,
        "loss_sequences_upper_95": hi,
        "loss_tokens_lower_95": loss - 0.001,
        "loss_tokens_upper_95": loss + 0.001,
        "sequences": tokens // 2048,
        "tokens": tokens,
        "val_data": [path],
    }


def _model(name: str, dataset: str, seed_in_args: bool = True) -> dict:
    args = ["--lr", "0.003", "--seed", "124"] if seed_in_args else ["--lr", "0.003"]
    return {
        "name": name,
        "dataset_name": dataset,
        "hyperparameters": {
            "model": "scaling/open_lm_configs/d=96_l=8_h=4.json",
            "tokens": 220000000,
            "warmup": 100,
            "lr": 0.003,
            "wd": 0.033,
            "global_bs": 64,
            "params": 10900000,
            "chinchilla_multiplier": 1.0,
        },
        "open_lm_args": args,
        "results": [
            _result("training/eval_data/c4_val/shard-{0000000..0000010}.tar", 4.1, 4.0, 4.2, 2048 * 100),
            _result("training/eval_data/val_tok_mult/paloma_ptb/00000001.tar", 5.0, 4.9, 5.1, 2048 * 10),
        ],
    }


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "c4_original-small.json").write_text(json.dumps(_model("c4_original-small", "c4_original")))
    (folder / "rpj-small.json").write_text(json.dumps(_model("rpj-small", "rpj", seed_in_args=False)))
    return folder


def test_handmade_folder(models: Path) -> None:
    t = read_gadre(models)
    assert len(t.checkpoints()) == 2
    ck = t.checkpoints().set_index("run")
    assert ck.loc["c4_original-small", "pretraining_data"] == "C4"
    assert ck.loc["rpj-small", "pretraining_data"] == "RedPajama"
    assert ck.loc["c4_original-small", "checkpoint"] == "final"
    assert ck.loc["c4_original-small", "seed"] == "124"
    assert ck.loc["c4_original-small", "tokenizer"] == "gpt-neox"
    assert ck.loc["c4_original-small", "model_config"] == "d=96_l=8_h=4"
    assert ck.loc["c4_original-small", "learning_rate"] == "0.003"
    row = t.df[(t.df["run"] == "rpj-small") & (t.df["metric"] == "val/c4")].iloc[0]
    assert row["value"] == pytest.approx(4.1)
    assert row["n"] == 2048 * 100
    assert row["stderr"] == pytest.approx(0.2 / (2 * 1.959963984540054))
    assert row["estimator"] == ESTIMATOR
    assert set(t.metrics) == {"val/c4", "val/paloma_ptb"}


def test_single_file_and_errors(models: Path, tmp_path: Path) -> None:
    assert len(read_gadre(models / "rpj-small.json")) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="no \\*.json model files"):
        read_gadre(empty)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserInputError, match=r"bad\.json: not readable as JSON"):
        read_gadre(bad)
    odd = _model("x", "pile")
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    with pytest.raises(
        UserInputError, match="dataset_name 'pile' is not one of c4_original, rpj, rw_original"
    ):
        read_gadre(tmp_path / "odd.json")
    del odd["results"]
    (tmp_path / "odd.json").write_text(json.dumps(odd | {"dataset_name": "rpj"}))
    with pytest.raises(UserInputError, match="missing key 'results'"):
        read_gadre(tmp_path / "odd.json")


def test_real_models(shared) -> None:
    folder = shared.path("data", "gadre2024", "exp_data", "models")
    t = import_table("gadre", [folder])
    ck = t.checkpoints()
    assert len(ck) == 104
    assert ck["pretraining_data"].value_counts().to_dict() == {"RedPajama": 35, "RefinedWeb": 35, "C4": 34}
    assert len(t.metrics) == 8
    assert (t.df.groupby("metric").size() == 104).all()
    assert t.df["stderr"].gt(0).all() and t.df["n"].gt(0).all()
    one = json.loads((folder / "c4_original-d=1024_l=24_h=8-0.25.json").read_text())
    c4 = t.df[(t.df["run"] == one["name"]) & (t.df["metric"] == "val/c4")].iloc[0]
    assert c4["value"] == one["results"][1]["loss"]
    assert c4["params"] == one["hyperparameters"]["params"]
