"""Importer for the reference paper's tables (Mayilvahanan et al. 2025, github.com/brendel-group/llm-line).

Two layouts are recognised by their header:

* ``latest_pm_hf.csv``: two header rows (the second labels the six ``Intervention`` flag columns), Title Case
  names such as ``C4 Validation Loss`` / ``ARC-Easy BPB``;
* ``df_hf_pretrained_20250127-100514.csv``: the older export, one header row, snake_case names such as
  ``c4_val_loss`` / ``arc_easy/loss``, with no steps, tokens, sizes or tokenizers.

How each number was made is written into the ``estimator`` column (see docs/mapping.md and
../shared/docs/method.md section 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_l2l.errors import UserInputError
from bayes_l2l.io.common import (
    MetricSpec,
    constant_per_run,
    ensure_standard_factors,
    finish,
    missing_cells_warning,
    read_csv,
    snake,
    wide_to_long,
)
from bayes_l2l.table import FLAG_PREFIX, LossTable, canonical_metric_id

# ----------------------------------------------------------------------------------------- estimators
VAL_EST = "llm-line:window50-ctx0;first5000docs;trunc2048;token-pooled"
SLIM_EST = "llm-line:window16-ctx0;first5000docs;trunc2048;token-pooled"
TASK_EST = "llm-line:cloze-correct-only;sum-nll/(tokens-1);0-shot;lm-eval-default"
MMLU_EST = (
    "llm-line:cloze-correct-only;sum-nll(no-length-normalisation);0-shot;lm-eval-default;subject-weighted"
)
BPB_SUFFIX = ";bpb=loss/(ln2*bytes_per_token_const)"
TASK_BPB_EST = (
    "llm-line:cloze-correct-only;bpb(normalisation-undocumented,no-token-off-by-one);0-shot;lm-eval-default"
)
OLD_SLIM_EST = "llm-line-export-20250127:window-undocumented;first5000docs;trunc2048;token-pooled"

VAL_CORPORA = {
    "C4": "c4",
    "The Pile UC": "pile_uc",
    "RefineWeb": "refinedweb",
    "Slimpajama": "slimpajama",
    "FineWeb-Edu": "fineweb_edu",
}
OLD_VAL_COLUMNS = {
    "c4_val_loss": "c4",
    "pile_uc_val_loss": "pile_uc",
    "refineweb_val_loss": "refinedweb",
    "slimpajama_val_loss": "slimpajama",
    "fineweb_edu_100bt_val_loss": "fineweb_edu",
}
TASKS = {
    "ARC-Challenge": "arc_challenge",
    "ARC-Easy": "arc_easy",
    "HellaSwag": "hellaswag",
    "MMLU": "mmlu",
    "Winogrande": "winogrande",
    "PIQA": "piqa",
    "Social IQa": "social_iqa",
    "CommonSenseQA": "commonsense_qa",
    "COPA": "copa",
    "OpenBookQA": "openbookqa",
}
STANDARD = {
    "Pretraining Data": "pretraining_data",
    "Tokenizer": "tokenizer",
    "Architecture": "architecture",
    "Context Length": "context_length",
    "Optimizer": "optimizer",
    "Learning Rate": "learning_rate",
    "Weight Decay": "weight_decay",
    "Scheduler": "scheduler",
}
EXTRA = {
    "Dimensions": "d_model",
    "# Layers": "n_layers",
    "Layer Norm": "layer_norm",
    "Rope": "rope",
    "Attention Type": "attention_type",
    "Position Embedding": "position_embedding",
    "FFN Activation": "ffn_activation",
    "Dropout": "dropout",
    "GPT Init": "gpt_init",
    "Bias": "bias",
    "Weight Tying": "weight_tying",
    "Llama Linear": "llama_linear",
    "Hugging Face": "hugging_face",
}
OLD_STANDARD = {
    "pretraining_data": "pretraining_data",
    "tokenizer": "tokenizer",
    "arch": "architecture",
    "context_length": "context_length",
}
OLD_EXTRA = {
    "dim": "d_model",
    "n_layers": "n_layers",
    "norm_type": "layer_norm",
    "use_rope": "rope",
    "attn_type": "attention_type",
    "position_embedding": "position_embedding",
    "ffn_activation": "ffn_activation",
    "dropout": "dropout",
    "use_gpt_init": "gpt_init",
    "bias": "bias",
    "weight_tying": "weight_tying",
    "llama_linear": "llama_linear",
    "HF": "hugging_face",
}
# Study-membership flags (which of the paper's analyses a run belongs to) are annotations, not training
# factors: stored with FLAG_PREFIX, which LossTable.factors and contrasts leave out (docs/table.md).
# The older export spells two levels differently from latest_pm_hf.csv; use the latest spelling.
OLD_LEVELS = {"architecture": {"llama": "Llama"}, "pretraining_data": {"FineWeb-EDU": "FineWeb-Edu"}}


@dataclass
class _Layout:
    """A source table brought to common column names, plus what the importer decided about it."""

    frame: pd.DataFrame  # columns: run, step, tokens, params, factor columns, metric source columns
    specs: list[MetricSpec]
    factors: list[str]  # factor columns in ``frame`` (standard first)
    flags: list[str]  # per-run study flags (kept only if constant within every run)
    label: str
    line_offset: int  # file line of data row 1 minus 1 (header rows)
    notes: list[str] = field(default_factory=list)


def read_llm_line(path: Path) -> LossTable:
    """Import latest_pm_hf.csv or the 2025-01-27 export of the paper's table as a LossTable."""
    path = Path(path)
    source = str(path)
    layout = _read_layout(path)
    frame = layout.frame
    warnings = list(layout.notes)

    for col in list(layout.flags):
        if frame[col].isna().all():
            frame = frame.drop(columns=col)
            layout.flags.remove(col)
        elif not constant_per_run(frame, "run", col):
            runs = frame.groupby("run")[col].nunique(dropna=False)
            frame = frame.drop(columns=col)
            layout.flags.remove(col)
            warnings.append(
                f"{source}: flag column '{col}' varies within run(s) {', '.join(runs[runs > 1].index)}; it "
                "marks "
                "rows, not training runs, so it was dropped"
            )

    frame["checkpoint"], id_notes = _checkpoint_ids(frame, source, layout.line_offset)
    warnings += id_notes
    frame, dup_notes = _report_repeated_measurements(frame, layout.specs, source)
    warnings += dup_notes
    clash = frame.duplicated(["run", "checkpoint"], keep=False)
    if clash.any():
        rows = frame.index[clash][:2]
        raise UserInputError(
            f"{source}: data rows {rows[0] + 1} and {rows[1] + 1} both give run "
            f"'{frame.at[rows[0], 'run']}', "
            f"checkpoint '{frame.at[rows[0], 'checkpoint']}' with different losses; fix the Steps column"
        )

    keep = ["run", "checkpoint", "step", "tokens", "params", *layout.factors, *layout.flags]
    long, missing = wide_to_long(frame, keep, layout.specs, source=source, line_offset=layout.line_offset)
    warnings += missing_cells_warning(missing, frame["checkpoint"], frame["run"], source)
    warnings += _estimator_notes(long, source)
    warnings.append(
        f"{source} ({layout.label}): {len(frame)} checkpoints of {frame['run'].nunique()} runs imported"
    )
    return finish(long, source, warnings)


