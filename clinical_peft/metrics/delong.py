"""DeLong's test for two correlated binary AUROCs on the same examples (DeLong et al. 1988), in
the fast midrank form of Sun & Xu (2014): O(N log N), ties count one half."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata


def _components(scores: np.ndarray, positive: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUROC and the structural components V10 (one per positive) and V01 (one per negative)."""
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    ranks = rankdata(np.concatenate([pos, neg]))  # midranks over all examples
    v10 = (ranks[:m] - rankdata(pos)) / n  # share of negatives each positive outranks
    v01 = 1.0 - (ranks[m:] - rankdata(neg)) / m  # share of positives outranking each negative
    return float(v10.mean()), v10, v01


def delong_test(scores_a: Any, scores_b: Any, labels: Any) -> dict[str, float]:
    """{auroc_a, auroc_b, diff, se, z, p} for H0: equal AUROC; ValueError with one class only."""
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        raise ValueError("DeLong's test needs positive and negative examples")
    auc_a, v10_a, v01_a = _components(np.asarray(scores_a, dtype=np.float64), y)
    auc_b, v10_b, v01_b = _components(np.asarray(scores_b, dtype=np.float64), y)
    s10 = np.cov(np.vstack([v10_a, v10_b])) if y.sum() > 1 else np.zeros((2, 2))
    s01 = np.cov(np.vstack([v01_a, v01_b])) if (~y).sum() > 1 else np.zeros((2, 2))
    cov = s10 / y.sum() + s01 / (~y).sum()
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_a - auc_b
    se = math.sqrt(max(var, 0.0))
    if se == 0.0:
        z, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    else:
        z = diff / se
        p = float(2 * norm.sf(abs(z)))
    return {"auroc_a": auc_a, "auroc_b": auc_b, "diff": diff, "se": se, "z": z, "p": p}
