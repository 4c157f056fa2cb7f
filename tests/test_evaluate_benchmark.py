"""Smoke test of benchmarks/eval_speed.py --tiny: all three methods run and report consistent fields."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("lm_eval")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "eval_speed.py"


def test_eval_speed_tiny_runs(tmp_path: Path, capsys):
    spec = importlib.util.spec_from_file_location("eval_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "speed.json"
    assert mod.main(["--tiny", "--docs", "3", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["tiny"] and res["context_length"] == 64 and res["peak_tflops"] is None
    assert set(res["models"]) == {"llama-tiny", "neox-tiny"}
    for entry in res["models"].values():
        for method in ("ours", "window50", "lm_eval"):
            m = entry[method]
            assert m["scored_tokens"] > 0 and m["seconds"] > 0 and m["tokens_per_second"] > 0
            assert m["mfu"] is None  # no peak known on a CPU
            assert 3.0 < m["mean_nll"] < 8.0  # a random model: about ln(vocab = 300) = 5.7 nats
        # lm-eval's rolling windows score every token of a document; ours the first ctx - 1
        assert entry["lm_eval"]["scored_tokens"] >= entry["ours"]["scored_tokens"]
    assert "tok/s" in capsys.readouterr().err


def test_flop_model():
    spec = importlib.util.spec_from_file_location("eval_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # one sequence of 3 tokens: 2*N*3 matmul FLOPs + 2*layers*hidden*(1+2+3) attention FLOPs
    assert mod.forward_flops([3], n_matmul=10, layers=2, hidden=4) == 2 * 10 * 3 + 2 * 2 * 4 * 6
