"""DeepSpeed on CPU: ZeRO-2 and ZeRO-3 runs, resumes, exports and checkpoint checks (gloo, several
processes: slow)."""

from __future__ import annotations

import json
import math
import shutil
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from peft import PeftModel
from test_hardening import assert_one_line_error, metric_rows, snapshot
from test_scale import (
    BEST_IS_NOT_LAST,
    CONSTANT_LR,
    ROOT,
    SCRIPTS,
    assert_final_metrics_from_best_checkpoint,
    deepspeed_on_cpu,
    max_difference,
    pretrain_args,
    run_script,
)
from transformers import AutoModelForCausalLM

from clinical_peft.cli.commands import main
from clinical_peft.cli.stage import check_checkpoint, run_stage
from clinical_peft.data.notes import NotesDataModule
from clinical_peft.stages.pretrain import DomainAdaptation
from clinical_peft.util.errors import InputError


@pytest.mark.slow
@pytest.mark.distributed
def test_deepspeed_zero2_smoke_fit_on_cpu(notes_dir, tiny_model, tmp_path):
    run = tmp_path / "zero2"
    zero2 = [
        *deepspeed_on_cpu(stage=2, ranks=1),
        *BEST_IS_NOT_LAST,
    ]  # fmt: skip
    result = run_script("pretrain", pretrain_args(notes_dir, tiny_model, run, *zero2))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_final_metrics_from_best_checkpoint(run)
    shards = run / "checkpoints" / "last.ckpt" / "checkpoint"
    model_states = next(shards.glob("mp_rank_*_model_states.pt"))
    base_bytes = (tiny_model / "model.safetensors").stat().st_size
    assert model_states.stat().st_size < base_bytes / 5  # the frozen base is not in the checkpoint
    # the exported adapter is a normal peft folder that moved away from its initialisation
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), run / "adapter"
    )
    lora_b = [p for n, p in plain.named_parameters() if "lora_B" in n]
    assert max(p.abs().max().item() for p in lora_b) > 0


def test_deepspeed_checkpoints_are_swapped_in_whole(tmp_path, monkeypatch):
    from lightning.pytorch import strategies

    from clinical_peft.cli.strategies import DeepSpeedStrategy

    def write_shards(self, checkpoint, filepath, storage_options=None):
        """DeepSpeed's writer, in miniature: shard files into a folder, or a crash halfway."""
        Path(filepath).mkdir()
        (Path(filepath) / "shard_0.pt").write_text(checkpoint["step"])
        if checkpoint["step"] == "crash":
            raise KeyboardInterrupt
        (Path(filepath) / "shard_1.pt").write_text(checkpoint["step"])

    monkeypatch.setattr(strategies.DeepSpeedStrategy, "save_checkpoint", write_shards)
    strategy, path = DeepSpeedStrategy(stage=2), tmp_path / "last.ckpt"
    for step in ("1", "2"):
        strategy.save_checkpoint({"step": step}, path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
        assert {p.read_text() for p in path.iterdir()} == {step}
    with pytest.raises(KeyboardInterrupt):
        strategy.save_checkpoint({"step": "crash"}, path)
    assert {p.name: p.read_text() for p in path.iterdir()} == {"shard_0.pt": "2", "shard_1.pt": "2"}
    strategy.save_checkpoint({"step": "3"}, path)  # the next save clears the half-written one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    # a crash between the two renames leaves the previous checkpoint as last.ckpt.old
    path.rename(tmp_path / "last.ckpt.old")
    with pytest.raises(InputError, match="last.ckpt.old is: a crash"):
        check_checkpoint(str(path), model=None)


@pytest.mark.parametrize("name", ["deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload"])
def test_deepspeed_configs_are_valid(name):
    from deepspeed.runtime.config import DeepSpeedConfig

    from clinical_peft.cli.strategies import DeepSpeedStrategy

    spec = yaml.safe_load((ROOT / "experiments/trainer" / f"{name}.yaml").read_text())
    assert spec["strategy"]["class_path"] == "clinical_peft.cli.strategies.DeepSpeedStrategy"
    assert spec["precision"] == "bf16-mixed"
    strategy = DeepSpeedStrategy(**spec["strategy"]["init_args"])
    config = {**strategy.config, "train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": True}}
    parsed = DeepSpeedConfig(config)
    assert parsed.zero_optimization_stage == spec["strategy"]["init_args"]["stage"]
    assert parsed.bfloat16_config.enabled
    offload = spec["strategy"]["init_args"].get("offload_optimizer", False)
    assert (parsed.zero_config.offload_optimizer is not None) == offload


