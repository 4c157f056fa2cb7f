"""Prompt functions of the offline task configs: the same behaviour as lm-eval 0.4's stock tasks.

hellaswag: lm_eval/tasks/hellaswag/utils.py; winogrande: lm_eval/tasks/winogrande/preprocess_winogrande.py;
copa: lm_eval/tasks/super_glue/copa/utils.py. Re-implemented (not imported) so the offline configs keep
working when lm-eval moves its task files; tests check them against the stock functions.
"""

from __future__ import annotations

import re
from typing import Any


def _hellaswag_preprocess(text: str) -> str:
    text = text.strip()
    # Brackets are artifacts of the WikiHow part of HellaSwag.
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def hellaswag_process_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """query = activity label + context (ctx_b capitalised); choices = cleaned endings; gold = label."""
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return {
        "query": _hellaswag_preprocess(doc["activity_label"] + ": " + ctx),
        "choices": [_hellaswag_preprocess(ending) for ending in doc["endings"]],
        "gold": int(doc["label"]),
    }


def hellaswag_process_docs(dataset: Any) -> Any:
    """``datasets.Dataset.map`` of :func:`hellaswag_process_doc`."""
    return dataset.map(hellaswag_process_doc)


def winogrande_doc_to_text(doc: dict[str, Any]) -> int:
    """Index of the correct option: the gold *context* (partial scoring)."""
    return {"1": 0, "2": 1}[doc["answer"]]


def winogrande_doc_to_target(doc: dict[str, Any]) -> str:
    """The sentence after the blank: the continuation shared by both options."""
    idx = doc["sentence"].index("_") + 1
    return doc["sentence"][idx:].strip()


def winogrande_doc_to_choice(doc: dict[str, Any]) -> list[str]:
    """The sentence up to the blank, completed with each option (these are contexts)."""
    idx = doc["sentence"].index("_")
    return [doc["sentence"][:idx] + opt for opt in (doc["option1"], doc["option2"])]


def _copa_choice(choice: str) -> str:
    return choice[0].lower() + choice[1:]


def copa_doc_to_text(doc: dict[str, Any]) -> str:
    """Premise without its final period, joined by 'because' (cause) or 'therefore' (effect)."""
    connector = {"cause": "because", "effect": "therefore"}[doc["question"]]
    return doc["premise"].strip()[:-1] + f" {connector}"


def copa_doc_to_target(doc: dict[str, Any]) -> str:
    correct = doc["choice1"] if doc["label"] == 0 else doc["choice2"]
    return " " + _copa_choice(correct)


def copa_doc_to_choice(doc: dict[str, Any]) -> list[str]:
    return [" " + _copa_choice(doc["choice1"]), " " + _copa_choice(doc["choice2"])]
