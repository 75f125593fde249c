"""`predict` and `evaluate`: a finished downstream run scores new notes, from its directory alone.

The model is rebuilt from RUN/hparams.yaml (clinical adapter from RUN/adapter/clinical), with
the trainable weights of RUN/checkpoints/best.ckpt (last.ckpt when no best exists: the weights
the run's own test metrics come from). Notes are tokenized, windowed and batched as the run's
test split was (RUN/labels.json), so `evaluate` on the run's own test file gives its metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from peft import PeftConfig
from tqdm import tqdm
from transformers.utils import logging as transformers_logging

from clinical_peft.cli.run_dir import RunDir, data_settings
from clinical_peft.cli.tripod_report import write_report
from clinical_peft.data.demographics import read_demographics
from clinical_peft.data.outcomes import collate_notes, encode_notes, length_batches, read_split
from clinical_peft.metrics.bootstrap import bootstrap_auroc, percentile_ci
from clinical_peft.metrics.clinical import split_calibration, write_clinical_files
from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.stages.downstream import OutcomePrediction, probabilities
from clinical_peft.tasks.outcomes import get_task, label_space, parse_labels
from clinical_peft.util.atomic import write_atomic, write_json
from clinical_peft.util.errors import InputError, at_least_one, require_dir, require_file
from clinical_peft.util.flags import CommandParser

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def run_info(run: Path) -> dict:
    """Task, label names and the data settings of the run (labels.json; else config.yaml)."""
    labels = RunDir(run).labels
    if labels.is_file():
        return json.loads(labels.read_text())
    config = require_file(RunDir(run).config, "run config")  # a run from before labels.json
    data = data_settings(yaml.safe_load(config.read_text()))
    task = get_task(data["task"])
    train = task.path(data["data_dir"], "train")
    if task.kind == "multilabel" and not train.is_file():
        raise InputError(labels, "not found: the run's label names are needed (re-run training)")
    codes = read_split(train, task.label_column, None)["label"] if task.kind == "multilabel" else []
    return {
        "task": task.key, "kind": task.kind, "label_names": label_space(task, data["data_dir"], codes),
        **{k: data[k] for k in ("max_length", "long_mode", "max_chunks")},
        "eval_batch_size": data["eval_batch_size"] or data["batch_size"],
    }  # fmt: skip


def load_stage(run: Path, base_model: str | None = None) -> OutcomePrediction:
    """The run's model with its trained weights, in eval mode."""
    hparams = yaml.safe_load(require_file(RunDir(run).hparams, "run hyperparameters").read_text())
    clinical = hparams["clinical"]
    adapter = RunDir(run).adapter / "clinical"
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # "head newly initialized": the checkpoint has it
    stage = OutcomePrediction(
        base_model=base_model or hparams["base_model"],
        kind=hparams["kind"],
        num_labels=hparams["num_labels"],
        class_weights=hparams.get("class_weights"),
        clinical=clinical,
        # the run's own copy: the original folder may not exist on this machine
        clinical_adapter=str(adapter) if adapter.is_dir() else hparams["clinical_adapter"],
        downstream_lora=hparams["downstream_lora"],
        downstream=PeftConfig.from_peft_type(**hparams["downstream"]),
        finetune_base=hparams["finetune_base"],
        pooling=hparams.get("pooling", "last"),
        dtype=hparams.get("dtype", "float32"),
    )
    transformers_logging.set_verbosity(verbosity)
    paths = RunDir(run)
    ckpt = paths.best_ckpt if paths.best_ckpt.is_file() else paths.last_ckpt
    stage.load_trainable_from(require_file(ckpt, "checkpoint"))
    return stage.eval()


def load_run_tokenizer(run: Path, base_model: str):
    """The tokenizer the run saved (pad token included); the base's for an older run."""
    from transformers import AutoTokenizer

    from clinical_peft.models.backbone import load_tokenizer

    if not RunDir(run).tokenizer.is_dir():
        return load_tokenizer(base_model)
    return AutoTokenizer.from_pretrained(RunDir(run).tokenizer)


