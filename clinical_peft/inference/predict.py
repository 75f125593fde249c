"""`predict` and `evaluate`: a finished downstream run scores new notes, from its directory alone.

The model is rebuilt from RUN/hparams.yaml (clinical adapter from RUN/adapter/clinical), with
the trainable weights of RUN/checkpoints/best.ckpt (last.ckpt when no best exists: the weights
the run's own test metrics come from), on the base it was trained on (`--allow_other_base`:
another one, said in metrics.json). Notes are tokenized, windowed and batched as the run's test
split was (RUN/labels.json), so `evaluate` on the run's own test file gives its metrics.
Earlier scores are never replaced unless `--overwrite`; the default output folder is named
after the input and a hash of its path, so two inputs never share one.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.data.outcomes import collate_notes, encode_notes, length_batches, read_split
from clinical_peft.inference.run_model import (  # noqa: F401  (their import path before)
    load_run_tokenizer,
    load_stage,
    pick_device,
    precision_context,
    run_hparams,
    run_info,
)
from clinical_peft.stages.downstream import probabilities
from clinical_peft.tasks.outcomes import get_task
from clinical_peft.util.atomic import write_atomic, write_json
from clinical_peft.util.errors import (
    InputError,
    at_least_one,
    path_problem,
    quote_value,
    require_dir,
    require_file,
)
from clinical_peft.util.flags import CommandParser


def score_notes(
    run: Path,
    rows: dict,
    labels: list[list[int]] | None,
    device: str | None,
    batch_size: int | None = None,
    base_model: str | None = None,
    allow_other_base: bool = False,
) -> tuple[list[str], np.ndarray, np.ndarray, dict, list[int]]:
    """Ids, probabilities (binary: P(positive) (N,); else (N, C)) and labels (as the run's
    predictions/test.npz) of the notes in `rows`, in the run's batch order; data statistics and
    the base scored on; each scored note's row in `rows`."""  # fmt: skip
    info = run_info(run)
    dev = pick_device(device)
    stage, base = load_stage(run, base_model, allow_other_base)
    stage.to(dev)
    tokenizer = load_run_tokenizer(run, stage.hparams.base_model)
    # a run from before labels.json recorded its framing framed with BOS/EOS (`tokenizer`)
    framing = info.get("framing", "tokenizer")
    chunks, kept, total = encode_notes(
        tokenizer, rows["text"], info["max_length"], info["long_mode"], info["max_chunks"],
        "auto" if framing == "cls" else framing,
    )  # fmt: skip
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
    stats = {"data/notes": len(ids), "data/tokens_dropped_share": 1 - kept / max(1, total), **base}
    order = [i for batch in batches for i in batch]
    return ids, np.concatenate(scores), np.concatenate(gold), stats, order


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


def output_folder(run: Path, data: Path, out: str | Path | None) -> Path:
    """OUT, or RUN/external/<DATA's name>-<hash of DATA's full path>: `site1/notes.csv` and
    `site2/notes.csv`, `notes.v1.csv` and `notes.v2.csv` are scored into folders of their own."""
    if out:
        return Path(out)
    digest = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:8]
    return RunDir(run).external / f"{data.name}-{digest}"


def refuse_earlier_outputs(paths: list[Path], overwrite: bool) -> None:
    """Earlier scores are kept unless `--overwrite` (checked before the model loads)."""
    for path in paths:
        problem = path_problem(path)
        if problem == "not found":
            continue
        if problem:
            raise InputError(path, f"output {problem}")
        if not overwrite:
            raise InputError(
                path, "exists (earlier scores are kept): pass --overwrite to replace it "
                "(make: ARGS=--overwrite), or another --out"
            )  # fmt: skip


def refuse_duplicate_ids(path: Path, ids: list[str]) -> None:
    """Scores are keyed by id: two notes with one id could not be told apart."""
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        shown = ", ".join(quote_value(i) for i in repeated[:5]) + (", ..." * (len(repeated) > 5))
        raise InputError(
            path, f"field 'id': {len(repeated)} ids occur more than once ({shown}); each note "
            "needs an id of its own, its scores are written by id"
        )  # fmt: skip


def predict(
    run: str | Path, data: str | Path, out: str | Path | None = None, overwrite: bool = False,
    **kw,
) -> Path:  # fmt: skip
    """Score a CSV of `id,text` (other columns ignored); write OUT/predictions.csv (in the
    file's order) and OUT/metrics.json (counts, the base scored on)."""
    run, data = require_dir(run, "run"), Path(data)
    path = notes_file(data, run)
    out = output_folder(run, data, out)
    refuse_earlier_outputs([out / "predictions.csv", RunDir(out).metrics], overwrite)
    rows = read_split(path, None, None)
    refuse_duplicate_ids(path, rows["id"])
    ids, scores, _, stats, order = score_notes(run, rows, None, **kw)
    rank = np.argsort(order)  # back to the file's order
    write_predictions_csv(
        out / "predictions.csv", [ids[i] for i in rank], scores[rank], run_info(run)
    )
    write_json(RunDir(out).metrics, {**stats, "data_file": str(path), "run": str(run)})
    return out / "predictions.csv"


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"python -m clinical_peft {name}", description=description)
    parser.add_argument("--run", required=True, help="downstream run directory")
    parser.add_argument("--out", help="output folder (default: RUN/external/<DATA's name>-<hash>)")
    parser.add_argument(
        "--device", help="cuda, cuda:N, cpu or mps (default: cuda when there is one)"
    )
    parser.add_argument("--batch_size", type=int, help="notes per batch (default: the run's)")
    parser.add_argument("--base_model", help="the base model folder, if it moved since training")
    parser.add_argument("--allow_other_base", action="store_true",
                        help="score on a base with other weights than the run's (else refused)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace earlier scores in OUT")
    return parser


def _options(args: argparse.Namespace) -> dict:
    at_least_one(args.batch_size, "--batch-size")
    at_least_one(getattr(args, "n_boot", None), "--n-boot")
    pick_device(args.device)  # before anything loads
    return {"device": args.device, "batch_size": args.batch_size, "base_model": args.base_model,
            "allow_other_base": args.allow_other_base, "overwrite": args.overwrite}  # fmt: skip


def predict_main(argv: list[str]) -> None:
    parser = _parser("predict", "Score a CSV of id,text notes with a downstream run.")
    parser.add_argument("--data", required=True, help="CSV (or .csv.gz) with columns id, text")
    args = parser.parse_args(argv)
    print(f"wrote {predict(args.run, args.data, args.out, **_options(args))}")
