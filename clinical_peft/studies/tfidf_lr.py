"""The TF-IDF + logistic-regression floor's pieces: the task's files read as the downstream stage
reads them, the vectorizer, one fit per C and the choice of C on validation AUROC
(`clinical_peft.studies.floor` runs them as the `baseline` command and writes the run)."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from clinical_peft.data.outcomes import read_split
from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.tasks.outcomes import SPLITS, class_weights, get_task, label_space, parse_labels
from clinical_peft.util.errors import InputError, require_dir

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