def precision_context(run: Path, device: torch.device):
    """Autocast as the run's trainer did (its `precision`), so scores match the run's."""
    config = RunDir(run).config
    trainer = yaml.safe_load(config.read_text()).get("trainer", {}) if config.is_file() else {}
    dtype = AUTOCAST.get(str(trainer.get("precision")))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def score_notes(
    run: Path,
    rows: dict,
    labels: list[list[int]] | None,
    device: str | None,
    batch_size: int | None = None,
    base_model: str | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, dict]:
    """Ids, probabilities (binary: P(positive) (N,); else (N, C)) and labels (as the run's
    predictions/test.npz) of the notes in `rows`, in the run's batch order; data statistics."""  # fmt: skip
    info = run_info(run)
    stage = load_stage(run, base_model)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    stage.to(dev)
    tokenizer = load_run_tokenizer(run, stage.hparams.base_model)
    chunks, kept, total = encode_notes(
        tokenizer, rows["text"], info["max_length"], info["long_mode"], info["max_chunks"]
    )
    examples = [
        {"id": i, "chunks": c, "labels": y}
        for i, c, y in zip(rows["id"], chunks, labels or [[0]] * len(chunks), strict=True)
    ]
    lengths = [sum(len(c) for c in ex["chunks"]) for ex in examples]
    batches = length_batches(lengths, batch_size or info["eval_batch_size"], None)
    ids, scores, gold = [], [], []
    kind, num_labels = stage.hparams.kind, stage.hparams.num_labels
    with torch.inference_mode(), precision_context(run, dev):
        for batch in tqdm(batches, desc="scoring", unit="batch"):
            chosen = [examples[i] for i in batch]
            batch = collate_notes(chosen, tokenizer.pad_token_id, kind, num_labels)
            batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
            probs = probabilities(stage(batch), kind)
            ids += batch["ids"]
            scores.append(probs.cpu().numpy())
            gold.append(batch["labels"].cpu().numpy().astype(np.int64))
    stats = {"data/notes": len(ids), "data/tokens_dropped_share": 1 - kept / max(1, total)}
    return ids, np.concatenate(scores), np.concatenate(gold), stats