def _estimator_notes(long: pd.DataFrame, source: str) -> list[str]:
    """The paper's estimator traps that concern the imported metrics (method.md section 2)."""
    notes = []
    ests = set(long["estimator"])
    if SLIM_EST in ests:
        notes.append(
            f"{source}: val/slimpajama was scored in 16-token windows without context, the other validation "
            "corpora in 50-token windows: a different estimator (see its estimator string). Averages that "
            "mix "
            "them (e.g. val/avg5) are refused unless you allow mixed estimators; val/avg4 leaves it out"
        )
    if TASK_EST in ests:
        notes.append(
            f"{source}: task losses in nats/token carry the paper's off-by-one: the correct answer's summed "
            "NLL "
            "is divided by (answer tokens - 1), so a k-token answer is divided by k-1 (the "
            "tokenizer-dependent "
            "bias is largest for short answers); the bits/byte task columns do not have it"
        )
    if MMLU_EST in ests:
        notes.append(f"{source}: MMLU losses are summed answer NLLs without length normalisation")
    return notes


# ----------------------------------------------------------------------------------------- layouts
def _read_layout(path: Path) -> _Layout:
    """Detect the layout from the first two lines and read the file accordingly."""
    if not path.exists():
        raise UserInputError(f"{path}: no such file; give the paper's CSV (e.g. latest_pm_hf.csv)")
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\r\n")
        second = fh.readline().rstrip("\r\n")
    header = first.split(",")
    if header and header[0] == "Name":
        two_rows = second.split(",")[0] == "" and "Intervention" in header
        return _latest(path, two_rows)
    if "name" in header and "c4_val_loss" in header:
        return _older(path)
    raise UserInputError(
        f"{path}: not a table of the llm-line paper: expected a header starting with 'Name' "
        "(latest_pm_hf.csv) or containing 'name' and 'c4_val_loss' (the 2025-01-27 export); "
        f"found: {', '.join(header[:6])}..."
    )


