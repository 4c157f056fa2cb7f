"""Checkpoint manifests: the shipped ones load and expand as documented; bad ones fail with clear messages."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.manifest import (
    PatternSpec,
    expand,
    load_manifest,
    parse_manifest,
    resolve_pattern,
)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_manifests_load_and_expand():
    files = sorted(MODELS.glob("*.yaml"))
    assert {f.name for f in files} >= {
        "pythia.yaml",
        "pythia-deduped.yaml",
        "gpt-neo-j-neox.yaml",
        "mamba.yaml",
        "mamba2.yaml",
        "fineweb-ablations.yaml",
        "olmo.yaml",
    }
    for f in files:
        m = load_manifest(f)
        assert m.checkpoints or m.patterns, f


def test_pythia_revisions_and_tokens():
    m = load_manifest(MODELS / "pythia.yaml")
    runs = m.runs()
    assert len(runs) == 8 and "pythia-160m" in runs
    ck = [c for c in m.checkpoints if c.run == "pythia-160m"]
    assert len(ck) == 154  # step0, 1..512 (10 powers of two), 1000..143000 every 1000
    names = [c.checkpoint for c in ck]
    assert names[:4] == ["step0", "step1", "step2", "step4"] and names[-1] == "step143000"
    last = ck[-1]
    assert last.step == 143000 and last.tokens == 143000 * 2097152
    assert last.factors["pretraining_data"] == "The Pile" and last.factors["tokenizer"] == "gpt-neox"
    dedup = load_manifest(MODELS / "pythia-deduped.yaml")
    assert {c.factors["pretraining_data"] for c in dedup.checkpoints} == {"The Pile Deduped"}


def test_ablation_manifest_matches_paper_steps():
    m = load_manifest(MODELS / "fineweb-ablations.yaml")
    by_run: dict[str, list] = {}
    for c in m.checkpoints:
        by_run.setdefault(c.run, []).append(c)
    assert {k: len(v) for k, v in by_run.items()} == {
        "ablation-c4": 27,  # 26 step branches the paper listed + main
        "ablation-fineweb-edu": 18,
        "ablation-the-pile": 18,
    }
    first = by_run["ablation-c4"][0]
    assert first.checkpoint == "step-001000-2BT" and first.step == 1000 and first.tokens == 1000 * 2097152
    final = by_run["ablation-c4"][-1]
    assert final.checkpoint == "main" and math.isnan(final.step) and final.tokens == 3.13e11


def test_mamba2_uses_mamba_ssm_loader_and_neox_tokenizer():
    m = load_manifest(MODELS / "mamba2.yaml")
    assert {c.loader for c in m.checkpoints} == {"mamba_ssm"}
    assert {c.tokenizer for c in m.checkpoints} == {"EleutherAI/gpt-neox-20b"}


def test_pattern_revisions_resolve_from_branch_names():
    m = load_manifest(MODELS / "olmo.yaml")
    spec = next(p for p in m.patterns if p.base.run == "olmo-1b")
    refs = ["main", "step1000-tokens4B", "step3000-tokens12B", "step2000-tokens8B", "other"]
    got = resolve_pattern(
        PatternSpec(spec.base, spec.pattern, every=2, tokens_per_step=spec.tokens_per_step), refs
    )
    assert [c.checkpoint for c in got] == ["step1000-tokens4B", "step3000-tokens12B"]  # every 2nd + the last
    assert got[0].tokens == 1000 * 4194304
    spec7 = next(p for p in m.patterns if p.base.run == "olmo-7b")
    assert [c.checkpoint for c in resolve_pattern(spec7, refs)] == ["step1000-tokens4B", "step3000-tokens12B"]
    got7 = resolve_pattern(PatternSpec(spec7.base, spec7.pattern), refs)
    assert [c.tokens for c in got7] == [4e9, 8e9, 12e9]  # no tokens_per_step: from the branch names


def test_template_ranges_local_paths_and_defaults(tmp_path: Path):
    (tmp_path / "ckpts").mkdir()
    p = _write(
        tmp_path,
        """
