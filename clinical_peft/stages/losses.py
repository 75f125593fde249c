"""Loss functions: DPO variants, sequence log-probs, class weights, causal-LM sums.

Pure functions on tensors; no model code. The DPO formulas follow TRL 1.16's
``DPOTrainer._compute_loss`` (reverse-KL, ``ld_alpha=None``, no WPO weighting); differences from
TRL are listed in the loss functions' docstrings.

Every DPO variant lives in one registry, :data:`DPO_LOSSES` (name -> :class:`DPOLoss`), with what
it needs; :func:`check_dpo_loss` is the one place that validates a name and its hyperparameters,
so adding a variant is one decorated function and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint


#: ``fn(chosen, rejected, beta, label_smoothing, chosen_lengths, rejected_lengths)`` -> per-example
#: losses. ``chosen`` / ``rejected`` are the log-ratios ``policy - reference`` of the summed
#: completion log-probs, shape (batch,); for a loss that needs no reference they are the policy's
#: log-probs. The lengths (completion token counts) are ``None`` when the caller has none.
@dataclass(frozen=True)
class LogRatios:
    """What every DPO-family loss reads: per-example log-ratios policy - reference (batch,)."""

    chosen: Tensor
    rejected: Tensor
    beta: float
    ls: float  # label smoothing
    chosen_lengths: Tensor | None = None  # completion token counts (ipo)
    rejected_lengths: Tensor | None = None

    @property
    def h(self) -> Tensor:
        """chosen - rejected log-ratio."""
        return self.chosen - self.rejected


DPOLossFn = Callable[[LogRatios], Tensor]


@dataclass(frozen=True)
class DPOLoss:
    """A DPO-family loss and what it needs."""

    fn: DPOLossFn
    label_smoothing: bool = False  # uses label_smoothing (else it must be 0)
    reference: bool = True  # needs the reference log-probs (else the caller may skip that pass)


#: every DPO variant by name; `--model.loss_type` accepts exactly these
DPO_LOSSES: dict[str, DPOLoss] = {}


class LossConfigError(ValueError):
    """A bad DPO hyperparameter; ``field`` names it (loss_type, beta or label_smoothing)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def register_dpo_loss(
    name: str, *, label_smoothing: bool = False, reference: bool = True
) -> Callable[[DPOLossFn], DPOLossFn]:
    """Decorator adding a loss function to :data:`DPO_LOSSES` under `name`."""

    def add(fn: DPOLossFn) -> DPOLossFn:
        if name in DPO_LOSSES:
            raise ValueError(f"DPO loss {name!r} is already registered")
        DPO_LOSSES[name] = DPOLoss(fn, label_smoothing=label_smoothing, reference=reference)
        return fn

    return add


def check_dpo_loss(loss_type: str, beta: float, label_smoothing: float = 0.0) -> DPOLoss:
    """The registered loss `loss_type`, after checking its hyperparameters (LossConfigError)."""
    if loss_type not in DPO_LOSSES:
        valid = ", ".join(DPO_LOSSES)
        raise LossConfigError("loss_type", f"unknown DPO loss '{loss_type}' (valid: {valid})")
    if not beta > 0:
        raise LossConfigError("beta", f"must be > 0, got {beta}")
    spec = DPO_LOSSES[loss_type]
    if spec.label_smoothing and not 0.0 <= label_smoothing < 0.5:
        raise LossConfigError("label_smoothing", f"must lie in [0, 0.5), got {label_smoothing}")
    if not spec.label_smoothing and label_smoothing != 0.0:
        # silently ignoring it would make a run differ from what its config says
        users = ", ".join(k for k, v in DPO_LOSSES.items() if v.label_smoothing)
        raise LossConfigError(
            "label_smoothing",
            f"the '{loss_type}' loss does not use it (got {label_smoothing}; used by: {users})",
        )
    return spec


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
    """Per-example losses of the registered `loss_type` and the (detached) implicit rewards
    ``beta * (policy - reference)``, as TRL logs them whatever the loss.

    All log-probs are summed over the completion tokens, shape (batch,). `chosen_lengths` /
    `rejected_lengths` are completion token counts (used by ``ipo``). For a loss with
    ``reference=False`` pass zeros as the reference log-probs.
    """
    spec = check_dpo_loss(loss_type, beta, label_smoothing)
    if (chosen_lengths is None) != (rejected_lengths is None):
        raise ValueError("pass both chosen_lengths and rejected_lengths, or neither")
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    losses = spec.fn(
        LogRatios(
            chosen_logratios,
            rejected_logratios,
            beta,
            label_smoothing,
            chosen_lengths,
            rejected_lengths,
        )  # fmt: skip
    )
    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses, chosen_rewards, rejected_rewards


