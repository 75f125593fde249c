"""predictions/{split}.npz and {split}_roc.png: the files a downstream run and the floor share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_predictions(
    folder: Path, split: str, ids: list, scores: np.ndarray, labels: np.ndarray, kind: str
) -> None:
    """ids (see `id_array`), scores and labels of a split, and its ROC plot."""
    labels = labels.astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{split}.npz", ids=id_array(ids), scores=scores, labels=labels)
    plot_roc(scores, labels, kind, folder / f"{split}_roc.png", split)


def id_array(ids: list) -> np.ndarray:
    """The ids as they were read: int64 where every id is an integer that int64 writes back the
    same ("182362"; not "0182362" or " 7"), so they join the CSVs' integer ids as they are; else
    the ids' text, unchanged."""
    texts = [str(i) for i in ids]
    try:
        numbers = np.array([int(t) for t in texts], dtype=np.int64)
    except (ValueError, OverflowError):
        return np.array(texts)
    return numbers if [str(n) for n in numbers.tolist()] == texts else np.array(texts)


def read_ids(ids: np.ndarray) -> np.ndarray:
    """The ids of a predictions file, with integers stored as floats (182362.0, older files) read
    as the int64 that files store now, so old and new files of one split pair."""
    if ids.dtype.kind == "f" and len(ids) and np.isfinite(ids).all():
        if (ids == np.round(ids)).all():
            return ids.astype(np.int64)
    return ids


def plot_roc(scores: np.ndarray, labels: np.ndarray, kind: str, path: Path, title: str) -> None:
    """ROC curve: binary, or micro-average over classes / labels (one-hot vs probabilities)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    if kind == "multiclass":
        labels = np.eye(scores.shape[1], dtype=np.int64)[labels]
    s, y = torch.from_numpy(scores.reshape(-1)).double(), torch.from_numpy(labels.reshape(-1))
    fig, ax = plt.subplots(figsize=(4, 4))
    if 0 < int(y.sum()) < y.numel():
        fpr, tpr, _ = binary_roc(s, y)
        auc = float(binary_auroc(s, y))
        label = "AUROC" if kind == "binary" else "micro AUROC"
        ax.plot(fpr.numpy(), tpr.numpy(), label=f"{label} {auc:.3f}")
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title} ({kind})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
