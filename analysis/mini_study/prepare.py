"""Step 1 of the mini study: training and held-out splits of three text distributions, two tokenizers.

Reads only ../shared/evaldata/corpora (never copied into the repository) and writes to
``out/mini_study/data``:

- ``train/<corpus>.txt``: the training text of each distribution, cut to the same byte budget;
- ``valid/<corpus>.jsonl``: held-out evaluation documents (chunks of ~600 characters at line
  boundaries; no byte of them is in any training split);
- ``tokenizers/<name>/``: two byte-level BPE tokenizers trained on the union of the training splits
  (``bpe4k``: 4,096 tokens; ``bpe1k``: 1,024 tokens), saved as transformers tokenizers;
- ``data.json``: sources, sha256 of every input and output, sizes.

Corpora (web, narrative, code) and an evaluation-only corpus (encyclopaedic, no model trains on it):

=========== ============================================ ===============================================
name        training split                                held-out split
=========== ============================================ ===============================================
c4          C4 sample documents 0-899                     C4 sample documents 900-999
stories     TinyStories train, first 2 MiB                TinyStories validation head
mix         half C4, half TinyStories (a mixture)         (the two above)
code        linux_kernel_code/train.txt                   linux_kernel_code/valid.txt
wiki        (none)                                        WikiText-2 raw test
=========== ============================================ ===============================================

Usage: ``python analysis/mini_study/prepare.py [--shared ../shared] [--out out/mini_study]``
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

TRAIN_BYTES = 2_000_000  # per corpus: the smallest source (linux train.txt, 2.03 MB) sets the budget
EVAL_DOCS = 200  # held-out documents per corpus
CHUNK_CHARS = 600  # target characters per held-out document
TOKENIZERS = {"bpe4k": 4096, "bpe1k": 1024}
SPECIAL = "<|endoftext|>"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Cut a text stream into documents of about ``size`` characters, at line boundaries."""
    docs: list[str] = []
    current: list[str] = []
    length = 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        length += len(line)
        if length >= size:
            doc = "".join(current).strip()
            if doc:
                docs.append(doc)
            current, length = [], 0
    tail = "".join(current).strip()
    if tail:
        docs.append(tail)
    return docs


def evenly(docs: list[str], n: int) -> list[str]:
    """``n`` documents spread evenly over the list (all of them if there are fewer)."""
    if len(docs) <= n:
        return docs
    step = len(docs) / n
    return [docs[int(i * step)] for i in range(n)]


def read_sources(shared: Path) -> tuple[dict[str, str], dict[str, list[str]], dict[str, dict]]:
    corpora = shared / "evaldata" / "corpora"
    inputs = {
        "c4": corpora / "c4" / "c4_en_train_first1000.jsonl",
        "stories_train": corpora / "tinystories" / "tinystories_train_first2MiB.txt",
        "stories_valid": corpora / "tinystories" / "tinystories_validation_head.txt",
        "code_train": corpora / "linux_kernel_code" / "train.txt",
        "code_valid": corpora / "linux_kernel_code" / "valid.txt",
        "wiki_test": corpora / "wikitext2" / "wikitext2_raw_test.txt",
    }
    missing = [str(p) for p in inputs.values() if not p.is_file()]
    if missing:
        sys.exit(f"error: missing input files (is ../shared beside the project?): {', '.join(missing)}")
    raw = {k: p.read_bytes() for k, p in inputs.items()}
    sources = {k: {"path": str(p), "sha256": sha256(raw[k]), "bytes": len(raw[k])} for k, p in inputs.items()}

    c4_docs = [json.loads(line)["text"] for line in raw["c4"].decode().splitlines() if line.strip()]
    stories = raw["stories_train"].decode("utf-8", errors="ignore")
    stories_docs = [s.strip() for s in stories.split(SPECIAL)][:-1]  # the last story is cut off
    train = {
        "c4": "\n\n".join(c4_docs[:900]),
        "stories": "\n\n".join(stories_docs),
        "code": raw["code_train"].decode(),
    }
    valid = {
        "c4": evenly([d for doc in c4_docs[900:] for d in chunks(doc)], EVAL_DOCS),
        "stories": evenly(chunks(raw["stories_valid"].decode()), EVAL_DOCS),
        "code": evenly(chunks(raw["code_valid"].decode()), EVAL_DOCS),
        "wiki": evenly(chunks(raw["wiki_test"].decode()), EVAL_DOCS),
    }
    return train, valid, sources


def cut(text: str, budget: int) -> str:
    """The longest prefix of whole lines within ``budget`` UTF-8 bytes."""
    out, size = [], 0
    for line in text.splitlines(keepends=True):
        b = len(line.encode())
        if size + b > budget:
            break
        out.append(line)
        size += b
    return "".join(out)


def write_mix(train: dict[str, str], data: Path) -> dict:
    """``train/mix.txt``: a data-mixture intervention, the first half of the C4 split's lines and the first
    half of TinyStories' (same byte budget), alternating in blocks of 20 lines."""
    halves = [cut(train[name], TRAIN_BYTES // 2).splitlines(keepends=True) for name in ("c4", "stories")]
    blocks = [[lines[i : i + 20] for i in range(0, len(lines), 20)] for lines in halves]
    text = "".join("".join(b) for pair in itertools.zip_longest(*blocks, fillvalue=[]) for b in pair)
    path = data / "train" / "mix.txt"
    path.write_text(text, encoding="utf-8")
    return {
        "path": str(path),
        "bytes": len(text.encode()),
        "sha256": sha256(text.encode()),
        "made_of": "C4 and TinyStories training splits, half each",
    }


def train_tokenizer(texts: list[str], vocab_size: int, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, unk_token=SPECIAL, pad_token=SPECIAL
    )
    fast.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared")
    ap.add_argument("--out", type=Path, default=Path("out/mini_study"))
    args = ap.parse_args(argv)

    train, valid, sources = read_sources(args.shared)
    data = args.out / "data"
    record: dict = {"sources": sources, "train": {}, "valid": {}, "tokenizers": {}}
    for name, text in train.items():
        text = cut(text, TRAIN_BYTES)
        path = data / "train" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        train[name] = text
        record["train"][name] = {
            "path": str(path),
            "bytes": len(text.encode()),
            "sha256": sha256(text.encode()),
        }
    for name, docs in valid.items():
        path = data / "valid" / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps({"text": d}) + "\n" for d in docs)
        path.write_text(body, encoding="utf-8")
        record["valid"][name] = {
            "path": str(path),
            "documents": len(docs),
            "bytes": sum(len(d.encode()) for d in docs),
            "sha256": sha256(body.encode()),
        }
    for held, docs in valid.items():  # no held-out document may appear in a training split
        for name, text in train.items():
            leaked = sum(d in text for d in docs)
            if leaked:
                sys.exit(f"error: {leaked} held-out '{held}' documents occur in the '{name}' training split")
    for tok_name, size in TOKENIZERS.items():  # on the three distributions (not on the mixture below)
        out = data / "tokenizers" / tok_name
        train_tokenizer(list(train.values()), size, out)
        record["tokenizers"][tok_name] = {"path": str(out), "vocab_size": size, "trained_on": sorted(train)}
    record["train"]["mix"] = write_mix(train, data)
    (data / "data.json").write_text(json.dumps(record, indent=1))
    print(
        json.dumps(
            {
                k: {n: v.get("bytes", v.get("vocab_size")) for n, v in d.items()}
                for k, d in record.items()
                if k != "sources"
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
