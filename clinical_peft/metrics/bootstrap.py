"""Bootstrap confidence intervals of outcome metrics over the examples of a split.

``bootstrap_draws`` resamples the headline AUROC fast: a resample is a weighting of the examples
(how often each was drawn), and :func:`clinical_peft.metrics.outcomes.weighted_auroc` scores a
batch of weightings from scores binned once. ``paired_bootstrap_diff`` compares two models on
the same resamples; ``bootstrap_ci`` recomputes any metric per resample (slow, general).

The set of labels (multilabel) or classes (multiclass) averaged is fixed to the point
estimate's. Stratifying cannot keep every label's two classes in a multilabel resample, so a
resample where one of them loses a class is dropped, and :class:`Draws` counts the drops per
label: the interval is then conditional on every label of the set keeping both classes (with
many labels of one or two positives few resamples are left; the report says how many).

Intervals (:func:`interval`): BCa (scipy.stats.bootstrap's, the default; its acceleration
from the exact leave-one-out AUROCs of :mod:`clinical_peft.metrics.jackknife`) or percentile.
In seeded simulations (binary, 400 test sets each) with 5 positives of 50 and AUROC 0.85 the
95 % percentile interval covered 84 %, BCa 89 %; with 10 of 100, 92 % and 94 %.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from clinical_peft.metrics.outcomes import scorable_labels, weighted_auroc

CI_METHODS = ("bca", "percentile")


def resample_indices(n: int, n_boot: int, seed: int = 0, batch: int = 32) -> Iterator[Tensor]:
    """``n_boot`` bootstrap resamples of range(n), ``batch`` at a time as (b, n) CPU indices.

    Every bootstrap here draws its resamples from this, so a seed means the same resamples.
    """
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, n_boot, batch):
        yield torch.randint(n, (min(batch, n_boot - start), n), generator=generator)


@dataclass
class Draws:
    """A bootstrap distribution: the values of the resamples where the statistic is defined."""

    values: np.ndarray
    n_boot: int
    lost: dict[int, int] = field(default_factory=dict)  # label/class -> resamples it lost a class
    kind: str = "binary"

    @property
    def n_dropped(self) -> int:
        return self.n_boot - len(self.values)

    def note(self) -> str:
        """'' if no resample was dropped, else how many and which labels lost a class."""
        if not self.n_dropped:
            return ""
        why = "one class only"
        if self.kind != "binary":
            unit = "label" if self.kind == "multilabel" else "class"
            worst = sorted(self.lost.items(), key=lambda kv: -kv[1])[:3]
            why = ", ".join(f"{unit} {k} in {v}" for k, v in worst)
            why = f"{unit}s lost a class: " + why + (", ..." if len(self.lost) > 3 else "")
        return f"{self.n_dropped} of {self.n_boot} resamples dropped ({why})"


def _class_sums(labels: Any, kind: str, device: torch.device) -> tuple[list[int], Callable]:
    """The point estimate's labels/classes and a function: counts (B, N) -> (B, K) lost a class."""
    y = torch.as_tensor(labels, device=device).long()
    if kind == "multiclass":
        columns = torch.bincount(y, minlength=int(y.max()) + 1 if y.numel() else 0).nonzero()[:, 0]
        onehot = (y[:, None] == columns).float()
        return columns.tolist(), lambda counts: counts @ onehot == 0
    if kind == "binary":
        y, columns = y[:, None], torch.zeros(1, dtype=torch.long)
    else:
        columns = scorable_labels(y).nonzero()[:, 0]
        y = y[:, columns]
    positive = y.float()

    def lost(counts: Tensor) -> Tensor:
        pos = counts @ positive
        return (pos == 0) | (pos == counts.sum(1, keepdim=True))

    return columns.tolist(), lost


def _grouped(batches: Iterator[Tensor], elements: int = 2**18) -> Iterator[Tensor]:
    """Consecutive batches joined up to ``elements`` indices: a sparse product costs ~15 ms
    however small, so 1,000 resamples of 50 examples go in one, not 32 (same resamples)."""
    group: list[Tensor] = []
    for batch in batches:
        group.append(batch)
        if sum(b.numel() for b in group) >= elements:
            yield torch.cat(group)
            group = []
    if group:
        yield torch.cat(group)