@pytest.mark.slow
@pytest.mark.distributed
def test_deepspeed_zero3_two_ranks_exports_the_whole_adapter(notes_dir, tiny_model, tmp_path):
    from methods import lora
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from clinical_peft.models.backbone import add_adapter, fingerprint, load_causal_lm

    run = tmp_path / "zero3"
    data = NotesDataModule(
        str(notes_dir), str(tiny_model), block_size=64, max_notes=120,
        cache_dir=str(tmp_path / "cache"), eval_batch_size=7, mode="pad_per_note",
    )  # fmt: skip
    data.prepare_data()
    data.setup()
    held_out = len(data.datasets["val"])
    # the shards (ceil and floor of half) need different batch counts: rank 1 runs a filler
    assert math.ceil(math.ceil(held_out / 2) / 7) > math.ceil(held_out // 2 / 7)
    zero3 = [
        *deepspeed_on_cpu(stage=3, ranks=2),
        "--data.eval_batch_size", "7", *BEST_IS_NOT_LAST,
    ]  # fmt: skip
    result = run_script("pretrain", pretrain_args(notes_dir, tiny_model, run, *zero3))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_final_metrics_from_best_checkpoint(run)  # loaded into the sharded model
    metrics = json.loads((run / "metrics.json").read_text())
    # held-out perplexity counts every block once: one process with the exported adapter agrees
    stage = DomainAdaptation(base_model=str(tiny_model))
    set_peft_model_state_dict(stage.model, load_file(run / "adapter" / "adapter_model.safetensors"))
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, inference_mode=False
    )
    (single,) = trainer.validate(stage, datamodule=data, verbose=False)
    assert metrics["val/ppl"] == pytest.approx(single["val/ppl"], rel=1e-4)
    assert metrics["val/ppl"] != pytest.approx(metrics["val/ppl_before"], rel=1e-4)
    # counts and fingerprint see whole tensors, not this rank's shards
    reference = add_adapter(load_causal_lm(tiny_model), lora())
    assert metrics["params/trainable"] == sum(
        p.numel() for p in reference.parameters() if p.requires_grad
    )
    assert metrics["base_fingerprint"] == fingerprint(reference)
    # the adapter was gathered from both ranks' shards before saving
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), run / "adapter"
    )
    lora_b = [p for n, p in plain.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.shape[1] == 16 for p in lora_b)
    assert max(p.abs().max().item() for p in lora_b) > 0


@pytest.mark.slow
@pytest.mark.distributed
def test_deepspeed_zero3_sft_then_dpo(tiny_model, tmp_path):
    from clinical_peft.data.instructions import InstructionDataModule
    from clinical_peft.stages.generation import generate
    from clinical_peft.synthetic import write_instruction_tasks

    data_dir = tmp_path / "instructions"
    write_instruction_tasks(data_dir, n_per_task=60, seed=0)
    run = tmp_path / "zero3_sft"
    # 5 prompts in batches of 2 on 2 ranks: 3 + 2 prompts, so rank 1 runs a filler round
    args = [
        "-c", str(ROOT / "experiments/sft/base.yaml"), "--data.task", "triage",
        "--model.base_model", str(tiny_model),
        "--data.data_dir", str(data_dir), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.max_eval_examples", "5", "--data.eval_batch_size", "2",
        *deepspeed_on_cpu(stage=3, ranks=2),
        "--trainer.max_steps", "3", "--trainer.enable_progress_bar", "false",
        "--run_dir", str(run),
    ]  # fmt: skip
    result = run_script("sft", args)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test/f1_provider", "test/f1_provider_before"} <= metrics.keys()
    rows = [json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    data = InstructionDataModule(
        str(data_dir), "triage", str(tiny_model), cache_dir=str(tmp_path / "cache"),
        max_eval_examples=5,
    )  # fmt: skip
    examples = data.generation_examples("test")
    assert [r["id"] for r in rows] == sorted(ex["id"] for ex in examples)
    # one process, the exported adapter, the same batches: the same texts
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), run / "adapter"
    )
    texts = {}
    for shard in (examples[0::2], examples[1::2]):
        prompts = [ex["prompt_ids"] for ex in shard]
        outputs = generate(model, data.tokenizer, prompts, 24, batch_size=2)
        texts.update({ex["id"]: text for ex, text in zip(shard, outputs, strict=True)})
    assert {r["id"]: r["prediction"] for r in rows} == texts

    # DPO from that SFT adapter, sharded the same way: the SFT adapter is the reference
    dpo = tmp_path / "zero3_dpo"
    args[1] = str(ROOT / "experiments/dpo/base.yaml")
    args[-1] = str(dpo)
    result = run_script("dpo", [*args, "--model.sft_adapter", str(run / "adapter")])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((dpo / "metrics.json").read_text())
    assert metrics["val/loss_before"] == pytest.approx(math.log(2), abs=1e-6)
    assert metrics["val/rewards/margins_before"] == 0
    assert metrics["val/loss"] != pytest.approx(math.log(2), abs=1e-6)
    policy = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), dpo / "adapter"
    )
    moved = [
        (p - dict(model.named_parameters())[n]).abs().max().item()
        for n, p in policy.named_parameters()
        if "lora_" in n
    ]
    assert moved and max(moved) > 0  # the policy left the SFT weights it started from