defaults:
  architecture: Llama
  tokens_per_step: 1000
models:
  - run: mine
    path: ckpts
    revisions:
      template: "checkpoint-{step}"
      steps: [10]
      ranges: [{start: 100, stop: 300, every: 100}]
    labels: {size: 1m, lr_schedule: cosine}
    seed: 3
""",
    )
    m = load_manifest(p)
    names = [c.checkpoint for c in m.checkpoints]
    assert names == ["checkpoint-10", "checkpoint-100", "checkpoint-200", "checkpoint-300"]
    c = m.checkpoints[1]
    assert c.local and c.load_path() == str((tmp_path / "ckpts" / "checkpoint-100").resolve())
    assert c.tokens == 100_000 and c.factors == {
        "architecture": "Llama",
        "seed": "3",
        "size": "1m",
        "lr_schedule": "cosine",
    }
    assert expand(m) == list(m.checkpoints)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("models: []", "non-empty list"),
        ("models:\n  - {revisions: [main]}", "exactly one of 'repo'"),
        ("models:\n  - {repo: a/b, path: x}", "exactly one of 'repo'"),
        ("models:\n  - {repo: not-a-repo}", "'owner/name'"),
        ("models:\n  - {repo: a/b, archtecture: GPT}", "unknown key(s) archtecture"),
        ("models:\n  - {repo: a/b, revisions: [step1, step1]}", "listed more than once"),
        ("models:\n  - {repo: a/b, revisions: [[1]]}", "revisions[0]"),
        ("models:\n  - {repo: a/b, labels: {Size: x}}", "label 'Size'"),
        ("models:\n  - {repo: a/b, labels: {step: 3}}", "label 'step'"),
        ("models:\n  - {repo: a/b, labels: {seed: 3}}", "standard factor"),
        ("models:\n  - {repo: a/b, tokens_per_step: -1}", "tokens_per_step"),
        ("models:\n  - {repo: a/b, loader: vllm}", "loader 'vllm'"),
        ("models:\n  - {repo: a/b, run: 'bad id'}", "run id"),
        ("models:\n  - {repo: a/b, revisions: {template: 'x', steps: [1]}}", "'{step}'"),
        ("models:\n  - {repo: a/b, revisions: {pattern: '^step\\d+$'}}", "(?P<step>"),
        ("models:\n  - {repo: a/b, revisions: {pattern: '(unclosed'}}", "not a valid regular expression"),
        ("schema: other/v9\nmodels:\n  - {repo: a/b}", "not supported"),
        ("models:\n  - {repo: a/b, run: r}\n  - {repo: a/c, run: r, revisions: [x]}", "run 'r'"),
        ("models:\n  - {repo: a/b}\n  - {repo: a/b}", "listed twice"),
        ("nodels:\n  - {repo: a/b}", "unknown top-level key"),
        ("models: [", "not valid YAML"),
    ],
)
def test_bad_manifests_name_file_entry_and_fix(tmp_path: Path, text: str, needle: str):
    p = _write(tmp_path, text)
    with pytest.raises(UserInputError) as err:
        load_manifest(p)
    msg = str(err.value)
    assert needle in msg
    assert str(p) in msg


def test_manifests_are_data_never_executed(tmp_path: Path):
    marker = tmp_path / "pwned"
    p = _write(
        tmp_path,
        f"models:\n  - !!python/object/apply:os.system ['touch {marker}']\n",
    )
    with pytest.raises(UserInputError, match="not valid YAML"):
        load_manifest(p)
    assert not marker.exists()


def test_missing_manifest_file(tmp_path: Path):
    with pytest.raises(UserInputError, match="manifest not found"):
        load_manifest(tmp_path / "nope.yaml")


def test_entry_errors_name_the_entry():
    with pytest.raises(UserInputError, match=r"models\[1\] \(run a/c\)"):
        parse_manifest({"models": [{"repo": "a/b"}, {"repo": "a/c", "bogus": 1}]}, "x.yaml")
