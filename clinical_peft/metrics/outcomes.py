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
logging never crashes; so are all figures of scores holding a NaN or an infinity (a diverged
model), with a warning naming the split. Results are python floats. Everything is computed
exactly (ties as sklearn: mid-ranks, distinct thresholds) with torch ops on the scores' device.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, SumMetric
from torchmetrics.utilities import dim_zero_cat

OUTCOME_KINDS: tuple[str, ...] = ("binary", "multiclass", "multilabel")


def _scores(x: Any) -> Tensor:
    # Comparisons happen in the scores' own precision (float32 ties stay ties); sums in float64.
    s = torch.as_tensor(x).detach()
    return s if s.dtype in (torch.float32, torch.float64) else s.to(torch.float64)


def _labels(x: Any, device: torch.device) -> Tensor:
    return torch.as_tensor(x, device=device).detach().long()


def _all_finite(s: Tensor, split: str) -> bool:
    """False, with a warning naming the split, if any score is NaN or infinite."""
    n_bad = int((~torch.isfinite(s)).sum())
    if n_bad:
        warnings.warn(f"{split}: {n_bad} non-finite scores; AUROC is NaN", RuntimeWarning, 2)
    return not n_bad


def _segment_sums(x: Tensor, bounds: Tensor) -> Tensor:
    """(B, K) -> (B, S): sums of x[:, bounds[s]:bounds[s + 1]] (contiguous cumsums, no scatter)."""
    cum = F.pad(x.cumsum(1), (1, 0))
    return cum[:, bounds[1:]] - cum[:, bounds[:-1]]


