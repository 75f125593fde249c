"""metrics.json says what was scored (issue 22, item 2): `data/<split>/scored` for every split
of every stage, and a partial evaluation (batch limits) marked, on the console too."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from test_pretrain import pretrain

from clinical_peft.cli.stage import run_stage

pytestmark = pytest.mark.slow
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_pretraining_records_the_validation_blocks_scored(notes_dir, tiny_model, tmp_path, caplog):
    whole = pretrain(notes_dir, tiny_model, tmp_path / "whole", "--trainer.max_steps", "2")
    assert whole["data/val/scored"] == whole["data/val_examples"] > 8
    assert whole["data/val/partial"] == 0
    with caplog.at_level(logging.WARNING):
        cut = pretrain(
            notes_dir, tiny_model, tmp_path / "cut", "--trainer.max_steps", "2",
            "--trainer.limit_val_batches", "1", "--data.eval_batch_size", "4",
        )  # fmt: skip
    assert cut["data/val/scored"] == 4 and cut["data/val/partial"] == 1
    assert "val: a partial evaluation, 1 of" in caplog.text
    saved = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert saved["data/val/scored"] == 4


def test_downstream_test_scored_matches_the_predictions(mortality, tiny_model, tmp_path):
    run = tmp_path / "mor"
    metrics = run_stage("downstream", [
        "-c", "experiments/downstream/base.yaml", "--data.task", "mor", "--model.clinical", "none",
        "--trainer", "experiments/trainer/cpu.yaml", "--model.base_model", str(tiny_model),
        "--data.data_dir", str(mortality), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.max_length", "64", "--trainer.max_steps", "2", "--data.eval_batch_size", "4",
        "--trainer.limit_test_batches", "2", "--run_dir", str(run), *QUIET,
    ])  # fmt: skip
    scored = len(np.load(run / "predictions" / "test.npz")["ids"])
    assert metrics["data/test/scored"] == scored < metrics["data/test_notes"]
    assert metrics["data/test/partial"] == 1 and metrics["data/val/partial"] == 0
    assert metrics["data/val/scored"] == metrics["data/val_notes"]
