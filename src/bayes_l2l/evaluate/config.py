"""Evaluation config (YAML): validation corpora, cloze tasks, the estimator's settings, engine knobs.

Schema (documented in docs/evaluate.md; relative paths are relative to the config file)::

    schema: bayes-l2l/eval-config/v1
    context_length: 2048        # model input tokens per sequence, the unscored prefix token included
    truncation: keep_start      # keep_start (cut the end of long documents) | keep_end
    prefix: bos_or_eos          # bos_or_eos | tokenizer | none   (what precedes the first scored token)
    pool: tokens                # tokens (NLL pooled over scored tokens) | documents (mean of per-doc means)
    bootstrap: 1000             # per-document bootstrap resamples for the validation stderr (0 = none)
    seed: 0
    corpora:
      c4: {path: c4.jsonl, text_field: text, documents: 5000}
      shakespeare: {path: input.txt, split: blank_lines, documents: 5000}
      fineweb_edu: {hub: {dataset: HuggingFaceFW/fineweb-edu, name: sample-10BT, split: train}}
    tasks:
      names: [arc_easy, arc_challenge, hellaswag, winogrande, piqa, copa, openbookqa]
      num_fewshot: 0
      data_dir: null            # local task files (see evaluate/tasks); --task-data overrides
      include: []               # extra directories of lm-eval task YAMLs
    engine: {device: auto, dtype: auto, batch_tokens: auto, max_batch_size: 256, progress: true}
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bayes_l2l.errors import UserInputError

SCHEMA_ID = "bayes-l2l/eval-config/v1"
TRUNCATIONS = ("keep_start", "keep_end")
PREFIXES = ("bos_or_eos", "tokenizer", "none")
POOLS = ("tokens", "documents")
TEXT_SPLITS = ("whole", "lines", "blank_lines")
DEVICES = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_SNAKE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
PAPER_TASKS = ("arc_challenge", "arc_easy", "hellaswag", "winogrande", "piqa", "copa", "openbookqa")


@dataclass(frozen=True)
class CorpusSpec:
    """One validation corpus: a local file (jsonl, json, parquet, txt) or a hub dataset; first N documents."""

    name: str  # metric id is val/<name>
    path: Path | None = None
    hub: dict[str, str] | None = None
    text_field: str = "text"
    split: str = "whole"  # for .txt files
    documents: int = 5000


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task; the metric id is test/<metric>."""

    name: str
    metric: str
    num_fewshot: int = 0


@dataclass(frozen=True)
class EngineSpec:
    """How to run the model (not part of the estimator: changing it does not change the namespace)."""

    device: str = "auto"
    dtype: str = "auto"
    batch_tokens: int | None = None  # None = automatic (start high on CUDA, back off on OOM)
    max_batch_size: int = 256
    progress: bool = True


@dataclass(frozen=True)
class EvalConfig:
    """A validated evaluation config."""

    path: Path | None
    context_length: int = 2048
    truncation: str = "keep_start"
    prefix: str = "bos_or_eos"
    pool: str = "tokens"
    bootstrap: int = 1000
    seed: int = 0
    corpora: tuple[CorpusSpec, ...] = ()
    tasks: tuple[TaskSpec, ...] = ()
    task_data: Path | None = None
    task_include: tuple[Path, ...] = ()
    task_limit: int | None = None
    engine: EngineSpec = field(default_factory=EngineSpec)

    def with_task_data(self, task_data: str | Path | None) -> EvalConfig:
        """A copy whose local task data directory is ``task_data`` (the CLI's --task-data)."""
        if task_data is None:
            return self
        p = Path(task_data).expanduser().resolve()
        if not p.is_dir():
            raise UserInputError(
                f"--task-data {task_data}: not a directory; pass the folder holding <task>/*.jsonl"
            )
        return _replace(self, task_data=p)

    def with_engine(self, **changes: Any) -> EvalConfig:
        """A copy with engine settings changed (None values are ignored)."""
        eng = {**asdict(self.engine), **{k: v for k, v in changes.items() if v is not None}}
        return _replace(self, engine=EngineSpec(**eng))

    def estimator_spec(self) -> dict[str, Any]:
        """The settings that define the estimator (hashed into the store namespace)."""
        return {
            "context_length": self.context_length,
            "truncation": self.truncation,
            "prefix": self.prefix,
            "pool": self.pool,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "corpora": [
                {"name": c.name, "documents": c.documents, "text_field": c.text_field, "split": c.split}
                for c in self.corpora
            ],
            "tasks": [asdict(t) for t in self.tasks],
            "task_limit": self.task_limit,
        }

    def to_dict(self) -> dict[str, Any]:
        """A YAML/JSON-able copy of the config (paths as strings)."""
        return {
            "schema": SCHEMA_ID,
            "context_length": self.context_length,
            "truncation": self.truncation,
            "prefix": self.prefix,
            "pool": self.pool,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "corpora": {
                c.name: {
                    **({"path": str(c.path)} if c.path else {"hub": dict(c.hub or {})}),
                    "text_field": c.text_field,
                    "split": c.split,
                    "documents": c.documents,
                }
                for c in self.corpora
            },
            "tasks": {
                "names": [
                    {"name": t.name, "metric": t.metric, "num_fewshot": t.num_fewshot} for t in self.tasks
                ],
                "data_dir": str(self.task_data) if self.task_data else None,
                "include": [str(p) for p in self.task_include],
                "limit": self.task_limit,
            },
            "engine": asdict(self.engine),
        }


