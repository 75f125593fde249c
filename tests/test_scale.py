"""Scale-out and hand-over: DDP and DeepSpeed on CPU, SIGKILL + exact resume, portable runs."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from peft import PeftModel
from sklearn.metrics import roc_auc_score
from transformers import AutoModelForCausalLM

from clinical_peft.callbacks import AtomicCheckpointIO
from clinical_peft.cli import check_checkpoint, run_stage
from clinical_peft.data.notes import NotesDataModule
from clinical_peft.errors import InputError
from clinical_peft.stages.pretrain import DomainAdaptation
from clinical_peft.synthetic import write_outcome_tasks

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "run_stage.py"
CONSTANT_LR = ["--model.optim.schedule", "constant", "--model.optim.warmup_steps", "0"]


def pretrain_args(notes_dir, model_dir, run_dir, *extra: str) -> list[str]:
    return [
        "-c", str(ROOT / "experiments/pretrain/lora.yaml"),
        "--model.base_model", str(model_dir),
        "--data.data_dir", str(notes_dir),
        "--data.cache_dir", str(Path(run_dir).parent / "cache"),
        "--data.block_size", "64", "--data.max_notes", "120",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--run_dir", str(run_dir), *extra,
    ]  # fmt: skip


def run_script(stage: str, args: list[str]) -> subprocess.CompletedProcess:
    """A stage in a fresh process: DDP launches its ranks from sys.argv, which pytest's is not."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # two ranks on two cores
        "PYTHONPATH": f"{SCRIPT.parent}{os.pathsep}{ROOT}",
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), stage, *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip


def deepspeed_on_cpu(stage: int, ranks: int) -> list[str]:
    """Trainer options for DeepSpeed ZeRO on CPU ranks through the test-only strategy shim."""
    return [
        "--trainer.accelerator", "cpu", "--trainer.devices", str(ranks),
        "--trainer.strategy", "test_only.CPUDeepSpeedStrategy",
        "--trainer.strategy.stage", str(stage),
        "--trainer.strategy.exclude_frozen_parameters", "true",
    ]  # fmt: skip


#: validate every 2 of 6 steps at a learning rate so high that the last weights are not the best
BEST_IS_NOT_LAST = ["--trainer.max_steps", "6", "--trainer.val_check_interval", "2",
                    "--model.optim.lr", "300", "--data.mode", "pad_per_note", *CONSTANT_LR]  # fmt: skip


def assert_final_metrics_from_best_checkpoint(run: Path) -> None:
    """The run's final val/loss is that of its best checkpoint, not of its last weights."""
    logged = pd.read_csv(run / "metrics.csv")["val/loss"].dropna().tolist()
    during = logged[1:-1]  # between the validation before fitting and the final one
    assert len(during) == 3 and min(during) < during[-1]
    final = json.loads((run / "metrics.json").read_text())["val/loss"]
    assert final == pytest.approx(min(during), rel=1e-6)


def trainable_state(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def on_trainer(trainer: str, steps: int, notes_dir, tiny_model, run) -> list[str]:
    """Pretraining arguments for `steps` steps under experiments/trainer/<trainer>.yaml."""
    config = str(ROOT / "experiments" / "trainer" / f"{trainer}.yaml")
    extra = ("--trainer", config, "--trainer.max_steps", str(steps))
    return pretrain_args(notes_dir, tiny_model, run, *extra)


@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_pretrain_scores_every_held_out_block_once(notes_dir, tiny_model, tmp_path):
    run = tmp_path / "ddp"
    result = run_script("pretrain", on_trainer("ddp_cpu", 4, notes_dir, tiny_model, run))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())

    # one process, same weights, whole held-out split: the same perplexity
    stage = DomainAdaptation(base_model=str(tiny_model))
    stage.load_trainable_from(run / "checkpoints" / "last.ckpt")
    data = NotesDataModule(
        str(notes_dir),
        str(tiny_model),
        block_size=64,
        max_notes=120,
        cache_dir=str(tmp_path / "cache"),
    )
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, inference_mode=False
    )
    (single,) = trainer.validate(stage, datamodule=data, verbose=False)
    assert metrics["val/ppl"] == pytest.approx(single["val/ppl"], rel=1e-4)
    assert metrics["val/ppl"] != pytest.approx(metrics["val/ppl_before"], rel=1e-4)
    # both ranks trained: tokens are summed over ranks
    assert metrics["train/tokens"] == pytest.approx(2 * 4 * 8 * 64, rel=0.05)


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


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    notes_dir, tiny_model, tmp_path
):
    straight = tmp_path / "straight"
    run_stage(
        "pretrain",
        pretrain_args(notes_dir, tiny_model, straight, "--trainer.max_steps", "10", *CONSTANT_LR),
    )

    crashed = tmp_path / "crashed"
    kill = json.dumps([{"class_path": "test_only.KillAtStep", "init_args": {"step": 8}}])
    args = [
        "--trainer.max_steps",
        "10",
        "--checkpoint_every_n_steps",
        "3",
        "--trainer.callbacks",
        kill,
    ]
    result = run_script(
        "pretrain", pretrain_args(notes_dir, tiny_model, crashed, *args, *CONSTANT_LR)
    )
    assert result.returncode == -9, result.stderr[-3000:]  # killed, not finished
    last = crashed / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 6
    assert not (crashed / "metrics.json").exists()

    resume = ["--trainer.max_steps", "10", "--ckpt_path", str(last), *CONSTANT_LR]
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, crashed, *resume))
    a = trainable_state(straight / "checkpoints" / "last.ckpt")
    b = trainable_state(crashed / "checkpoints" / "last.ckpt")
    assert max_difference(a, b) <= 1e-6


