"""Scale-out and hand-over: DDP on CPU, bf16, SIGKILL + exact resume, portable runs (DeepSpeed:
test_deepspeed.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score
from test_cli import run_cli

from clinical_peft.cli.callbacks import AtomicCheckpointIO
from clinical_peft.cli.stage import run_stage
from clinical_peft.data.notes import NotesDataModule
from clinical_peft.stages.pretrain import DomainAdaptation
from clinical_peft.synthetic import write_outcome_tasks
from clinical_peft.util.errors import InputError

ROOT = Path(__file__).parent.parent
SCRIPTS = ROOT / "tests" / "scripts"  # the test-only pieces (test_only.py)
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
    """A stage in its own process (`run_cli`): DDP launches its further ranks from sys.argv,
    which pytest's is not; tests/scripts on the path for the test-only pieces."""
    env = {
        "OMP_NUM_THREADS": "1",  # two ranks on two cores
        "PYTHONPATH": f"{SCRIPTS}{os.pathsep}{ROOT}",
    }
    return run_cli(stage, *args, env=env, cwd=ROOT, timeout=600)


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
    assert result.stdout.count("pretrain done") == 1  # rank 0 reports the run, not every rank
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
    from clinical_peft.models.tiny_llama import build_tiny_llama

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

    from clinical_peft.models.backbone import add_adapter, load_causal_lm

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
