"""`bayes-l2l eval` / `bayes-l2l table` end to end on tiny Llama, GPT-NeoX and Mamba checkpoints: a run, a
re-run that skips everything, a killed-and-resumed run equal to a clean one, failures that do not stop
the others, submitit's local executor, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lm_eval")

from eval_fixtures.tiny import documents, save_tiny_model, write_jsonl, write_task_data  # noqa: E402

from bayes_l2l.cli import main  # noqa: E402
from bayes_l2l.evaluate.store import ResultStore  # noqa: E402
from bayes_l2l.table import read_store  # noqa: E402

TASKS = ["arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "copa", "openbookqa"]
MANIFEST = """
schema: bayes-l2l/manifest/v1
defaults:
  pretraining_data: synthetic
  context_length: 256
models:
  - run: tiny-llama
    path: ckpt/llama
    architecture: Llama
    tokenizer: bpe300-bos
  - run: tiny-neox
    path: ckpt/neox
    architecture: GPT
    tokenizer: bpe300
    revisions: [{revision: main, step: 50, tokens: 1.0e5}]
  - run: tiny-mamba
    path: ckpt/mamba
    architecture: Mamba
    tokenizer: bpe300
"""
CONFIG = """
context_length: 64
bootstrap: 50
corpora:
  tiny: {path: corpus.jsonl, documents: 8}
  short: {path: short.txt, split: blank_lines}
tasks:
  names: [arc_easy, arc_challenge, hellaswag, piqa, winogrande, copa, openbookqa]
