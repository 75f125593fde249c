"""Calibration of outcome probabilities: Brier score, ECE, calibration intercept and slope, with
bootstrap 95 % intervals, and the reliability diagram.

Per kind (scores as ``outcome_metrics`` takes them):
- binary: on P(positive).
- multiclass: Brier = mean over examples of sum over classes of (p_c - y_c)^2 (Brier 1950,
  sklearn's multiclass ``brier_score_loss``); ECE of the top label (confidence of the arg-max
  class vs whether it is right, Guo et al. 2017); intercept and slope: mean of the one-vs-rest
  fits over classes with both outcomes.
- multilabel: every figure per label, then the mean over labels with both classes (as AUROC).

ECE: equal-mass bins (edges at the quantiles of the scores, values on an inner edge in the
lower bin: sklearn's ``calibration_curve(strategy="quantile")``), sum over bins of
(n_b / N) |mean label - mean score|. Slope: b of logit P(y) = a + b logit(p) (1 is ideal);
intercept: calibration-in-the-large, a of logit P(y) = a + logit(p), the slope held at 1 (0 is
ideal; Van Calster et al. 2019). Both are maximum-likelihood logistic fits (Newton), NaN where
the fit has no finite optimum (a split whose classes the logit separates). Probabilities are
clipped to [1e-7, 1 - 1e-7] before the logit.

Bootstrap intervals: percentiles over resamples of the examples, drawn by
``clinical_peft.metrics.bootstrap.resample_indices`` (same seed, same resamples as AUROC's).
The classes / labels averaged are the point estimate's (those with a finite figure), fixed
as AUROC's are: a resample where one of them is undefined (lost a class, or its classes are
separated: no slope) is dropped, and ``{figure}_resamples`` says how many were kept.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clinical_peft.metrics.bootstrap import percentile_ci, resample_indices

ECE_BINS = 10
FIGURES = ("brier", "ece", "calibration_intercept", "calibration_slope")
CLIP = 1e-7
_ELEMENTS_PER_CHUNK = 1 << 22  # (resamples x labels x examples) per step: bounded memory


def _finite(p: Tensor) -> bool:
    n_bad = int((~torch.isfinite(p)).sum())
    if n_bad:
        warnings.warn(f"{n_bad} non-finite scores; calibration is NaN", RuntimeWarning, 3)
    return not n_bad


def _ece(p: Tensor, y: Tensor, n_bins: int) -> Tensor:
    """(R, N) scores and 0/1 labels -> (R,) ECE over equal-mass bins of each row."""
    n = p.shape[1]
    ordered = p.sort(dim=1).values
    position = torch.linspace(0, n - 1, n_bins + 1, dtype=p.dtype, device=p.device)[1:-1]
    low = position.floor().long()
    high = (low + 1).clamp(max=n - 1)
    frac = position - low
    # linear interpolation between order statistics, as np.percentile
    inner = ordered[:, low] + frac * (ordered[:, high] - ordered[:, low])
    bins = torch.searchsorted(inner.contiguous(), p.contiguous())
    diff = torch.zeros(p.shape[0], n_bins, dtype=p.dtype, device=p.device)
    diff.scatter_add_(1, bins, y - p)
    return diff.abs().sum(dim=1) / n


def _loglik(x: Tensor, y: Tensor, a: Tensor, b: Tensor) -> Tensor:
    eta = a[:, None] + b[:, None] * x
    return (y * eta - torch.nn.functional.softplus(eta)).sum(dim=1)


def _newton(x: Tensor, y: Tensor, fit_slope: bool, skip: Tensor) -> tuple[Tensor, Tensor]:
    """Maximum-likelihood (a, b) of logit P(y) = a + b x per row ((R, N) each), from (0, 1);
    b stays 1 unless ``fit_slope``. Steps are halved where they would lower the likelihood.
    Rows in ``skip`` (no finite optimum: one class, or classes x separates) and rows that do
    not converge are NaN."""
    a, b = x.new_zeros(x.shape[0]), x.new_ones(x.shape[0])
    done, loglik = skip.clone(), _loglik(x, y, a, b)
    for _ in range(100):
        p = torch.sigmoid(a[:, None] + b[:, None] * x)
        w, r = p * (1 - p), y - p
        h_aa, g_a = w.sum(1), r.sum(1)
        if fit_slope:
            h_ab, h_bb, g_b = (w * x).sum(1), (w * x * x).sum(1), (r * x).sum(1)
            det = h_aa * h_bb - h_ab**2
            step_a = (h_bb * g_a - h_ab * g_b) / det
            step_b = (h_aa * g_b - h_ab * g_a) / det
        else:
            step_a, step_b = g_a / h_aa, torch.zeros_like(g_a)
        step_a, step_b = torch.where(done, 0.0, step_a), torch.where(done, 0.0, step_b)
        for _ in range(30):  # halve where the likelihood would fall
            trial = _loglik(x, y, a + step_a, b + step_b)
            worse = trial < loglik - 1e-12 * loglik.abs()
            if not worse.any():
                break
            step_a = torch.where(worse, step_a / 2, step_a)
            step_b = torch.where(worse, step_b / 2, step_b)
        a, b, loglik = a + step_a, b + step_b, trial
        size = step_a.abs() + step_b.abs()
        done = done | (size < 1e-9 * (1 + a.abs() + b.abs())) | ~torch.isfinite(size)
        if bool(done.all()):
            break
    bad = skip | ~done | ~torch.isfinite(a) | ~torch.isfinite(b) | (b.abs() > 1e6)
    return torch.where(bad, math.nan, a), torch.where(bad, math.nan, b)


def _logit(p: Tensor) -> Tensor:
    return torch.logit(p.clamp(CLIP, 1 - CLIP))


def _separated(x: Tensor, y: Tensor) -> Tensor:
    """(R,) rows whose classes a threshold on x splits (either way): no finite slope exists."""
    pos = y > 0
    inf = torch.tensor(math.inf, dtype=x.dtype, device=x.device)
    low_pos, high_pos = torch.where(pos, x, inf).amin(1), torch.where(pos, x, -inf).amax(1)
    low_neg, high_neg = torch.where(pos, inf, x).amin(1), torch.where(pos, -inf, x).amax(1)
    return (high_neg <= low_pos) | (high_pos <= low_neg)


def _binary_rows(p: Tensor, x: Tensor, y: Tensor, n_bins: int) -> dict[str, Tensor]:
    """The four figures of each row of (R, N) probabilities, their logits and 0/1 labels."""
    n_pos = y.sum(dim=1)
    both = (n_pos > 0) & (n_pos < y.shape[1])
    intercept, _ = _newton(x, y, fit_slope=False, skip=~both)
    _, slope = _newton(x, y, fit_slope=True, skip=~both | _separated(x, y))
    return {
        "brier": ((p - y) ** 2).mean(dim=1),
        "ece": _ece(p, y, n_bins),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
    }


def _summary(values: Tensor, mask: Tensor | None, per_unit: bool) -> Tensor:
    """(B, K) per class / label -> (B,): the mean over those defined (the point estimate), or
    over the fixed set `mask` (a resample where one of them is undefined is NaN: dropped)."""
    if per_unit:
        return values
    return values.nanmean(1) if mask is None else values[:, mask].mean(1)


def _batched(
    p: Tensor, x: Tensor, y: Tensor, kind: str, n_bins: int,
    masks: dict[str, Tensor] | None = None, per_unit: bool = False,
) -> dict[str, Tensor]:  # fmt: skip
    """Figures of B (re)samples: p and its logits x (B, N) binary, (B, N, C) otherwise; y (B, N)
    binary and multiclass, (B, N, L) multilabel. `masks`: the classes / labels each figure
    averages (else those defined in each sample); `per_unit`: (B, K) per class / label."""
    masks = masks or {}
    if kind == "binary":
        return _binary_rows(p, x, y.to(p.dtype), n_bins)
    batch, n, width = p.shape

    def rows(t: Tensor) -> Tensor:  # (B, N, C) -> (B * C, N): one row per class or label
        return t.transpose(1, 2).reshape(-1, n)

    if kind == "multiclass":
        onehot = torch.nn.functional.one_hot(y.long(), width).to(p.dtype)
        confidence, top = p.max(dim=2)
        correct = (top == y).to(p.dtype)
        per_class = _binary_rows(rows(p), rows(x), rows(onehot), n_bins)
        return {
            "brier": ((p - onehot) ** 2).sum(dim=2).mean(dim=1),
            "ece": _ece(confidence, correct, n_bins),
            **{k: _summary(per_class[k].view(batch, width), masks.get(k), per_unit)
               for k in FIGURES[2:]},
        }  # fmt: skip
    y = y.to(p.dtype)
    per_label = _binary_rows(rows(p), rows(x), rows(y), n_bins)
    n_pos = y.sum(dim=1)
    both = (n_pos > 0) & (n_pos < n)  # (B, L): labels summarised
    return {
        k: _summary(torch.where(both, v.view(batch, width), math.nan), masks.get(k), per_unit)
        for k, v in per_label.items()
    }


def _prepare(scores: Any, labels: Any, kind: str) -> tuple[Tensor, Tensor]:
    p = torch.as_tensor(scores).detach().to(torch.float64)
    y = torch.as_tensor(labels, device=p.device).detach().long()
    expected = p.dim() == 1 if kind == "binary" else p.dim() == 2
    if not expected or y.shape[0] != p.shape[0] or (kind == "multilabel" and y.shape != p.shape):
        raise ValueError(f"{kind}: scores {tuple(p.shape)} and labels {tuple(y.shape)} do not fit")
    return p, y


def calibration(scores: Any, labels: Any, kind: str, n_bins: int = ECE_BINS) -> dict[str, float]:
    """{brier, ece, calibration_intercept, calibration_slope} of a split (python floats)."""
    p, y = _prepare(scores, labels, kind)
    if not len(p) or not _finite(p):
        return dict.fromkeys(FIGURES, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of no label: NaN is the answer
        figures = _batched(p[None], _logit(p)[None], y[None], kind, n_bins)
        return {k: float(v[0]) for k, v in figures.items()}


def _resamples(n: int, n_boot: int, seed: int, per_resample: int) -> Iterator[Tensor]:
    """resample_indices' resamples, cut into batches of bounded size."""
    size = max(1, _ELEMENTS_PER_CHUNK // max(1, per_resample))
    for batch in resample_indices(n, n_boot, seed):
        yield from batch.split(size)


def bootstrap_calibration(
    scores: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0, n_bins: int = ECE_BINS
) -> dict[str, np.ndarray]:
    """Each figure on the resamples where it is defined (1-D arrays, one value per resample)."""
    p, y = _prepare(scores, labels, kind)
    values: dict[str, list[Tensor]] = {k: [] for k in FIGURES}
    if len(p) and _finite(p):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            x = _logit(p)
            masks = None  # the point estimate's classes / labels, fixed (as AUROC's, issue 27)
            if kind != "binary":
                units = _batched(p[None], x[None], y[None], kind, n_bins, per_unit=True)
                masks = {k: torch.isfinite(v[0]) for k, v in units.items() if v.dim() == 2}
            for idx in _resamples(len(p), n_boot, seed, p[0].numel() * len(p)):
                idx = idx.to(p.device)
                for k, v in _batched(p[idx], x[idx], y[idx], kind, n_bins, masks).items():
                    values[k].append(v.cpu())
    out = {k: torch.cat(v).numpy() if v else np.array([]) for k, v in values.items()}
    return {k: v[np.isfinite(v)] for k, v in out.items()}


def calibration_metrics(
    scores: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0, n_bins: int = ECE_BINS
) -> dict[str, float]:
    """The four figures, each with ``_ci_low`` / ``_ci_high`` (NaN where no resample gives a
    value), and ``ece_bins``: the keys downstream runs, the floor and `evaluate` write."""
    result: dict[str, float] = {
        **calibration(scores, labels, kind, n_bins),
        "ece_bins": float(n_bins),
    }
    for key, values in bootstrap_calibration(scores, labels, kind, n_boot, seed, n_bins).items():
        result[f"{key}_resamples"] = float(len(values))  # of n_boot: the others are dropped
        try:
            result[f"{key}_ci_low"], result[f"{key}_ci_high"] = percentile_ci(values)
        except ValueError:
            result[f"{key}_ci_low"] = result[f"{key}_ci_high"] = math.nan
    return result
