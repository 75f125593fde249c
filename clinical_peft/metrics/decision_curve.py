"""Decision-curve analysis of a binary outcome (Vickers & Elkin 2006): net benefit over
threshold probabilities, against treating everyone and treating no one.

At threshold t an admission is treated when its score is at least t; net benefit is
TP / N - FP / N * t / (1 - t) (true positives gained, false positives weighed by the odds at
which a clinician would accept them). Treat all: prevalence - (1 - prevalence) t / (1 - t);
treat none: 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: thresholds 0.01, 0.02, ..., 0.99
THRESHOLDS = np.round(np.arange(1, 100) / 100, 2)
COLUMNS = ["threshold", "net_benefit_model", "net_benefit_treat_all", "net_benefit_treat_none"]


def decision_curve(scores: Any, labels: Any, thresholds: Any = THRESHOLDS) -> pd.DataFrame:
    """One row per threshold: the model's net benefit, treat-all's and treat-none's."""
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if p.shape != y.shape or not len(p):
        raise ValueError(f"expected scores and labels of one shape (N,), got {p.shape}, {y.shape}")
    t = np.asarray(thresholds, dtype=np.float64)
    odds = t / (1 - t)
    treated = p[None, :] >= t[:, None]
    tp = (treated & y).sum(axis=1) / len(p)
    fp = (treated & ~y).sum(axis=1) / len(p)
    prevalence = y.mean()
    return pd.DataFrame(
        {
            "threshold": t,
            "net_benefit_model": tp - fp * odds,
            "net_benefit_treat_all": prevalence - (1 - prevalence) * odds,
            "net_benefit_treat_none": np.zeros_like(t),
        },
        columns=COLUMNS,
    )


def plot_decision_curve(table: pd.DataFrame, path: Path, title: str) -> None:
    """Net benefit against threshold; the y axis from a little below 0 to the prevalence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    t = table["threshold"]
    ax.plot(t, table["net_benefit_model"], label="model")
    ax.plot(t, table["net_benefit_treat_all"], "k--", linewidth=0.8, label="treat all")
    ax.plot(t, table["net_benefit_treat_none"], "k:", linewidth=0.8, label="treat none")
    top = max(
        float(table["net_benefit_treat_all"].iloc[0]), float(table["net_benefit_model"].max())
    )
    ax.set(xlabel="threshold probability", ylabel="net benefit", title=f"{title} decision curve",
           xlim=(0, 1), ylim=(-0.05, max(top, 0.01) * 1.1))  # fmt: skip
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