@pytest.mark.slow
def test_copied_run_resumes_elsewhere_with_another_base_path(notes_dir, tiny_model, tmp_path):
    base_a = shutil.copytree(tiny_model, tmp_path / "site_a" / "llama")
    run_a = tmp_path / "site_a" / "run"
    every = ["--checkpoint_every_n_steps", "2"]  # last.ckpt then holds a mid-epoch position
    run_stage(
        "pretrain",
        pretrain_args(notes_dir, base_a, run_a, "--trainer.max_steps", "4", *every, *CONSTANT_LR),
    )

    # a collaborator gets the run directory and has the base model at another path
    base_b = shutil.copytree(base_a, tmp_path / "site_b" / "weights" / "llama")
    run_b = shutil.copytree(run_a, tmp_path / "site_b" / "run")
    shutil.rmtree(tmp_path / "site_a")
    resume = ["--trainer.max_steps", "8", "--ckpt_path", str(run_b / "checkpoints/last.ckpt")]
    metrics = run_stage("pretrain", pretrain_args(notes_dir, base_b, run_b, *resume, *CONSTANT_LR))
    assert torch.load(run_b / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 8
    saved = json.loads((run_b / "metrics.json").read_text())
    assert saved["val/ppl"] == pytest.approx(metrics["val/ppl"])
    assert "val/ppl_before" in saved  # kept from the first part of the run


@pytest.mark.slow
def test_resuming_on_another_base_model_is_refused(notes_dir, tiny_model, tmp_path):
    from clinical_peft.tiny_model import build_tiny_llama

    run = tmp_path / "run"
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, run, "--trainer.max_steps", "2"))
    other = build_tiny_llama(
        notes_dir, tmp_path / "other", vocab_size=1024, hidden_size=96, intermediate_size=128
    )
    resume = ["--trainer.max_steps", "4", "--ckpt_path", str(run / "checkpoints/last.ckpt")]
    before = (run / "metrics.json").read_bytes()
    with pytest.raises(InputError, match="base_fingerprint"):
        run_stage("pretrain", pretrain_args(notes_dir, other, run, *resume))
    assert (run / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_resuming_on_other_weights_or_other_data_is_refused_unless_allowed(
    notes_dir, tiny_model, tmp_path
):
    from safetensors.torch import load_file, save_file

    from clinical_peft.synthetic import write_notes

    run = tmp_path / "run"
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, run, "--trainer.max_steps", "2"))
    resume = ["--ckpt_path", str(run / "checkpoints/last.ckpt")]
    # same architecture and shapes, other weights: the shape fingerprint alone would accept it
    other = shutil.copytree(tiny_model, tmp_path / "other")
    weights = load_file(other / "model.safetensors")
    weights = {k: v + 0.01 for k, v in weights.items()}
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    before = (run / "metrics.json").read_bytes()
    with pytest.raises(InputError, match="base_weights.*--allow_other_base"):
        run_stage(
            "pretrain", pretrain_args(notes_dir, other, run, "--trainer.max_steps", "3", *resume)
        )
    assert (run / "metrics.json").read_bytes() == before
    # other notes than the run started on
    other_notes = tmp_path / "other_notes"
    write_notes(other_notes, n_discharge=40, n_radiology=280, seed=1)
    with pytest.raises(InputError, match="data_fingerprint.*--allow_other_data"):
        run_stage(
            "pretrain",
            pretrain_args(other_notes, tiny_model, run, "--trainer.max_steps", "3", *resume),
        )
    # both are allowed when asked for explicitly
    allow = ["--allow_other_base", "--allow_other_data"]
    run_stage(
        "pretrain",
        pretrain_args(other_notes, other, run, "--trainer.max_steps", "3", *resume, *allow),
    )
    assert (run / "metrics.json").read_bytes() != before  # the resumed run went to its end


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def crash_mid_write(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkp")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(OSError):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1


def test_deepspeed_checkpoints_are_swapped_in_whole(tmp_path, monkeypatch):
    from lightning.pytorch import strategies

    from clinical_peft.strategies import DeepSpeedStrategy

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

    from clinical_peft.strategies import DeepSpeedStrategy

    spec = yaml.safe_load((ROOT / "experiments/trainer" / f"{name}.yaml").read_text())
    assert spec["strategy"]["class_path"] == "clinical_peft.strategies.DeepSpeedStrategy"
    assert spec["precision"] == "bf16-mixed"
    strategy = DeepSpeedStrategy(**spec["strategy"]["init_args"])
    config = {**strategy.config, "train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": True}}
    parsed = DeepSpeedConfig(config)
    assert parsed.zero_optimization_stage == spec["strategy"]["init_args"]["stage"]
    assert parsed.bfloat16_config.enabled
    offload = spec["strategy"]["init_args"].get("offload_optimizer", False)
    assert (parsed.zero_config.offload_optimizer is not None) == offload


