"""Bootstrap confidence intervals of outcome metrics over the examples of a split.

``bootstrap_auroc`` resamples the headline AUROC fast: a resample is a weighting of the examples
(how often each was drawn), and :func:`clinical_peft.metrics.outcomes.weighted_auroc` scores a batch of
weightings from scores binned once. ``paired_bootstrap_diff`` compares two models on the same
resamples; ``bootstrap_ci`` recomputes any metric per resample (slow, general).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clinical_peft.metrics.outcomes import weighted_auroc


def resample_indices(n: int, n_boot: int, seed: int = 0, batch: int = 32) -> Iterator[Tensor]:
    """``n_boot`` bootstrap resamples of range(n), ``batch`` at a time as (b, n) CPU indices.

    Every bootstrap here draws its resamples from this, so a seed means the same resamples.
    """
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, n_boot, batch):
        yield torch.randint(n, (min(batch, n_boot - start), n), generator=generator)


def _on_resamples(
    fns: list[Callable[[Tensor], Tensor]], n: int, n_boot: int, seed: int, device: torch.device
) -> list[np.ndarray]:
    # A resample is a weighting of the examples by how often each was drawn: the ranking
    # structure is built once and reused, never re-sorted.
    values: list[list[Tensor]] = [[] for _ in fns]
    for idx in resample_indices(n, n_boot, seed):
        idx = idx.to(device)
        counts = torch.zeros(idx.shape, device=device).scatter_add_(
            1, idx, torch.ones(idx.shape, device=device)
        )
        for out, fn in zip(values, fns, strict=True):
            out.append(fn(counts).cpu())
    return [torch.cat(v).numpy() for v in values]


def bootstrap_auroc(
    scores: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """Headline AUROC (``outcome_metrics``' ``auroc``) on each of ``n_boot`` bootstrap resamples.

    Resamples where it is undefined (one class, no scorable label) are left out; that depends on
    the labels alone, so two models scored on the same labels and seed share their resamples.
    """
    fn = weighted_auroc(scores, labels, kind)
    values = _on_resamples([fn], len(labels), n_boot, seed, torch.as_tensor(scores).device)[0]
    return values[np.isfinite(values)]


def paired_bootstrap_diff(
    scores_a: Any, scores_b: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """Headline AUROC of model a minus model b on the same resamples (where both are defined)."""
    fns = [weighted_auroc(scores_a, labels, kind), weighted_auroc(scores_b, labels, kind)]
    a, b = _on_resamples(fns, len(labels), n_boot, seed, torch.as_tensor(scores_a).device)
    diff = a - b
    return diff[np.isfinite(diff)]


def percentile_ci(values: Any, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile ``(1 - alpha)`` interval of bootstrap values; ValueError if there are none."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        raise ValueError("no bootstrap resample gave a defined metric value")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: Callable[[Tensor, Tensor], float],
    scores: Any,
    labels: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of any ``metric_fn(scores, labels)``, recomputed per resample.

    For the headline AUROC, ``percentile_ci(bootstrap_auroc(...))`` is the fast equivalent (same
    resamples for the same seed). Resamples whose 1-D labels hold a single class, or where the
    metric is NaN, are skipped; ValueError if none is left.
    """
    s, y = torch.as_tensor(scores), torch.as_tensor(labels)
    values = []
    for batch in resample_indices(y.shape[0], n_boot, seed):
        for idx in batch:
            y_boot = y[idx]
            if y_boot.dim() == 1 and torch.unique(y_boot).numel() < 2:
                continue
            value = float(metric_fn(s[idx], y_boot))
            if math.isfinite(value):
                values.append(value)
    return percentile_ci(values, alpha)
