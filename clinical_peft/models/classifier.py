"""Outcome prediction's networks: a sequence classifier from a local folder, and the clinical
adapter (from pretraining) and/or a downstream LoRA stacked under its head, both acting in the
forward pass. Built on the backbone factory (`clinical_peft.models.backbone`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from peft import LoraConfig, PeftConfig, PeftModel, TaskType, get_peft_model

from clinical_peft.models.backbone import (
    DTYPES,
    attention_loading,
    check_adapter_dir,
    check_model_dir,
    check_model_files,
    checkpoint_activations,
    first_error_line,
    fit_to_model,
    is_encoder,
    load_tokenizer,
)
from clinical_peft.util.errors import InputError

log = logging.getLogger(__name__)

HEAD_NAMES = ("pre_classifier", "classifier", "score")  # classification heads transformers adds


def head_names(model: torch.nn.Module) -> list[str]:
    return [name for name in HEAD_NAMES if isinstance(getattr(model, name, None), torch.nn.Module)]


def load_sequence_classifier(
    path: str | Path,
    num_labels: int,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    gradient_checkpointing: bool = False,
    attn_implementation: str | None = None,
) -> torch.nn.Module:
    """`AutoModelForSequenceClassification` from a local folder: base frozen, new head trainable
    (`attn_implementation` as for `load_causal_lm`).

    Decoders (LLaMA) pool the hidden state of the last token that is not padding; transformers
    finds it from `config.pad_token_id`, so that is set to the pad token of `load_tokenizer`
    (distinct from EOS, right padding). Encoders pool [CLS] as their pretraining did.
    """
    from transformers import AutoModelForSequenceClassification

    path = check_model_dir(path)
    if dtype not in DTYPES:
        raise InputError("model.dtype", f"unknown dtype '{dtype}' (valid: {', '.join(DTYPES)})")
    check_model_files(path)
    extra = {} if is_encoder(path) else {"pad_token_id": load_tokenizer(path).pad_token_id}
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=num_labels, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
        **extra, **attention_loading(attn_implementation),
    )  # fmt: skip
    model.requires_grad_(False)
    heads = head_names(model)
    if not heads:
        raise InputError(path, f"no classification head found (looked for {', '.join(HEAD_NAMES)})")
    for name in heads:
        getattr(model, name).requires_grad_(True)
    if gradient_checkpointing:
        checkpoint_activations(model)
    return model


STACKABLE_CLINICAL = ("lora",)  # peft combines adapters of one type only


def check_stackable(config: PeftConfig, clinical_dir: Path, with_lora: bool) -> None:
    """Which clinical adapters can act under a classification head, and under a downstream LoRA."""
    method = config.peft_type.value.lower()
    if method == "prefix_tuning":
        raise InputError(
            clinical_dir,
            "a prefix-tuning clinical adapter cannot act under a classification head (peft passes "
            "it as past_key_values, which transformers' sequence classifiers do not take). Under "
            "a head work: lora (also under a downstream LoRA), adaption_prompt, prompt, p_tuning",
        )
    if with_lora and method not in STACKABLE_CLINICAL:
        raise InputError(
            "model.downstream_lora",
            f"a {method} clinical adapter ({clinical_dir}) cannot be stacked under a downstream "
            "LoRA: peft combines adapters of one type only. Use DOWNSTREAM_LORA=0 (clinical "
            "adapter + head, frozen or trainable), or a lora clinical adapter",
        )


def _load_prompt_learning(model: torch.nn.Module, clinical_dir: Path, config: PeftConfig):
    """A prefix / prompt / P-tuning adapter under a classifier: peft's classifier wrapper adds
    the virtual tokens (with task_type None it adds none). Its loader expects the head in the
    saved adapter, which a causal-LM adapter lacks, so the saved virtual-token embeddings are
    set directly; in inference mode peft uses them in place of its prompt encoder, which is
    how a saved prompt-learning adapter is meant to run (and that tensor is what trains)."""
    from peft import get_peft_model_state_dict, load_peft_weights, set_peft_model_state_dict

    config.task_type, config.inference_mode = TaskType.SEQ_CLS, True
    peft_model = get_peft_model(model, config, adapter_name="clinical")
    weights = load_peft_weights(str(clinical_dir), device="cpu")
    current = get_peft_model_state_dict(peft_model, adapter_name="clinical")
    weights.update({k: v for k, v in current.items() if k not in weights})  # the fresh head
    set_peft_model_state_dict(peft_model, weights, adapter_name="clinical")
    return peft_model


def needs_left_padding(model: torch.nn.Module) -> bool:
    """Prompt and P-tuning feed embeddings, not token ids, so a decoder classifier cannot find
    the last real token of a right-padded row: it pools the last position instead."""
    config = getattr(model, "active_peft_config", None)
    return bool(config and config.is_prompt_learning and config.peft_type.value != "PREFIX_TUNING")


def stack_adapters(
    model: torch.nn.Module,
    clinical_dir: str | Path | None,
    clinical_trainable: bool,
    downstream: LoraConfig | None,
) -> torch.nn.Module:
    """Put the clinical adapter (a causal-LM adapter from pretraining) and/or a fresh downstream
    LoRA under a sequence classifier from `load_sequence_classifier`; both act in the forward pass.

    Adapters are named "clinical" and "downstream"; the head goes into the downstream adapter's
    `modules_to_save` (saved with it), else it stays a plain trainable module of the base model.
    With neither adapter the model is returned as it is (head only).
    """
    heads = head_names(model)
    if clinical_dir is None and downstream is None:
        return model
    if downstream is not None and not isinstance(downstream, LoraConfig):
        raise InputError(
            "model.downstream",
            f"the downstream adapter must be a peft.LoraConfig, not {type(downstream).__name__}",
        )
    lora = None
    if downstream is not None:
        lora = fit_to_model(downstream, model.config, task_type=None)
        lora.modules_to_save = list(heads)
    if clinical_dir is None:
        peft_model = get_peft_model(model, lora, adapter_name="downstream")
    else:
        clinical_dir = Path(clinical_dir)
        if not (clinical_dir / "adapter_config.json").is_file():
            raise InputError(
                clinical_dir, "clinical adapter folder not found (expected adapter_config.json)"
            )
        # A CAUSAL_LM adapter cannot be loaded onto a classifier as such (peft would build a
        # causal-LM wrapper): its task type is replaced.
        config = PeftConfig.from_pretrained(str(check_adapter_dir(clinical_dir)))
        check_stackable(config, clinical_dir, lora is not None)
        try:
            if config.is_prompt_learning:
                peft_model = _load_prompt_learning(model, clinical_dir, config)
            else:
                config.task_type = None  # acts inside the layers: loaded as a plain adapter
                peft_model = PeftModel.from_pretrained(
                    model, clinical_dir, adapter_name="clinical", config=config,
                    is_trainable=clinical_trainable,
                )  # fmt: skip
        except (RuntimeError, ValueError, KeyError) as err:  # shapes or module names differ
            raise InputError(
                clinical_dir,
                f"clinical adapter does not fit this base model ({first_error_line(err)})",
            ) from None
        if lora is not None:
            peft_model.add_adapter("downstream", lora)
            # The list form activates both adapters at once; it exists only on the inner model.
            peft_model.base_model.set_adapter(["clinical", "downstream"])
    # set_adapter and from_pretrained change requires_grad: set every flag explicitly.
    for name, param in peft_model.named_parameters():
        is_head = any(f".{head}." in f".{name}" for head in heads)
        if is_head and ".original_module." in name:
            param.requires_grad_(False)  # the copy peft keeps of a head it wraps, unused
        elif is_head and lora is None:
            param.requires_grad_(True)  # head outside the downstream adapter (clinical-only)
        elif ".clinical" in name or ".adaption_" in name:  # LLaMA-Adapter names no adapter
            unused = "prompt_encoder" in name and not name.endswith("embedding.weight")
            param.requires_grad_(clinical_trainable and not unused)
        elif ".downstream" in name:
            param.requires_grad_(True)
        else:
            param.requires_grad_(False)
    return peft_model
