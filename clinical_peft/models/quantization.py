"""QLoRA: the frozen base loaded in 4-bit NF4 or 8-bit through bitsandbytes, adapters as always.

`--model.quantization nf4` (double quantisation, bf16 compute, as the QLoRA paper) or `int8`
(LLM.int8()); `none` (the default) loads the weights as they are. The quantized base is
prepared with peft's `prepare_model_for_kbit_training` (norms and embeddings in float32, inputs
that require grad); checkpoints hold the adapter only, as always, and record the quantization,
so a checkpoint is not resumed under another one unasked (cli.run_dir.check_checkpoint).
"""

from __future__ import annotations

import importlib.util
import os

import torch

from clinical_peft.util.errors import InputError

#: what `--model.quantization` accepts, and what each loads
QUANTIZATIONS = {
    "none": "the weights as stored (model.dtype)",
    "nf4": "bitsandbytes 4-bit NormalFloat, double quantization, bfloat16 compute (QLoRA)",
    "int8": "bitsandbytes 8-bit (LLM.int8())",
}


def check_quantization(name: str) -> None:
    """Refuse an unknown quantization, or one whose library is not installed (one line)."""
    if name not in QUANTIZATIONS:
        valid = ", ".join(QUANTIZATIONS)
        raise InputError("model.quantization", f"unknown '{name}' (valid: {valid})")
    if name != "none" and importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(
            "model.quantization",
            f"'{name}' needs the bitsandbytes package, which is not installed "
            "(pip install bitsandbytes; 0.50.2 runs on CPU)",
        )


def quantized_loading(name: str) -> dict:
    """Keyword arguments of `from_pretrained` that load the base quantized (none: {})."""
    check_quantization(name)
    if name == "none":
        return {}
    from transformers import BitsAndBytesConfig

    if name == "nf4":
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    # each rank quantizes onto its own device (transformers would put every rank on cuda:0)
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    return {"quantization_config": config, "device_map": {"": device}}


def prepare_quantized(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """peft's preparation of a quantized base for adapter training (a no-op for none).

    Activation checkpointing is left to the caller (`backbone.checkpoint_activations`), so that
    a quantized base and a plain one recompute activations the same way."""
    if name == "none":
        return model
    from peft import prepare_model_for_kbit_training

    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            # bitsandbytes' CPU inference kernel (AVX512-BF16 machines) repacks a 4-bit weight
            # in place at its first eval forward: it refuses out_features not a multiple of 32,
            # and the repacked layer passes no gradient to its input, so after a validation the
            # adapters below it would stop learning. Training needs the autograd path.
            module.support_avx512bf16_for_cpu = False
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def original_shape(param: torch.Tensor) -> tuple[int, ...]:
    """A weight's shape before quantization: 4-bit weights are stored packed, (n * m / 2, 1),
    with the shape in their quant state; 8-bit weights keep theirs."""
    state = getattr(param, "quant_state", None)
    shape = getattr(state, "shape", None)
    return tuple(shape) if shape is not None else tuple(param.shape)
