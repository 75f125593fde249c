"""A data source that clinical_peft does not know, chosen by `data: class_path` alone: plain-text
notes (one per line of train.txt and val.txt) pretrain the tiny model through the stage CLI."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from clinical_peft.cli.stage import run_stage
from clinical_peft.data.base import DataModuleBase
from clinical_peft.data.loader import pad_rows


class TextNotes(DataModuleBase):
    """A hospital's own notes, one per line of `train.txt` and `val.txt` (the README's example)."""

    def __init__(self, data_dir: str, tokenizer: str | None = None, block_size: int = 256,
                 batch_size: int = 8, seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.data_dir, self.tokenizer_path, self.block_size = Path(data_dir), tokenizer, block_size
        self.batch_size = self.eval_batch_size = batch_size
        self.seed, self.num_workers = seed, 0

    def input_files(self) -> list[Path]:
        return [self.data_dir / "train.txt", self.data_dir / "val.txt"]

    def setup(self, stage: str | None = None) -> None:
        tok = self.tokenizer
        self.datasets = {
            path.stem: [
                [tok.bos_token_id, *tok(note, add_special_tokens=False)["input_ids"]][: self.block_size]
                for note in path.read_text().splitlines() if note.strip()
            ]
            for path in self.input_files()
        }  # fmt: skip

    def collate(self, notes: list[list[int]]) -> dict:
        labels = pad_rows(notes, -100)  # the causal-LM loss shifts them; -100 is no target
        return {"input_ids": pad_rows(notes, self.tokenizer.pad_token_id), "labels": labels,
                "attention_mask": (labels != -100).long()}  # fmt: skip


def test_a_data_module_named_only_in_the_config_runs_the_stage(notes_dir, tiny_model, tmp_path):
    texts = pd.read_csv(notes_dir / "discharge.csv.gz")["text"].str.replace(r"\s+", " ", regex=True)
    (tmp_path / "train.txt").write_text("\n".join(texts[:24]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(texts[24:32]) + "\n")
    source = f"{TextNotes.__module__}.{TextNotes.__name__}"
    overlay = tmp_path / "hospital.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"class_path": source, "init_args": {
        "data_dir": str(tmp_path), "block_size": 32, "batch_size": 4}}}))  # fmt: skip
    run = tmp_path / "run"
    metrics = run_stage("pretrain", [
        "-c", "experiments/pretrain/lora.yaml", "-c", str(overlay),
        "--trainer", "experiments/trainer/cpu.yaml", "--model.base_model", str(tiny_model),
        "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--run_dir", str(run),
    ])  # fmt: skip
    assert math.isfinite(metrics["val/ppl"]) and metrics["val/ppl"] > 0
    assert (run / "adapter" / "adapter_config.json").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert saved["class_path"] == source and saved["init_args"]["block_size"] == 32
    # the tokenizer folder came from model.base_model, linked by the CLI
    assert (run / "tokenizer" / "tokenizer.json").is_file()
    # the saved config reloads as it is (re-runnable): the class is named, its arguments checked
    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit) as exit_info:
        run_stage("pretrain", ["-c", str(run / "config.yaml"), "--print_config"])
    assert exit_info.value.code == 0 and yaml.safe_load(out.getvalue())["data"] == saved
