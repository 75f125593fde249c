"""A run SIGKILLed anywhere around its last checkpoint resumes to the uninterrupted run's end:
the same adapter, the same validations (none skipped, none repeated), the same best checkpoint
and final metrics. Lightning writes an every-N-steps checkpoint before the validation of that
step; resumed from it, the fit loop skipped that validation (mid-run) or ended at once as
finished (at max_steps), and the run reported an earlier step's weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_cli import assert_one_line_error
from test_scale import CONSTANT_LR, pretrain_args, run_script

from clinical_peft.cli.stage import run_stage

pytestmark = pytest.mark.slow

# validation at steps 2, 4 and 6; last.ckpt every 2 steps; the run ends at step 6
SCHEDULE = [
    "--trainer.max_steps", "6", "--trainer.val_check_interval", "2",
    "--trainer.limit_val_batches", "2", "--checkpoint_every_n_steps", "2",
    "--model.optim.lr", "3e-3", *CONSTANT_LR,
]  # fmt: skip


def kill(class_path: str, **init_args) -> list[str]:
    callback = {"class_path": f"test_only.{class_path}", "init_args": init_args}
    return ["--trainer.callbacks", json.dumps([callback])]


KILL_POINTS = {
    "mid-run, as the step-4 validation starts": kill("KillAtValidation", step=4),
    "after the last step, before its checkpoint": kill("KillAtStep", step=6),
    "after the last step's checkpoint (the old order), as the final validation starts": kill(
        "KillAtValidation", step=6
    ),
    "after the final validation, before the checkpoints' update": kill(
        "KillAtValidation", step=6, at="end"
    ),
    "after fit, while the best weights are scored": kill("KillAtValidation", step=6, fitting=False),
}


def validations(run: Path) -> list[tuple[str, float]]:
    """(logged step, val/loss) of every validation metrics.csv holds, in order."""
    with (run / "metrics.csv").open(newline="") as f:
        return [(r["step"], float(r["val/loss"])) for r in csv.DictReader(f) if r.get("val/loss")]


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def straight(notes_dir, tiny_model, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("straight") / "run"
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, run, *SCHEDULE))
    return run


def test_the_final_weights_are_validated_and_named(straight):
    metrics = json.loads((straight / "metrics.json").read_text())
    steps = [step for step, _ in validations(straight)]
    assert steps == ["0", "1", "3", "5", "6"]  # before, steps 2/4/6 in fit, the final scoring
    best = torch.load(straight / "checkpoints" / "best.ckpt", weights_only=True)
    assert metrics["scored_checkpoint"] == "best"
    assert metrics["scored_step"] == best["global_step"]


def test_a_run_stopped_before_its_first_validation_validates_its_final_weights(
    notes_dir, tiny_model, tmp_path
):
    """max_steps 3 of an epoch of 221 steps: Lightning never validated, no best.ckpt was
    written and the "after" metrics silently came from the last weights."""
    run = tmp_path / "run"
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, run, "--trainer.max_steps", "3"))
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["global_step"] == 3
    assert [step for step, _ in validations(run)] == ["0", "2", "3"]  # before, in fit, after
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["scored_checkpoint"], metrics["scored_step"]) == ("best", 3)
    assert metrics["val/loss"] == pytest.approx(validations(run)[1][1], rel=1e-6)


def test_last_checkpoint_holds_the_final_weights(notes_dir, tiny_model, tmp_path):
    """max_steps 3 with a checkpoint every 2 steps (mid-epoch): last.ckpt held step 2, not the
    weights the run ended with (what a run scored "last" is reloaded from)."""
    run = tmp_path / "run"
    schedule = ["--trainer.max_steps", "3", "--checkpoint_every_n_steps", "2"]
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, run, *schedule))
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3


def test_a_run_without_validation_is_refused_in_one_line(notes_dir, tiny_model, tmp_path):
    """limit_val_batches 0: the stage crashed in its "before" validation with a traceback."""
    run = tmp_path / "run"
    args = pretrain_args(notes_dir, tiny_model, run, "--trainer.limit_val_batches", "0")
    result = run_script("pretrain", args)
    assert_one_line_error(result, "--trainer.limit_val_batches")
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_run_killed_around_its_last_checkpoint_resumes_to_the_same_end(
    notes_dir, tiny_model, tmp_path, straight, point
):
    run = tmp_path / "run"
    result = run_script(
        "pretrain", pretrain_args(notes_dir, tiny_model, run, *SCHEDULE, *KILL_POINTS[point])
    )
    assert result.returncode == -9, result.stderr[-3000:]  # killed, not finished
    assert not (run / "metrics.json").exists()

    resume = ["--ckpt_path", str(run / "checkpoints" / "last.ckpt")]
    run_stage("pretrain", pretrain_args(notes_dir, tiny_model, run, *SCHEDULE, *resume))
    done, expected_done = validations(run), validations(straight)
    assert [step for step, _ in done] == [step for step, _ in expected_done]
    assert [loss for _, loss in done] == pytest.approx([loss for _, loss in expected_done])
    expected = json.loads((straight / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    for key in ("val/ppl", "val/loss", "scored_checkpoint", "scored_step", "train/tokens"):
        assert got[key] == pytest.approx(expected[key], rel=1e-6), key
    a, b = adapter(straight), adapter(run)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_last_checkpoint_is_written_at_each_epochs_end(notes_dir, tiny_model, tmp_path):
    """Without --checkpoint_every_n_steps, Lightning's last.ckpt (save_top_k 0) came only at the
    end of training: a run killed in its second epoch had nothing to resume from."""
    run = tmp_path / "run"
    epochs = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2"]
    args = pretrain_args(notes_dir, tiny_model, run, *epochs, *kill("KillAtStep", step=3))
    result = run_script("pretrain", args)
    assert result.returncode == -9, result.stderr[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2  # the first epoch's end
    resume = ["--ckpt_path", str(last), *epochs]
    metrics = run_stage("pretrain", pretrain_args(notes_dir, tiny_model, run, *resume))
    assert torch.load(last, weights_only=True)["global_step"] == 4
    assert metrics["scored_step"] in (2, 4)
