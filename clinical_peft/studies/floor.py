"""Classical floor for the outcome tasks: TF-IDF (word 1-2 grams) + logistic regression.

`python -m clinical_peft baseline --task proc --data-dir DIR --run-dir runs/baseline/proc`

The same files, label space, label parsing and input errors as OutcomeDataModule (its readers
are reused), and the same run-directory contract as the downstream stage: metrics.json
(`val/...`, `test/...` from clinical_peft.metrics.outcomes.outcome_metrics), predictions/{val,test}.npz
(ids, scores, labels) with ROC plots, and config.yaml (settings only, never patient text).

Models: binary and multiclass (LOS) take the paper's class weights N / (C * count_c) (sklearn's
`class_weight="balanced"`); multiclass is a multinomial (softmax) model; multilabel is one
binary model per label, unweighted as the paper's BCE, and a label with one class in train gets
a constant score. The regularisation C is chosen by validation AUROC alone, from a small grid.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.cli.tripod_report import write_report
from clinical_peft.metrics.clinical import split_calibration, write_clinical_files
from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.metrics.predictions import write_predictions
from clinical_peft.studies.tfidf_lr import C_GRID, read_task, say, select_c, vectorize
from clinical_peft.tasks.outcomes import SPLITS
from clinical_peft.util.errors import InputError
from clinical_peft.util.flags import CommandParser

NAME = "TF-IDF + LR"  # the row name in the downstream AUROC table


def run_baseline(
    task: str,
    data_dir: str | Path,
    run_dir: str | Path,
    c_grid: tuple[float, ...] = C_GRID,
    min_df: int = 2,
    max_features: int = 200_000,
    max_examples: int | None = None,
    jobs: int = 1,
) -> dict:
    """Fit, select C on val, score val and test, write the run directory; return metrics."""
    if not c_grid or any(not c > 0 for c in c_grid):
        raise InputError("--c-grid", f"values must be positive, got {list(c_grid)}")
    for option, value in (("--min-df", min_df), ("--max-features", max_features)):
        if value < 1:
            raise InputError(option, f"must be at least 1, got {value}")
    if jobs == 0:
        raise InputError("--jobs", "must be at least 1, or -1 for every core")
    run_dir = Path(run_dir)
    started = time.perf_counter()
    data = read_task(task, data_dir, max_examples)
    kind, n_labels = data["task"].kind, len(data["label_names"])
    counts = "/".join(str(len(data[s]["ids"])) for s in SPLITS)
    constant = ""
    if kind == "multilabel":
        positives = data["train"]["labels"].sum(axis=0)
        n_constant = int(((positives == 0) | (positives == len(data["train"]["ids"]))).sum())
        constant = f" ({n_constant} with one class in train: constant score)"
    say(f"baseline {task} ({kind}): {counts} train/val/test notes, {n_labels} labels{constant}")
    for split in ("val", "test"):
        if data[split].get("unknown_codes"):
            say(
                f"  {data['paths'][split]}: {data[split]['unknown_codes']} codes not in the label "
                "space (not scorable)"
            )

    t0 = time.perf_counter()
    x = vectorize(data, min_df, max_features)
    say(f"  TF-IDF: {x['train'].shape[1]:,} features ({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    best, metrics = select_c(data, x, c_grid, jobs)
    metrics["time/fit_seconds"] = time.perf_counter() - t0

    for split in ("val", "test"):
        result = outcome_metrics(best[split], data[split]["labels"], kind, n_labels)
        metrics.update({f"{split}/{k}": float(v) for k, v in result.items()})
        metrics.update(split_calibration(split, best[split], data[split]["labels"], kind))
        part = data[split]
        write_predictions(
            RunDir(run_dir).predictions, split, part["ids"], best[split], part["labels"], kind
        )
    test = data["test"]
    clinical = write_clinical_files(
        run_dir, test["ids"], best["test"], test["labels"], kind, f"{task} ({NAME})"
    )
    for split in SPLITS:
        metrics[f"data/{split}_notes"] = float(len(data[split]["ids"]))
        if kind == "multilabel":
            metrics[f"data/unknown_codes_{split}"] = float(data[split]["unknown_codes"])
    metrics["baseline/C"] = best["C"]
    metrics["baseline/features"] = float(x["train"].shape[1])
    metrics["time/total_seconds"] = time.perf_counter() - started
    solver = {"binary": "liblinear", "multiclass": "multinomial, lbfgs"}
    config = {
        "command": "baseline",
        "model": {
            "baseline": NAME,
            "vectorizer": {"ngram_range": [1, 2], "min_df": min_df, "sublinear_tf": True,
                           "max_features": max_features},
            "classifier": f"L2 logistic regression ({solver.get(kind, 'liblinear, one per label')})",
            "c_grid": sorted(c_grid),
            "select_by": "val/auroc",
            "class_weights": data["weights"],
        },
        "data": {"task": task, "data_dir": str(data_dir), "max_examples": max_examples},
    }  # fmt: skip
    write_run(run_dir, metrics, config)
    write_report(
        run_dir, task=task, kind=kind, setting=f"The classical floor ({NAME}): development with "
        "internal validation", run_dir=run_dir, data_files={s: str(p) for s, p in data["paths"].items()},
        split_labels={s: data[s]["labels"] for s in SPLITS}, metrics=metrics, clinical=clinical,
    )  # fmt: skip
    say(
        f"  chosen C={best['C']:g}: val AUROC {metrics['val/auroc']:.4f}, "
        f"test AUROC {metrics['test/auroc']:.4f} ({metrics['time/total_seconds']:.1f} s in all)"
    )
    say(f"  wrote {run_dir}")
    return metrics


def write_run(run_dir: Path, metrics: dict, config: dict) -> None:
    from clinical_peft.util.atomic import write_json

    run_dir.mkdir(parents=True, exist_ok=True)
    RunDir(run_dir).config.write_text(yaml.safe_dump(config, sort_keys=False))
    write_json(RunDir(run_dir).metrics, metrics)


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(
        prog="python -m clinical_peft baseline",
        description="TF-IDF (word 1-2 grams) + logistic regression on an outcome task.",
    )
    parser.add_argument("--task", required=True, help="pmv, mor, los, diag or proc")
    parser.add_argument("--data_dir", required=True, help="folder of the task CSVs")
    parser.add_argument("--run_dir", help="where to write (default: runs/baseline/TASK)")
    parser.add_argument(
        "--c_grid", type=float, nargs="+", default=list(C_GRID), help="values of C to try on val"
    )
    parser.add_argument("--min_df", type=int, default=2, help="notes a term must occur in")
    parser.add_argument("--max_features", type=int, default=200_000, help="vocabulary cap")
    parser.add_argument("--max_examples", type=int, help="read only the first N rows of a split")
    parser.add_argument("--jobs", type=int, default=1, help="labels fitted at once (multilabel)")
    args = parser.parse_args(argv)
    run_baseline(
        args.task,
        args.data_dir,
        args.run_dir or f"runs/baseline/{args.task}",
        tuple(args.c_grid),
        args.min_df,
        args.max_features,
        args.max_examples,
        args.jobs,
    )
