"""The result store: one JSON record per (checkpoint, metric), written atomically, readable as a LossTable.

Layout (version 1)::

    STORE/bayes-l2l-store.json                         {"layout": "bayes-l2l-store", "version": 1}
    STORE/<namespace>/namespace.json                   estimator settings, data fingerprints, versions
    STORE/<namespace>/records/<run>/<checkpoint>/<metric>.json
    STORE/<namespace>/failures/<run>/<checkpoint>.json last error of a checkpoint (removed on success)

The namespace is a hash of everything that defines the numbers (estimator settings, corpus and task-data
content hashes): a re-run with a different config writes to a different namespace instead of mixing
results. Records are written to a temporary file in the same directory and renamed, so a record is
either complete or absent; a killed run loses at most the metric in flight.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l.errors import UserInputError

MARKER = "bayes-l2l-store.json"
LAYOUT = "bayes-l2l-store"
VERSION = 1
RECORD_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def slug(name: str) -> str:
    """A file-name-safe form of a run, checkpoint or metric id (reversible ids are kept inside records)."""
    s = _SAFE.sub("_", name.replace("/", "__"))
    if s in ("", ".", ".."):
        s = f"_{s}_"
    return s


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file in the same directory and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True, default=_json_default, allow_nan=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


class ResultStore:
    """A store directory; ``create=True`` makes it (refusing a non-empty directory that is not a store)."""

    def __init__(self, root: str | Path, *, create: bool = False) -> None:
        self.root = Path(root)
        marker = self.root / MARKER
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise UserInputError(f"{marker}: corrupt store marker ({exc}); restore or remove it") from exc
            if meta.get("layout") != LAYOUT or meta.get("version") != VERSION:
                raise UserInputError(
                    f"{self.root}: store layout {meta.get('layout')} v{meta.get('version')} is not "
                    "readable by "
                    f"this version (expects {LAYOUT} v{VERSION})"
                )
            return
        if not create:
            raise UserInputError(f"{self.root}: not a bayes-l2l result store (no {MARKER}); check the path")
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise UserInputError(
                f"{self.root}: exists and is not an empty directory or a bayes-l2l store; "
                "choose a new or empty directory for --store"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(marker, {"layout": LAYOUT, "version": VERSION, "created": _now()})

    @staticmethod
    def exists(root: str | Path) -> bool:
        """Whether ``root`` holds a store (its marker file)."""
        return (Path(root) / MARKER).is_file()

    def namespaces(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "namespace.json").is_file())

    def namespace(self, key: str, meta: dict[str, Any] | None = None) -> Namespace:
        """Open namespace ``key``; with ``meta`` create it if needed (and check it matches if it exists)."""
        ns_dir = self.root / key
        info = ns_dir / "namespace.json"
        if info.is_file():
            stored = json.loads(info.read_text(encoding="utf-8"))
            if meta is not None and stored.get("fingerprint") != meta.get("fingerprint"):
                raise UserInputError(
                    f"{info}: namespace {key} was made by different settings; the store is inconsistent"
                )
            return Namespace(ns_dir, stored)
        if meta is None:
            known = ", ".join(self.namespaces()) or "none"
            raise UserInputError(f"{self.root}: no namespace '{key}' (namespaces: {known})")
        atomic_write_json(info, {**meta, "created": _now()})
        return Namespace(ns_dir, meta)


@dataclass
class Namespace:
    """One estimator namespace of a store: its records and failures."""

    root: Path
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        return self.root.name

    def record_path(self, run: str, checkpoint: str, metric: str) -> Path:
        return self.root / "records" / slug(run) / slug(checkpoint) / f"{slug(metric)}.json"

    def failure_path(self, run: str, checkpoint: str) -> Path:
        return self.root / "failures" / slug(run) / f"{slug(checkpoint)}.json"

    def done_metrics(self, run: str, checkpoint: str) -> set[str]:
        """Metrics with a complete record for this checkpoint."""
        d = self.root / "records" / slug(run) / slug(checkpoint)
        if not d.is_dir():
            return set()
        out = set()
        for p in d.glob("*.json"):
            try:
                out.add(json.loads(p.read_text(encoding="utf-8"))["metric"])
            except (json.JSONDecodeError, KeyError):
                continue  # unreadable: treated as missing and rewritten
        return out

    def documents_path(self, run: str, checkpoint: str, metric: str) -> Path:
        """Per-document losses of a validation record, beside it (``<metric>.docs.npz``)."""
        return self.record_path(run, checkpoint, metric).with_suffix(".docs.npz")

    def write_documents(self, run: str, checkpoint: str, metric: str, **arrays: np.ndarray) -> Path:
        """Write a record's per-document arrays (compressed, atomically); written before the record, so a
        record's documents are there whenever the record is."""
        path = self.documents_path(run, checkpoint, metric)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        return path

    def documents(self, run: str, checkpoint: str, metric: str) -> dict[str, np.ndarray] | None:
        """The per-document arrays of a record (nll, tokens, bytes), or None (records of before, tasks)."""
        path = self.documents_path(run, checkpoint, metric)
        if not path.is_file():
            return None
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    def write(self, record: dict[str, Any]) -> Path:
        """Write one (checkpoint, metric) record atomically."""
        path = self.record_path(record["run"], record["checkpoint"], record["metric"])
        atomic_write_json(path, {"record_version": RECORD_VERSION, "namespace": self.key, **record})
        return path

    def write_failure(self, run: str, checkpoint: str, error: str, kind: str) -> None:
        atomic_write_json(
            self.failure_path(run, checkpoint),
            {"run": run, "checkpoint": checkpoint, "error": error, "kind": kind, "time": _now()},
        )

    def clear_failure(self, run: str, checkpoint: str) -> None:
        p = self.failure_path(run, checkpoint)
        if p.exists():
            p.unlink()

    def records(self) -> Iterator[dict[str, Any]]:
        """All complete records, in a deterministic (path) order; temporary files are ignored."""
        base = self.root / "records"
        if not base.is_dir():
            return
        for p in sorted(base.glob("*/*/*.json")):
            try:
                rec = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise UserInputError(
                    f"{p}: corrupt record ({exc}); delete it and re-run the evaluation"
                ) from exc
            yield rec

    def failures(self) -> list[dict[str, Any]]:
        base = self.root / "failures"
        if not base.is_dir():
            return []
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(base.glob("*/*.json"))]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ------------------------------------------------------------------------------------------------ reading
def pick_namespace(store: ResultStore, namespace: str | None) -> Namespace:
    """The namespace to read: the given one, or the only one; refuse to guess between several."""
    names = store.namespaces()
    if namespace is not None:
        return store.namespace(namespace)
    if not names:
        raise UserInputError(f"{store.root}: the store holds no results yet; run `bayes-l2l eval` first")
    if len(names) > 1:
        descr = "; ".join(f"{n} ({store.namespace(n).meta.get('summary', '')})" for n in names)
        raise UserInputError(
            f"{store.root}: holds results of {len(names)} different evaluation configs ({descr}); "
            "pick one with --namespace"
        )
    return store.namespace(names[0])


