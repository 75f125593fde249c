"""Suspicious data through the CLI: leakage between splits is refused in one line (unless
allowed), harmless oddities (duplicate ids, empty answers) are counted in metrics.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_hardening import ROOT, assert_one_line_error, cli, downstream

from clinical_peft.synthetic import write_instruction_tasks


def copy_rows(source: Path, target: Path, rows: slice) -> None:
    """Append `rows` of `source`'s records (CSV rows after the header, or JSONL lines) to `target`."""
    if source.suffix == ".csv":  # notes hold newlines: read and write through csv
        with source.open(newline="") as f:
            records = list(csv.reader(f))[1:][rows]
        with target.open("a", newline="") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL).writerows(records)
        return
    lines = source.read_text().splitlines()[rows]
    target.write_text("\n".join(target.read_text().splitlines() + lines) + "\n")


@pytest.mark.slow
def test_outcome_leakage_is_refused_and_duplicates_counted_through_the_cli(
    tiny_model, mortality, tmp_path, capfd
):
    train, test = mortality / "MP_IN_adm_train.csv", mortality / "MP_IN_adm_test.csv"
    copy_rows(train, test, slice(0, 2))  # two training admissions also in test
    copy_rows(train, train, slice(0, 1))  # one admission twice in train
    args = downstream(tiny_model, mortality, tmp_path)
    line = assert_one_line_error(*cli(capfd, args), "MP_IN_adm_test.csv", "'id'", "allow_overlap")
    assert "2 admissions" in line
    assert not (tmp_path / "run").exists()
    short = ["--data.max_length", "32", "--trainer.max_steps", "1", "--trainer.max_epochs", "1",
             "--trainer.enable_progress_bar", "false", "--data.allow_overlap", "true"]  # fmt: skip
    code, output = cli(capfd, args + short)
    assert code == 0, output[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data/test_ids_in_train"] == 2 and metrics["data/train_duplicate_ids"] == 1


@pytest.mark.slow
def test_instruction_leakage_is_refused_and_empty_answers_counted_through_the_cli(
    tiny_model, tmp_path, capfd
):
    data = tmp_path / "data"
    write_instruction_tasks(data, n_per_task=20, seed=0)
    task = data / "triage"
    copy_rows(task / "sft_train.jsonl", task / "sft_test.jsonl", slice(0, 3))
    empty = json.loads((task / "sft_train.jsonl").read_text().splitlines()[3]) | {"completion": ""}
    with (task / "sft_train.jsonl").open("a") as f:
        f.write(json.dumps(empty) + "\n")
    args = [
        "sft", "-c", str(ROOT / "experiments/sft/base.yaml"), "--data.task", "triage",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(data),
        "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"),
        "--trainer.max_steps", "1", "--model.evaluate_base", "false",
        "--data.max_eval_examples", "2", "--model.max_new_tokens", "2",
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    line = assert_one_line_error(*cli(capfd, args), "sft_test.jsonl", "'prompt'", "allow_overlap")
    assert "3 lines" in line and not (tmp_path / "run").exists()
    code, output = cli(capfd, args + ["--data.allow_overlap", "true"])
    assert code == 0, output[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data/test/prompts_in_train"] == 3
    assert metrics["data/train/skipped_empty_completion"] == 1
