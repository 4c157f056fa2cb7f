"""Checkpoint manifests (``models/*.yaml``): which checkpoints to evaluate, with their factor labels.

A manifest is data: it is read with ``yaml.safe_load``, validated, and expanded into :class:`Checkpoint`
records; nothing in it is executed. Schema (documented in docs/evaluate.md)::

    schema: bayes-l2l/manifest/v1          # optional; the only version so far
    defaults: {<entry keys>}               # merged under every entry (entry keys win)
    models:
      - run: pythia-160m                   # run id in the loss table (default: last part of repo/path)
        repo: EleutherAI/pythia-160m       # hub repo id ...
        path: /ckpts/my-run                # ... or a local directory (revisions = sub-directories)
        tokenizer_repo: EleutherAI/gpt-neox-20b  # optional tokenizer repo/path (default: the model's)
        loader: transformers               # or mamba_ssm (state-spaces checkpoints; CUDA + mamba-ssm)
        revisions: [main]                  # list, or {template, steps, ranges}, or {pattern}
        final_step: 143000                 # step of revision 'main' (optional)
        tokens_per_step: 2097152           # tokens seen = step * tokens_per_step
        params: 1.2e8                      # optional label; else counted from the loaded model
        architecture: GPT                  # factor labels: the standard factors of the LossTable
        tokenizer: gpt-neox                #   (tokenizer here is the factor label, not where to load it)
        labels: {size: 160m}               # ... and any extra factor (strings)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bayes_l2l.errors import UserInputError
from bayes_l2l.table import STANDARD_FACTORS

SCHEMA_ID = "bayes-l2l/manifest/v1"
LOADERS = ("transformers", "mamba_ssm")
ENTRY_KEYS = frozenset(
    {
        "run",
        "repo",
        "path",
        "tokenizer_repo",
        "loader",
        "revisions",
        "final_step",
        "tokens_per_step",
        "params",
        "labels",
        "trust_remote_code",
        "note",
        *STANDARD_FACTORS,
    }
)
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_EXTRA_LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED_LABELS = frozenset(
    {
        "run",
        "checkpoint",
        "step",
        "tokens",
        "params",
        "metric",
        "kind",
        "value",
        "unit",
        "estimator",
        "n",
        "stderr",
    }
)


@dataclass(frozen=True)
class Checkpoint:
    """One model checkpoint to evaluate: where to load it from and its identity/labels in the loss table."""

    run: str
    checkpoint: str  # the revision label (hub branch/tag, sub-directory, or 'main')
    source: str  # hub repo id or local directory
    revision: str | None  # hub revision (None for local paths)
    local: bool
    tokenizer: str
    loader: str = "transformers"
    step: float = math.nan
    tokens: float = math.nan
    params: float = math.nan  # NaN: count from the loaded model
    factors: dict[str, str] = field(default_factory=dict)
    trust_remote_code: bool = False

    @property
    def key(self) -> str:
        """Stable id 'run@checkpoint' used by the result store and job arrays."""
        return f"{self.run}@{self.checkpoint}"

    def load_path(self) -> str:
        """What to pass to ``from_pretrained``: the repo id, or the local (sub-)directory."""
        if self.local and self.revision not in (None, "", "main"):
            return str(Path(self.source) / str(self.revision))
        return self.source


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: its file and the checkpoints it expands to (hub patterns stay unresolved)."""

    path: Path
    checkpoints: tuple[Checkpoint, ...]
    patterns: tuple[PatternSpec, ...] = ()

    def runs(self) -> list[str]:
        return sorted({c.run for c in self.checkpoints} | {p.base.run for p in self.patterns})


@dataclass(frozen=True)
class PatternSpec:
    """Revisions given as a regular expression over the hub repo's branches, resolved at run time."""

    base: Checkpoint  # template: identity/labels; checkpoint/revision/step/tokens are filled per match
    pattern: str
    every: int = 1
    tokens_per_step: float = math.nan


