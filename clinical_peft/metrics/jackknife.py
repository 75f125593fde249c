"""Leave-one-out (jackknife) values of the headline AUROC, exactly and in O(N log N) per column.

A BCa bootstrap interval needs the statistic with each example left out. Recomputing it N
times costs N AUROCs (for DIAG, ten times the 1,000 resamples); from DeLong's placement values
it is closed-form: leaving out positive i gives the mean placement of the other positives,
(sum(V10) - V10_i) / (m - 1), and likewise for a negative. The averaged set is the point
estimate's (as :func:`clinical_peft.metrics.outcomes.weighted_auroc`): where leaving an example
out takes a class from a label (or class pair) of the set, the value is NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clinical_peft.metrics.delong import components
from clinical_peft.metrics.outcomes import scorable_labels


def _column(scores: np.ndarray, positive: np.ndarray) -> tuple[float, np.ndarray]:
    """AUROC of one column and its value with each example left out (NaN: one class left)."""
    m, n = int(positive.sum()), int((~positive).sum())
    if not m or not n:
        return math.nan, np.full(len(scores), math.nan)
    auc, v10, v01 = components(scores, positive)
    loo = np.empty(len(scores))
    loo[positive] = (v10.sum() - v10) / (m - 1) if m > 1 else math.nan
    loo[~positive] = (v01.sum() - v01) / (n - 1) if n > 1 else math.nan
    return auc, loo


def _multiclass(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One-vs-one macro over the pairs of classes present (Hand & Till, as outcome_metrics)."""
    classes = np.flatnonzero(np.bincount(y, minlength=s.shape[1]))
    total, n_pairs = np.zeros(len(y)), 0
    for k, a in enumerate(classes):
        for b in classes[k + 1 :]:
            both = (y == a) | (y == b)
            for positive_class in (a, b):  # each direction scores its own class's column
                auc, loo = _column(s[both, positive_class], y[both] == positive_class)
                # Examples of other classes are not in this pair: leaving them out changes nothing.
                total += np.where(both, 0.0, auc / 2)
                total[both] += loo / 2
            n_pairs += 1
    return total / n_pairs if n_pairs else np.full(len(y), math.nan)


def leave_one_out_auroc(scores: Any, labels: Any, kind: str) -> np.ndarray:
    """(N,) headline AUROC (``outcome_metrics``' ``auroc``) with example i left out, set fixed."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(np.int64)
    if kind == "binary":
        return _column(s, y.astype(bool))[1]
    if kind == "multiclass":
        return _multiclass(s, y)
    scored = np.flatnonzero(scorable_labels(y).numpy())
    total = np.zeros(len(y))
    for label in scored:
        total += _column(s[:, label], y[:, label].astype(bool))[1]
    return total / len(scored) if len(scored) else np.full(len(y), math.nan)
