"""Importer for lm-evaluation-harness (0.4.x) output folders: cloze losses from the per-sample JSONL.

``lm_eval run ... --log_samples --output_path OUT`` writes ``OUT/<model>/results_<date>.json`` and, per task,
``OUT/<model>/samples_<task>_<date>.jsonl``. The results JSON has accuracies only (not losses: ignored here);
the samples hold, per question, the summed log-likelihood of every answer choice, stored as STRINGS.

Per task, two estimators of the cloze loss of the CORRECT answer, averaged over questions:

* ``bits/byte``: -loglik / (ln 2 x UTF-8 bytes of the scored continuation), always;
* ``nats/token``: -loglik / (its true token count), when a local HF tokenizer is given; tokens are counted as
  lm-eval's HFLM does (trailing spaces of the context move to the continuation; the continuation's tokens are
  tok(context + continuation) minus tok(context)).

``n`` is the number of questions and ``stderr`` the standard error of the mean over questions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l.errors import UserInputError
from bayes_l2l.io.common import LN2, ensure_standard_factors, finish
from bayes_l2l.table import LossTable, canonical_metric_id

TASK_IDS = {
    "arc_challenge": "arc_challenge",
    "arc_easy": "arc_easy",
    "hellaswag": "hellaswag",
    "winogrande": "winogrande",
    "piqa": "piqa",
    "social_iqa": "social_iqa",
    "siqa": "social_iqa",
    "commonsense_qa": "commonsense_qa",
    "copa": "copa",
    "openbookqa": "openbookqa",
}
CLOZE_TYPES = ("multiple_choice", "loglikelihood")
_DATE = re.compile(r"^results_(?P<date>.+)\.json$")


@dataclass
class _Question:
    context: str
    continuation: str
    loglik: float


def read_lm_eval(
    path: Path,
    *,
    tokenizer: str | Path | None = None,
    run: str | None = None,
    checkpoint: str | None = None,
) -> LossTable:
    """Import an lm-eval output folder (or one results_*.json) as a LossTable of cloze losses."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(
            f"{path}: no such file or folder; give the --output_path folder of an lm-eval run"
        )
    results_files = [path] if path.is_file() else sorted(path.rglob("results_*.json"))
    if not results_files:
        raise UserInputError(
            f"{path}: no results_*.json below this folder; is it an lm-eval --output_path folder?"
        )
    count_tokens = _token_counter(tokenizer) if tokenizer is not None else None
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for rfile in results_files:
        r_rows, r_warn = _read_results(rfile, count_tokens, run, checkpoint)
        rows += r_rows
        warnings += r_warn
    if count_tokens is None:
        warnings.append(
            f"{path}: no --tokenizer given, so only bits/byte losses were imported; nats/token needs each "
            "answer's true token count: pass --tokenizer DIR (a local Hugging Face tokenizer folder)"
        )
    if not rows:
        raise UserInputError(f"{path}: no cloze (multiple_choice / loglikelihood) samples found to import")
    frame = ensure_standard_factors(pd.DataFrame(rows))
    return finish(frame, str(path), warnings)


