"""FSDP (experiments/trainer/fsdp.yaml): the config validated, the pieces that differ under it,
and a two-process CPU run (fsdp_cpu.yaml: torch's FSDP on gloo); tests/scripts/fsdp_gpu_check.sh
is the GPU run."""

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
    assert settings["accelerator"] == "gpu"
    # the CPU check (fsdp_cpu.yaml) shards the same way, over gloo
    on_cpu = yaml.safe_load((CONFIG.parent / "fsdp_cpu.yaml").read_text())["strategy"]
    assert on_cpu["class_path"] == settings["strategy"]["class_path"]
    assert on_cpu["init_args"] == {**settings["strategy"]["init_args"],
                                   "process_group_backend": "gloo"}  # fmt: skip
    strategy = fsdp_strategy()
    assert isinstance(strategy, FSDPStrategy)  # Lightning's, kept across validate -> fit
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


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_cpu_fsdp_pretrain(notes_dir, tiny_model, tmp_path):
    """experiments/trainer/fsdp_cpu.yaml: torch's FSDP over two gloo ranks, each decoder layer
    sharded. The run validates, then fits (one FSDP wrapper for both), clips by FSDP's norm,
    and saves an adapter-only checkpoint of whole tensors under their plain names: loaded into
    one process, it gives the run's held-out perplexity."""
    import json

    import lightning as L
    import torch
    from test_scale import on_trainer, run_script

    from clinical_peft.data.notes import NotesDataModule
    from clinical_peft.stages.pretrain import DomainAdaptation

    run = tmp_path / "fsdp"
    result = run_script("pretrain", on_trainer("fsdp_cpu", 3, notes_dir, tiny_model, run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr + result.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    stage = DomainAdaptation(base_model=str(tiny_model))
    assert set(state) == stage.trainable_keys()  # adapter only, names as unwrapped
    assert all(state[k].shape == p.shape for k, p in stage.named_parameters() if k in state)
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    stage.load_trainable_from(run / "checkpoints" / "last.ckpt")
    data = NotesDataModule(str(notes_dir), str(tiny_model), block_size=64, max_notes=120,
                           cache_dir=str(tmp_path / "cache"))  # fmt: skip
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, inference_mode=False
    )
    (single,) = trainer.validate(stage, datamodule=data, verbose=False)
    assert metrics["val/ppl"] == pytest.approx(single["val/ppl"], rel=1e-4)
    assert metrics["val/ppl"] != pytest.approx(metrics["val/ppl_before"], rel=1e-4)
