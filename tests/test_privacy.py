"""Patient text never leaves the data cache: not in logs, configs, checkpoints, adapters, metrics
or reports of a run (SFT/DPO generations in predictions/ excepted, see README)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from clinical_peft.cli import run_stage
from clinical_peft.synthetic import write_instruction_tasks

pytestmark = pytest.mark.slow


def probes(texts: list[str], per_text: int = 3, words: int = 6) -> set[bytes]:
    """Word windows from the start, middle and end of each text: text no run may write."""
    found = set()
    for text in texts:
        tokens = text.split()
        if len(tokens) < words:
            continue
        for start in sorted({0, (len(tokens) - words) // 2, len(tokens) - words})[:per_text]:
            found.add(" ".join(tokens[start : start + words]).encode())
    return found


def leaks(run_dir: Path, logs: str, texts: set[bytes], skip: str = "predictions") -> list[str]:
    files = [p for p in run_dir.rglob("*") if p.is_file() and skip not in p.parts]
    assert len(files) > 5  # the run wrote its directory
    where = [(str(p), p.read_bytes()) for p in files] + [("logs", logs.encode())]
    spaced = [(name, re.sub(rb"\s+", b" ", data)) for name, data in where]  # raw or cleaned text
    return [f"{name}: {t.decode()!r}" for name, data in spaced for t in texts if t in data]


def test_pretraining_run_holds_no_note_text(notes_dir, tiny_model, tmp_path, capfd):
    run = tmp_path / "run"
    run_stage("pretrain", [
        "-c", "experiments/pretrain/lora.yaml", "--model.base_model", str(tiny_model),
        "--data.data_dir", str(notes_dir), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.block_size", "64", "--data.max_notes", "120", "--trainer.max_steps", "3",
        "--run_dir", str(run),
    ])  # fmt: skip
    logs = "".join(capfd.readouterr())
    notes = pd.concat(pd.read_csv(notes_dir / f) for f in ("discharge.csv.gz", "radiology.csv.gz"))
    texts = probes(notes["text"].head(200).tolist())
    assert len(texts) > 300
    assert leaks(run, logs, texts) == []


def test_sft_run_holds_no_prompt_text_outside_its_predictions(tiny_model, tmp_path, capfd):
    data = tmp_path / "instructions"
    write_instruction_tasks(data, n_per_task=40, seed=0)
    run = tmp_path / "run"
    run_stage("sft", [
        "-c", "experiments/sft/summarisation.yaml", "--model.base_model", str(tiny_model),
        "--data.data_dir", str(data), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.max_eval_examples", "4", "--trainer.max_steps", "2", "--run_dir", str(run),
    ])  # fmt: skip
    logs = "".join(capfd.readouterr())
    rows = [
        json.loads(line)
        for split in ("train", "val", "test")
        for line in (data / "summarisation" / f"sft_{split}.jsonl").read_text().splitlines()
    ]
    texts = probes([r["prompt"] for r in rows] + [r["completion"] for r in rows])
    assert len(texts) > 100
    assert leaks(run, logs, texts) == []
