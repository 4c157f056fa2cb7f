"""Cloze tasks through lm-eval: the shipped offline configs match the stock tasks' prompts, and the cloze
loss equals a hand computation from lm-eval's per-sample output for the correct choice."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
lm_eval = pytest.importorskip("lm_eval")

from eval_fixtures.tiny import build_model, build_tokenizer, write_task_data  # noqa: E402

from bayes_l2l.errors import UserInputError  # noqa: E402
from bayes_l2l.evaluate.cloze import cloze_estimator, load_tasks, run_tasks, task_manager  # noqa: E402
from bayes_l2l.evaluate.config import parse_config  # noqa: E402
from bayes_l2l.evaluate.lm_adapter import ScorerLM  # noqa: E402
from bayes_l2l.evaluate.scorer import Scorer  # noqa: E402
from bayes_l2l.evaluate.task_data import EVAL_SPLIT, OFFLINE_TASKS, data_file  # noqa: E402
from bayes_l2l.evaluate.tokens import resolve_prefix  # noqa: E402

STOCK_YAML = {
    "arc_easy": "arc/arc_easy.yaml",
    "arc_challenge": "arc/arc_challenge.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml",
    "piqa": "piqa/piqa.yaml",
    "winogrande": "winogrande/default.yaml",
    "openbookqa": "openbookqa/openbookqa.yaml",
    "copa": "super_glue/copa/default.yaml",
}
CTX = 96


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    return write_task_data(tmp_path_factory.mktemp("tasks"))


def _cfg(task_dir: Path, tasks=OFFLINE_TASKS, **kw):
    return parse_config(
        {"tasks": {"names": list(tasks), "data_dir": str(task_dir)}, "context_length": CTX, **kw}, "test"
    )


def _stock_task(name: str, data_dir: Path):
    """The stock lm-eval task config of ``name`` (its own prompt functions), pointed at a local file."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(Path(lm_eval.__file__).parent / "tasks" / STOCK_YAML[name])
    split = EVAL_SPLIT[name]
    for k in ("training_split", "validation_split", "test_split", "tag"):
        cfg.pop(k, None)
    cfg.update(
        task=f"stock_{name}",
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={"data_files": {split: str(data_file(data_dir, name))}},
    )
    cfg["test_split" if split == "test" else "validation_split"] = split
    return next(iter(TaskManager(include_defaults=False).load([cfg])["tasks"].values()))


def _compare_with_stock(data_dir: Path, names, n_docs: int) -> None:
    cfg = _cfg(data_dir, names)
    with task_manager(cfg, cfg.tasks) as tm:
        ours = load_tasks(tm, cfg.tasks)
        for name in names:
            stock = _stock_task(name, data_dir)
            mine = ours[name]
            mine.build_all_requests(limit=n_docs)
            stock.build_all_requests(limit=n_docs)
            a = [i.args for i in mine.instances]
            b = [i.args for i in stock.instances]
            assert a == b and len(a) >= n_docs, name
            for da, db in zip(list(mine.eval_docs)[:n_docs], list(stock.eval_docs)[:n_docs], strict=True):
                assert mine.doc_to_target(da) == stock.doc_to_target(db), name


def test_offline_configs_build_the_stock_prompts_on_fixture_data(task_dir):
    _compare_with_stock(task_dir, OFFLINE_TASKS, 2)


def test_offline_configs_build_the_stock_prompts_on_shared_evaldata(shared):
    data = shared.path("evaldata", "tasks")
    _compare_with_stock(data, OFFLINE_TASKS, 3)
    cfg = _cfg(data, ("copa", "winogrande"))
    with task_manager(cfg, cfg.tasks) as tm:
        tasks = load_tasks(tm, cfg.tasks)
        copa = tasks["copa"]
        copa.build_all_requests(limit=1)
        assert copa.instances[0].args[1].startswith("  ")  # the stock double space
        wino = tasks["winogrande"]
        assert len(list(wino.eval_docs)) == 1267
        wino.build_all_requests(limit=1)
        conts = {i.args[1] for i in wino.instances}
        assert len(conts) == 1  # partial scoring: one shared continuation, the options are in the contexts


def test_missing_task_files_and_fewshot_without_examples(task_dir, tmp_path):
    cfg = _cfg(tmp_path, ("copa",))
    with pytest.raises(UserInputError, match=r"missing .*copa/validation.jsonl"):
        with task_manager(cfg, cfg.tasks):
            pass
    cfg = parse_config(
        {"tasks": {"names": ["copa"], "data_dir": str(task_dir), "num_fewshot": 2}, "context_length": CTX}
    )
    with pytest.raises(UserInputError, match="num_fewshot=2 needs few-shot examples"):
        with task_manager(cfg, cfg.tasks):
            pass


def _gold_by_hand(name: str, doc: dict) -> int:
    if name in ("arc_easy", "arc_challenge", "openbookqa"):
        return doc["choices"]["label"].index(doc["answerKey"].strip())
    if name == "hellaswag":
        return int(doc["label"])
    if name == "winogrande":
        return int(doc["answer"]) - 1
    return int(doc["label"])  # piqa, copa