def write_predictions_csv(path: Path, ids: list[str], scores: np.ndarray, info: dict) -> None:
    """id, then one probability column per class or label (named as the run's labels)."""
    names = info["label_names"]
    probs = np.stack([1 - scores, scores], axis=1) if info["kind"] == "binary" else scores
    frame = pd.DataFrame(probs, columns=names)
    frame.insert(0, "id", ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.9g"))


def notes_file(data: Path, run: Path) -> Path:
    """DATA itself when it is a file, else the task's test file in the folder DATA."""
    if data.is_dir():
        return require_file(get_task(run_info(run)["task"]).path(data, "test"), "test")
    return require_file(data, "notes")


def predict(run: str | Path, data: str | Path, out: str | Path | None = None, **kw) -> Path:
    """Score a CSV of `id,text` (other columns ignored); write OUT/predictions.csv."""
    run, data = require_dir(run, "run"), Path(data)
    path = notes_file(data, run)
    out = Path(out) if out else RunDir(run).external / path.name.split(".")[0]
    rows = read_split(path, None, None)
    ids, scores, _, _ = score_notes(run, rows, None, **kw)
    write_predictions_csv(out / "predictions.csv", ids, scores, run_info(run))
    return out / "predictions.csv"


def evaluate(
    run: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    n_boot: int = 1000,
    demographics: str | Path | None = None,
    min_group: int = 10,
    **kw,
) -> dict:
    """Score the task's labelled test file in DATA; write OUT/metrics.json (test/auroc as the
    run's, with a bootstrap interval; calibration), OUT/predictions.npz, OUT/predictions.csv,
    the reliability diagram, the decision curve (binary), subgroups (with `demographics`) and
    report.md."""
    run, data = require_dir(run, "run"), Path(data)
    table = read_demographics(demographics) if demographics is not None else None
    info = run_info(run)
    task = get_task(info["task"])
    path = notes_file(data, run)
    out = Path(out) if out else RunDir(run).external / (data.name if data.is_dir() else path.stem)
    rows = read_split(path, task.label_column, None)
    parsed, unknown = parse_labels(task, rows["label"], rows["id"], path, info["label_names"])
    ids, scores, labels, stats = score_notes(run, rows, parsed, **kw)
    n_labels = 1 if task.kind == "binary" else len(info["label_names"])
    metrics = {
        f"test/{k}": v for k, v in outcome_metrics(scores, labels, task.kind, n_labels).items()
    }
    values = bootstrap_auroc(torch.from_numpy(scores), torch.from_numpy(labels), task.kind, n_boot)
    try:
        metrics["test/auroc_ci_low"], metrics["test/auroc_ci_high"] = percentile_ci(values)
    except ValueError:
        metrics["test/auroc_ci_low"] = metrics["test/auroc_ci_high"] = float("nan")
    metrics.update({"bootstrap/resamples": float(len(values)), **stats})
    metrics.update(split_calibration("test", scores, labels, task.kind, n_boot))
    if task.kind == "multilabel":
        metrics["data/unknown_codes"] = float(unknown)
    out.mkdir(parents=True, exist_ok=True)
    clinical = write_clinical_files(
        out, ids, scores, labels, task.kind, task.key, table, min_group, n_boot
    )
    metrics.update(clinical["metrics"])
    np.savez(out / "predictions.npz", ids=np.array(ids), scores=scores, labels=labels)
    write_predictions_csv(out / "predictions.csv", ids, scores, info)
    write_json(RunDir(out).metrics, {**metrics, "data_file": str(path), "run": str(run)})
    write_report(
        out, task=task.key, kind=task.kind, setting=f"External validation of the run `{run}`",
        run_dir=run, data_files={"test": str(path)}, split_labels={"test": labels},
        metrics=metrics, clinical=clinical, demographics=demographics and str(demographics),
        window={k: info[k] for k in ("max_length", "long_mode", "max_chunks")},
    )  # fmt: skip
    return metrics


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"python -m clinical_peft {name}", description=description)
    parser.add_argument("--run", required=True, help="downstream run directory")
    parser.add_argument("--out", help="output folder (default: RUN/external/<DATA's name>)")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--batch_size", type=int, help="notes per batch (default: the run's)")
    parser.add_argument("--base_model", help="the base model folder, if it moved since training")
    return parser


def _options(args: argparse.Namespace) -> dict:
    at_least_one(args.batch_size, "--batch-size")
    at_least_one(getattr(args, "n_boot", None), "--n-boot")
    return {"device": args.device, "batch_size": args.batch_size, "base_model": args.base_model}


def predict_main(argv: list[str]) -> None:
    parser = _parser("predict", "Score a CSV of id,text notes with a downstream run.")
    parser.add_argument("--data", required=True, help="CSV (or .csv.gz) with columns id, text")
    args = parser.parse_args(argv)
    print(f"wrote {predict(args.run, args.data, args.out, **_options(args))}")


def evaluate_main(argv: list[str]) -> None:
    parser = _parser("evaluate", "A downstream run's metrics on an external labelled test set.")
    parser.add_argument("--data", required=True, help="folder with the task's test file")
    parser.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples of AUROC")
    parser.add_argument("--demographics", help="MIMIC ADMISSIONS/PATIENTS folder: subgroups")
    parser.add_argument("--min_group", type=int, default=10, help="smallest subgroup written")
    args = parser.parse_args(argv)
    at_least_one(args.min_group, "--min-group")
    metrics = evaluate(
        args.run, args.data, args.out, args.n_boot, args.demographics, args.min_group,
        **_options(args),
    )  # fmt: skip
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
    print(f"evaluate done: {shown}")