# --- the variants (h = chosen - rejected log-ratio; ls = label_smoothing) ---------------------


@register_dpo_loss("sigmoid", label_smoothing=True)
def sigmoid_loss(x: LogRatios) -> Tensor:
    """DPO, ``-(1 - ls) * logsigmoid(beta * h) - ls * logsigmoid(-beta * h)`` (conservative DPO
    for ls > 0). TRL 1.16 ignores ``label_smoothing`` for this loss type (it computes only
    ``-logsigmoid(beta * h)``); the two agree at ``label_smoothing=0``, the default."""
    h, beta, ls = x.h, x.beta, x.ls
    return -(1 - ls) * F.logsigmoid(beta * h) - ls * F.logsigmoid(-beta * h)


@register_dpo_loss("ipo")
def ipo_loss(x: LogRatios) -> Tensor:
    """IPO, ``(h - 1 / (2 * beta)) ** 2``. TRL 1.16 divides each log-ratio by its number of
    completion tokens (clamped to >= 1) before taking ``h``: given the lengths, so does this;
    without them the log-ratios are used unnormalised, as IPO's Eq. 17 is written."""
    chosen, rejected = x.chosen, x.rejected
    if x.chosen_lengths is not None and x.rejected_lengths is not None:
        # TRL's per-token normalisation keeps the squared loss comparable across lengths.
        chosen = chosen / x.chosen_lengths.to(chosen.dtype).clamp(min=1.0)
        rejected = rejected / x.rejected_lengths.to(rejected.dtype).clamp(min=1.0)
    return (chosen - rejected - 1 / (2 * x.beta)) ** 2


@register_dpo_loss("hinge")
def hinge_loss(x: LogRatios) -> Tensor:
    """SLiC's hinge, ``relu(1 - beta * h)``."""
    return torch.relu(1 - x.beta * x.h)


@register_dpo_loss("robust", label_smoothing=True)
def robust_loss(x: LogRatios) -> Tensor:
    """Robust DPO, ``(-(1 - ls) * logsigmoid(beta * h) + ls * logsigmoid(-beta * h)) / (1 - 2 ls)``,
    ``ls`` in [0, 0.5) (TRL only warns outside that range; here it is an error)."""
    h, beta, ls = x.h, x.beta, x.ls
    clean = -(1 - ls) * F.logsigmoid(beta * h)
    flipped = -ls * F.logsigmoid(-beta * h)
    return (clean - flipped) / (1 - 2 * ls)


@register_dpo_loss("nca_pair")
def nca_pair_loss(x: LogRatios) -> Tensor:
    """NCA (Chen et al. 2024, arXiv 2402.05369), pairwise form: with rewards ``r = beta * log-ratio``,
    ``-logsigmoid(r_c) - logsigmoid(-r_c) / 2 - logsigmoid(-r_r) / 2``: it raises the chosen
    answer's likelihood in absolute terms, not only relative to the rejected one."""
    r_c, r_r = x.beta * x.chosen, x.beta * x.rejected
    return -F.logsigmoid(r_c) - 0.5 * F.logsigmoid(-r_c) - 0.5 * F.logsigmoid(-r_r)


@register_dpo_loss("sppo_hard")
def sppo_hard_loss(x: LogRatios) -> Tensor:
    """SPPO (Wu et al. 2024, arXiv 2405.00675) with hard win probabilities (1 for the chosen
    answer, 0 for the rejected), ``(log-ratio_c - 1 / (2 beta)) ** 2 + (log-ratio_r + 1 / (2 beta)) ** 2``."""
    return (x.chosen - 0.5 / x.beta) ** 2 + (x.rejected + 0.5 / x.beta) ** 2


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


def completion_logps(
    hidden: Tensor,
    labels: Tensor,
    head: Callable[[Tensor], Tensor],
    ignore_index: int = -100,
    chunk_tokens: int = 512,
) -> Tensor:
    """:func:`sequence_logps` of ``head(hidden)``, without the (batch, tokens, vocab) logits.

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
    # back to (batch, tokens) and summed per row, the order TRL sums in
    full = hidden.new_zeros(mask.shape, dtype=torch.float32).masked_scatter(mask, per_token)
    return full.sum(dim=1)


def _parameters(head: Callable[[Tensor], Tensor]) -> list[Tensor]:
    return list(head.parameters()) if isinstance(head, torch.nn.Module) else []


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