def _replace(cfg: EvalConfig, **changes: Any) -> EvalConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


def fingerprint(obj: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------ loading
def load_config(path: str | Path) -> EvalConfig:
    """Read and validate an eval config; errors name the file, the key, what was expected and the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: eval config not found; see configs/eval/*.yaml for examples")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    return parse_config(raw, str(path), base_dir=path.parent.resolve())


_TOP_KEYS = {
    "schema",
    "context_length",
    "truncation",
    "prefix",
    "pool",
    "bootstrap",
    "seed",
    "corpora",
    "tasks",
    "engine",
    "note",
}


def parse_config(raw: Any, source: str = "<config>", base_dir: Path | None = None) -> EvalConfig:
    """Validate a parsed config mapping."""
    if not isinstance(raw, dict):
        raise UserInputError(f"{source}: an eval config is a mapping (corpora, tasks, context_length, ...)")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise UserInputError(
            f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: "
            f"{', '.join(sorted(_TOP_KEYS))}"
        )
    if raw.get("schema", SCHEMA_ID) != SCHEMA_ID:
        raise UserInputError(f"{source}: schema '{raw.get('schema')}' is not supported; use '{SCHEMA_ID}'")
    ctx = _int(raw.get("context_length", 2048), source, "context_length", minimum=2)
    truncation = _choice(raw.get("truncation", "keep_start"), TRUNCATIONS, source, "truncation")
    prefix = _choice(raw.get("prefix", "bos_or_eos"), PREFIXES, source, "prefix")
    pool = _choice(raw.get("pool", "tokens"), POOLS, source, "pool")
    bootstrap = _int(raw.get("bootstrap", 1000), source, "bootstrap", minimum=0)
    seed = _int(raw.get("seed", 0), source, "seed", minimum=0)
    corpora = _corpora(raw.get("corpora") or {}, source, base_dir)
    tasks, task_data, include, limit = _tasks(raw.get("tasks"), source, base_dir)
    if not corpora and not tasks:
        raise UserInputError(f"{source}: nothing to evaluate; give 'corpora' and/or 'tasks'")
    engine = _engine(raw.get("engine") or {}, source)
    return EvalConfig(
        path=Path(source) if source != "<config>" else None,
        context_length=ctx,
        truncation=truncation,
        prefix=prefix,
        pool=pool,
        bootstrap=bootstrap,
        seed=seed,
        corpora=corpora,
        tasks=tasks,
        task_data=task_data,
        task_include=include,
        task_limit=limit,
        engine=engine,
    )


def _int(value: Any, source: str, key: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserInputError(f"{source}: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...], source: str, key: str) -> str:
    if value not in choices:
        raise UserInputError(f"{source}: '{key}' is {value!r}; expected one of {', '.join(choices)}")
    return str(value)


def _resolve(p: Any, base_dir: Path | None) -> Path:
    path = Path(str(p)).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = (base_dir / path).resolve()
    return path


def _corpora(raw: Any, source: str, base_dir: Path | None) -> tuple[CorpusSpec, ...]:
    if not isinstance(raw, dict):
        raise UserInputError(f"{source}: 'corpora' must map a corpus name to {{path|hub, documents, ...}}")
    out = []
    for name, spec in raw.items():
        where = f"{source}: corpora.{name}"
        name = str(name)
        if not _SNAKE.match(name):
            raise UserInputError(
                f"{where}: corpus names become metric ids val/<name>; use lowercase snake_case (e.g. "
                "fineweb_edu)"
            )
        if not isinstance(spec, dict):
            raise UserInputError(f"{where}: expected a mapping with 'path' or 'hub'")
        unknown = set(spec) - {"path", "hub", "text_field", "split", "documents"}
        if unknown:
            raise UserInputError(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                "allowed: path, hub, text_field, split, documents"
            )
        if ("path" in spec) == ("hub" in spec):
            raise UserInputError(f"{where}: give exactly one of 'path' (local file) or 'hub' (dataset id)")
        documents = _int(spec.get("documents", 5000), where, "documents", minimum=1)
        split = _choice(spec.get("split", "whole"), TEXT_SPLITS, where, "split")
        text_field = spec.get("text_field", "text")
        if not isinstance(text_field, str) or not text_field:
            raise UserInputError(f"{where}: 'text_field' must be a column name")
        if "path" in spec:
            path = _resolve(spec["path"], base_dir)
            if path.suffix.lower() not in (".jsonl", ".json", ".parquet", ".txt"):
                raise UserInputError(
                    f"{where}: {path}: unsupported file type; use .jsonl, .json, .parquet or .txt"
                )
            out.append(CorpusSpec(name, path=path, text_field=text_field, split=split, documents=documents))
        else:
            hub = spec["hub"]
            if not isinstance(hub, dict) or "dataset" not in hub or set(hub) - {"dataset", "name", "split"}:
                raise UserInputError(f"{where}: 'hub' must be {{dataset, name (optional), split}}")
            hub = {k: str(v) for k, v in hub.items()}
            hub.setdefault("split", "validation")
            out.append(CorpusSpec(name, hub=hub, text_field=text_field, documents=documents))
    return tuple(out)


def _tasks(
    raw: Any, source: str, base_dir: Path | None
) -> tuple[tuple[TaskSpec, ...], Path | None, tuple[Path, ...], int | None]:
    if raw is None:
        return (), None, (), None
    if isinstance(raw, list):
        raw = {"names": raw}
    if not isinstance(raw, dict):
        raise UserInputError(f"{source}: 'tasks' must be a list of task names or a mapping with 'names'")
    unknown = set(raw) - {"names", "num_fewshot", "data_dir", "include", "limit"}
    if unknown:
        raise UserInputError(
            f"{source}: tasks: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "allowed: names, num_fewshot, data_dir, include, limit"
        )
    default_shots = _int(raw.get("num_fewshot", 0), source, "tasks.num_fewshot")
    names = raw.get("names") or []
    if not isinstance(names, list):
        raise UserInputError(f"{source}: tasks.names must be a list")
    specs: list[TaskSpec] = []
    for i, item in enumerate(names):
        where = f"{source}: tasks.names[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item or set(item) - {"name", "metric", "num_fewshot"}:
            raise UserInputError(
                f"{where}: a task is a name or {{name, metric (optional), num_fewshot (optional)}}"
            )
        name = str(item["name"])
        metric = str(item.get("metric") or re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))
        if not _SNAKE.match(metric):
            raise UserInputError(
                f"{where}: metric '{metric}' must be lowercase snake_case (becomes test/<metric>)"
            )
        shots = _int(item.get("num_fewshot", default_shots), where, "num_fewshot")
        specs.append(TaskSpec(name=name, metric=metric, num_fewshot=shots))
    metrics = [t.metric for t in specs]
    dup = sorted({m for m in metrics if metrics.count(m) > 1})
    if dup:
        raise UserInputError(
            f"{source}: tasks: metric id(s) {', '.join(dup)} used twice; set distinct 'metric'"
        )
    data_dir = raw.get("data_dir")
    task_data = _resolve(data_dir, base_dir) if data_dir else None
    include = raw.get("include") or []
    if not isinstance(include, list):
        raise UserInputError(f"{source}: tasks.include must be a list of directories")
    inc = tuple(_resolve(p, base_dir) for p in include)
    for p in inc:
        if not p.is_dir():
            raise UserInputError(f"{source}: tasks.include: {p} is not a directory of lm-eval task YAMLs")
    limit = raw.get("limit")
    if limit is not None:
        limit = _int(limit, source, "tasks.limit", minimum=1)
    return tuple(specs), task_data, inc, limit


def _engine(raw: Any, source: str) -> EngineSpec:
    if not isinstance(raw, dict):
        raise UserInputError(f"{source}: 'engine' must be a mapping")
    unknown = set(raw) - {"device", "dtype", "batch_tokens", "max_batch_size", "progress"}
    if unknown:
        raise UserInputError(
            f"{source}: engine: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "allowed: device, dtype, batch_tokens, max_batch_size, progress"
        )
    device = str(raw.get("device", "auto"))
    if not DEVICES.match(device):
        raise UserInputError(f"{source}: engine.device {device!r}: use auto, cpu, cuda or cuda:N")
    dtype = _choice(raw.get("dtype", "auto"), DTYPES, source, "engine.dtype")
    bt = raw.get("batch_tokens", "auto")
    batch_tokens = None if bt in (None, "auto") else _int(bt, source, "engine.batch_tokens", minimum=1)
    mbs = _int(raw.get("max_batch_size", 256), source, "engine.max_batch_size", minimum=1)
    progress = raw.get("progress", True)
    if not isinstance(progress, bool):
        raise UserInputError(f"{source}: engine.progress must be true or false")
    return EngineSpec(
        device=device, dtype=dtype, batch_tokens=batch_tokens, max_batch_size=mbs, progress=progress
    )
