"""The reliability diagram: observed share against mean score in the equal-mass bins that
ECE uses (metrics/calibration.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from clinical_peft.metrics.calibration import ECE_BINS, _prepare


def reliability_points(scores: Any, labels: Any, kind: str, n_bins: int = ECE_BINS) -> tuple:
    """(mean score, observed share, count) of the non-empty equal-mass bins that ECE uses:
    binary as is, multiclass by top label, multilabel pooled over every (example, label)."""
    p, y = _prepare(scores, labels, kind)
    if kind == "multiclass":
        p, top = p.max(dim=1)
        y = (top == y).long()
    p, y = p.reshape(-1).cpu().numpy(), y.reshape(-1).cpu().numpy().astype(np.float64)
    inner = np.percentile(p, np.linspace(0, 100, n_bins + 1))[1:-1]
    bins = np.searchsorted(inner, p)
    count = np.bincount(bins, minlength=n_bins)
    keep = count > 0
    mean_p = np.bincount(bins, weights=p, minlength=n_bins)[keep] / count[keep]
    share = np.bincount(bins, weights=y, minlength=n_bins)[keep] / count[keep]
    return mean_p, share, count[keep]


def plot_reliability(
    scores: Any, labels: Any, kind: str, path, title: str, n_bins: int = ECE_BINS
) -> None:
    """The reliability diagram: observed share against mean score per equal-mass bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean_p, share, _ = reliability_points(scores, labels, kind, n_bins)
    axis = {"binary": "P(positive)", "multiclass": "top-label confidence",
            "multilabel": "score (pooled over labels)"}[kind]  # fmt: skip
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.plot(mean_p, share, "o-", label=f"{n_bins} equal-mass bins")
    ax.set(xlabel=f"mean {axis}", ylabel="observed share", title=f"{title} reliability",
           xlim=(0, 1), ylim=(0, 1))  # fmt: skip
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
