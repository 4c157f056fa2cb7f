"""Read the first N documents of a validation corpus (local jsonl/json/parquet/txt, or a hub dataset)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.config import CorpusSpec


@dataclass(frozen=True)
class Corpus:
    """The selected documents of a corpus and a content fingerprint (sha256 over the documents)."""

    name: str
    documents: tuple[str, ...]
    sha256: str
    origin: str

    @property
    def metric(self) -> str:
        return f"val/{self.name}"


def load_corpus(spec: CorpusSpec) -> Corpus:
    """The first ``spec.documents`` non-empty documents, in file order."""
    if spec.path is not None:
        docs = _read_local(spec)
        origin = str(spec.path)
    else:
        docs = _read_hub(spec)
        origin = "hub:" + "/".join(v for v in (spec.hub or {}).values())
    if not docs:
        raise UserInputError(f"corpus '{spec.name}' ({origin}): no non-empty documents found")
    return Corpus(spec.name, tuple(docs), documents_sha256(docs), origin)


def documents_sha256(docs: list[str] | tuple[str, ...]) -> str:
    """sha256 of the documents, each length-prefixed so that boundaries count."""
    h = hashlib.sha256()
    for d in docs:
        b = d.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _read_local(spec: CorpusSpec) -> list[str]:
    path = spec.path
    assert path is not None
    if not path.is_file():
        raise UserInputError(f"corpus '{spec.name}': {path} not found; fix 'path' in the eval config")
    suffix = path.suffix.lower()
    n = spec.documents
    if suffix == ".txt":
        text = path.read_text(encoding="utf-8")
        return _split_text(text, spec.split)[:n]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if spec.text_field not in pf.schema_arrow.names:
            raise UserInputError(
                f"corpus '{spec.name}': {path} has no column '{spec.text_field}'; columns: "
                f"{', '.join(pf.schema_arrow.names)}; set 'text_field'"
            )
        docs: list[str] = []
        for batch in pf.iter_batches(columns=[spec.text_field], batch_size=1024):
            for v in batch.column(0).to_pylist():
                if isinstance(v, str) and v.strip():
                    docs.append(v)
                    if len(docs) >= n:
                        return docs
        return docs
    if suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserInputError(f"corpus '{spec.name}': {path} is not valid JSON ({exc})") from exc
        if not isinstance(rows, list):
            raise UserInputError(f"corpus '{spec.name}': {path} must hold a JSON list of records or strings")
        return _take(rows, spec, str(path))
    docs = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserInputError(
                    f"corpus '{spec.name}': {path}, line {lineno}: not valid JSON ({exc})"
                ) from exc
            doc = _text_of(row, spec, f"{path}, line {lineno}")
            if doc.strip():
                docs.append(doc)
                if len(docs) >= n:
                    break
    return docs


def _text_of(row: object, spec: CorpusSpec, where: str) -> str:
    if isinstance(row, str):
        return row
    if not isinstance(row, dict) or spec.text_field not in row:
        keys = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
        raise UserInputError(
            f"corpus '{spec.name}': {where}: no field '{spec.text_field}' (found: {keys}); set 'text_field'"
        )
    value = row[spec.text_field]
    if not isinstance(value, str):
        raise UserInputError(f"corpus '{spec.name}': {where}: field '{spec.text_field}' is not a string")
    return value


def _take(rows: list[object], spec: CorpusSpec, where: str) -> list[str]:
    docs = []
    for i, row in enumerate(rows):
        doc = _text_of(row, spec, f"{where}, record {i}")
        if doc.strip():
            docs.append(doc)
            if len(docs) >= spec.documents:
                break
    return docs


def _split_text(text: str, how: str) -> list[str]:
    if how == "whole":
        parts = [text]
    elif how == "lines":
        parts = text.splitlines()
    else:
        parts = re.split(r"\n(?:[ \t]*\n)+", text)
    return [p for p in parts if p.strip()]


def _read_hub(spec: CorpusSpec) -> list[str]:
    hub = spec.hub or {}
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets comes with lm-eval
        raise UserInputError("hub corpora need the 'datasets' package: install bayes-l2l[eval]") from exc
    try:
        ds = datasets.load_dataset(hub["dataset"], hub.get("name"), split=hub["split"], streaming=True)
        docs = []
        for row in ds:
            doc = _text_of(row, spec, f"hub dataset {hub['dataset']}")
            if doc.strip():
                docs.append(doc)
                if len(docs) >= spec.documents:
                    break
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline hub, missing dataset: user-fixable
        raise UserInputError(
            f"corpus '{spec.name}': cannot read hub dataset {hub.get('dataset')} "
            f"({type(exc).__name__}: {exc}); "
            "when the hub is unreachable, point 'path' at a local copy"
        ) from exc
    return docs


def corpus_fingerprints(corpora: list[Corpus]) -> dict[str, str]:
    """{corpus name: content sha256} for the namespace hash and the records."""
    return {c.name: c.sha256 for c in corpora}


def check_paths(specs: tuple[CorpusSpec, ...]) -> None:
    """Fail early (before any model is loaded) when a local corpus file is missing."""
    for s in specs:
        if s.path is not None and not Path(s.path).is_file():
            raise UserInputError(f"corpus '{s.name}': {s.path} not found; fix 'path' in the eval config")