def _latest(path: Path, two_rows: bool) -> _Layout:
    if two_rows:
        raw = read_csv(path, header=[0, 1])
        raw.columns = [
            top if (str(sub).startswith("Unnamed") or not str(sub).strip()) else f"{top} {sub}"
            for top, sub in raw.columns
        ]
    else:
        raw = read_csv(path)
    source = str(path)
    for col in ("Name", "Steps", "Tokens", "Size"):
        if col not in raw.columns:
            raise UserInputError(
                f"{source}: column '{col}' is missing; is this the paper's latest_pm_hf.csv?"
            )
    frame = pd.DataFrame(
        {"run": raw["Name"].astype("string").str.strip(), "step": raw["Steps"], "tokens": raw["Tokens"]}
    )
    frame["params"] = raw["Size"]
    notes: list[str] = []
    factors = _copy_factors(raw, frame, STANDARD, EXTRA, source, notes)
    flags = []
    for col in raw.columns:
        if col.startswith("Intervention ") or col == "Overtraining":
            name = FLAG_PREFIX + snake(col)
            frame[name] = raw[col]
            flags.append(name)
    specs, skipped = _latest_specs(raw)
    for col in [s.column for s in specs]:
        frame[col] = raw[col]
    notes += _skip_notes(raw, skipped, source)
    expected = [f"{name} Validation Loss" for name in VAL_CORPORA] + [f"{name} Loss" for name in TASKS]
    absent = [c for c in expected if c not in raw.columns]
    if absent:
        notes.append(
            f"{source}: loss column(s) {', '.join(repr(c) for c in absent)} missing; their metrics are not "
            "in the table, and averages over them (val/avg5, test/avg7) cannot be formed"
        )
    return _Layout(frame, specs, factors, flags, "latest_pm_hf layout", 2 if two_rows else 1, notes)


def _latest_specs(raw: pd.DataFrame) -> tuple[list[MetricSpec], list[str]]:
    """Metric specs for the Title Case columns; returns (specs, loss-like columns deliberately skipped)."""
    specs: list[MetricSpec] = []
    skipped: list[str] = []
    for col in raw.columns:
        m_val = re.fullmatch(r"(.+) Validation (Loss|BPB)", col)
        m_task = re.fullmatch(r"(.+) (Loss|BPB)", col)
        if m_val:
            name, what = m_val.groups()
            corpus = VAL_CORPORA.get(name, canonical_metric_id("val", name).split("/")[1])
            est = SLIM_EST if corpus == "slimpajama" else VAL_EST
            if what == "Loss":
                specs.append(MetricSpec(col, f"val/{corpus}", "nats/token", est))
            else:
                specs.append(MetricSpec(col, f"val/{corpus}", "bits/byte", est + BPB_SUFFIX))
        elif m_task and m_task.group(1) not in ("Train", "Test"):
            name, what = m_task.groups()
            task = TASKS.get(name, canonical_metric_id("test", name).split("/")[1])
            is_mmlu = task.startswith("mmlu")
            if what == "Loss":
                specs.append(MetricSpec(col, f"test/{task}", "nats/token", MMLU_EST if is_mmlu else TASK_EST))
            else:
                specs.append(MetricSpec(col, f"test/{task}", "bits/byte", TASK_BPB_EST))
        elif col in ("Train Loss", "Test Loss"):
            skipped.append(col)
    return specs, skipped