@pytest.mark.slow
def test_bf16_mixed_precision_run(notes_dir, tiny_model, tmp_path):
    run = tmp_path / "bf16"
    metrics = run_stage("pretrain", on_trainer("cpu_bf16", 3, notes_dir, tiny_model, run))
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["precision"] == "bf16-mixed"
    assert 1 < metrics["val/ppl"] < 1e5
    # bf16 autocast for compute; the trainable adapter and its checkpoint stay fp32
    state = trainable_state(run / "checkpoints" / "last.ckpt")
    assert {t.dtype for t in state.values()} == {torch.float32}


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "zero3"])
def test_two_rank_downstream_scores_every_admission_once(tiny_model, tmp_path, strategy):
    from methods import lora
    from safetensors.torch import load_file

    from clinical_peft.backbone import add_adapter, load_causal_lm

    data = tmp_path / "outcomes"
    write_outcome_tasks(data, n_admissions=300, seed=1)
    run = tmp_path / strategy
    if strategy == "ddp":
        extra = ["--trainer", str(ROOT / "experiments/trainer/ddp_cpu.yaml"),
                 "--model.clinical", "none"]  # fmt: skip
    else:  # stacked: a frozen clinical LoRA under the downstream one, every weight sharded
        clinical = add_adapter(load_causal_lm(tiny_model), lora(r=4))
        for name, param in clinical.named_parameters():
            if "lora_B" in name:
                param.data.normal_(0, 0.05)
        clinical.save_pretrained(tmp_path / "clinical")
        extra = [*deepspeed_on_cpu(stage=3, ranks=2), "--model.clinical", "frozen",
                 "--model.clinical_adapter", str(tmp_path / "clinical")]  # fmt: skip
    args = [
        "-c", str(ROOT / "experiments/downstream/base.yaml"), "--data.task", "mor", *extra,
        "--model.base_model", str(tiny_model),
        "--data.data_dir", str(data), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.max_length", "64", "--trainer.max_epochs", "1",
        "--trainer.enable_progress_bar", "false", "--run_dir", str(run),
    ]  # fmt: skip
    result = run_script("downstream", args)
    assert result.returncode == 0, result.stderr[-3000:]
    if strategy == "zero3":  # the frozen adapter's shards were gathered for export too
        before = load_file(tmp_path / "clinical" / "adapter_model.safetensors")
        after = load_file(run / "adapter" / "clinical" / "adapter_model.safetensors")
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
    metrics = json.loads((run / "metrics.json").read_text())
    for split, name in (("val", "MP_IN_adm_val.csv"), ("test", "MP_IN_adm_test.csv")):
        pred = np.load(run / "predictions" / f"{split}.npz")
        expected = pd.read_csv(data / name)["id"]
        # every admission of the split exactly once: no rank's shard missing, no padding
        assert sorted(pred["ids"].tolist()) == sorted(expected.tolist())
        # the logged AUROC is over all ranks' predictions, not a mean of per-rank AUROCs
        auroc = roc_auc_score(pred["labels"], pred["scores"])
        assert metrics[f"{split}/auroc"] == pytest.approx(auroc, abs=1e-5)


@pytest.mark.slow
@pytest.mark.distributed
def test_deepspeed_zero3_two_ranks_exports_the_whole_adapter(notes_dir, tiny_model, tmp_path):
    from methods import lora
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from clinical_peft.backbone import add_adapter, fingerprint, load_causal_lm

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
    from clinical_peft.generation import generate
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
    from test_hardening import assert_one_line_error, metric_rows, snapshot

    from clinical_peft.cli import main

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
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
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
