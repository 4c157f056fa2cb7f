"""The offline task configs shipped in ``evaluate/tasks``: render them for a data directory given at run time.

Layout of the data directory (``--task-data DIR``)::

    DIR/arc_challenge/test.jsonl   DIR/arc_easy/test.jsonl     DIR/openbookqa/test.jsonl
    DIR/hellaswag/validation.jsonl DIR/piqa/validation.jsonl   DIR/winogrande/validation.jsonl
    DIR/copa/validation.jsonl      (+ optional DIR/<task>/train.jsonl for few-shot examples)

Each file holds the fields of the hub dataset that the stock lm-eval task loads, so the stock prompt
functions apply unchanged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from bayes_l2l.errors import UserInputError

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
UTILS_FILE = "bl2l_task_utils.py"
EVAL_SPLIT = {
    "arc_challenge": "test",
    "arc_easy": "test",
    "openbookqa": "test",
    "hellaswag": "validation",
    "piqa": "validation",
    "winogrande": "validation",
    "copa": "validation",
}
OFFLINE_TASKS = tuple(EVAL_SPLIT)


def data_file(data_dir: Path, task: str, split: str | None = None) -> Path:
    """Where the offline config of ``task`` reads its ``split`` (default: the evaluated split)."""
    return Path(data_dir) / task / f"{split or EVAL_SPLIT[task]}.jsonl"


def check_task_data(data_dir: Path, tasks: list[str], shots: dict[str, int]) -> None:
    """Raise a UserInputError naming each missing file, with the layout expected."""
    missing = []
    for t in tasks:
        if not data_file(data_dir, t).is_file():
            missing.append(str(data_file(data_dir, t)))
        if shots.get(t, 0) > 0 and not data_file(data_dir, t, "train").is_file():
            raise UserInputError(
                f"task {t}: num_fewshot={shots[t]} needs few-shot examples: put "
                f"{data_file(data_dir, t, 'train')} "
                "(same fields as the evaluated split) in the task data directory, or use num_fewshot: 0"
            )
    if missing:
        raise UserInputError(
            f"task data directory {data_dir}: missing {', '.join(missing)}; expected <task>/<split>.jsonl "
            f"for the tasks {', '.join(tasks)} (see docs/evaluate.md)"
        )


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def render_task_configs(data_dir: Path, tasks: list[str], out_dir: Path | None = None) -> Path:
    """Write the configs of ``tasks`` with their data files filled in; returns the include directory."""
    data_dir = Path(data_dir).resolve()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="bayes_l2l_tasks_"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TASKS_DIR / UTILS_FILE, out / UTILS_FILE)
    for t in tasks:
        if t not in EVAL_SPLIT:
            raise UserInputError(
                f"no offline config for task '{t}'; offline tasks are {', '.join(OFFLINE_TASKS)}"
            )
        split = EVAL_SPLIT[t]
        files = {split: str(data_file(data_dir, t))}
        extra = ""
        train = data_file(data_dir, t, "train")
        if train.is_file():
            files["train"] = str(train)
            extra = "training_split: train\nfewshot_split: train\n"
        flow = "{data_files: {" + ", ".join(f"{k}: {_yaml_str(v)}" for k, v in files.items()) + "}}"
        text = (TASKS_DIR / f"{t}.yaml").read_text(encoding="utf-8").replace("@DATA_FILES@", flow)
        (out / f"{t}.yaml").write_text(text + extra, encoding="utf-8")
    return out


def task_data_fingerprint(data_dir: Path, tasks: list[str]) -> dict[str, str]:
    """{task: sha256 of its evaluated data file (+ train file)} for the store namespace."""
    out = {}
    for t in tasks:
        h = hashlib.sha256()
        for split in (EVAL_SPLIT[t], "train"):
            f = data_file(data_dir, t, split)
            if f.is_file():
                h.update(split.encode())
                h.update(f.read_bytes())
        out[t] = h.hexdigest()
    return out
