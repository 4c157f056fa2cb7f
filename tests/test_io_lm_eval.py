"""Importer of lm-eval output folders, on a fixture written by a real lm-eval 0.4.13 run.

tests/fixtures/lm_eval/make_fixture.py ran lm-eval offline on a tiny random GPT-2 over two hand-written
tasks; expected.json holds the gold-answer cloze losses computed there from lm-eval's in-memory results and
lm-eval's own tokenisation (HFLM._encode_pair), independently of the importer under test.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.io import import_table
from bayes_l2l.io.lm_eval import _model_args, _step_of, read_lm_eval

FIXTURE = Path(__file__).parent / "fixtures" / "lm_eval"
OUTPUT = FIXTURE / "output"
TOKENIZER = FIXTURE / "tokenizer"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    dest = tmp_path / "out"
    shutil.copytree(OUTPUT, dest)
    return dest


def _value(t, metric: str, unit: str) -> float:
    sel = t.df[(t.df["metric"] == metric) & (t.df["unit"] == unit)]
    assert len(sel) == 1
    return float(sel["value"].iloc[0])


def test_samples_strings_read_and_losses_match_lm_eval_oracle() -> None:
    t = read_lm_eval(OUTPUT, tokenizer=TOKENIZER)
    for task, exp in EXPECTED.items():
        assert _value(t, f"test/{task}", "nats/token") == pytest.approx(exp["nats_per_token"], rel=1e-12)
        assert _value(t, f"test/{task}", "bits/byte") == pytest.approx(exp["bits_per_byte"], rel=1e-12)
    assert set(t.df["n"]) == {6.0, 5.0}
    assert t.df["stderr"].gt(0).all()
    ck = t.checkpoints().iloc[0]
    assert (ck["run"], ck["checkpoint"], ck["step"]) == ("tiny-gpt2", "step100", 100.0)
    est = set(t.df["estimator"])
    assert "lm-eval:cloze-correct-only;sum-nll/true-tokens;0-shot;mean-over-questions" in est
    assert "lm-eval:cloze-correct-only;sum-nll/(ln2*utf8-bytes);0-shot;mean-over-questions" in est


def test_stderr_is_the_standard_error_over_questions() -> None:
    t = read_lm_eval(OUTPUT)
    sfile = next(OUTPUT.rglob("samples_toy_qa_*.jsonl"))
    per_q = []
    for line in sfile.read_text().splitlines():
        s = json.loads(line)
        options = s["doc"]["options"]
        gold = options.index(s["target"])
        cont = s["arguments"][f"gen_args_{gold}"]["arg_1"]
        per_q.append(-float(s["filtered_resps"][gold][0]) / (math.log(2) * len(cont.encode())))
    mean = sum(per_q) / len(per_q)
    sd = math.sqrt(sum((x - mean) ** 2 for x in per_q) / (len(per_q) - 1))
    row = t.df[t.df["metric"] == "test/toy_qa"].iloc[0]
    assert row["value"] == pytest.approx(mean)
    assert row["stderr"] == pytest.approx(sd / math.sqrt(len(per_q)))


def test_without_tokenizer_only_bits_per_byte_and_a_warning() -> None:
    t = read_lm_eval(OUTPUT)
    assert set(t.df["unit"]) == {"bits/byte"}
    assert any("pass --tokenizer DIR" in w for w in t.warnings)


def test_run_checkpoint_and_factor_overrides() -> None:
    t = import_table(
        "lm-eval", [OUTPUT], run="my-model", checkpoint="step_00047700", factors={"pretraining_data": "toy"}
    )
    ck = t.checkpoints().iloc[0]
    assert (ck["run"], ck["checkpoint"], ck["step"], ck["pretraining_data"]) == (
        "my-model",
        "step_00047700",
        47700.0,
        "toy",
    )


def test_results_file_path_works_too() -> None:
    rfile = next(OUTPUT.rglob("results_*.json"))
    assert len(read_lm_eval(rfile)) == 2


def test_missing_samples_says_log_samples(copy: Path) -> None:
    for f in copy.rglob("samples_toy_qa_*.jsonl"):
        f.unlink()
    with pytest.raises(UserInputError, match="no samples_toy_qa_\\*.jsonl next to it.*--log_samples"):
        read_lm_eval(copy)


def test_corrupt_sample_line_is_located(copy: Path) -> None:
    sfile = next(copy.rglob("samples_toy_arc_*.jsonl"))
    lines = sfile.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["filtered_resps"][0][0] = "not-a-number"
    bad["target"] = "0"
    lines[2] = json.dumps(bad)
    sfile.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserInputError, match=rf"{sfile.name}, line 3: response .* no numeric log-likelihood"):
        read_lm_eval(copy)


def test_non_cloze_tasks_are_skipped_with_a_warning(copy: Path) -> None:
    rfile = next(copy.rglob("results_*.json"))
    res = json.loads(rfile.read_text())
    res["configs"]["toy_qa"]["output_type"] = "generate_until"
    rfile.write_text(json.dumps(res))
    t = read_lm_eval(copy)
    assert t.metrics == ["test/toy_arc"]
    assert any("toy_qa (generate_until) are not cloze tasks" in w for w in t.warnings)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no results_\\*.json below this folder"):
        read_lm_eval(tmp_path)
    with pytest.raises(UserInputError, match="no such file or folder"):
        read_lm_eval(tmp_path / "nope")
    with pytest.raises(UserInputError, match="--tokenizer .*: not a folder"):
        read_lm_eval(OUTPUT, tokenizer=tmp_path / "no-tokenizer")
    empty_tok = tmp_path / "tok"
    empty_tok.mkdir()
    with pytest.raises(UserInputError, match="could not load a tokenizer from this folder"):
        read_lm_eval(OUTPUT, tokenizer=empty_tok)


def test_helpers() -> None:
    assert _model_args("pretrained=EleutherAI/pythia-70m,revision=step3000,dtype=float") == {
        "pretrained": "EleutherAI/pythia-70m",
        "revision": "step3000",
        "dtype": "float",
    }
    assert _model_args({"pretrained": "x"}) == {"pretrained": "x"}
    assert _step_of("step3000") == 3000 and _step_of("step_00047700") == 47700
    assert math.isnan(_step_of("main"))


def test_trailing_context_space_is_scored_with_the_continuation(tmp_path: Path) -> None:
    """lm-eval moves trailing spaces of the context into the continuation; bytes and tokens follow it."""
    model_dir = tmp_path / "out" / "m"
    model_dir.mkdir(parents=True)
    results = {
        "configs": {"t": {"task": "t", "output_type": "loglikelihood", "num_fewshot": 0}},
        "n-shot": {"t": 0},
        "config": {"model_args": "pretrained=m"},
    }
    (model_dir / "results_D.json").write_text(json.dumps(results))
    sample = {
        "doc_id": 0,
        "target": "yes",
        "arguments": {"gen_args_0": {"arg_0": "Is it? ", "arg_1": "yes"}},
        "filtered_resps": [["-4.0", "True"]],
    }
    (model_dir / "samples_t_D.jsonl").write_text(json.dumps(sample) + "\n")
    t = read_lm_eval(tmp_path / "out", tokenizer=TOKENIZER)
    assert _value(t, "test/t", "bits/byte") == pytest.approx(4.0 / (math.log(2) * len(b" yes")))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER))
    n_tok = len(tok.encode("Is it? yes", add_special_tokens=False)) - len(
        tok.encode("Is it?", add_special_tokens=False)
    )
    assert _value(t, "test/t", "nats/token") == pytest.approx(4.0 / n_tok)
    assert t.checkpoints().iloc[0]["checkpoint"] == "final"