class _Ranking:
    """Columns of scores binned against each column's distinct positive scores (ascending).

    Bin 2m of a column holds the examples scored strictly between its (m-1)-th and m-th distinct
    positive score, bin 2m+1 those scored equal to the m-th. Exact AUROC (Mann-Whitney with
    mid-ranks) and AP (sklearn's step sum over distinct thresholds) need only the weight in each
    bin and the positive weight at each distinct positive score: a bincount for the data as is,
    a sparse product for bootstrap weights, and no sort of the (N, L) matrix.

    ``include`` (N, L) drops examples from a column (one-vs-one pairs).
    """

    def __init__(self, scores: Tensor, labels: Tensor, include: Tensor | None = None) -> None:
        n_cols, dev = scores.shape[1], scores.device
        by_col = scores.T.contiguous()  # (L, N): searchsorted runs along the last dimension
        positive = labels.bool() if include is None else labels.bool() & include
        pos_col, pos_example = positive.T.nonzero(as_tuple=True)
        pos_value = by_col[pos_col, pos_example]
        # Positives sorted by (column, score); each distinct (column, score) is a group.
        order = pos_value.argsort(stable=True)
        order = order[pos_col[order].argsort(stable=True)]
        col_sorted, value_sorted = pos_col[order], pos_value[order]
        new = torch.ones_like(col_sorted, dtype=torch.bool)
        new[1:] = (col_sorted[1:] != col_sorted[:-1]) | (value_sorted[1:] != value_sorted[:-1])
        self.pos_example = pos_example[order]  # positives, group by group
        self.group_first = F.pad(new.nonzero().flatten(), (0, 1), value=len(new))
        self.group_col, group_value = col_sorted[new], value_sorted[new]
        per_col = torch.bincount(self.group_col, minlength=n_cols)
        self.group_start = F.pad(per_col.cumsum(0), (1, 0))  # first group of each column
        rank = torch.arange(len(self.group_col), device=dev) - self.group_start[self.group_col]
        # Interleaving each distinct positive score u with the next float above it, the count of
        # bounds <= s is the bin of s: 2m between, 2m + 1 equal (exact in the scores' dtype).
        width = 2 * max(int(per_col.max()) if n_cols else 0, 1)
        bounds = torch.full((n_cols, width), math.inf, dtype=scores.dtype, device=dev)
        bounds[self.group_col, 2 * rank] = group_value
        bounds[self.group_col, 2 * rank + 1] = torch.nextafter(
            group_value, torch.full_like(group_value, math.inf)
        )
        self.col_offset = F.pad((2 * per_col + 1).cumsum(0), (1, 0))
        self.n_bins = int(self.col_offset[-1])
        small = self.n_bins < 2**31  # int32 bins halve the memory traffic
        bins = torch.searchsorted(bounds, by_col, right=True, out_int32=small)
        bins += self.col_offset[:-1, None].to(bins.dtype)
        if include is not None:  # excluded examples go to an extra bin that is dropped
            bins[~include.T] = self.n_bins
        self.bins = bins  # (L, N)
        self.group_bin = self.col_offset[self.group_col] + 2 * rank + 1
        self._spread: Tensor | None = None

    def _weighted(self, weights: Tensor) -> tuple[Tensor, Tensor]:
        """(B, bins) and (B, groups) sums of example weights (B, N) (counts: exact in float32)."""
        if self._spread is None:  # (bins, N) sparse 0/1: the bin of each example and column
            n = self.bins.shape[1]
            flat = self.bins.flatten()  # excluded examples sort last, in the dropped bin
            crow = F.pad(torch.bincount(flat, minlength=self.n_bins + 1).cumsum(0), (1, 0))
            crow = crow[: self.n_bins + 1]
            example = flat.argsort(stable=True)[: int(crow[-1])] % n  # ascending within a bin
            ones = torch.ones(len(example), device=flat.device)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
                self._spread = torch.sparse_csr_tensor(
                    crow, example, ones, (self.n_bins, n), check_invariants=False
                )
        w = weights.float()
        in_bins = (self._spread @ w.T.contiguous()).T
        return in_bins, _segment_sums(w[:, self.pos_example].double(), self.group_first)

    def stats(self, weights: Tensor | None = None, ap: bool = True) -> tuple[Tensor, Tensor | None]:
        """(AUROC, AP) per column, (B, L) float64, NaN where a column lacks a class.

        ``weights`` (B, N): example weights of B weightings (bootstrap counts); None: all 1.
        """
        if weights is None:
            in_bins = torch.bincount(self.bins.flatten(), minlength=self.n_bins + 1)
            in_bins, pos = in_bins[None, : self.n_bins], self.group_first.diff()[None]
        else:
            in_bins, pos = self._weighted(weights)
        in_bins, pos = in_bins.double(), pos.double()
        cum = F.pad(in_bins.cumsum(1), (1, 0))
        start = cum[:, self.col_offset[:-1]]
        total = cum[:, self.col_offset[1:]] - start
        col = self.group_col
        below = cum[:, self.group_bin] - start[:, col]  # weight scored below each group
        tied = in_bins[:, self.group_bin]
        n_pos = _segment_sums(pos, self.group_start)
        n_neg = total - n_pos
        # Mann-Whitney: pairs (positive, any) ranked right, less the positive-positive half.
        u = _segment_sums(pos * (below + tied / 2), self.group_start) - n_pos**2 / 2
        defined = (n_pos > 0) & (n_neg > 0)
        auroc = torch.where(defined, u / (n_pos * n_neg), math.nan)
        if not ap:
            return auroc, None
        # AP: each distinct positive score is a threshold; precision there times recall step.
        cum_pos = F.pad(pos.cumsum(1), (1, 0))
        pos_below = cum_pos[:, :-1] - cum_pos[:, self.group_start[:-1]][:, col]
        precision = (n_pos[:, col] - pos_below) / (total[:, col] - below)
        step = torch.where(pos > 0, pos * precision, 0.0)
        return auroc, torch.where(defined, _segment_sums(step, self.group_start) / n_pos, math.nan)


def _binary(scores: Any, labels: Any, which: int) -> float:
    s = _scores(scores)
    y = _labels(labels, s.device)
    if s.dim() != 1 or s.shape != y.shape:
        raise ValueError(f"expected scores and labels of shape (N,), got {s.shape} and {y.shape}")
    if not _all_finite(s, "scores"):
        return math.nan
    return float(_Ranking(s[:, None], y[:, None]).stats()[which])


def binary_auroc(scores: Any, labels: Any) -> float:
    """AUROC of positive-class scores (N,) against 0/1 labels (N,); NaN if one class only."""
    return _binary(scores, labels, 0)


def binary_auprc(scores: Any, labels: Any) -> float:
    """Average precision (area under the step PR curve, as sklearn); NaN if one class only."""
    return _binary(scores, labels, 1)


def _check_multiclass(probs: Tensor, labels: Tensor, num_classes: int) -> None:
    if probs.dim() != 2 or probs.shape[1] != num_classes or labels.shape != probs.shape[:1]:
        raise ValueError(
            f"expected probs (N, {num_classes}) and labels (N,), got {tuple(probs.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")


def _ovo_ranking(p: Tensor, y: Tensor) -> _Ranking:
    """One column per ordered pair (a, b), a != b: scores p[:, a], class a positive, only
    examples of class a or b included."""
    n_classes = p.shape[1]
    pairs = [(a, b) for a in range(n_classes) for b in range(n_classes) if a != b]
    first = torch.tensor([a for a, _ in pairs], device=p.device, dtype=torch.long)
    second = torch.tensor([b for _, b in pairs], device=p.device, dtype=torch.long)
    include = (y[:, None] == first) | (y[:, None] == second)
    return _Ranking(p[:, first], y[:, None] == first, include)