def _older(path: Path) -> _Layout:
    raw = read_csv(path)
    source = str(path)
    frame = pd.DataFrame({"run": raw["name"].astype("string").str.strip()})
    for src, dst in (("steps", "step"), ("tokens", "tokens"), ("size", "params")):
        frame[dst] = raw[src] if src in raw.columns else np.nan
    notes: list[str] = []
    factors = _copy_factors(raw, frame, OLD_STANDARD, OLD_EXTRA, source, notes)
    for col, mapping in OLD_LEVELS.items():
        if col in frame.columns:
            renamed = frame[col].isin(list(mapping))
            if renamed.any():
                frame[col] = frame[col].replace(mapping)
                notes.append(
                    f"{source}: {col} levels {', '.join(f'{a!r}->{b!r}' for a, b in mapping.items())} "
                    "renamed "
                    "to the spelling of latest_pm_hf.csv"
                )
    specs: list[MetricSpec] = []
    for col, corpus in OLD_VAL_COLUMNS.items():
        if col in raw.columns:
            est = OLD_SLIM_EST if corpus == "slimpajama" else VAL_EST
            specs.append(MetricSpec(col, f"val/{corpus}", "nats/token", est))
    for col in raw.columns:
        m = re.fullmatch(r"([a-z0-9_]+)/loss", col)
        if m:
            task = m.group(1)
            specs.append(
                MetricSpec(col, f"test/{task}", "nats/token", MMLU_EST if task == "mmlu" else TASK_EST)
            )
    for spec in specs:
        frame[spec.column] = raw[spec.column]
    skipped = [c for c in ("train_loss", "test_loss") if c in raw.columns]
    notes += _skip_notes(raw, skipped, source)
    notes.append(
        f"{source}: the 2025-01-27 export records no steps, tokens, sizes or tokenizers; step/tokens/params "
        "are "
        "unknown (NaN) and tokenizer is missing for every row. Its SlimPajama losses were made with an "
        "undocumented window (they are lower than latest_pm_hf.csv's 16-token-window values for the same "
        "checkpoints); prefer latest_pm_hf.csv"
    )
    return _Layout(frame, specs, factors, [], "2025-01-27 export layout", 1, notes)


def _copy_factors(
    raw: pd.DataFrame,
    frame: pd.DataFrame,
    standard: dict[str, str],
    extra: dict[str, str],
    source: str,
    notes: list[str],
) -> list[str]:
    """Copy factor columns; standard factors always (missing = NA), extras only when not all empty."""
    factors: list[str] = []
    for src, dst in standard.items():
        frame[dst] = raw[src] if src in raw.columns else pd.NA
        factors.append(dst)
    absent = [src for src in standard if src not in raw.columns]
    if absent:
        notes.append(
            f"{source}: factor column(s) {', '.join(repr(c) for c in absent)} missing; "
            f"{', '.join(standard[c] for c in absent)} is unknown in every row, so no comparison can use it"
        )
    ensure_standard_factors(frame)
    factors += [
        c
        for c in ("context_length", "optimizer", "learning_rate", "weight_decay", "scheduler")
        if c not in factors
    ]
    empty: list[str] = []
    for src, dst in extra.items():
        if src not in raw.columns:
            continue
        if raw[src].isna().all():
            empty.append(src)
            continue
        if not constant_per_run(raw.assign(run=frame["run"]), "run", src):
            notes.append(
                f"{source}: column '{src}' is not constant within a run; it is not a factor, not imported"
            )
            continue
        frame[dst] = raw[src]
        factors.append(dst)
    if empty:
        notes.append(f"{source}: column(s) {', '.join(empty)} empty in every row; not imported as factors")
    return factors


def _skip_notes(raw: pd.DataFrame, skipped: list[str], source: str) -> list[str]:
    """Say which loss-like columns were not imported and why (only when they hold numbers)."""
    filled = [c for c in skipped if raw[c].notna().any()]
    acc = [c for c in raw.columns if c.endswith("Accuracy") or c.endswith("/acc")]
    out = []
    if filled:
        out.append(
            f"{source}: column(s) {', '.join(filled)} not imported: training-run losses whose corpus and "
            "estimator the file does not record"
        )
    if acc:
        out.append(f"{source}: {len(acc)} accuracy column(s) not imported (accuracies are not losses)")
    return out


