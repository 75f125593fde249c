"""RunDir.scored_ckpt (what predict and export load) is the checkpoint metrics.json says the
run's scores came from, never other weights in its place."""

from __future__ import annotations

import json

from clinical_peft.cli.run_dir import RunDir


def make_run(tmp_path, scored: str | None) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    run.best_ckpt.write_bytes(b"best")
    run.last_ckpt.write_bytes(b"last")
    metrics = {"val/loss": 1.0} | ({"scored_checkpoint": scored} if scored else {})
    run.metrics.write_text(json.dumps(metrics))
    return run


def test_the_named_checkpoint_is_the_scored_one(tmp_path):
    assert make_run(tmp_path / "a", "last").scored_ckpt == RunDir(tmp_path / "a/run").last_ckpt
    assert make_run(tmp_path / "b", "best").scored_ckpt == RunDir(tmp_path / "b/run").best_ckpt


def test_a_deleted_best_checkpoint_is_not_replaced_by_the_last(tmp_path):
    run = make_run(tmp_path, "best")
    run.best_ckpt.unlink()
    assert run.scored_ckpt == run.best_ckpt  # predict then names it missing


def test_runs_written_before_the_record_read_best_else_last(tmp_path):
    run = make_run(tmp_path, None)
    assert run.scored_ckpt == run.best_ckpt
    run.best_ckpt.unlink()
    assert run.scored_ckpt == run.last_ckpt
