"""The one backbone factory: base model and tokenizer by local path, PEFT adapters, fingerprints.

Every stage gets its network from here, and this is the only module that calls peft's
constructors, so that a method means the same thing in pretraining, downstream, SFT and DPO.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import (
    AdaptionPromptConfig,
    LoraConfig,
    PeftConfig,
    PeftModel,
    TaskType,
    get_peft_model,
)
from transformers import AutoModelForCausalLM

# what a model folder holds (re-exported: callers build models and read folders from here)
from clinical_peft.models.files import (  # noqa: F401
    check_adapter_dir,
    check_model_dir,
    check_model_files,
    first_error_line,
    is_encoder,
    load_tokenizer,
)
from clinical_peft.models.quantization import (
    check_quantization,
    original_shape,
    prepare_quantized,
    quantized_loading,
)
from clinical_peft.util.errors import InputError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: transformers' attention kernels (`attn_implementation`); None: the model's default (SDPA)
ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2")


def attention_loading(attn_implementation: str | None) -> dict:
    """from_pretrained's `attn_implementation`, refused in one line when unknown."""
    if attn_implementation is None:
        return {}
    if attn_implementation not in ATTENTION:
        raise InputError("model.attn_implementation",
                         f"unknown '{attn_implementation}' (valid: {', '.join(ATTENTION)})")  # fmt: skip
    return {"attn_implementation": attn_implementation}


def check_attention_trains(attn_implementation: str | None, device_type: str) -> None:
    """Refuse, before anything runs, a kernel that cannot train on this device: torch's
    FlexAttention has a CPU forward but no CPU backward."""
    if attn_implementation == "flex_attention" and device_type == "cpu":
        raise InputError(
            "model.attn_implementation",
            f"flex_attention cannot train on CPU (torch {torch.__version__} has no CPU backward "
            "for it): use sdpa or eager here, flex_attention on a GPU",
        )


# --- adapters: any peft config, chosen in the YAML by class_path (peft.LoraConfig, ...) ----------
def default_lora() -> LoraConfig:
    """The paper's winner (Table 2): LoRA r 16, alpha 32, no dropout, on q_proj and v_proj."""
    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])


def method_name(config: PeftConfig) -> str:
    """A short name for tables and model cards: peft's type, and "dora" for a DoRA LoRA."""
    if getattr(config, "use_dora", False):
        return "dora"
    return config.peft_type.value.lower() if config.peft_type else type(config).__name__


def fit_to_model(config: PeftConfig, model_config, task_type: TaskType | None) -> PeftConfig:
    """A copy of `config` for this model and task (the YAML's own object is never changed).

    LLaMA-Adapter's `adapter_layers` is clamped to the model's depth, so one YAML serves the
    tiny model and LLaMA-7B alike."""
    config = copy.deepcopy(config)
    config.task_type = task_type
    if isinstance(config, AdaptionPromptConfig):
        layers = min(config.adapter_layers, model_config.num_hidden_layers)
        if layers < config.adapter_layers:
            log.info("adapter_layers %d > model depth; using %d", config.adapter_layers, layers)
        config.adapter_layers = layers
    return config


def config_record(config: PeftConfig) -> dict:
    """The config as plain JSON types (for hyperparameters and model cards)."""
    return json.loads(
        json.dumps(config.to_dict(), default=lambda v: sorted(v) if isinstance(v, set) else str(v))
    )


def load_causal_lm(
    path: str | Path,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    gradient_checkpointing: bool = False,
    quantization: str = "none",
    attn_implementation: str | None = None,
) -> torch.nn.Module:
    """A local Hugging Face causal LM, all of its own weights frozen (see
    `checkpoint_activations` for `gradient_checkpointing`), quantized for QLoRA unless
    `quantization` is none (see `clinical_peft.models.quantization`), with the attention
    kernel `attn_implementation` (`ATTENTION`; None: the model's default)."""
    path = check_model_dir(path)
    if dtype not in DTYPES:
        raise InputError("model.dtype", f"unknown dtype '{dtype}' (valid: {', '.join(DTYPES)})")
    check_quantization(quantization)
    check_model_files(path)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
        **quantized_loading(quantization), **attention_loading(attn_implementation),
    )  # fmt: skip
    model = prepare_quantized(model, quantization)
    model.requires_grad_(False)
    if gradient_checkpointing:
        checkpoint_activations(model)
    return model


def checkpoint_activations(model: torch.nn.Module) -> None:
    """Recompute each layer's activations in the backward pass: far less memory for a third more
    compute. The embedding output must then require grad, or no gradient reaches the adapters
    under a frozen base."""
    model.activation_checkpointing_enable()
    model.enable_input_require_grads()


def add_adapter(
    model: torch.nn.Module, config: PeftConfig | None = None, task_type=TaskType.CAUSAL_LM
) -> PeftModel:
    """Wrap `model` with a fresh adapter (default: `default_lora`); only the adapter's parameters
    are trainable."""
    config = fit_to_model(config or default_lora(), model.config, task_type)
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # e.g. target modules that the model does not have
        raise InputError("model.adapter", str(err).splitlines()[0]) from None


