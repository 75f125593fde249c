"""FSDP (experiments/trainer/fsdp.yaml): Lightning runs torch's FSDP on GPUs only, so here the
config is validated and the pieces that differ under it are checked; tests/scripts/
fsdp_gpu_check.sh is the GPU run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch.strategies import FSDPStrategy, Strategy

from clinical_peft.stages.base import unwrapped_name, whole_fsdp_parameters

CONFIG = Path(__file__).parent.parent / "experiments" / "trainer" / "fsdp.yaml"


def fsdp_strategy() -> FSDPStrategy:
    parser = ArgumentParser()
    parser.add_argument("--strategy", type=Strategy)
    config = parser.parse_object({"strategy": yaml.safe_load(CONFIG.read_text())["strategy"]})
    return parser.instantiate_classes(config).strategy


def test_fsdp_config_shards_each_decoder_layer(tiny_model):
    from transformers import AutoModelForCausalLM
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    settings = yaml.safe_load(CONFIG.read_text())
    assert settings["accelerator"] == "gpu"  # Lightning refuses FSDP on CPU
    strategy = fsdp_strategy()
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.kwargs["use_orig_params"]  # frozen base and trainable LoRA in one unit
    assert strategy._state_dict_type == "full"  # checkpoints hold whole (adapter) tensors
    policy = strategy.kwargs["auto_wrap_policy"]
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    wrapped = [m for m in model.modules() if type(m) in policy._module_classes]
    assert wrapped and all(isinstance(m, LlamaDecoderLayer) for m in wrapped)
    assert len(wrapped) == model.config.num_hidden_layers


def test_names_and_parameters_as_unwrapped():
    name = "model.base_model.model.model.layers.0._fsdp_wrapped_module._checkpoint_wrapped_module.self_attn.q_proj.lora_A.default.weight"
    assert unwrapped_name(name) == (
        "model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    )
    with whole_fsdp_parameters(None):  # no trainer, or another strategy: nothing to gather
        pass


@pytest.mark.parametrize("stage", ["pretrain", "sft", "dpo", "kto"])
def test_every_causal_lm_stage_reads_the_fsdp_trainer(stage, capsys):
    from clinical_peft.cli.stage import run_stage

    args = ["-c", f"experiments/{stage}/{'lora' if stage == 'pretrain' else 'base'}.yaml",
            "--trainer", str(CONFIG), "--run_dir", "x", "--print_config"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_stage(stage, args)
    assert exit_info.value.code == 0
    assert "FSDPStrategy" in capsys.readouterr().out
