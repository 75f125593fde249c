"""The one backbone factory: base model and tokenizer by local path, PEFT adapters, fingerprints.

Every stage gets its network from here, and this is the only module that calls peft's
constructors, so that a method means the same thing in pretraining, downstream, SFT and DPO.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import (
    AdaptionPromptConfig,
    LoraConfig,
    PeftConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptEncoderConfig,
    PromptTuningConfig,
    TaskType,
    get_peft_model,
)
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from clinical_peft.errors import InputError

log = logging.getLogger(__name__)

METHODS = ("lora", "adaption_prompt", "prefix", "prompt", "p_tuning")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class AdapterSpec:
    """A PEFT adapter. Only the fields of the chosen `method` are used."""

    method: str = "lora"
    """One of lora, adaption_prompt (LLaMA-Adapter), prefix, prompt, p_tuning."""
    r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by lora_alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Module names LoRA wraps (the paper: q_proj and v_proj)."""
    num_virtual_tokens: int = 20
    """Virtual tokens of prefix, prompt and P-tuning."""
    encoder_hidden_size: int = 128
    """Hidden size of the P-tuning prompt encoder (an MLP)."""
    adapter_len: int = 10
    """Adaption prompt length per layer."""
    adapter_layers: int = 30
    """Adaption prompt: number of top layers (clamped to the model's depth)."""


def check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError("METHOD", f"unknown adapter method '{method}' (valid: {', '.join(METHODS)})")


def peft_config(spec: AdapterSpec, model_config, task_type: TaskType | None) -> PeftConfig:
    """The peft config for `spec` on a model with `model_config` (a transformers config)."""
    check_method(spec.method)
    if spec.method == "lora":
        return LoraConfig(
            r=spec.r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=spec.lora_dropout,
            target_modules=list(spec.target_modules),
            task_type=task_type,
        )
    if spec.method == "adaption_prompt":
        layers = min(spec.adapter_layers, model_config.num_hidden_layers)
        if layers < spec.adapter_layers:
            log.info("adapter_layers %d > model depth; using %d", spec.adapter_layers, layers)
        return AdaptionPromptConfig(
            adapter_len=spec.adapter_len, adapter_layers=layers, task_type=task_type
        )
    prompt_kwargs = dict(num_virtual_tokens=spec.num_virtual_tokens, task_type=task_type)
    if spec.method == "prefix":
        return PrefixTuningConfig(**prompt_kwargs)
    if spec.method == "prompt":
        return PromptTuningConfig(**prompt_kwargs)
    return PromptEncoderConfig(encoder_hidden_size=spec.encoder_hidden_size, **prompt_kwargs)


def _check_model_dir(path: str | Path) -> Path:
    # A missing local folder would otherwise be taken for a hub id, with a misleading error.
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(path, "base model folder not found (expected config.json inside)")
    return path


def load_tokenizer(path: str | Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside a local model, with a pad token distinct from EOS."""
    path = _check_model_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.eos_token_id is None:
        raise InputError(path, "tokenizer has no EOS token (field eos_token)")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # LLaMA tokenizers ship without a pad token. Reuse an existing non-EOS token rather than
        # add one: a new token would resize the embeddings and break adapter portability.
        spare = tokenizer.unk_token or next(
            (t for t in tokenizer.all_special_tokens if "reserved" in t), None
        )
        if spare is None or tokenizer.convert_tokens_to_ids(spare) == tokenizer.eos_token_id:
            raise InputError(path, "tokenizer has no pad token and no spare special token")
        tokenizer.pad_token = spare
    tokenizer.padding_side = "right"
    return tokenizer


def load_causal_lm(
    path: str | Path, dtype: str = "float32", trust_remote_code: bool = False
) -> torch.nn.Module:
    """A local Hugging Face causal LM, all of its own weights frozen."""
    path = _check_model_dir(path)
    if dtype not in DTYPES:
        raise InputError("model.dtype", f"unknown dtype '{dtype}' (valid: {', '.join(DTYPES)})")
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
    )
    model.requires_grad_(False)
    return model


def add_adapter(model: torch.nn.Module, spec: AdapterSpec, task_type=TaskType.CAUSAL_LM) -> PeftModel:
    """Wrap `model` with a fresh adapter; only the adapter's parameters are trainable."""
    return get_peft_model(model, peft_config(spec, model.config, task_type))


def load_adapter(model: torch.nn.Module, adapter_dir: str | Path, trainable: bool) -> PeftModel:
    """Wrap `model` with an adapter saved by `save_pretrained`, checking it fits the base."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise InputError(adapter_dir, "adapter folder not found (expected adapter_config.json)")
    try:
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
    except RuntimeError as err:  # size mismatch: adapter trained on another base model
        raise InputError(adapter_dir, f"adapter does not fit this base model ({_first_line(err)})")


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
    return lines[0] if lines else str(err).splitlines()[0]


def fingerprint(model: torch.nn.Module) -> str:
    """Architecture and tensor shapes of the base model (adapter tensors excluded), hashed.

    Stored in checkpoints so that resuming or loading onto another base model is refused.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    adapter_words = ("lora_", "prompt_encoder", "adaption_", "modules_to_save")
    parts = [type(base).__name__, str(getattr(base.config, "model_type", ""))]
    for name, tensor in base.state_dict().items():
        if not any(word in name for word in adapter_words):
            # LoRA moves a wrapped weight to `<module>.base_layer.weight`: same tensor, same name
            name = name.replace(".base_layer", "").replace(".original_module", "")
            parts.append(f"{name}:{tuple(tensor.shape)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def parameter_counts(model: torch.nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts, as the paper's Table 2 reports them."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {
        "params/trainable": trainable,
        "params/total": total,
        "params/share": trainable / total if total else 0.0,
    }


def model_config(path: str | Path):
    return AutoConfig.from_pretrained(_check_model_dir(path))
