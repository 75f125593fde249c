"""Evaluation metrics: outcome-prediction AUROC as Study A defines it, and the LM loss.

AUROC rules (see shared/PAPERS.md, stage 2):
- binary: positive-class probability vs 0/1 labels.
- multiclass (LOS): one-vs-one macro AUROC (Hand & Till), as sklearn's
  ``roc_auc_score(multi_class="ovo", average="macro", labels=range(C))``: only pairs of classes
  that both occur in the labels are averaged. One-vs-rest macro is reported too; there a class
  is scored only if it has positives and negatives (sklearn returns NaN otherwise).
- multilabel (DIAG/PROC): mean of per-label AUROC over labels with both classes present; plain
  torchmetrics macro would average a 0 in for the others.

Scores are probabilities (binary (N,), multiclass softmax (N, C), multilabel sigmoid (N, L)).
Undefined values (e.g. a single class present) are NaN rather than errors so that epoch-end
logging never crashes. Results are python floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import combinations
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric, SumMetric
from torchmetrics.functional import classification as tmc
from torchmetrics.utilities import dim_zero_cat

OUTCOME_KINDS: tuple[str, ...] = ("binary", "multiclass", "multilabel")


def _scores(x: Any) -> Tensor:
    # float64 keeps the ties (and non-ties) of float32 inputs exactly.
    return torch.as_tensor(x).detach().cpu().to(torch.float64)


def _labels(x: Any) -> Tensor:
    return torch.as_tensor(x).detach().cpu().long()


def _has_both_classes(y: Tensor) -> bool:
    return 0 < int(y.sum()) < y.numel()


def _binary(metric: Callable, scores: Any, labels: Any) -> float:
    s, y = _scores(scores), _labels(labels)
    if s.dim() != 1 or s.shape != y.shape:
        raise ValueError(f"expected scores and labels of shape (N,), got {s.shape} and {y.shape}")
    if not _has_both_classes(y):
        return math.nan
    return float(metric(s, y))


def binary_auroc(scores: Any, labels: Any) -> float:
    """AUROC of positive-class scores (N,) against 0/1 labels (N,); NaN if one class only."""
    return _binary(tmc.binary_auroc, scores, labels)


def binary_auprc(scores: Any, labels: Any) -> float:
    """Average precision (area under the step PR curve, as sklearn); NaN if one class only."""
    return _binary(tmc.binary_average_precision, scores, labels)


def _check_multiclass(probs: Tensor, labels: Tensor, num_classes: int) -> None:
    if probs.dim() != 2 or probs.shape[1] != num_classes or labels.shape != probs.shape[:1]:
        raise ValueError(
            f"expected probs (N, {num_classes}) and labels (N,), got {tuple(probs.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")


def multiclass_auroc_ovo(probs: Any, labels: Any, num_classes: int) -> float:
    """One-vs-one macro AUROC (Hand & Till) over pairs of classes present in ``labels``.

    For a pair (a, b), on the examples of class a or b: mean of AUROC(probs[:, a], y == a) and
    AUROC(probs[:, b], y == b). NaN if fewer than two classes occur.
    """
    p, y = _scores(probs), _labels(labels)
    _check_multiclass(p, y, num_classes)
    present = torch.unique(y).tolist()
    pair_scores = []
    for a, b in combinations(present, 2):
        in_pair = (y == a) | (y == b)
        y_pair, p_pair = y[in_pair], p[in_pair]
        auc_a = binary_auroc(p_pair[:, a], y_pair == a)
        auc_b = binary_auroc(p_pair[:, b], y_pair == b)
        pair_scores.append((auc_a + auc_b) / 2)
    return sum(pair_scores) / len(pair_scores) if pair_scores else math.nan


def multiclass_auroc_ovr(probs: Any, labels: Any, num_classes: int) -> float:
    """One-vs-rest macro AUROC over classes that have both positives and negatives; else NaN."""
    p, y = _scores(probs), _labels(labels)
    _check_multiclass(p, y, num_classes)
    per_class = [binary_auroc(p[:, c], y == c) for c in range(num_classes)]
    scored = [v for v in per_class if not math.isnan(v)]
    return sum(scored) / len(scored) if scored else math.nan


def multilabel_auroc(probs: Any, labels: Any) -> dict[str, float]:
    """Masked macro AUROC, micro AUROC, masked macro AUPRC and ``n_labels_scored``.

    Macro figures average only labels with both classes present (the paper's rule); micro
    AUROC flattens all (example, label) pairs, as sklearn's ``average="micro"``.
    """
    p, y = _scores(probs), _labels(labels)
    if p.dim() != 2 or p.shape != y.shape:
        raise ValueError(f"expected probs and labels of shape (N, L), got {p.shape} and {y.shape}")
    positives = y.sum(dim=0)
    scorable = (positives > 0) & (positives < y.shape[0])
    n_scored = int(scorable.sum())
    if n_scored:
        ps, ys = p[:, scorable], y[:, scorable]
        per_label_auc = tmc.multilabel_auroc(ps, ys, num_labels=n_scored, average=None)
        per_label_ap = tmc.multilabel_average_precision(ps, ys, num_labels=n_scored, average=None)
        auroc, auprc = float(per_label_auc.mean()), float(per_label_ap.mean())
    else:
        auroc = auprc = math.nan
    return {
        "auroc": auroc,
        "auroc_micro": binary_auroc(p.flatten(), y.flatten()),
        "auprc_macro": auprc,
        "n_labels_scored": float(n_scored),
    }


def outcome_metrics(scores: Any, labels: Any, kind: str, num_labels: int) -> dict[str, float]:
    """Metrics for one outcome task; ``auroc`` is always the paper's headline figure.

    binary: {auroc, auprc} (``num_labels`` 1 or 2, scores (N,) positive-class probabilities);
    multiclass: {auroc (OvO macro), auroc_ovr, accuracy}; multilabel: {auroc (masked macro),
    auroc_micro, auprc_macro, n_labels_scored}.
    """
    if kind == "binary":
        if num_labels not in (1, 2):
            raise ValueError(f"binary task needs num_labels 1 or 2, got {num_labels}")
        return {"auroc": binary_auroc(scores, labels), "auprc": binary_auprc(scores, labels)}
    if kind == "multiclass":
        p, y = _scores(scores), _labels(labels)
        _check_multiclass(p, y, num_labels)
        accuracy = float((p.argmax(dim=1) == y).double().mean()) if y.numel() else math.nan
        return {
            "auroc": multiclass_auroc_ovo(p, y, num_labels),
            "auroc_ovr": multiclass_auroc_ovr(p, y, num_labels),
            "accuracy": accuracy,
        }
    if kind == "multilabel":
        p = _scores(scores)
        if p.dim() != 2 or p.shape[1] != num_labels:
            raise ValueError(f"expected probs (N, {num_labels}), got {tuple(p.shape)}")
        return multilabel_auroc(p, labels)
    raise ValueError(f"Unknown kind {kind!r}; valid: {', '.join(OUTCOME_KINDS)}")


class OutcomeScores(Metric):
    """Accumulates scores and labels over batches (and DDP ranks); ``compute()`` -> outcome_metrics.

    Returns a dict of python floats, so log it with ``log_dict(metric.compute())`` at epoch end
    and then ``reset()``. Use ``update()`` per batch: ``forward()`` would also compute batch-level
    AUROCs, which are noisy and wasted work.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, kind: str, num_labels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"Unknown kind {kind!r}; valid: {', '.join(OUTCOME_KINDS)}")
        self.kind = kind
        self.num_labels = num_labels
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor) -> None:
        # float32: bf16 probabilities would create artificial ties in the ranking.
        self.scores.append(scores.detach().float())
        self.labels.append(labels.detach().long())

    def compute(self) -> dict[str, float]:
        scores, labels = dim_zero_cat(self.scores), dim_zero_cat(self.labels)
        return outcome_metrics(scores, labels, self.kind, self.num_labels)