engine: {progress: false}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalenv")
    save_tiny_model(root / "ckpt" / "llama", "llama", bos=True, seed=1)
    save_tiny_model(root / "ckpt" / "neox", "gpt_neox", seed=2)
    save_tiny_model(root / "ckpt" / "mamba", "mamba", seed=3)
    write_task_data(root / "tasks")
    write_jsonl(root / "corpus.jsonl", [{"text": d} for d in documents(8)])
    (root / "short.txt").write_text("\n\n".join(documents(4, seed=7)), encoding="utf-8")
    (root / "manifest.yaml").write_text(MANIFEST, encoding="utf-8")
    (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return root


def _eval_args(env: Path, store: Path, *extra: str) -> list[str]:
    return [
        "eval",
        str(env / "manifest.yaml"),
        "--config",
        str(env / "config.yaml"),
        "--store",
        str(store),
        "--task-data",
        str(env / "tasks"),
        *extra,
    ]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["run", "checkpoint", "metric", "unit"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def clean_run(env, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("clean") / "store"
    assert main(_eval_args(env, store)) == 0
    return store


def test_eval_writes_a_valid_loss_table(env, clean_run, tmp_path, capsys):
    table = read_store(clean_run)
    df = table.df
    assert set(df["run"]) == {"tiny-llama", "tiny-neox", "tiny-mamba"}
    assert set(df["metric"]) == {"val/tiny", "val/short"} | {f"test/{t}" for t in TASKS}
    assert set(df["unit"]) == {"nats/token", "bits/byte"}
    assert len(df) == 3 * 9 * 2
    assert df["estimator"].str.startswith("bayes-l2l/").all() and df["stderr"].gt(0).all()
    neox = df[df["run"] == "tiny-neox"]
    assert set(neox["step"]) == {50.0} and set(neox["tokens"]) == {1e5}
    assert (df.groupby("run")["params"].nunique() == 1).all() and df["params"].gt(1000).all()
    assert set(df["architecture"]) == {"Llama", "GPT", "Mamba"}
    val = df[(df["metric"] == "val/tiny") & (df["unit"] == "nats/token")]
    assert val["value"].between(1, 12).all() and val["n"].gt(100).all()
    # the part of the stderr independent across checkpoints, from the stored per-document losses
    assert (val["stderr_independent"] > 0).all() and (val["stderr_independent"] <= val["stderr"]).all()
    assert df.loc[df["metric"].str.startswith("test/"), "stderr_independent"].isna().all()
    rec = next(r for r in ResultStore(clean_run).namespace(table.source.split()[-1][:-1]).records())
    assert rec["model"]["device"] == "cpu" and rec["model"]["dtype"] == "float32"
    mamba = next(
        r for r in ResultStore(clean_run).namespace(rec["namespace"]).records() if r["run"] == "tiny-mamba"
    )
    assert mamba["model"]["kernels"] == "reference"
    out = tmp_path / "t.csv"
    assert main(["table", str(clean_run), "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == len(df)


def test_rerun_skips_everything_and_changes_nothing(env, clean_run, capsys):
    before = {p: p.stat().st_mtime_ns for p in clean_run.rglob("records/*/*/*.json")}
    assert main(_eval_args(env, clean_run, "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluated"] == [] and len(out["skipped"]) == 3 and out["records_written"] == 0
    assert {p: p.stat().st_mtime_ns for p in clean_run.rglob("records/*/*/*.json")} == before


def test_killed_run_resumes_to_the_same_table(env, clean_run, tmp_path):
    store = tmp_path / "store"
    code = f"from bayes_l2l.cli import main; main({_eval_args(env, store)!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if list(store.glob("*/records/*/*/*.json")):
                break
            time.sleep(0.02)
        proc.kill()  # SIGKILL: no cleanup, as after a node failure
    finally:
        proc.wait()
    partial = list(store.glob("*/records/*/*/*.json"))
    assert 0 < len(partial) < 3 * 9, "the run should be killed mid-way"
    assert main(_eval_args(env, store)) == 0
    resumed = _sorted(read_store(store).df)
    clean = _sorted(read_store(clean_run).df)
    assert not resumed.duplicated(["run", "checkpoint", "metric", "unit"]).any()
    pd.testing.assert_frame_equal(resumed, clean, check_exact=False, rtol=1e-9)


def test_failed_checkpoint_does_not_stop_the_others(env, tmp_path, capsys):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "models:\n"
        f"  - {{run: ok, path: {env / 'ckpt' / 'neox'}}}\n"
        f"  - {{run: later, path: {tmp_path / 'not-yet'}}}\n",
        encoding="utf-8",
    )
    store = tmp_path / "store"
    args = ["eval", str(manifest), "--config", str(env / "config.yaml"), "--store", str(store)]
    args += ["--task-data", str(env / "tasks"), "--json"]
    assert main(args) == 2  # the only failure is a user-fixable one (a missing checkpoint)
    out = json.loads(capsys.readouterr().out)
    assert out["evaluated"] == ["ok@main"] and list(out["failed"]) == ["later@main"]
    assert main(["table", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failures"][0]["run"] == "later"
    save_tiny_model(tmp_path / "not-yet", "gpt_neox", seed=5)  # the checkpoint appears; resume
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluated"] == ["later@main"] and out["skipped"] == ["ok@main"]
    assert main(["table", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failures"] == []


def test_submitit_local_executor_gives_the_same_table(env, clean_run, tmp_path, capsys):
    pytest.importorskip("submitit")
    store = tmp_path / "store"
    cfg = env / "val-only.yaml"  # validation corpora only: lm-eval's start-up stays out of the two jobs
    cfg.write_text(CONFIG.split("tasks:")[0] + "engine: {progress: false}\n", encoding="utf-8")
    runs = ["--run", "tiny-neox", "--run", "tiny-mamba"]
    args = ["eval", str(env / "manifest.yaml"), "--config", str(cfg), "--store", str(store), *runs]
    args += ["--executor", "local", "--array-parallelism", "2", "--time", "10"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["job_ids"]) == 2  # a job array of two elements, one checkpoint each
    assert sorted(out["evaluated"]) == ["tiny-mamba@main", "tiny-neox@main"] and out["failed"] == {}
    assert list((store / "_jobs").glob("*_log.out"))
    local = _sorted(read_store(store).df)
    clean = _sorted(read_store(clean_run).df)
    keep = clean["run"].isin(["tiny-neox", "tiny-mamba"]) & clean["metric"].str.startswith("val/")
    clean = clean[keep].reset_index(drop=True)
    # stderr_independent is estimated over the namespace's checkpoints (2 here, 3 there): not compared
    assert local["stderr_independent"].isna().all()  # fewer than 3 checkpoints: no estimate
    pd.testing.assert_frame_equal(
        local.drop(columns="stderr_independent"), clean.drop(columns="stderr_independent"), check_exact=False,
        rtol=1e-9,
    )  # fmt: skip


def test_other_config_gets_its_own_namespace(env, clean_run, tmp_path, capsys):
    cfg = env / "ctx32.yaml"  # beside the corpus files its relative paths name
    cfg.write_text(
        CONFIG.replace("context_length: 64", "context_length: 32").replace(
            "tasks:\n  names: [arc_easy, arc_challenge, hellaswag, piqa, winogrande, copa, openbookqa]\n", ""
        ),
        encoding="utf-8",
    )
    store = tmp_path / "store"
    base = ["eval", str(env / "manifest.yaml"), "--store", str(store), "--run", "tiny-neox"]
    assert main([*base, "--config", str(env / "config.yaml"), "--task-data", str(env / "tasks")]) == 0
    assert main([*base, "--config", str(cfg)]) == 0
    assert len(ResultStore(store).namespaces()) == 2
    capsys.readouterr()
    assert main(["table", str(store)]) == 2
    assert "--namespace" in capsys.readouterr().err


def test_dry_run_plans_without_writing(env, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(_eval_args(env, store, "--dry-run", "--json", "--limit", "2")) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["to_evaluate"] == ["tiny-llama@main", "tiny-neox@main"] and plan["done"] == 0
    assert len(plan["metrics"]) == 9 and not store.exists()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda a, env: a.__setitem__(1, str(env / "missing.yaml")), "manifest not found"),
        (lambda a, env: a.__setitem__(3, str(env / "missing.yaml")), "eval config not found"),
        (lambda a, env: a.extend(["--run", "nope"]), "--run nope: not in"),
        (lambda a, env: a.extend(["--executor", "ray"]), "--executor 'ray'"),
        (lambda a, env: a.extend(["--device", "tpu"]), "--device 'tpu'"),
        (lambda a, env: a.extend(["--executor", "slurm"]), "--partition"),
        (lambda a, env: a.__setitem__(7, str(env / "ckpt")), "missing"),
    ],
)
def test_bad_invocations_exit_2_with_a_message(env, tmp_path, capsys, mutate, needle):
    args = _eval_args(env, tmp_path / "store")
    mutate(args, env)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_missing_eval_extra_says_how_to_install(env, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    assert main(_eval_args(env, tmp_path / "store")) == 2
    assert "install bayes-l2l[eval]" in capsys.readouterr().err


def test_cli_import_does_not_load_torch():
    code = (
        "import sys, bayes_l2l.cli, bayes_l2l.evaluate, bayes_l2l.evaluate.runner, bayes_l2l.evaluate.executors;"
        "print(sorted(m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    helptext = subprocess.run(
        [sys.executable, "-c", "from bayes_l2l.cli import main; main(['eval', '--help'])"],
        capture_output=True,
        text=True,
    )
    assert "--executor" in helptext.stdout and "--task-data" in helptext.stdout


def test_loading_a_checkpoint_leaves_global_autograd_on(tmp_path) -> None:
    """The evaluator must not switch autograd off process-wide (a training loop in the same process,
    like the mini study's, would then fail with 'does not require grad')."""
    from bayes_l2l.evaluate.config import EngineSpec
    from bayes_l2l.evaluate.engine import load_checkpoint
    from bayes_l2l.evaluate.manifest import Checkpoint

    path = save_tiny_model(tmp_path / "llama", "llama")
    ckpt = Checkpoint(
        run="r", checkpoint="main", source=str(path), revision=None, local=True, tokenizer=str(path)
    )
    loaded = load_checkpoint(ckpt, EngineSpec(device="cpu", dtype="float32", progress=False))
    assert torch.is_grad_enabled()
    assert not any(p.requires_grad for p in loaded.model.parameters())