@pytest.mark.slow
@pytest.mark.distributed
def test_deepspeed_zero3_resume_matches_an_uninterrupted_run(notes_dir, tiny_model, tmp_path):
    from safetensors.torch import load_file

    zero3 = [
        *deepspeed_on_cpu(stage=3, ranks=2),
        "--model.optim.lr", "1e-2", *CONSTANT_LR,
    ]  # fmt: skip
    whole, split = tmp_path / "whole", tmp_path / "split"
    for run, steps, extra in [
        (whole, "6", []),
        (split, "4", ["--checkpoint_every_n_steps", "2"]),
        (split, "6", ["--ckpt_path", str(split / "checkpoints" / "last.ckpt")]),
    ]:
        args = pretrain_args(notes_dir, tiny_model, run, *zero3, "--trainer.max_steps", steps)
        result = run_script("pretrain", [*args, *extra])
        assert result.returncode == 0, result.stderr[-3000:]
    # the sharded optimizer, scheduler and loader position came back: the same adapter
    a = load_file(whole / "adapter" / "adapter_model.safetensors")
    b = load_file(split / "adapter" / "adapter_model.safetensors")
    assert max_difference(a, b) <= 1e-6
    assert max(v.abs().max().item() for k, v in a.items() if "lora_B" in k) > 0


def doctored(checkpoint: Path, name: str, **fields) -> Path:
    """A copy of a DeepSpeed checkpoint folder, beside it, with other values in its client state."""
    copy = shutil.copytree(checkpoint, checkpoint.with_name(name))
    states = copy / "checkpoint" / "mp_rank_00_model_states.pt"
    state = torch.load(states, map_location="cpu", weights_only=True)
    state.update(fields)
    torch.save(state, states)
    return copy


@pytest.mark.slow
@pytest.mark.distributed
def test_deepspeed_resume_keeps_the_history_and_checks_the_checkpoint(
    notes_dir, tiny_model, tmp_path, capfd, monkeypatch
):
    small = ["--data.block_size", "32", "--data.max_notes", "30", "--trainer.max_steps", "4",
             *CONSTANT_LR]  # fmt: skip
    straight = tmp_path / "straight"  # one process, no DeepSpeed: the history a resume keeps
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, straight, *small))

    run = tmp_path / "zero2"
    zero2 = [*deepspeed_on_cpu(stage=2, ranks=1), *small]
    term = {"class_path": "test_only.SignalAtStep",
            "init_args": {"step": 3, "signum": int(signal.SIGTERM)}}  # fmt: skip
    args = pretrain_args(notes_dir, tiny_model, run, *zero2)
    result = run_script("pretrain", [*args, "--trainer.callbacks", json.dumps([term])])
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_dir() and not (run / "metrics.json").exists()
    model_states = last / "checkpoint" / "mp_rank_00_model_states.pt"
    base_bytes = (tiny_model / "model.safetensors").stat().st_size
    assert model_states.stat().st_size < base_bytes / 5  # the frozen base is not in the checkpoint

    # a checkpoint folder of another stage, shape, base or data: one line, nothing written
    shapes = torch.load(last / "checkpoint" / "mp_rank_00_model_states.pt", weights_only=True)
    shapes = shapes["param_shapes"]
    key = next(iter(shapes[0]))
    shapes[0][key] = torch.Size([3, 3])
    cases = [
        (doctored(last, "sft.ckpt", stage="sft"), ["sft.ckpt", "'stage'", "sft"]),
        (doctored(last, "shape.ckpt", param_shapes=shapes), ["shape.ckpt", key, "(3, 3)"]),
        (doctored(last, "base.ckpt", base_weights="0" * 16), ["base_weights", "--allow_other_base"]),
        (doctored(last, "data.ckpt", data_fingerprint="0" * 16),
         ["data_fingerprint", "--allow_other_data"]),
    ]  # fmt: skip
    empty = shutil.copytree(last, last.with_name("empty.ckpt"))
    (empty / "checkpoint" / "mp_rank_00_model_states.pt").unlink()
    cases.append((empty, ["empty.ckpt", "mp_rank_00_model_states.pt"]))
    monkeypatch.syspath_prepend(str(SCRIPTS))
    before = snapshot(run)
    for ckpt, words in cases:
        args = pretrain_args(notes_dir, tiny_model, run, *zero2, "--ckpt_path", str(ckpt))
        code = main(["pretrain", *args])
        out, err = capfd.readouterr()
        assert_one_line_error(code, out + err, *words)
        assert snapshot(run) == before, ckpt
    # the escapes let a checkpoint of other base weights or other data through
    stage = DomainAdaptation(base_model=str(tiny_model))
    data = NotesDataModule(str(notes_dir), str(tiny_model), cache_dir=str(tmp_path / "cache"))
    for ckpt, allow in [(cases[2][0], "allow_other_base"), (cases[3][0], "allow_other_data")]:
        kept = check_checkpoint(str(ckpt), stage, "pretrain", data=data, **{allow: True})
        assert "val/ppl_before" in kept

    # resumed: the rows, `*_before` metrics and token totals of the first part are kept
    resume = [*pretrain_args(notes_dir, tiny_model, run, *zero2), "--ckpt_path", str(last)]
    result = run_script("pretrain", resume)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = json.loads((straight / "metrics.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("val/ppl_before", "val/loss_before", "train/tokens"):
        assert metrics.get(key) == pytest.approx(expected[key], rel=1e-5), key
    assert metric_rows(run) == metric_rows(straight)