def bootstrap_ci(
    metric_fn: Callable[[Tensor, Tensor], float],
    scores: Any,
    labels: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` interval of ``metric_fn(scores, labels)`` over examples.

    Resamples whose 1-D labels hold a single class, or where the metric is NaN (e.g. no
    multilabel label scorable), are skipped; ValueError if none is left.
    """
    s, y = torch.as_tensor(scores), torch.as_tensor(labels)
    n = y.shape[0]
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(n_boot):
        idx = torch.randint(n, (n,), generator=generator)
        y_boot = y[idx]
        if y_boot.dim() == 1 and torch.unique(y_boot).numel() < 2:
            continue
        value = float(metric_fn(s[idx], y_boot))
        if math.isfinite(value):
            values.append(value)
    if not values:
        raise ValueError("no bootstrap resample gave a defined metric value")
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    low, high = torch.quantile(torch.tensor(values, dtype=torch.float64), q).tolist()
    return low, high


class TokenWeightedLoss(torch.nn.Module):
    """Summed token NLL and token count over a whole split (synced across ranks).

    The loss is total NLL / total tokens, and perplexity its exp: batches with more tokens weigh
    more, which a mean of per-batch losses or perplexities would get wrong.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nll, self.tokens = SumMetric(), SumMetric()

    def update(self, nll_sum: Tensor, tokens: Tensor) -> None:
        self.nll.update(nll_sum.detach().float())
        self.tokens.update(tokens)

    def compute_and_reset(self) -> tuple[float, float]:
        """(loss, perplexity) of everything seen since the last reset."""
        loss = (self.nll.compute() / self.tokens.compute().clamp(min=1)).item()
        self.nll.reset()
        self.tokens.reset()
        return loss, math.exp(min(loss, 50.0))