def draws_of(
    fns: list[Callable[[Tensor], Tensor]], labels: Any, kind: str, n_boot: int, seed: int,
    device: torch.device, combine: Callable[[list[Tensor]], Tensor] | None = None,
) -> Draws:  # fmt: skip
    """Bootstrap draws of ``combine([fn(counts) for fn in fns])`` (default: the first fn).

    A resample is a weighting of the examples by how often each was drawn: each fn's ranking
    structure is built once and reused, never re-sorted. NaN values are dropped and counted.
    """
    columns, lost_fn = _class_sums(labels, kind, device)
    combine = combine or (lambda values: values[0])
    kept, lost = [], torch.zeros(len(columns), dtype=torch.long)
    for idx in _grouped(resample_indices(len(labels), n_boot, seed)):
        idx = idx.to(device)
        counts = torch.zeros(idx.shape, device=device).scatter_add_(
            1, idx, torch.ones(idx.shape, device=device)
        )
        value = combine([fn(counts) for fn in fns]).cpu()
        bad = ~torch.isfinite(value)
        if bad.any():
            lost += lost_fn(counts[bad.to(device)]).sum(0).cpu()
        kept.append(value[~bad])
    values = torch.cat(kept).double().numpy()
    return Draws(values, n_boot, {c: k for c, k in zip(columns, lost.tolist()) if k}, kind)


def bootstrap_draws(
    scores: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0
) -> Draws:
    """Headline AUROC (``outcome_metrics``' ``auroc``) on ``n_boot`` bootstrap resamples.

    Resamples where it is undefined (a label of the set lost a class) are dropped and counted;
    that depends on the labels alone, so two models on the same labels and seed share them.
    """
    fn = weighted_auroc(scores, labels, kind)
    return draws_of([fn], labels, kind, n_boot, seed, torch.as_tensor(scores).device)


def bootstrap_auroc(
    scores: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """The defined values of :func:`bootstrap_draws` (their count: resamples kept)."""
    return bootstrap_draws(scores, labels, kind, n_boot, seed).values


def paired_bootstrap_diff(
    scores_a: Any, scores_b: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """Headline AUROC of model a minus model b on the same resamples (where both are defined)."""
    fns = [weighted_auroc(scores_a, labels, kind), weighted_auroc(scores_b, labels, kind)]
    device = torch.as_tensor(scores_a).device
    return draws_of(fns, labels, kind, n_boot, seed, device, lambda v: v[0] - v[1]).values


def percentile_ci(values: Any, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile ``(1 - alpha)`` interval of bootstrap values; ValueError if there are none."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        raise ValueError("no bootstrap resample gave a defined metric value")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bca_ci(
    values: np.ndarray, point: float, jackknife: np.ndarray, alpha: float = 0.05
) -> tuple[float, float]:
    """scipy.stats.bootstrap's BCa interval from given draws and leave-one-out values.

    scipy computes the acceleration by calling the statistic on the N leave-one-out samples of
    range(N); the one left out is the sum of 0..N-1 minus the sample's sum, so the statistic
    looks its value up instead of recomputing N AUROCs. ``n_resamples=0`` with the draws as
    ``bootstrap_result``: scipy adds no resamples of its own.
    """
    n = len(jackknife)
    everyone = n * (n - 1) // 2

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        if idx.shape[-1] == n:  # the whole sample
            return np.full(idx.shape[:-1], point)
        return jackknife[everyone - idx.sum(axis=-1)]

    result = stats.bootstrap(
        (np.arange(n),), statistic, n_resamples=0, method="BCa", confidence_level=1 - alpha,
        bootstrap_result=SimpleNamespace(bootstrap_distribution=np.asarray(values)), batch=256,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass
class Interval:
    low: float
    high: float
    method: str  # "bca", "percentile" or "" (none)
    note: str = ""


def interval(
    draws: Draws, point: float, jackknife: np.ndarray | None = None, method: str = "bca",
    alpha: float = 0.05,
) -> Interval:  # fmt: skip
    """The ``method`` interval of bootstrap draws; BCa falls back to percentile, saying why."""
    if method not in CI_METHODS:
        raise ValueError(f"Unknown interval method {method!r}; valid: {', '.join(CI_METHODS)}")
    notes = [draws.note()]
    if not len(draws.values):
        return Interval(math.nan, math.nan, "", "; ".join(filter(None, [*notes, "no interval"])))
    if method == "bca":
        if jackknife is None or not np.isfinite(jackknife).all():
            notes.append("percentile, not BCa: a leave-one-out value is undefined")
            method = "percentile"
        elif np.ptp(draws.values) == 0 or not math.isfinite(point):
            notes.append("percentile, not BCa: the draws are all equal")
            method = "percentile"
    if method == "percentile":
        low, high = percentile_ci(draws.values, alpha)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            low, high = bca_ci(draws.values, point, jackknife, alpha)
        if not (math.isfinite(low) and math.isfinite(high)):
            notes.append("percentile, not BCa: degenerate")
            method, (low, high) = "percentile", percentile_ci(draws.values, alpha)
    return Interval(low, high, method, "; ".join(filter(None, notes)))


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