# ----------------------------------------------------------------------------------------- checkpoint ids
def _checkpoint_ids(frame: pd.DataFrame, source: str, line_offset: int) -> tuple[pd.Series, list[str]]:
    """'step<N>' where Steps is known; 'final' for a run's single unlabelled row; else unique ids + "
    "warning."""
    ids = pd.Series(pd.NA, index=frame.index, dtype="string")
    has_step = frame["step"].notna()
    ids[has_step] = frame.loc[has_step, "step"].map(
        lambda s: f"step{int(s)}" if float(s).is_integer() else f"step{s:g}"
    )
    notes: list[str] = []
    unlabelled_runs: list[str] = []
    n_unlabelled = 0
    for run, sub in frame[~has_step].groupby("run", sort=False):
        if len(sub) == 1:
            ids[sub.index] = "final"
            continue
        tokens = sub["tokens"]
        if tokens.notna().all() and tokens.is_unique:
            ids[sub.index] = tokens.map(lambda t: f"tokens{int(t)}")
            notes.append(f"{source}: run {run}: {len(sub)} rows without a step; told apart by their Tokens")
            continue
        ids[sub.index] = [f"rev-unknown-row{i + 1}" for i in sub.index]
        unlabelled_runs.append(f"{run} ({len(sub)})")
        n_unlabelled += len(sub)
    if unlabelled_runs:
        notes.append(
            f"{source}: {n_unlabelled} rows of {', '.join(unlabelled_runs)} record no revision, step, tokens "
            "or "
            "size and have an empty tokenizer; kept with step/tokens/params unknown (NaN) and tokenizer "
            "missing. "
            "They are different checkpoints (their losses differ) but the file does not say which "
            "revisions, so "
            f"their checkpoint ids are 'rev-unknown-row<N>' (N = data row; file line N+{line_offset}) and "
            "their "
            "training order is unknown"
        )
    return ids, notes


def _report_repeated_measurements(
    frame: pd.DataFrame, specs: list[MetricSpec], source: str
) -> tuple[pd.DataFrame, list[str]]:
    """Warn about rows of one run whose losses are all identical: one measurement recorded twice.

    Rows with distinct checkpoint ids are all kept (the file lists them as checkpoints; fits drop the
    repeated measurement, see design.py); the warning names every row. Only a copy that would get the same
    checkpoint id as another (the same step twice) is dropped, since a table holds a checkpoint once.
    """
    cols = [s.column for s in specs]
    values = frame[cols].round(12).astype("string").fillna("<empty>")
    key = frame["run"].astype("string") + "|" + values.agg("|".join, axis=1)
    notes: list[str] = []
    drop: list[int] = []
    for _, group in frame.groupby(key, sort=False):
        if len(group) < 2 or frame.loc[group.index, cols].isna().all(axis=None):
            continue
        same_id = group["checkpoint"].duplicated(keep="first")
        drop += list(group.index[same_id])
        rest = frame.loc[group.index].drop(columns="checkpoint").astype("string").fillna("<NA>")
        identical = bool((rest.nunique() <= 1).all())
        rows = " and ".join(
            f"data row {i + 1} (checkpoint {str(frame.at[i, 'checkpoint'])!r})" for i in sorted(group.index)
        )
        differs = []
        for col in ("step", "tokens", "params"):
            vals = frame.loc[group.index, col]
            if vals.astype("string").fillna("NaN").nunique() > 1:
                differs.append(f"{col} {' vs '.join('NaN' if pd.isna(v) else f'{v:.4g}' for v in vals)}")
        kept = [str(frame.at[i, "checkpoint"]) for i in group.index[~same_id]]
        if len(kept) > 1:
            if same_id.any():
                how_many = f"{len(kept)} of the {len(group)} rows are"
            else:
                how_many = "both rows are" if len(kept) == 2 else f"all {len(kept)} rows are"
            outcome = (
                f"{how_many} kept, as checkpoints "
                f"{' and '.join(repr(k) for k in kept)}; fits (`bayes-l2l fit`) drop the repeated "
                "measurement (a checkpoint whose x and y equal another checkpoint's of the same run)"
            )
        else:
            outcome = f"kept once, as checkpoint {kept[0]!r}"
        if same_id.any():
            dropped = ", ".join(str(i + 1) for i in group.index[same_id])
            outcome += f"; data row(s) {dropped} dropped: they repeat a checkpoint id the table holds once"
        notes.append(
            f"{source}: {'exact duplicate rows' if identical else 'duplicate measurement'} in run "
            f"{frame.at[group.index[0], 'run']}: {rows} have identical values in all {len(cols)} loss "
            "columns"
            + (f" but different identity ({'; '.join(differs)})" if differs else "")
            + f". They are one measurement recorded twice: {outcome}"
        )
    return frame.drop(index=drop), notes
