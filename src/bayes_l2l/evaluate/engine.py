"""Load one checkpoint (model + tokenizer) on the right device, once, for every corpus and task.

CUDA: bfloat16 weights and PyTorch SDPA attention; CPU: float32. Mamba / Mamba2 run through
transformers, which calls the mamba-ssm / causal-conv1d kernels when those packages are importable on
CUDA (recorded as ``kernels``); ``loader: mamba_ssm`` loads original state-spaces checkpoints with
mamba-ssm's own model class (CUDA only).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from bayes_l2l.errors import UserInputError
from bayes_l2l.evaluate.config import EngineSpec
from bayes_l2l.evaluate.manifest import Checkpoint

SSM_MODEL_TYPES = ("mamba", "mamba2", "falcon_mamba")


def require_eval_extra() -> None:
    """Raise a UserInputError telling how to install the eval extra when torch/transformers are missing."""
    missing = [m for m in ("torch", "transformers", "lm_eval") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserInputError(
            f"the evaluator needs {', '.join(missing)}: install bayes-l2l[eval] (pip install "
            "'bayes-l2l[eval]')"
        )


def pick_device(spec: str) -> Any:
    """torch.device for 'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:N', 'mps'."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(
            f"engine.device is '{spec}' but no CUDA device is visible; use device: auto or cpu"
        )
    return dev


def pick_dtype(spec: str, device: Any) -> Any:
    """bfloat16 on CUDA (if the GPU has it) and float32 elsewhere for 'auto'; otherwise the named dtype."""
    import torch

    if spec == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32  # CPU, and GPUs without bfloat16 (float16 could overflow)
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[spec]


@dataclass
class Loaded:
    """A loaded checkpoint: model in eval mode on ``device``, its tokenizer and facts about the load."""

    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if cand is not None:
                return int(cand)
        return 0


def count_params(model: Any) -> int:
    """Number of distinct parameters (tied input/output embeddings counted once)."""
    seen: set[int] = set()
    n = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return int(n)


def load_tokenizer(ckpt: Checkpoint) -> Any:
    """The checkpoint's tokenizer (its own revision when it comes from the model repo)."""
    from transformers import AutoTokenizer

    candidates: list[tuple[str, str | None]] = []
    if ckpt.tokenizer == ckpt.source:
        candidates.append((ckpt.load_path(), None if ckpt.local else ckpt.revision))
        if ckpt.local:
            candidates.append((ckpt.source, None))
    else:
        candidates.append((ckpt.tokenizer, None))
    last: Exception | None = None
    for name, rev in candidates:
        try:
            kwargs: dict[str, Any] = {"trust_remote_code": ckpt.trust_remote_code}
            if rev is not None:
                kwargs["revision"] = rev
            return AutoTokenizer.from_pretrained(name, **kwargs)
        except Exception as exc:  # noqa: BLE001 - try the next candidate, then report
            last = exc
    raise UserInputError(
        f"{ckpt.key}: cannot load the tokenizer from {candidates[0][0]} ({type(last).__name__}: {last}); "
        "set 'tokenizer' in the manifest entry"
    ) from last


def load_checkpoint(ckpt: Checkpoint, spec: EngineSpec) -> Loaded:
    """Load model and tokenizer once; model in eval mode, its parameters frozen.

    Global autograd state is left alone (the scorer runs under ``torch.inference_mode``), so a caller
    that trains in the same process is not affected.
    """
    require_eval_extra()
    import torch

    device = pick_device(spec.device)
    dtype = pick_dtype(spec.dtype, device)
    tokenizer = load_tokenizer(ckpt)
    if ckpt.loader == "mamba_ssm":
        model, info = _load_mamba_ssm(ckpt, device, dtype)
    else:
        model, info = _load_transformers(ckpt, device, dtype)
    model.eval()
    model.requires_grad_(False)
    info.update(
        {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "dtype": str(dtype).replace("torch.", ""),
            "params_counted": count_params(model),
            "tokenizer": getattr(tokenizer, "name_or_path", ckpt.tokenizer),
            "tokenizer_class": type(tokenizer).__name__,
        }
    )
    return Loaded(model=model, tokenizer=tokenizer, device=device, dtype=dtype, info=info)