def token_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Logits at the batch's token positions, (batch, tokens, vocab).

    Prompt tuning and P-tuning put their virtual tokens in front of the input; those logits are
    dropped. A packed batch carries `position_ids` that restart at every example: given those
    and no attention mask (its `attention_mask` only marks real tokens, and is not passed on),
    transformers builds a block-diagonal causal mask, when no KV cache is in use (hence
    `use_cache=False`), so packed examples do not see each other.
    """
    keys = (
        ("input_ids", "position_ids")
        if "position_ids" in batch
        else ("input_ids", "attention_mask")
    )
    inputs = {k: batch[k] for k in keys}
    return model(**inputs, use_cache=False).logits[:, -batch["input_ids"].shape[1] :]


def check_packing(model: PeftModel, key: str, alternative: str) -> None:
    """Packed, document-masked batches need `position_ids` to reach the model; peft drops them
    for prompt-learning adapters (prefix, prompt, P-tuning), and with them the mask."""
    config = model.active_peft_config
    if config.is_prompt_learning:
        method = config.peft_type.value.lower()
        raise InputError(key, f"packing needs a lora or adaption_prompt adapter, not {method} "
                              f"({alternative})")  # fmt: skip


def load_adapter(model: torch.nn.Module, adapter_dir: str | Path, trainable: bool) -> PeftModel:
    """Wrap `model` with an adapter saved by `save_pretrained`, checking it fits the base."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise InputError(adapter_dir, "adapter folder not found (expected adapter_config.json)")
    check_adapter_dir(adapter_dir)
    try:
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
    except RuntimeError as err:  # size mismatch: adapter trained on another base model
        raise InputError(
            adapter_dir, f"adapter does not fit this base model ({first_error_line(err)})"
        ) from None


def fingerprint(model: torch.nn.Module) -> str:
    """Architecture and tensor shapes of the base model (adapter tensors excluded), hashed.

    Stored in checkpoints so that resuming or loading onto another base model is refused.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    adapter_words = ("lora_", "prompt_encoder", "adaption_", "modules_to_save")
    parts = [type(base).__name__, str(getattr(base.config, "model_type", ""))]
    for name, param in base.named_parameters():
        if not any(word in name for word in adapter_words):
            # LoRA moves a wrapped weight to `<module>.base_layer.weight`: same tensor, same name
            name = name.replace(".base_layer", "").replace(".original_module", "")
            # whole shape, also under ZeRO-3 and of a packed 4-bit weight
            shape = param.ds_shape if hasattr(param, "ds_shape") else original_shape(param)
            parts.append(f"{name}:{tuple(shape)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def weights_fingerprint(model_dir: str | Path, values: int = 4) -> str:
    """The base model's weights, hashed cheaply from its files: every tensor's name, shape and
    first and last `values` numbers (safetensors reads those slices without loading the rest);
    other weight formats by size and their first and last MiB. The same weights copied
    elsewhere give the same hash; a base with the same shapes but other weights does not."""
    from safetensors import safe_open

    from clinical_peft.data.cache import content_stamp

    digest = hashlib.sha256()
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for name in sorted(f.keys()):
                part = f.get_slice(name)
                shape = part.get_shape()
                digest.update(f"{name}:{shape}".encode())
                if shape:  # the first and last rows hold the sampled numbers
                    first, last = part[:1], part[shape[0] - 1 :]
                    for row in (first, last):
                        flat = row.reshape(-1).float()
                        sample = torch.cat([flat[:values], flat[-values:]])
                        digest.update(sample.numpy().tobytes())
    for file in sorted(Path(model_dir).glob("*.bin")):
        digest.update(f"{file.name}:{content_stamp(file)}".encode())
    return digest.hexdigest()[:16]


def parameter_counts(model: torch.nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts, as the paper's Table 2 reports them."""

    def numel(p: torch.nn.Parameter) -> int:
        return getattr(p, "ds_numel", p.numel())  # ZeRO-3 leaves only a shard in p

    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(numel(p) for p in model.parameters())
    return {
        "params/trainable": trainable,
        "params/total": total,
        "params/share": trainable / total if total else 0.0,
    }


# --- DPO from an SFT adapter: a frozen reference and a trainable policy on one base network ----
REFERENCE_ADAPTER = "reference"


def load_policy_and_reference(model: torch.nn.Module, adapter_dir: str | Path) -> PeftModel:
    """`adapter_dir` loaded twice on one base: "default" (the policy, trainable, active) and
    "reference" (frozen). No second copy of the base model is made."""
    peft_model = load_adapter(model, adapter_dir, trainable=True)
    if not tuner_layers(peft_model):
        raise InputError(adapter_dir, "DPO from an adapter needs a LoRA-type adapter")
    peft_model.load_adapter(str(adapter_dir), adapter_name=REFERENCE_ADAPTER, is_trainable=False)
    peft_model.set_adapter("default")  # active and trainable; the reference stays frozen
    for name, param in peft_model.named_parameters():
        if f".{REFERENCE_ADAPTER}." in name:
            param.requires_grad_(False)
    return peft_model


def tuner_layers(model: torch.nn.Module) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextmanager
def use_adapter(model: PeftModel, name: str):
    """Forward passes inside run with adapter `name`. Unlike peft's `set_adapter` this leaves
    `requires_grad` alone, which the optimizer and DDP's gradient hooks rely on."""
    layers = tuner_layers(model)
    previous = [layer._active_adapter for layer in layers]
    for layer in layers:
        layer._active_adapter = [name]
    try:
        yield
    finally:
        for layer, active in zip(layers, previous, strict=True):
            layer._active_adapter = active
