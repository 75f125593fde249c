"""Log-probabilities of label tokens: per token, summed per sequence, and causal-LM sums.

Pure functions on tensors (no model code), used by the losses of `clinical_peft.stages.losses`
and by the stages.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def _check_shapes(logits: Tensor, labels: Tensor) -> None:
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )


def _shifted(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Causal shift: logits at position t predict the label at t + 1."""
    _check_shapes(logits, labels)
    return logits[:, :-1, :], labels[:, 1:]


def sequence_logps(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """Sum over tokens of ``log p(label_t | prefix)``, skipping ``ignore_index``; shape (batch,)."""
    return token_logps(logits, labels, ignore_index).sum(dim=1)


def token_logps(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """``log p(label_t | prefix)`` at every predicted position, 0 where the label is
    ``ignore_index``; shape (batch, tokens - 1).

    Computed in float32 one row at a time: bf16 sums over hundreds of tokens are too coarse for
    DPO log-ratio differences, and one row keeps the float32 copy of the logits small.
    """
    shift_logits, shift_labels = _shifted(logits, labels)
    rows = []
    for row_logits, row_labels in zip(shift_logits, shift_labels, strict=True):
        nll = F.cross_entropy(
            row_logits.float(), row_labels, ignore_index=ignore_index, reduction="none"
        )
        rows.append(-nll)  # ignored positions contribute exactly 0
    if not rows:
        return logits.new_zeros(shift_labels.shape, dtype=torch.float32)
    return torch.stack(rows)


def completion_logps(
    hidden: Tensor,
    labels: Tensor,
    head: Callable[[Tensor], Tensor],
    ignore_index: int = -100,
    chunk_tokens: int = 512,
) -> Tensor:
    """:func:`sequence_logps` of ``head(hidden)``, without the (batch, tokens, vocab) logits
    (see :func:`completion_token_logps`); shape (batch,)."""
    return completion_token_logps(hidden, labels, head, ignore_index, chunk_tokens).sum(dim=1)


def completion_token_logps(
    hidden: Tensor,
    labels: Tensor,
    head: Callable[[Tensor], Tensor],
    ignore_index: int = -100,
    chunk_tokens: int = 512,
) -> Tensor:
    """:func:`token_logps` of ``head(hidden)``, without the (batch, tokens, vocab) logits.

    `hidden` holds the last hidden states (batch, tokens, width) and `head` is the LM head. Only
    the positions that predict a label go through the head, `chunk_tokens` at a time, in float32;
    each chunk's logits are recomputed in the backward pass rather than kept (as TRL's fused LM
    head does). In DPO the prompt is most of each row and the vocabulary is the widest axis, so
    this is most of the memory of the log-probs, and most of the head's compute.
    """
    if hidden.dim() != 3 or labels.shape != hidden.shape[:2]:
        raise ValueError(
            f"expected hidden (B, T, H) and labels (B, T), got {tuple(hidden.shape)} and "
            f"{tuple(labels.shape)}"
        )
    shift_labels = labels[:, 1:]
    mask = shift_labels != ignore_index
    selected, targets = hidden[:, :-1][mask], shift_labels[mask]

    def chunk_logps(states: Tensor, ids: Tensor) -> Tensor:
        logits = head(states).float()
        return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(dim=-1)

    keep_graph = torch.is_grad_enabled() and (
        selected.requires_grad or any(p.requires_grad for p in _parameters(head))
    )
    parts = []
    for start in range(0, targets.numel(), chunk_tokens):
        states, ids = selected[start : start + chunk_tokens], targets[start : start + chunk_tokens]
        if keep_graph:
            parts.append(checkpoint(chunk_logps, states, ids, use_reentrant=False))
        else:
            parts.append(chunk_logps(states, ids))
    # no completion token at all: an empty tensor still tied to the graph, as TRL keeps it
    per_token = torch.cat(parts) if parts else selected.sum(dim=-1).float()
    # back to (batch, tokens); summed per row by the caller, the order TRL sums in
    return hidden.new_zeros(mask.shape, dtype=torch.float32).masked_scatter(mask, per_token)


def _parameters(head: Callable[[Tensor], Tensor]) -> list[Tensor]:
    return list(head.parameters()) if isinstance(head, torch.nn.Module) else []


def causal_lm_loss_sums(
    logits: Tensor, labels: Tensor, ignore_index: int = -100
) -> tuple[Tensor, Tensor]:
    """Summed token NLL (float32, differentiable) and number of predicted tokens (int64).

    Sums rather than means so that perplexity can be token-weighted across batches and ranks:
    ``exp(sum of nll_sum / sum of n_tokens)``. The labels move one place left (the last
    position predicts nothing), not the logits: a (batch, tokens, vocab) slice of them would be
    copied for the loss and again, zero-filled, in its backward (as transformers' own loss).
    """
    _check_shapes(logits, labels)
    targets = F.pad(labels[:, 1:], (0, 1), value=ignore_index)
    nll_sum = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=ignore_index,
        reduction="sum",
    )
    n_tokens = (targets != ignore_index).sum()
    return nll_sum, n_tokens
