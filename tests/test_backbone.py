"""Backbone factory: adapters per method, parameter counts by formula, fingerprints, errors."""

from __future__ import annotations

import pytest
import torch
from methods import METHODS, adapter_config, lora
from peft import (
    AdaptionPromptConfig,
    IA3Config,
    LoraConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
)

from clinical_peft.models.backbone import (
    add_adapter,
    fingerprint,
    load_causal_lm,
    load_tokenizer,
    parameter_counts,
    token_logits,
)
from clinical_peft.stages.losses import causal_lm_loss_sums
from clinical_peft.util.errors import InputError


def expected_trainable(spec, config) -> int:
    """The paper's counts, from the model's shapes (LLaMA-7B gives Table 2's numbers)."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads = getattr(config, "num_attention_heads", 1)
    kv = hidden * (getattr(config, "num_key_value_heads", None) or heads) // heads
    if isinstance(spec, LoraConfig):  # r x (in + out) per wrapped matrix (q_proj, v_proj)
        out = {"q_proj": hidden, "v_proj": kv}
        lora = sum(spec.r * (hidden + out[m]) for m in spec.target_modules)
        magnitude = sum(out[m] for m in spec.target_modules) if spec.use_dora else 0  # DoRA
        return layers * (lora + magnitude)
    if isinstance(spec, IA3Config):  # a scale per key / value unit, per MLP input unit
        return layers * (kv + kv + config.intermediate_size)
    if isinstance(spec, AdaptionPromptConfig):  # a prompt per adapted layer, plus one gate each
        adapted = min(spec.adapter_layers, layers)
        return adapted * (spec.adapter_len * hidden + 1)
    if isinstance(spec, PrefixTuningConfig):  # a key and a value vector per token and layer
        return spec.num_virtual_tokens * layers * 2 * hidden
    if isinstance(spec, PromptTuningConfig):  # one input embedding per virtual token
        return spec.num_virtual_tokens * hidden
    mlp = spec.encoder_hidden_size  # p_tuning: embeddings + a 3-layer MLP encoder
    return (
        spec.num_virtual_tokens * hidden
        + (hidden * mlp + mlp)
        + (mlp * mlp + mlp)
        + (mlp * hidden + hidden)
    )


@pytest.mark.parametrize("method", METHODS)
def test_parameter_counts_match_the_formula(tiny_model, method):
    spec = adapter_config(method, r=4, num_virtual_tokens=5, adapter_len=3, encoder_hidden_size=16)
    base = load_causal_lm(tiny_model)
    base_total = sum(p.numel() for p in base.parameters())
    model = add_adapter(base, spec)
    counts = parameter_counts(model)
    assert counts["params/trainable"] == expected_trainable(spec, base.config)
    assert counts["params/total"] == base_total + counts["params/trainable"]
    assert counts["params/share"] == pytest.approx(
        counts["params/trainable"] / counts["params/total"]
    )
    # only adapter tensors train
    frozen_base = [
        n for n, p in model.named_parameters() if p.requires_grad and "embed_tokens.weight" in n
    ]
    assert frozen_base == []


def test_paper_lora_count_on_llama_7b_shapes():
    class Llama7B:
        hidden_size, num_hidden_layers, num_attention_heads = 4096, 32, 32

    assert expected_trainable(adapter_config("lora"), Llama7B) == 8_388_608  # Table 2
    assert expected_trainable(PromptTuningConfig(num_virtual_tokens=15), Llama7B) == 61_440
    assert expected_trainable(adapter_config("prefix"), Llama7B) == 5_242_880
    assert expected_trainable(adapter_config("adaption_prompt"), Llama7B) == 1_228_830


def test_an_adapter_that_fits_no_module_is_refused_in_one_line(tiny_model):
    with pytest.raises(InputError, match="model.adapter: .*nope_proj") as err:
        add_adapter(load_causal_lm(tiny_model), lora(target_modules=["nope_proj"]))
    assert "\n" not in str(err.value)


def test_a_new_method_is_one_yaml(notes_dir, tiny_model, tmp_path):
    """A method no list in the code knows (LoHa), chosen by its YAML alone, trains and saves."""
    import json

    import yaml

    from clinical_peft.cli.stage import run_stage

    config = yaml.safe_load(open("experiments/pretrain/lora.yaml"))
    config["model"]["adapter"] = {
        "class_path": "peft.LoHaConfig",
        "init_args": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    }
    (tmp_path / "loha.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    metrics = run_stage("pretrain", [
        "-c", str(tmp_path / "loha.yaml"), "--trainer", "experiments/trainer/cpu.yaml",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(notes_dir),
        "--data.cache_dir", str(tmp_path / "cache"), "--data.block_size", "64",
        "--data.max_notes", "40", "--trainer.max_steps", "2", "--run_dir", str(run),
        "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    saved = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LOHA" and metrics["params/trainable"] > 0


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="base model folder not found"):
        load_causal_lm(tmp_path / "llama-7b")
    with pytest.raises(InputError, match="base model folder not found"):
        load_tokenizer(tmp_path)


def test_tokenizer_pad_is_not_eos(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_fingerprint_ignores_adapters_but_not_shapes(tiny_model, notes_dir, tmp_path):
    base = load_causal_lm(tiny_model)
    plain = fingerprint(base)
    assert fingerprint(add_adapter(base, lora())) == plain
    from clinical_peft.models.tiny_llama import build_tiny_llama

    wider = build_tiny_llama(
        notes_dir, tmp_path / "wider", vocab_size=1024, hidden_size=96, intermediate_size=128
    )
    assert fingerprint(load_causal_lm(wider)) != plain
    torch.nn.init.zeros_(base.lm_head.weight)  # values do not matter, only architecture and shapes
    assert fingerprint(base) == plain


@pytest.mark.parametrize("method", METHODS)
def test_token_logits_line_up_with_the_labels_for_every_method(tiny_model, method):
    model = add_adapter(load_causal_lm(tiny_model), adapter_config(method)).eval()
    ids = torch.randint(5, 500, (2, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, 0] = -100  # else peft's loss also scores the virtual tokens' guess of token 0
    with torch.no_grad():
        logits = token_logits(model, {"input_ids": ids, "attention_mask": mask})
        nll, tokens = causal_lm_loss_sums(logits, labels)
        # peft's own loss knows where its virtual tokens went (prompt tuning, P-tuning)
        reference = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert logits.shape[:2] == ids.shape
    assert tokens.item() == 15 + 11
    assert (nll / tokens).item() == pytest.approx(reference.item(), rel=1e-5)


@pytest.mark.parametrize("stage", ["pretrain", "downstream"])
def test_activation_checkpointing_gives_the_same_gradients(tiny_model, stage):
    from clinical_peft.stages.downstream import OutcomePrediction
    from clinical_peft.stages.pretrain import DomainAdaptation

    ids = torch.randint(5, 500, (2, 16), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same adapter initialisation both times
        if stage == "pretrain":
            module = DomainAdaptation(str(tiny_model), gradient_checkpointing=checkpointing)
            loss = module.train()(batch)[0]
        else:
            module = OutcomePrediction(
                str(tiny_model),
                kind="binary",
                clinical="none",
                gradient_checkpointing=checkpointing,
            ).train()
            logits = module({**batch, "doc_index": torch.arange(2), "labels": torch.tensor([0, 1])})
            loss = module.loss(logits, torch.tensor([0, 1]))
        assert module.model.base_model.model.is_activation_checkpointing == checkpointing
        loss.backward()
        grads.append({n: p.grad for n, p in module.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    assert all(g is not None for g in grads[1].values())
    assert any(g.abs().sum() > 0 for g in grads[1].values())  # LoRA A gets none while B is 0
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4)


def test_the_frozen_base_trains_in_training_mode(notes_dir, tiny_model, tmp_path):
    """HF loads models in eval mode, where activation checkpointing never engages."""
    import lightning as L

    from clinical_peft.data.notes import NotesDataModule
    from clinical_peft.stages.pretrain import DomainAdaptation

    modes = []

    class RecordModes(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            modes.append({name: m.training for name, m in module.named_modules()})

    stage = DomainAdaptation(str(tiny_model), gradient_checkpointing=True)
    data = NotesDataModule(
        str(notes_dir), str(tiny_model), block_size=64, max_notes=40, cache_dir=str(tmp_path)
    )
    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[RecordModes()],
        inference_mode=False,
    )  # fmt: skip
    trainer.validate(stage, datamodule=data, verbose=False)  # as every run does before fitting
    trainer.fit(stage, datamodule=data)
    assert len(modes) == 2 and all(all(step.values()) for step in modes)
    layer = stage.model.base_model.model.model.layers[0]
    assert layer.gradient_checkpointing
