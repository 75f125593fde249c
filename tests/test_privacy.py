"""Patient text never leaves the data cache: not in logs, configs, checkpoints, adapters, metrics
or reports of a run (SFT/DPO generations in predictions/ excepted, see README)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from clinical_peft.cli.stage import run_stage
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
        "-c", "experiments/sft/base.yaml", "-c", "experiments/sft/summarisation.yaml",
        "--model.base_model", str(tiny_model),
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


SENTINEL = "Zqxjvw Sentinelpatient"  # two words no tokenizer vocabulary and no run should hold


def plant(value: str) -> str:
    return f"{value} {SENTINEL} {value[-40:]}"


def found(run_dir: Path, logs: str, skip: str | None = None) -> list[str]:
    files = [p for p in run_dir.rglob("*") if p.is_file() and (skip is None or skip not in p.parts)]
    assert len(files) > 3  # the run wrote its directory
    hits = [str(p) for p in files if SENTINEL.encode() in re.sub(rb"\s+", b" ", p.read_bytes())]
    return hits + (["console/logs"] if SENTINEL in re.sub(r"\s+", " ", logs) else [])


def test_a_sentinel_in_every_text_field_stays_in_the_data(tiny_model, tmp_path, capfd):
    """Outcome notes (downstream, baseline) and SFT/DPO prompts, completions, chosen and
    rejected answers each carry a sentinel; no run directory, console line or log holds it (the
    generations in predictions/ are the one documented exception)."""
    import csv

    from clinical_peft.cli.commands import main
    from clinical_peft.synthetic import write_outcome_tasks

    outcomes = tmp_path / "outcomes"
    write_outcome_tasks(outcomes, n_admissions=80, seed=0, n_diag_codes=5, n_proc_codes=5)
    for path in outcomes.glob("MP_IN_adm_*.csv"):
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        rows[1:] = [[r[0], plant(r[1]), r[2]] for r in rows[1:]]
        with path.open("w", newline="") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    instructions = tmp_path / "instructions"
    write_instruction_tasks(instructions, n_per_task=30, seed=0)
    for path in (instructions / "triage").glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows = [{k: plant(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--model.base_model", str(tiny_model), "--data.cache_dir", str(tmp_path / "cache"),
              "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false"]  # fmt: skip
    runs = {
        "downstream": ["downstream", "-c", "experiments/downstream/base.yaml", "--data.task", "mor",
                       "--model.clinical",
                       "none", "--data.data_dir", str(outcomes), "--data.max_length", "64"],
        "sft": ["sft", "-c", "experiments/sft/base.yaml", "--data.data_dir", str(instructions),
                "--data.max_eval_examples", "2"],
        "dpo": ["dpo", "-c", "experiments/dpo/base.yaml", "--data.data_dir", str(instructions),
                "--data.max_eval_examples", "2"],
    }  # fmt: skip
    for name, args in runs.items():
        assert main([*args, *common, "--run_dir", str(tmp_path / name)]) == 0, name
    baseline = ["baseline", "--task", "mor", "--data-dir", str(outcomes),
                "--run-dir", str(tmp_path / "baseline")]  # fmt: skip
    assert main(baseline) == 0
    logs = "".join(capfd.readouterr())
    for name in (*runs, "baseline"):
        assert (
            found(tmp_path / name, logs, skip="predictions" if name in ("sft", "dpo") else None)
            == []
        ), name