def _ovo_macro(auroc: Tensor, n_classes: int, fixed: Tensor | None = None) -> Tensor:
    """(B, C(C-1)) ordered-pair AUROCs -> (B,) mean over unordered pairs of both directions.

    ``fixed`` (C,) bool: average exactly the pairs of these classes, NaN where one is undefined
    (a bootstrap keeps the point estimate's pairs); None: the pairs present in each row.
    """
    full = auroc.new_full((len(auroc), n_classes * n_classes), math.nan)
    off_diagonal = ~torch.eye(n_classes, dtype=torch.bool, device=auroc.device).flatten()
    full[:, off_diagonal] = auroc
    full = full.view(-1, n_classes, n_classes)
    a, b = torch.triu_indices(n_classes, n_classes, 1, device=auroc.device)
    pairs = (full[:, a, b] + full[:, b, a]) / 2  # a pair present: both directions defined
    if fixed is None:
        return pairs.nanmean(1)
    return pairs[:, fixed[a] & fixed[b]].mean(1)  # no pair: mean of nothing, NaN


def multiclass_auroc_ovo(probs: Any, labels: Any, num_classes: int) -> float:
    """One-vs-one macro AUROC (Hand & Till) over pairs of classes present in ``labels``.

    For a pair (a, b), on the examples of class a or b: mean of AUROC(probs[:, a], y == a) and
    AUROC(probs[:, b], y == b). NaN if fewer than two classes occur.
    """
    p = _scores(probs)
    y = _labels(labels, p.device)
    _check_multiclass(p, y, num_classes)
    if not _all_finite(p, "scores"):
        return math.nan
    return float(_ovo_macro(_ovo_ranking(p, y).stats()[0], num_classes)[0])


def multiclass_auroc_ovr(probs: Any, labels: Any, num_classes: int) -> float:
    """One-vs-rest macro AUROC over classes that have both positives and negatives; else NaN."""
    p = _scores(probs)
    y = _labels(labels, p.device)
    _check_multiclass(p, y, num_classes)
    if not _all_finite(p, "scores"):
        return math.nan
    classes = torch.arange(num_classes, device=p.device)
    return float(_Ranking(p, y[:, None] == classes).stats()[0].nanmean())


def scorable_labels(y: Any) -> Tensor:
    """(L,) bool: the labels of a (N, L) 0/1 matrix with both classes (the macro average's set)."""
    positives = torch.as_tensor(y).sum(dim=0)
    return (positives > 0) & (positives < len(y))


def _n_scorable(y: Tensor) -> float:
    return float(scorable_labels(y).sum())


def multilabel_auroc(probs: Any, labels: Any) -> dict[str, float]:
    """Masked macro AUROC, micro AUROC, masked macro AUPRC and ``n_labels_scored``.

    Macro figures average only labels with both classes present (the paper's rule); micro
    AUROC flattens all (example, label) pairs, as sklearn's ``average="micro"``.
    """
    p = _scores(probs)
    y = _labels(labels, p.device)
    if p.dim() != 2 or p.shape != y.shape:
        raise ValueError(f"expected probs and labels of shape (N, L), got {p.shape} and {y.shape}")
    n_scored = _n_scorable(y)
    if not _all_finite(p, "scores"):
        return dict.fromkeys(("auroc", "auroc_micro", "auprc_macro"), math.nan) | {
            "n_labels_scored": n_scored
        }
    auroc, ap = _Ranking(p, y).stats()
    micro = _Ranking(p.reshape(-1, 1), y.reshape(-1, 1)).stats()[0]
    return {
        "auroc": float(auroc.nanmean()),
        "auroc_micro": float(micro),
        "auprc_macro": float(ap.nanmean()),
        "n_labels_scored": n_scored,
    }


_NAN_RESULT = {
    "binary": ("auroc", "auprc"),
    "multiclass": ("auroc", "auroc_ovr", "accuracy"),
    "multilabel": ("auroc", "auroc_micro", "auprc_macro"),
}