def _load_transformers(ckpt: Checkpoint, device: Any, dtype: Any) -> tuple[Any, dict[str, Any]]:
    from transformers import AutoConfig, AutoModelForCausalLM

    path = ckpt.load_path()
    rev = None if ckpt.local else ckpt.revision
    common: dict[str, Any] = {"trust_remote_code": ckpt.trust_remote_code}
    if rev is not None:
        common["revision"] = rev
    try:
        config = AutoConfig.from_pretrained(path, **common)
    except Exception as exc:  # noqa: BLE001 - missing repo/revision/dir, offline hub
        raise UserInputError(
            f"{ckpt.key}: cannot load the model config from {path}"
            f"{f' at revision {rev}' if rev else ''} ({type(exc).__name__}: {exc})"
        ) from exc
    model_type = getattr(config, "model_type", "")
    kwargs: dict[str, Any] = {**common, "dtype": dtype}
    attn = None
    if model_type not in SSM_MODEL_TYPES:
        attn = "sdpa"
        kwargs["attn_implementation"] = attn
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ValueError as exc:
        msg = str(exc).lower()
        if attn is None or ("attn" not in msg and "sdpa" not in msg and "attention" not in msg):
            raise
        kwargs.pop("attn_implementation")
        attn = "eager"
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.to(device)
    info: dict[str, Any] = {
        "loader": "transformers",
        "model_type": model_type,
        "model_class": type(model).__name__,
        "attn_implementation": getattr(model.config, "_attn_implementation", attn),
        "commit": getattr(config, "_commit_hash", None),
    }
    if model_type in SSM_MODEL_TYPES:
        info["kernels"] = ssm_kernels(device)
    return model, info


def ssm_kernels(device: Any) -> str:
    """Which Mamba kernels transformers will call: 'mamba-ssm' (CUDA + package importable) or 'reference'."""
    have = (
        importlib.util.find_spec("mamba_ssm") is not None
        and importlib.util.find_spec("causal_conv1d") is not None
    )
    return "mamba-ssm" if (have and device.type == "cuda") else "reference"


class _MambaSsmLM:
    """Adapts mamba-ssm's MambaLMHeadModel to the ``model(input_ids, attention_mask).logits`` interface.

    Right padding needs no mask: the model is causal, so padding after a sequence cannot change it.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, input_ids: Any, attention_mask: Any = None, use_cache: bool = False) -> Any:
        return SimpleNamespace(logits=self.inner(input_ids).logits)

    def eval(self) -> _MambaSsmLM:
        self.inner.eval()
        return self

    def parameters(self) -> Any:
        return self.inner.parameters()


def _load_mamba_ssm(ckpt: Checkpoint, device: Any, dtype: Any) -> tuple[Any, dict[str, Any]]:
    if device.type != "cuda":
        raise UserInputError(
            f"{ckpt.key}: loader 'mamba_ssm' needs a CUDA device (mamba-ssm's kernels are CUDA-only); "
            "run it on a GPU, or use a transformers-format ('-hf') checkpoint with loader: transformers"
        )
    if importlib.util.find_spec("mamba_ssm") is None:
        raise UserInputError(
            f"{ckpt.key}: loader 'mamba_ssm' needs the mamba-ssm package: pip install 'bayes-l2l[gpu]' "
            "(built with --no-build-isolation against the installed torch)"
        )
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    if ckpt.revision not in (None, "main"):
        raise UserInputError(f"{ckpt.key}: loader 'mamba_ssm' loads only the 'main' revision")
    try:
        inner = MambaLMHeadModel.from_pretrained(ckpt.load_path(), device=str(device), dtype=dtype)
    except Exception as exc:  # noqa: BLE001 - missing repo, offline
        raise UserInputError(f"{ckpt.key}: mamba-ssm could not load {ckpt.load_path()} ({exc})") from exc
    return _MambaSsmLM(inner), {
        "loader": "mamba_ssm",
        "model_class": type(inner).__name__,
        "kernels": "mamba-ssm",
    }