def _scored_continuation(tok, context: str, continuation: str) -> tuple[int, int]:
    """Tokens lm-eval's causal models score for a continuation, and its UTF-8 bytes (spaces moved)."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    return len(whole) - len(ctx), len(continuation.encode("utf-8"))


@pytest.mark.parametrize(("arch", "bos"), [("llama", True), ("gpt_neox", False)])
def test_cloze_loss_equals_hand_computation(task_dir, arch, bos):
    tok = build_tokenizer(bos=bos)
    model = build_model(arch, tok, seed=3)
    cfg = _cfg(task_dir)
    prefix = resolve_prefix(tok, cfg.prefix)
    assert prefix.token_id == (tok.bos_token_id if bos else tok.eos_token_id)
    lm = ScorerLM(tok, Scorer(model, device="cpu", max_length=CTX, progress=False), prefix, CTX)
    with task_manager(cfg, cfg.tasks) as tm:
        tasks = load_tasks(tm, cfg.tasks)
        results = run_tasks(lm, tasks, cfg.tasks, cfg, tm)
    assert [r.metric for r in results] == [f"test/{t}" for t in OFFLINE_TASKS]
    for res in results:
        losses, bpbs, correct = [], [], []
        for s in sorted(res.samples, key=lambda x: x["doc_id"]):
            g = _gold_by_hand(res.task, s["doc"])
            lls = [float(r[0]) for r in s["filtered_resps"]]
            ctx, cont = s["arguments"][g][0], s["arguments"][g][1]
            n_tok, n_bytes = _scored_continuation(tok, ctx, cont)
            losses.append(-lls[g] / n_tok)
            bpbs.append(-lls[g] / (math.log(2) * n_bytes))
            correct.append(float(int(np.argmax(lls)) == g))
        assert res.loss == pytest.approx(float(np.mean(losses)), rel=1e-12), res.task
        assert res.bpb == pytest.approx(float(np.mean(bpbs)), rel=1e-12), res.task
        assert res.n_questions == len(losses) and res.rows()[0]["n"] == len(losses)
        assert res.loss_stderr == pytest.approx(float(np.std(losses, ddof=1) / math.sqrt(len(losses))))
        assert res.accuracy["acc"] == pytest.approx(float(np.mean(correct))), res.task
        assert ("acc_norm" in res.accuracy) == (res.task not in ("copa", "winogrande"))
    # the summed log-likelihood itself: a direct forward pass for the gold answer of one question
    s = results[0].samples[0]
    g = _gold_by_hand("arc_easy", s["doc"])
    ctx_text, cont_text = s["arguments"][g]
    ctx_ids = tok(ctx_text, add_special_tokens=False)["input_ids"]
    cont_ids = tok(ctx_text + cont_text, add_special_tokens=False)["input_ids"][len(ctx_ids) :]
    ids = torch.tensor([[prefix.token_id, *ctx_ids, *cont_ids]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    direct = float(logp[-len(cont_ids) :].gather(-1, ids[0, -len(cont_ids) :, None]).sum())
    assert float(s["filtered_resps"][g][0]) == pytest.approx(direct, rel=1e-5)


def test_adapter_rolling_loglikelihood_and_no_generation():
    from lm_eval.api.instance import Instance

    tok = build_tokenizer()
    model = build_model("gpt_neox", tok, seed=1)
    prefix = resolve_prefix(tok, "bos_or_eos")
    lm = ScorerLM(tok, Scorer(model, device="cpu", max_length=16, progress=False), prefix, 16)
    text = "The cat sat on the mat and then the dog ran under the tree because water flowed."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 30  # several windows of 15 tokens
    req = Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0)
    (total,) = lm.loglikelihood_rolling([req])

    # by hand (lm-eval's rolling windows with context_len=1, model input <= 16 tokens): the first window is
    # EOS + 15 tokens; each later full window is the one token before it + 15 tokens; the last, partial
    # window keeps the 16 tokens that end the text and scores only its new tokens.
    def logp_sum(seq_ids: list[int], n_scored: int) -> float:
        seq = torch.tensor([seq_ids])
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=seq).logits[0, :-1].float(), -1)
        return float(lp[-n_scored:].gather(-1, seq[0, -n_scored:, None]).sum())

    want = logp_sum([prefix.empty_context_id, *ids[:15]], 15)
    pos = 15
    while pos < len(ids):
        n = min(15, len(ids) - pos)
        window = ids[pos - 1 : pos + 15] if n == 15 else ids[len(ids) - 16 :]
        want += logp_sum(window, n)
        pos += n
    short = tok("The cat sat.", add_special_tokens=False)["input_ids"]
    (short_total,) = lm.loglikelihood_rolling(
        [Instance(request_type="loglikelihood_rolling", doc={}, arguments=("The cat sat.",), idx=0)]
    )
    assert short_total == pytest.approx(logp_sum([prefix.empty_context_id, *short], len(short)), rel=1e-5)
    assert total == pytest.approx(want, rel=1e-5)
    gen = Instance(request_type="generate_until", doc={}, arguments=("Hi", {}), idx=0)
    with pytest.raises(UserInputError, match="generation tasks"):
        lm.generate_until([gen])


def test_adapter_truncates_long_contexts_from_the_left():
    tok = build_tokenizer()
    model = build_model("llama", tok, seed=2)
    prefix = resolve_prefix(tok, "bos_or_eos")
    lm = ScorerLM(tok, Scorer(model, device="cpu", max_length=12, progress=False), prefix, 12)
    seq, score_from, text = lm.encode_request("the cat sat on the mat " * 5, "water flowed")
    assert len(seq) == 12 and seq[0] == prefix.token_id and text == " water flowed"
    assert len(seq) - score_from == len(tok(" water flowed", add_special_tokens=False)["input_ids"])
    with pytest.raises(UserInputError, match="does not fit the context length"):
        lm.encode_request("a", " the" * 20)
    empty, s0, _ = lm.encode_request("", "the cat")
    assert empty[0] == prefix.empty_context_id and s0 == 1


def test_cloze_estimator_string():
    est = cloze_estimator(0, "bos_or_eos")
    assert (
        "0-shot" in est and "correct choice" in est and "scored token count" in est and "BOS, else EOS" in est
    )
    assert cloze_estimator(5, "bos_or_eos") != est