# ------------------------------------------------------------------------------------------------ loading
def load_manifest(path: str | Path) -> Manifest:
    """Read, validate and expand a manifest; raise UserInputError naming file, entry and key on problems."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: manifest not found; pass a models/*.yaml file (see docs/evaluate.md)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    return parse_manifest(raw, str(path), base_dir=path.parent)


def parse_manifest(raw: Any, source: str = "<manifest>", base_dir: Path | None = None) -> Manifest:
    """Validate an already-parsed manifest mapping (``yaml.safe_load`` output)."""
    if not isinstance(raw, dict):
        raise UserInputError(
            f"{source}: a manifest is a mapping with a 'models' list; got {type(raw).__name__}"
        )
    unknown = set(raw) - {"schema", "defaults", "models", "note"}
    if unknown:
        raise UserInputError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
            "allowed: schema, defaults, models, note"
        )
    schema = raw.get("schema", SCHEMA_ID)
    if schema != SCHEMA_ID:
        raise UserInputError(
            f"{source}: schema '{schema}' is not supported; this version reads '{SCHEMA_ID}'"
        )
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise UserInputError(f"{source}: 'defaults' must be a mapping of entry keys")
    _check_keys(defaults, f"{source}: defaults")
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        raise UserInputError(f"{source}: 'models' must be a non-empty list of model entries")
    checkpoints: list[Checkpoint] = []
    patterns: list[PatternSpec] = []
    for i, entry in enumerate(models):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict):
            raise UserInputError(f"{where}: each entry is a mapping (repo/path, revisions, labels)")
        merged = {**defaults, **entry}
        if isinstance(defaults.get("labels"), dict) and isinstance(entry.get("labels"), dict):
            merged["labels"] = {**defaults["labels"], **entry["labels"]}
        where = f"{where} (run {merged.get('run') or merged.get('repo') or merged.get('path')})"
        cks, pats = _expand_entry(merged, where, base_dir)
        checkpoints.extend(cks)
        patterns.extend(pats)
    seen: dict[str, int] = {}
    for c in checkpoints:
        if c.key in seen:
            raise UserInputError(
                f"{source}: checkpoint '{c.key}' is listed twice; give the entries distinct 'run' ids "
                "or remove the duplicate revision"
            )
        seen[c.key] = 1
    _check_run_consistency(checkpoints, source)
    return Manifest(Path(source), tuple(checkpoints), tuple(patterns))


# ------------------------------------------------------------------------------------------------ entries
def _check_keys(entry: dict[str, Any], where: str) -> None:
    unknown = sorted(str(k) for k in entry if k not in ENTRY_KEYS)
    if unknown:
        raise UserInputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(sorted(ENTRY_KEYS))} "
            "(put extra factor labels under 'labels')"
        )


def _number(value: Any, where: str, key: str, *, positive: bool = False) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise UserInputError(f"{where}: '{key}' must be a number, got {value!r}") from None
        else:
            raise UserInputError(f"{where}: '{key}' must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UserInputError(
            f"{where}: '{key}' must be a {'positive' if positive else 'non-negative'} number"
        )
    return value


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    s = str(value).strip()
    return s or None


def _expand_entry(
    entry: dict[str, Any], where: str, base_dir: Path | None
) -> tuple[list[Checkpoint], list[PatternSpec]]:
    _check_keys(entry, where)
    repo, local_path = entry.get("repo"), entry.get("path")
    if (repo is None) == (local_path is None):
        raise UserInputError(f"{where}: give exactly one of 'repo' (hub id) or 'path' (local directory)")
    if repo is not None and (not isinstance(repo, str) or repo.count("/") != 1 or " " in repo):
        raise UserInputError(f"{where}: 'repo' must be a hub id 'owner/name', got {repo!r}")
    local = local_path is not None
    if local:
        p = Path(str(local_path)).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = (base_dir / p).resolve()
        source = str(p)
    else:
        source = str(repo)
    run = entry.get("run") or Path(source).name
    run = str(run)
    if not _RUN_ID.match(run):
        raise UserInputError(f"{where}: run id {run!r} may only hold letters, digits and . _ + -")
    loader = entry.get("loader", "transformers")
    if loader not in LOADERS:
        raise UserInputError(f"{where}: loader {loader!r} is unknown; use one of {', '.join(LOADERS)}")
    tokenizer = entry.get("tokenizer_repo") or source
    if not isinstance(tokenizer, str):
        raise UserInputError(f"{where}: 'tokenizer_repo' must be a hub id or a local directory")
    if entry.get("tokenizer_repo") and base_dir is not None:  # a local directory beside the manifest?
        candidate = Path(tokenizer).expanduser()
        candidate = candidate if candidate.is_absolute() else base_dir / candidate
        if candidate.exists():
            tokenizer = str(candidate.resolve())
    factors: dict[str, str] = {}
    for key in STANDARD_FACTORS:
        lab = _label(entry.get(key))
        if lab is not None:
            factors[key] = lab
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict):
        raise UserInputError(f"{where}: 'labels' must be a mapping of extra factor name -> value")
    for key, value in labels.items():
        key = str(key)
        if key in _RESERVED_LABELS or not _EXTRA_LABEL.match(key):
            raise UserInputError(
                f"{where}: label '{key}' is not allowed; use a lowercase snake_case name that is not a table "
                f"column ({', '.join(sorted(_RESERVED_LABELS))})"
            )
        if key in STANDARD_FACTORS:
            raise UserInputError(
                f"{where}: '{key}' is a standard factor; set it at the entry level, not in labels"
            )
        lab = _label(value)
        if lab is not None:
            factors[key] = lab
    trust = entry.get("trust_remote_code", False)
    if not isinstance(trust, bool):
        raise UserInputError(f"{where}: 'trust_remote_code' must be true or false")
    tps = _number(entry.get("tokens_per_step"), where, "tokens_per_step", positive=True)
    final_step = _number(entry.get("final_step"), where, "final_step")
    params = _number(entry.get("params"), where, "params", positive=True)
    base = Checkpoint(
        run=run,
        checkpoint="main",
        source=source,
        revision=None if local else "main",
        local=local,
        tokenizer=str(tokenizer),
        loader=loader,
        params=params,
        factors=factors,
        trust_remote_code=trust,
    )
    revisions = entry.get("revisions", ["main"])
    if isinstance(revisions, dict) and "pattern" in revisions:
        if local:
            raise UserInputError(
                f"{where}: a revision 'pattern' needs a hub repo; list local revisions explicitly"
            )
        return [], [_pattern_spec(revisions, base, tps, where)]
    items = _revision_items(revisions, where)
    out = []
    for item in items:
        rev, step, tokens = item["revision"], item.get("step"), item.get("tokens")
        step_v = _number(step, where, f"step of revision {rev!r}")
        if math.isnan(step_v) and rev == "main" and not math.isnan(final_step):
            step_v = final_step
        if math.isnan(step_v):
            step_v = _step_from_name(rev)
        tokens_v = _number(tokens, where, f"tokens of revision {rev!r}")
        if math.isnan(tokens_v) and not math.isnan(step_v) and not math.isnan(tps):
            tokens_v = step_v * tps
        out.append(
            Checkpoint(
                run=run,
                checkpoint=rev,
                source=source,
                revision=(rev if not local else (None if rev == "main" else rev)),
                local=local,
                tokenizer=str(tokenizer),
                loader=loader,
                step=step_v,
                tokens=tokens_v,
                params=params,
                factors=factors,
                trust_remote_code=trust,
            )
        )
    return out, []


_STEP_IN_NAME = re.compile(r"^(?:step|checkpoint|ckpt|iter)[-_]?0*(\d+)(?:\D.*)?$", re.IGNORECASE)


def _step_from_name(rev: str) -> float:
    """'step1000' / 'step-001000-2BT' / 'checkpoint-500' -> the step number; NaN otherwise."""
    m = _STEP_IN_NAME.match(rev)
    return float(m.group(1)) if m else math.nan


def _revision_items(revisions: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(revisions, str):
        revisions = [revisions]
    if isinstance(revisions, list):
        items = []
        for j, rev in enumerate(revisions):
            if isinstance(rev, str | int) and not isinstance(rev, bool):
                items.append({"revision": str(rev)})
            elif isinstance(rev, dict):
                extra = set(rev) - {"revision", "step", "tokens"}
                if "revision" not in rev or extra:
                    raise UserInputError(
                        f"{where}: revisions[{j}] must be a name or a mapping with 'revision' (and optional "
                        f"'step', 'tokens'); got keys {', '.join(map(str, rev))}"
                    )
                items.append({**rev, "revision": str(rev["revision"])})
            else:
                raise UserInputError(f"{where}: revisions[{j}] must be a string or a mapping, got {rev!r}")
        if not items:
            raise UserInputError(f"{where}: 'revisions' is empty; list at least one (e.g. [main])")
        names = [it["revision"] for it in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UserInputError(f"{where}: revision(s) {', '.join(dup)} listed more than once")
        return items
    if isinstance(revisions, dict):
        return _template_items(revisions, where)
    raise UserInputError(
        f"{where}: 'revisions' must be a list, a {{template, steps, ranges}} mapping or a {{pattern}} mapping"
    )


def _template_items(spec: dict[str, Any], where: str) -> list[dict[str, Any]]:
    extra = set(spec) - {"template", "steps", "ranges", "include_main"}
    if extra or "template" not in spec:
        raise UserInputError(
            f"{where}: generated revisions need 'template' (e.g. 'step{{step}}') plus 'steps' and/or "
            "'ranges'; "
            f"unknown key(s): {', '.join(sorted(map(str, extra))) or 'none'}"
        )
    template = spec["template"]
    if not isinstance(template, str) or "{step" not in template:
        raise UserInputError(f"{where}: revisions.template must contain '{{step}}', e.g. 'step{{step}}'")
    steps: set[int] = set()
    for s in spec.get("steps") or []:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise UserInputError(f"{where}: revisions.steps must be non-negative integers, got {s!r}")
        steps.add(s)
    for k, rng in enumerate(spec.get("ranges") or []):
        if not isinstance(rng, dict) or set(rng) != {"start", "stop", "every"}:
            raise UserInputError(
                f"{where}: revisions.ranges[{k}] must be {{start, stop, every}} (stop inclusive)"
            )
        start, stop, every = rng["start"], rng["stop"], rng["every"]
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, every))
            or every <= 0
        ):
            raise UserInputError(
                f"{where}: revisions.ranges[{k}]: start, stop, every must be integers, every > 0"
            )
        if stop < start:
            raise UserInputError(f"{where}: revisions.ranges[{k}]: stop {stop} is before start {start}")
        steps.update(range(start, stop + 1, every))
    if not steps:
        raise UserInputError(f"{where}: the revision template expands to no steps; give 'steps' or 'ranges'")
    try:
        items = [{"revision": template.format(step=s), "step": s} for s in sorted(steps)]
    except (KeyError, IndexError, ValueError) as exc:
        raise UserInputError(f"{where}: revisions.template {template!r} cannot be formatted ({exc})") from exc
    if spec.get("include_main"):
        items.append({"revision": "main"})
    return items


def _pattern_spec(spec: dict[str, Any], base: Checkpoint, tps: float, where: str) -> PatternSpec:
    extra = set(spec) - {"pattern", "every"}
    if extra:
        raise UserInputError(
            f"{where}: revisions pattern takes 'pattern' and 'every'; unknown: {sorted(extra)}"
        )
    pattern = spec["pattern"]
    try:
        rx = re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise UserInputError(
            f"{where}: revisions.pattern {pattern!r} is not a valid regular expression ({exc})"
        ) from exc
    if "step" not in rx.groupindex:
        raise UserInputError(f"{where}: revisions.pattern must capture the step as (?P<step>\\d+)")
    every = spec.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UserInputError(f"{where}: revisions.every must be a positive integer")
    return PatternSpec(base=base, pattern=pattern, every=every, tokens_per_step=tps)


def resolve_pattern(spec: PatternSpec, refs: list[str]) -> list[Checkpoint]:
    """Checkpoints for the branch names in ``refs`` that match the spec (every k-th by step, plus 'main')."""
    rx = re.compile(spec.pattern)
    matches = []
    for name in refs:
        m = rx.fullmatch(name)
        if m:
            step = float(m.group("step"))
            tokens = math.nan
            if not math.isnan(spec.tokens_per_step):
                tokens = step * spec.tokens_per_step
            elif "tokens_b" in rx.groupindex and m.group("tokens_b") is not None:
                tokens = float(m.group("tokens_b")) * 1e9
            matches.append((step, name, tokens))
    matches.sort()
    chosen = matches[:: spec.every]
    if matches and matches[-1] not in chosen:
        chosen.append(matches[-1])
    b = spec.base
    return [
        Checkpoint(
            run=b.run,
            checkpoint=name,
            source=b.source,
            revision=name,
            local=False,
            tokenizer=b.tokenizer,
            loader=b.loader,
            step=step,
            tokens=tokens,
            params=b.params,
            factors=b.factors,
            trust_remote_code=b.trust_remote_code,
        )
        for step, name, tokens in chosen
    ]


def list_hub_revisions(repo: str) -> list[str]:
    """Branch names of a hub model repo (needs the hub); a clear error when it is unreachable."""
    try:
        from huggingface_hub import list_repo_refs

        refs = list_repo_refs(repo)
    except Exception as exc:  # noqa: BLE001 - offline, auth, missing repo: all user-fixable
        raise UserInputError(
            f"{repo}: cannot list the hub branches to resolve a revision pattern "
            f"({type(exc).__name__}: {exc}); "
            "list the revisions explicitly in the manifest when the hub is unreachable"
        ) from exc
    return [b.name for b in refs.branches]


def expand(manifest: Manifest, *, resolve_patterns: bool = True) -> list[Checkpoint]:
    """All checkpoints of a manifest, resolving hub revision patterns (which needs the hub)."""
    out = list(manifest.checkpoints)
    if resolve_patterns:
        for spec in manifest.patterns:
            found = resolve_pattern(spec, list_hub_revisions(spec.base.source))
            if not found:
                raise UserInputError(
                    f"{manifest.path}: run {spec.base.run}: no branch of {spec.base.source} matches "
                    f"pattern {spec.pattern!r}"
                )
            out.extend(found)
    return out


def _check_run_consistency(checkpoints: list[Checkpoint], source: str) -> None:
    """Factor labels must be constant within a run (the LossTable requires it)."""
    by_run: dict[str, Checkpoint] = {}
    for c in checkpoints:
        first = by_run.setdefault(c.run, c)
        if first.factors != c.factors or first.source != c.source:
            raise UserInputError(
                f"{source}: run '{c.run}' appears in several entries with different sources or labels; "
                "a run has one source and one set of factor labels: give the entries distinct 'run' ids"
            )
