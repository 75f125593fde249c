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

import math
import time
import warnings
from pathlib import Path

import numpy as np
import yaml
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.cli.tripod_report import write_report
from clinical_peft.data.outcomes import read_split
from clinical_peft.metrics.clinical import split_calibration, write_clinical_files
from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.metrics.predictions import write_predictions
from clinical_peft.tasks.outcomes import SPLITS, class_weights, get_task, label_space, parse_labels
from clinical_peft.util.errors import InputError, require_dir
from clinical_peft.util.flags import CommandParser

NAME = "TF-IDF + LR"  # the row name in the downstream AUROC table
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
PROGRESS_EVERY_S = 30.0  # seconds between "labels done" lines of a long multilabel fit


def say(message: str) -> None:
    print(message, flush=True)


def read_task(task_name: str, data_dir: str | Path, max_examples: int | None = None) -> dict:
    """Texts, ids and labels of every split, parsed exactly as OutcomeDataModule parses them.

    Labels: binary / multiclass (N,) class indices; multilabel (N, L) 0/1 indicators.
    """
    task = get_task(task_name)
    folder = require_dir(data_dir, "outcome task data")
    paths = {split: task.path(folder, split) for split in SPLITS}
    for path in paths.values():
        if not path.is_file():
            raise InputError(path, "file not found")
    splits: dict[str, dict] = {}
    names: list[str] = []
    for split in SPLITS:  # train first: it decides the label space when there is no codes file
        rows = read_split(paths[split], task.label_column, max_examples)
        if split == "train":
            names = label_space(task, folder, rows["label"])
        parsed, unknown = parse_labels(task, rows["label"], rows["id"], paths[split], names)
        if task.kind == "multilabel":
            labels = np.zeros((len(parsed), len(names)), dtype=np.int64)
            for i, indices in enumerate(parsed):
                labels[i, indices] = 1
        else:
            labels = np.array([y[0] for y in parsed], dtype=np.int64)
        splits[split] = {
            "ids": rows["id"], "text": rows["text"], "labels": labels, "unknown_codes": unknown
        }  # fmt: skip
    weights = None
    if task.kind != "multilabel":
        try:
            weights = class_weights(splits["train"]["labels"], len(names)).tolist()
        except ValueError as err:
            raise InputError(paths["train"], f"field '{task.label_column}': {err}") from None
    return {"task": task, "paths": paths, "label_names": names, "weights": weights, **splits}


def vectorize(data: dict, min_df: int, max_features: int) -> dict[str, sparse.csr_matrix]:
    """TF-IDF of word 1-2 grams, fitted on the train split only."""
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        min_df=min_df,
        sublinear_tf=True,
        max_features=max_features,
        dtype=np.float64,  # what the solvers compute in: no conversion at every fit
    )
    try:
        train = vectorizer.fit_transform(data["train"]["text"])
    except ValueError as err:  # e.g. no term in min_df notes
        raise InputError(data["paths"]["train"], f"field 'text': {err}") from None
    features = {"train": train}
    for split in ("val", "test"):
        features[split] = vectorizer.transform(data[split]["text"])
    return features


def _model(kind: str, c: float, weights: list[float] | None) -> LogisticRegression:
    class_weight = dict(enumerate(weights)) if weights else None
    if kind == "multiclass":  # softmax over the classes, as the fine-tuned heads
        return LogisticRegression(C=c, class_weight=class_weight, solver="lbfgs", max_iter=2000)
    # liblinear: the fast exact solver for one sparse binary problem
    return LogisticRegression(C=c, class_weight=class_weight, solver="liblinear", random_state=0)


def fit_score(
    kind: str,
    c: float,
    weights: list[float] | None,
    x_train: sparse.csr_matrix,
    y_train: np.ndarray,
    x_eval: list[sparse.csr_matrix],
    jobs: int = 1,
) -> list[np.ndarray]:
    """Fit at this C and return float32 probabilities for each matrix of `x_eval`.

    binary (N,) P(positive); multiclass (N, C) softmax; multilabel (N, L), one binary model a
    label, `jobs` labels at a time (threads: liblinear releases the GIL), each model dropped
    once it has scored, so memory does not grow with the label count.
    """
    if kind != "multilabel":
        model = _model(kind, c, weights).fit(x_train, y_train)
        probs = [model.predict_proba(x) for x in x_eval]
        return [(p[:, 1] if kind == "binary" else p).astype(np.float32) for p in probs]

    def one_label(j: int) -> list[np.ndarray]:
        y = y_train[:, j]
        if y.min() == y.max():  # one class in train: nothing to learn, a constant score
            return [np.full(x.shape[0], float(y[0]), dtype=np.float32) for x in x_eval]
        model = _model(kind, c, None).fit(x_train, y)
        return [model.predict_proba(x)[:, 1].astype(np.float32) for x in x_eval]

    n_labels = y_train.shape[1]
    out = [np.empty((x.shape[0], n_labels), dtype=np.float32) for x in x_eval]
    started = last = time.perf_counter()
    columns = Parallel(n_jobs=jobs, prefer="threads", return_as="generator")(
        delayed(one_label)(j) for j in range(n_labels)
    )
    for j, scores in enumerate(columns):
        for o, column in zip(out, scores):
            o[:, j] = column
        if time.perf_counter() - last > PROGRESS_EVERY_S:
            last = time.perf_counter()
            say(f"    {j + 1}/{n_labels} labels ({last - started:.0f} s)")
    return out


def _nan_low(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def select_c(data: dict, x: dict, c_grid: tuple[float, ...], jobs: int) -> tuple[dict, dict]:
    """Fit at every C; keep the one with the best val AUROC (ties: the stronger penalty).

    Returns {C, val, test} (the chosen model's scores) and the val AUROC of each C. Only
    validation chooses; the test scores of the other values of C are dropped unread.
    """
    kind, n_labels = data["task"].kind, len(data["label_names"])
    search: dict[str, float] = {}
    best: dict = {}
    for c in sorted(c_grid):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            val, test = fit_score(
                kind, c, data["weights"], x["train"], data["train"]["labels"],
                [x["val"], x["test"]], jobs,
            )  # fmt: skip
        auroc = outcome_metrics(val, data["val"]["labels"], kind, n_labels)["auroc"]
        search[f"search/val_auroc_C{c:g}"] = auroc
        say(f"  C={c:g}: val AUROC {auroc:.4f} ({time.perf_counter() - started:.1f} s)")
        if not best or _nan_low(auroc) > _nan_low(best["auroc"]):
            best = {"auroc": auroc, "C": c, "val": val, "test": test}
    return best, search


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
