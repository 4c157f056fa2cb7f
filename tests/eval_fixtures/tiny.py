"""Tiny random models and a locally trained tokenizer for the evaluator tests (built in tmp dirs, offline).

``build_tokenizer``: a byte-level BPE trained on a few hundred generated sentences, wrapped as a
transformers fast tokenizer (``<|endoftext|>`` as EOS; with ``bos=True`` also a ``<s>`` BOS that the
tokenizer adds by default, Llama style). ``save_tiny_model`` writes a random Llama / GPT-NeoX / Mamba
checkpoint plus tokenizer to a directory that ``from_pretrained`` loads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "the a cat dog bird sat ran flew on under over mat tree house and then because therefore water "
    "flowed from spout man turned faucet question answer what is which of these best describes light "
    "heat plants sun energy grow green leaves small large quickly slowly café naïve über 東京 ünïcödé"
).split()


def corpus_sentences(n: int = 400, seed: int = 0) -> list[str]:
    """Deterministic pseudo-English sentences (with some non-ASCII words for byte counting)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(4, 14)
        words = [rng.choice(WORDS) for _ in range(k)]
        s = " ".join(words)
        out.append(s[0].upper() + s[1:] + rng.choice([".", "!", "?", "."]))
    return out


def documents(n: int = 12, seed: int = 1) -> list[str]:
    """Documents of varied length (a few sentences to a few paragraphs)."""
    rng = random.Random(seed)
    sents = corpus_sentences(600, seed)
    docs = []
    for i in range(n):
        k = rng.randint(1, 4 + 3 * (i % 5))
        parts = [rng.choice(sents) for _ in range(k)]
        sep = "\n\n" if i % 3 == 0 else " "
        docs.append(sep.join(parts))
    return docs


def build_tokenizer(bos: bool = False, vocab_size: int = 300):
    """A byte-level BPE fast tokenizer; with ``bos`` it adds ``<s>`` in front by default (Llama style)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>"] + (["<s>"] if bos else [])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus_sentences(), trainer=trainer)
    if bos:
        bos_id = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    kwargs = {"eos_token": "<|endoftext|>"}
    if bos:
        kwargs["bos_token"] = "<s>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def model_config(arch: str, vocab_size: int, max_len: int = 256):
    """A tiny config of ``arch`` in llama | gpt_neox | mamba | mamba2."""
    from transformers import GPTNeoXConfig, LlamaConfig, Mamba2Config, MambaConfig

    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=max_len,
            tie_word_embeddings=False,
        )
    if arch == "gpt_neox":
        return GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=max_len,
        )
    if arch == "mamba":
        return MambaConfig(vocab_size=vocab_size, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2)
    if arch == "mamba2":  # chunk_size 16 < the test windows: the chunked scan path is exercised
        return Mamba2Config(
            vocab_size=vocab_size,
            hidden_size=32,
            num_heads=4,
            head_dim=16,
            expand=2,
            state_size=8,
            n_groups=1,
            num_hidden_layers=2,
            chunk_size=16,
        )
    raise ValueError(arch)


def build_model(arch: str, tokenizer, seed: int = 0, max_len: int = 256):
    """A random tiny causal LM in float32, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = model_config(arch, len(tokenizer), max_len)
    cfg.eos_token_id = tokenizer.eos_token_id
    cfg.bos_token_id = tokenizer.bos_token_id
    cfg.pad_token_id = tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # larger random weights: losses that differ clearly between models
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.3)
    return model.eval()


def save_tiny_model(directory: Path, arch: str, *, bos: bool = False, seed: int = 0) -> Path:
    """Write a tiny random checkpoint and its tokenizer to ``directory``; returns it."""
    directory = Path(directory)
    tok = build_tokenizer(bos=bos)
    model = build_model(arch, tok, seed=seed)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_task_data(root: Path) -> Path:
    """Tiny task files in the layout of ../shared/evaldata/tasks for all seven offline tasks."""
    arc = [
        {
            "id": "q1",
            "question": "Which of these best describes light?",
            "choices": {"text": ["energy", "water", "a tree"], "label": ["A", "B", "C"]},
            "answerKey": "A",
        },
        {
            "id": "q2",
            "question": "What is green?",
            "choices": {"text": ["the sun", "leaves", "a dog", "water"], "label": ["1", "2", "3", "4"]},
            "answerKey": "2",
        },
        {
            "id": "q3",
            "question": "What do plants need to grow?",
            "choices": {"text": ["heat and light", "a cat", "ünïcödé café"], "label": ["A", "B", "C"]},
            "answerKey": "C",
        },
    ]
    write_jsonl(root / "arc_easy" / "test.jsonl", arc)
    write_jsonl(root / "arc_challenge" / "test.jsonl", arc[::-1])
    obqa = [
        {
            "id": "o1",
            "question_stem": "The sun is a source of",
            "choices": {"text": ["light", "water", "cats", "trees"], "label": ["A", "B", "C", "D"]},
            "answerKey": "A",
        },
        {
            "id": "o2",
            "question_stem": "Plants grow",
            "choices": {
                "text": ["slowly", "on the mat", "under water", "never"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "A",
        },
    ]
    write_jsonl(root / "openbookqa" / "test.jsonl", obqa)
    hs = [
        {
            "row": 0,
            "activity_label": "Cleaning",
            "ctx_a": "A man turned on the faucet.",
            "ctx_b": "then water",
            "ctx": "A man turned on the faucet. then water",
            "endings": ["flowed from the spout.", "sat on the mat [title] x.", "ran.", "flew over the tree."],
            "label": "0",
        },
        {
            "row": 1,
            "activity_label": "Home and Garden",
            "ctx_a": "The cat sat on the mat.",
            "ctx_b": "",
            "ctx": "The cat sat on the mat.",
            "endings": ["Then it ran.", "Then  the tree flew.", "[step] The dog sat.", "Water."],
            "label": "2",
        },
    ]
    write_jsonl(root / "hellaswag" / "validation.jsonl", hs)
    piqa = [
        {"goal": "Make water hot", "sol1": "put it in the sun ", "sol2": "give it to a cat", "label": 0},
        {"goal": "Grow plants", "sol1": "use a mat", "sol2": "give them light and water", "label": 1},
    ]
    write_jsonl(root / "piqa" / "validation.jsonl", piqa)
    wino = [
        {
            "sentence": "The cat sat on the mat because _ was warm.",
            "option1": "the mat",
            "option2": "the cat",
            "answer": "1",
        },
        {
            "sentence": "The dog ran to the tree but _ was too slow.",
            "option1": "the tree",
            "option2": "the dog",
            "answer": "2",
        },
    ]
    write_jsonl(root / "winogrande" / "validation.jsonl", wino)
    copa = [
        {
            "premise": "The man turned on the faucet.",
            "choice1": "The toilet filled with water.",
            "choice2": "Water flowed from the spout.",
            "question": "effect",
            "label": 1,
            "idx": 0,
        },
        {
            "premise": "The cat ran.",
            "choice1": "A dog sat on it.",
            "choice2": "A dog ran after it.",
            "question": "cause",
            "label": 1,
            "idx": 1,
        },
    ]
    write_jsonl(root / "copa" / "validation.jsonl", copa)
    return root
