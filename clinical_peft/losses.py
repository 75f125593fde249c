"""Loss functions: DPO variants, sequence log-probs, class weights, causal-LM sums.

Pure functions on tensors; no model code. The DPO formulas follow TRL 1.16's
``DPOTrainer._compute_loss`` (reverse-KL, ``ld_alpha=None``, no WPO weighting); differences from
TRL are listed in :func:`dpo_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DPO_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "ipo", "hinge", "robust")


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    *,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-example DPO losses and the (detached) implicit rewards ``beta * (policy - reference)``.

    All log-probs are summed over the completion tokens, shape (batch,). With
    ``h = (pi_c - ref_c) - (pi_r - ref_r)``:

    - ``sigmoid``: ``-(1 - ls) * logsigmoid(beta * h) - ls * logsigmoid(-beta * h)`` (conservative
      DPO). TRL 1.16 ignores ``label_smoothing`` for this loss type (it computes only
      ``-logsigmoid(beta * h)``); the two agree at ``label_smoothing=0``, the default.
    - ``ipo``: ``(h - 1 / (2 * beta)) ** 2``. TRL 1.16 divides each log-ratio by its number of
      completion tokens before taking ``h``. Pass ``chosen_lengths`` / ``rejected_lengths`` (token
      counts, clamped to >= 1 as in TRL) to get TRL's form; without them the log-ratios are used
      unnormalised, as IPO's Eq. 17 is written.
    - ``hinge``: ``relu(1 - beta * h)``.
    - ``robust``: ``(-(1 - ls) * logsigmoid(beta * h) + ls * logsigmoid(-beta * h)) / (1 - 2 * ls)``,
      ``ls`` in [0, 0.5) (TRL only warns outside that range; here it is an error).

    ``ipo`` and ``hinge`` ignore ``label_smoothing``, as in TRL.
    """
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"Unknown DPO loss_type {loss_type!r}; valid: {', '.join(DPO_LOSS_TYPES)}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must lie in [0, 0.5), got {label_smoothing}")

    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    h = chosen_logratios - rejected_logratios
    ls = label_smoothing

    if loss_type == "sigmoid":
        losses = -(1 - ls) * F.logsigmoid(beta * h) - ls * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        if (chosen_lengths is None) != (rejected_lengths is None):
            raise ValueError("pass both chosen_lengths and rejected_lengths, or neither")
        if chosen_lengths is not None and rejected_lengths is not None:
            # TRL's per-token normalisation keeps the squared loss comparable across lengths.
            chosen_avg = chosen_logratios / chosen_lengths.to(h.dtype).clamp(min=1.0)
            rejected_avg = rejected_logratios / rejected_lengths.to(h.dtype).clamp(min=1.0)
            h = chosen_avg - rejected_avg
        losses = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:  # robust
        clean = -(1 - ls) * F.logsigmoid(beta * h)
        flipped = -ls * F.logsigmoid(-beta * h)
        losses = (clean - flipped) / (1 - 2 * ls)

    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses, chosen_rewards, rejected_rewards


def _shifted(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Causal shift: logits at position t predict the label at t + 1."""
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    return logits[:, :-1, :], labels[:, 1:]


def sequence_logps(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """Sum over tokens of ``log p(label_t | prefix)``, skipping ``ignore_index``; shape (batch,).

    Computed in float32 one row at a time: bf16 sums over hundreds of tokens are too coarse for
    DPO log-ratio differences, and one row keeps the float32 copy of the logits small.
    """
    shift_logits, shift_labels = _shifted(logits, labels)
    rows = []
    for row_logits, row_labels in zip(shift_logits, shift_labels, strict=True):
        nll = F.cross_entropy(
            row_logits.float(), row_labels, ignore_index=ignore_index, reduction="none"
        )
        rows.append(-nll.sum())  # ignored positions contribute exactly 0
    if not rows:
        return logits.new_zeros(0, dtype=torch.float32)
    return torch.stack(rows)


def causal_lm_loss_sums(
    logits: Tensor, labels: Tensor, ignore_index: int = -100
) -> tuple[Tensor, Tensor]:
    """Summed token NLL (float32, differentiable) and number of predicted tokens (int64).

    Sums rather than means so that perplexity can be token-weighted across batches and ranks:
    ``exp(sum of nll_sum / sum of n_tokens)``.
    """
    shift_logits, shift_labels = _shifted(logits, labels)
    nll_sum = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)).float(),
        shift_labels.reshape(-1),
        ignore_index=ignore_index,
        reduction="sum",
    )
    n_tokens = (shift_labels != ignore_index).sum()
    return nll_sum, n_tokens


def class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """The paper's class weights ``N / (C * count_c)`` from the training labels, float32 (C,).

    A class that never appears in the training labels cannot be weighted (its weight would be
    infinite), so that raises ValueError naming the class rather than silently using 0 or inf.
    """
    labels = torch.as_tensor(labels).long().flatten()
    if labels.numel() == 0:
        raise ValueError("class_weights needs at least one label")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    counts = torch.bincount(labels, minlength=num_classes)
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"class(es) {missing} never appear in the training labels; cannot weight")
    return (labels.numel() / (num_classes * counts.double())).float()