def records_frame(ns: Namespace) -> pd.DataFrame:
    """Long rows (one per record and unit) with identity, factors, measurement and provenance columns."""
    rows = []
    for rec in ns.records():
        params = rec.get("params")
        if params is None or (isinstance(params, float) and math.isnan(params)):
            params = (rec.get("model") or {}).get("params_counted")
        base = {
            "run": rec["run"],
            "checkpoint": rec["checkpoint"],
            "step": _nan(rec.get("step")),
            "tokens": _nan(rec.get("tokens")),
            "params": _nan(params),
            **(rec.get("factors") or {}),
        }
        for r in rec["rows"]:
            rows.append(
                {
                    **base,
                    "metric": rec["metric"],
                    "kind": rec["kind"],
                    "value": r["value"],
                    "unit": r["unit"],
                    "estimator": rec["estimator"],
                    "n": _nan(r.get("n")),
                    "stderr": _nan(r.get("stderr")),
                }
            )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return df.assign(stderr_independent=independent_stderr(ns, df))


MIN_CHECKPOINTS_FOR_SHARE = 3
"""Checkpoints of a metric with per-document losses needed to split its stderr into shared and independent."""


def independent_stderr(ns: Namespace, df: pd.DataFrame) -> pd.Series:
    """Per row, the part of ``stderr`` independent across checkpoints (:mod:`bayes_l2l.measurement`), from
    the per-document losses of every checkpoint of the metric: NaN where they are missing or fewer than
    :data:`MIN_CHECKPOINTS_FOR_SHARE`
    checkpoints have them (tasks: lm-eval keeps no per-question losses here). An estimate over the namespace:
    it changes as checkpoints are added."""
    from bayes_l2l.measurement import independent_share

    out = pd.Series(np.nan, index=df.index)
    pool = (ns.meta.get("estimator_settings") or {}).get("pool", "tokens")
    for (metric, unit), rows in df.groupby(["metric", "unit"], sort=False):
        docs = [ns.documents(r.run, r.checkpoint, metric) for r in rows.itertuples()]
        have = [i for i, d in enumerate(docs) if d is not None]
        if len(have) < MIN_CHECKPOINTS_FOR_SHARE or len({len(docs[i]["nll"]) for i in have}) != 1:
            continue
        denom = "tokens" if unit == "nats/token" else "bytes"
        share = independent_share(
            np.stack([docs[i]["nll"] for i in have]),
            np.stack([docs[i][denom] for i in have]).astype(float),
            pooled=pool == "tokens",
        )
        idx = rows.index[have]
        out.loc[idx] = df.loc[idx, "stderr"].to_numpy() * np.sqrt(share)
    return out


def accuracy_frame(ns: Namespace) -> pd.DataFrame:
    """Task accuracies from lm-eval (acc, acc_norm and their stderr) per (run, checkpoint, metric)."""
    rows = []
    for rec in ns.records():
        acc = rec.get("accuracy")
        if acc:
            rows.append({"run": rec["run"], "checkpoint": rec["checkpoint"], "metric": rec["metric"], **acc})
    return pd.DataFrame(rows)


def store_frame(root: str | Path, namespace: str | None = None) -> tuple[pd.DataFrame, str]:
    """The store's complete records as a loss-table frame, and its source label (``root (namespace K)``);
    :meth:`bayes_l2l.table.LossTable.read` of a store folder validates it into a LossTable."""
    store = ResultStore(root)
    ns = pick_namespace(store, namespace)
    df = records_frame(ns)
    if df.empty:
        raise UserInputError(f"{ns.root}: no complete records yet; run `bayes-l2l eval` first")
    return df, f"{root} (namespace {ns.key})"


def _nan(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