def outcome_metrics(
    scores: Any, labels: Any, kind: str, num_labels: int, split: str = "scores"
) -> dict[str, float]:
    """Metrics for one outcome task; ``auroc`` is always the paper's headline figure.

    binary: {auroc, auprc} (``num_labels`` 1 or 2, scores (N,) positive-class probabilities);
    multiclass: {auroc (OvO macro), auroc_ovr, accuracy}; multilabel: {auroc (masked macro),
    auroc_micro, auprc_macro, n_labels_scored}. Non-finite scores make every figure NaN and warn
    with ``split`` (e.g. "val") in the message.
    """
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"Unknown kind {kind!r}; valid: {', '.join(OUTCOME_KINDS)}")
    p = _scores(scores)
    if kind == "binary" and num_labels not in (1, 2):
        raise ValueError(f"binary task needs num_labels 1 or 2, got {num_labels}")
    if kind == "multiclass":
        _check_multiclass(p, _labels(labels, p.device), num_labels)
    if kind == "multilabel" and (p.dim() != 2 or p.shape[1] != num_labels):
        raise ValueError(f"expected probs (N, {num_labels}), got {tuple(p.shape)}")
    if not _all_finite(p, split):
        result = dict.fromkeys(_NAN_RESULT[kind], math.nan)
        if kind == "multilabel":
            result["n_labels_scored"] = _n_scorable(_labels(labels, p.device))
        return result
    if kind == "binary":
        auroc, ap = _Ranking(p[:, None], _labels(labels, p.device)[:, None]).stats()
        return {"auroc": float(auroc), "auprc": float(ap)}
    if kind == "multiclass":
        y = _labels(labels, p.device)
        accuracy = float((p.argmax(dim=1) == y).double().mean()) if y.numel() else math.nan
        return {
            "auroc": multiclass_auroc_ovo(p, y, num_labels),
            "auroc_ovr": multiclass_auroc_ovr(p, y, num_labels),
            "accuracy": accuracy,
        }
    return multilabel_auroc(p, labels)


class OutcomeScores(Metric):
    """Accumulates scores and labels over batches (and DDP ranks); ``compute()`` -> outcome_metrics.

    Returns a dict of python floats, so log it with ``log_dict(metric.compute())`` at epoch end
    and then ``reset()``. Use ``update()`` per batch: ``forward()`` would also compute batch-level
    AUROCs, which are noisy and wasted work. ``split`` names the data in warnings (set it before
    ``compute()`` when one metric serves several splits).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, kind: str, num_labels: int, split: str = "scores", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"Unknown kind {kind!r}; valid: {', '.join(OUTCOME_KINDS)}")
        self.kind = kind
        self.num_labels = num_labels
        self.split = split
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor) -> None:
        # float32: bf16 probabilities would create artificial ties in the ranking.
        self.scores.append(scores.detach().float())
        self.labels.append(labels.detach().long())

    def compute(self) -> dict[str, float]:
        scores, labels = dim_zero_cat(self.scores), dim_zero_cat(self.labels)
        return outcome_metrics(scores, labels, self.kind, self.num_labels, split=self.split)


def weighted_auroc(scores: Any, labels: Any, kind: str) -> Callable[[Tensor], Tensor]:
    """A function: example weights (B, N) -> headline AUROC (B,) as ``outcome_metrics``' ``auroc``.

    The binning of the scores is done once here; each call only sums weights (bootstrap counts),
    so resamples cost no sort. The set averaged is fixed to the unweighted data's: the labels
    with both classes (multilabel), the pairs of classes present (multiclass). A weighting where
    one of them loses a class gives NaN, never a mean over fewer labels: that would mix
    different estimands across resamples (a label with one positive drops out of ~37 %).
    """
    p = _scores(scores)
    y = _labels(labels, p.device)
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"Unknown kind {kind!r}; valid: {', '.join(OUTCOME_KINDS)}")
    if not _all_finite(p, "bootstrap"):
        raise ValueError("bootstrap needs finite scores")
    if kind == "binary":
        if p.dim() != 1 or p.shape != y.shape:
            raise ValueError(f"expected scores and labels of shape (N,), got {p.shape}, {y.shape}")
        binary = _Ranking(p[:, None], y[:, None])
        return lambda w: binary.stats(w, ap=False)[0][:, 0]
    if kind == "multiclass":
        n_classes = p.shape[1] if p.dim() == 2 else 0
        _check_multiclass(p, y, n_classes)
        ovo = _ovo_ranking(p, y)
        present = torch.bincount(y, minlength=n_classes) > 0
        return lambda w: _ovo_macro(ovo.stats(w, ap=False)[0], n_classes, present)
    if p.dim() != 2 or p.shape != y.shape:
        raise ValueError(f"expected probs and labels of shape (N, L), got {p.shape} and {y.shape}")
    scored = scorable_labels(y)
    multilabel = _Ranking(p[:, scored], y[:, scored])
    return lambda w: multilabel.stats(w, ap=False)[0].mean(1)  # no label scored: NaN


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