def _read_results(
    rfile: Path,
    count_tokens: Callable[[str, str], int] | None,
    run: str | None,
    checkpoint: str | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        res = json.loads(rfile.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{rfile}: not readable as JSON ({exc})") from exc
    if not isinstance(res, dict) or "configs" not in res:
        raise UserInputError(f"{rfile}: not an lm-eval results file (no 'configs' key)")
    m = _DATE.match(rfile.name)
    date = m.group("date") if m else None
    args = _model_args(res.get("config", {}).get("model_args"))
    run_id = run or args.get("pretrained") or res.get("model_name")
    if not run_id:
        raise UserInputError(
            f"{rfile}: the results name no model (model_args has no pretrained=); pass --run NAME"
        )
    revision = args.get("revision") or res.get("config", {}).get("model_revision")
    ckpt = checkpoint or (revision if revision and revision != "main" else "final")
    step = _step_of(ckpt)
    n_shot = res.get("n-shot", {})
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    skipped: list[str] = []
    for task, cfg in res["configs"].items():
        if cfg.get("output_type") not in CLOZE_TYPES:
            skipped.append(f"{task} ({cfg.get('output_type')})")
            continue
        sfile = _samples_file(rfile, task, date)
        questions = _gold_answers(sfile, cfg)
        shots = n_shot.get(task, cfg.get("num_fewshot", 0)) or 0
        metric = canonical_metric_id("test", TASK_IDS.get(task, task))
        ident = {"run": str(run_id), "checkpoint": str(ckpt), "step": step}
        per_byte = np.array([-q.loglik / (LN2 * len((q.continuation).encode("utf-8"))) for q in questions])
        rows.append(
            ident
            | _summary(
                metric,
                per_byte,
                "bits/byte",
                f"lm-eval:cloze-correct-only;sum-nll/(ln2*utf8-bytes);{shots}-shot;mean-over-questions",
            )
        )
        if count_tokens is not None:
            per_tok = np.array([-q.loglik / count_tokens(q.context, q.continuation) for q in questions])
            rows.append(
                ident
                | _summary(
                    metric,
                    per_tok,
                    "nats/token",
                    f"lm-eval:cloze-correct-only;sum-nll/true-tokens;{shots}-shot;mean-over-questions",
                )
            )
    if skipped:
        warnings.append(f"{rfile}: task(s) {', '.join(skipped)} are not cloze tasks; no loss imported")
    return rows, warnings


def _summary(metric: str, values: np.ndarray, unit: str, estimator: str) -> dict[str, Any]:
    n = len(values)
    return {
        "metric": metric,
        "kind": "test",
        "value": float(values.mean()),
        "unit": unit,
        "estimator": estimator,
        "n": float(n),
        "stderr": float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
    }


def _model_args(raw: object) -> dict[str, str]:
    """'pretrained=x,revision=y' (or a dict) -> {'pretrained': 'x', 'revision': 'y'}."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for part in str(raw or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _step_of(checkpoint: str) -> float:
    """'step1000', 'step_00047700', 'global_step300' -> the number; anything else -> NaN."""
    m = re.search(r"step[_-]?(\d+)$", checkpoint)
    return float(int(m.group(1))) if m else float("nan")


def _samples_file(rfile: Path, task: str, date: str | None) -> Path:
    """The samples JSONL of ``task`` written with ``rfile`` (same date id), or an error saying how to get "
    "it."""
    exact = rfile.parent / f"samples_{task}_{date}.jsonl" if date else None
    if exact is not None and exact.exists():
        return exact
    found = sorted(rfile.parent.glob(f"samples_{task}_*.jsonl"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserInputError(
            f"{rfile}: no samples_{task}_*.jsonl next to it; losses need per-sample log-likelihoods: rerun "
            "lm-eval with --log_samples (the results JSON holds accuracies only)"
        )
    raise UserInputError(
        f"{rfile}: several samples_{task}_*.jsonl files and none with this run's date id {date}; "
        "keep each lm-eval run in its own folder"
    )


def _gold_answers(sfile: Path, cfg: dict[str, Any]) -> list[_Question]:
    """Context, continuation and log-likelihood of the correct answer of every question in ``sfile``."""
    delimiter = str(cfg.get("target_delimiter", " "))
    out: list[_Question] = []
    with open(sfile, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{sfile}, line {line_no}"
            try:
                sample = json.loads(line)
                args = sample["arguments"]
                resps = sample["filtered_resps"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise UserInputError(f"{where}: not an lm-eval sample ({exc})") from exc
            pairs = (
                [(a["arg_0"], a["arg_1"]) for a in args.values()] if isinstance(args, dict) else list(args)
            )
            if len(pairs) != len(resps):
                raise UserInputError(
                    f"{where}: {len(pairs)} requests but {len(resps)} responses (acc_mutual_info or a "
                    "filter?); "
                    "import works on plain multiple_choice / loglikelihood tasks"
                )
            gold = _gold_index(sample, pairs, delimiter, where)
            context, continuation = pairs[gold]
            loglik = _as_float(resps[gold], where)
            spaces = len(context) - len(context.rstrip())
            if spaces:  # lm-eval scores the context's trailing spaces as part of the continuation
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            out.append(_Question(context, continuation, loglik))
    if not out:
        raise UserInputError(f"{sfile}: no samples in this file")
    return out


def _gold_index(sample: dict[str, Any], pairs: list[tuple[str, str]], delimiter: str, where: str) -> int:
    """Index of the correct choice: lm-eval's target is an index, or the answer text (then matched)."""
    if len(pairs) == 1:
        return 0
    target = sample.get("target")
    text = str(target).strip()
    if re.fullmatch(r"\d+", text):
        idx = int(text)
        if idx >= len(pairs):
            raise UserInputError(f"{where}: target {idx} but only {len(pairs)} choices")
        return idx
    for i, (_, cont) in enumerate(pairs):
        if cont == delimiter + str(target) or cont.strip() == text:
            return i
    raise UserInputError(f"{where}: target {target!r} is neither a choice index nor one of the choices")


def _as_float(resp: object, where: str) -> float:
    """A response is [loglik, is_greedy] (strings in the JSONL); return loglik as float."""
    try:
        value = resp[0] if isinstance(resp, list | tuple) else resp
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError) as exc:
        raise UserInputError(f"{where}: response {resp!r} has no numeric log-likelihood") from exc
    if not math.isfinite(out) or out > 0:
        raise UserInputError(f"{where}: log-likelihood {out} is not a finite value <= 0")
    return out


def _token_counter(tokenizer: str | Path) -> Callable[[str, str], int]:
    """Count continuation tokens exactly as lm-eval's HFLM splits (context, continuation)."""
    tok_path = Path(tokenizer)
    if not tok_path.is_dir():
        raise UserInputError(
            f"--tokenizer {tokenizer}: not a folder; give a local Hugging Face tokenizer folder"
        )
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UserInputError(
            "--tokenizer needs the 'transformers' package (pip install bayes-l2l[eval])"
        ) from exc
    try:
        tok = AutoTokenizer.from_pretrained(str(tok_path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure means the folder is not a usable tokenizer
        raise UserInputError(
            f"--tokenizer {tokenizer}: could not load a tokenizer from this folder ({exc})"
        ) from exc

    def count(context: str, continuation: str) -> int:
        whole = tok.encode(context + continuation, add_special_tokens=False)
        ctx = tok.encode(context, add_special_tokens=False)
        n = len(whole) - len(ctx)
        if n < 1:
            raise UserInputError(
                f"--tokenizer {tokenizer}: continuation {continuation!r} has no tokens of its own"
            )
        return n

    return count
