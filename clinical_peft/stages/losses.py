"""Preference losses: the DPO family (paired), its reference-free members (SimPO, CPO, ORPO)
and KTO (unpaired), in one registry.

Pure functions on tensors; no model code. The DPO formulas follow TRL 1.16's
``DPOTrainer._compute_loss`` (reverse-KL, ``ld_alpha=None``, no WPO weighting), SimPO and CPO its
``experimental.cpo.CPOTrainer``, ORPO its ``experimental.orpo.ORPOTrainer`` and KTO its
``KTOTrainer``; differences from TRL are listed in the loss functions' docstrings.

Every loss lives in one registry, :data:`DPO_LOSSES` (name -> :class:`DPOLoss`), with what it
needs; :func:`check_dpo_loss` is the one place that validates a name and its hyperparameters,
so adding a variant is one decorated function and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

# the log-prob helpers lived here before; their callers import them from either module
from clinical_peft.stages.logps import (  # noqa: F401
    causal_lm_loss_sums,
    completion_logps,
    completion_token_logps,
    sequence_logps,
    token_logps,
)
from clinical_peft.stages.loss_registry import (  # noqa: F401
    DPO_LOSSES,
    OPTION_CHECKS,
    DPOLoss,
    LogRatios,
    LossConfigError,
    UnpairedLogRatios,
    check_dpo_loss,
    loss_options,
    register_dpo_loss,
)


def nll_shares(nll_sums: Tensor, counts: Tensor) -> Tensor:
    """Per-example NLL terms whose batch mean is the token-mean NLL ``sum(nll) / sum(counts)``
    (TRL's ``CrossEntropyLoss`` over all chosen tokens of a batch)."""
    return nll_sums * nll_sums.shape[0] / counts.sum().clamp(min=1)


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
    chosen_nll: tuple[Tensor, Tensor] | None = None,
    options: Mapping[str, float | None] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-example losses of the registered `loss_type` and the (detached) implicit rewards
    ``beta * (policy - reference)``, as TRL logs them whatever the loss (per-token averages for
    a loss with ``normalise=True``).

    All log-probs are summed over the completion tokens, shape (batch,). `chosen_lengths` /
    `rejected_lengths` are completion token counts (used by ``ipo`` and the normalised losses).
    For a loss with ``reference=False`` pass zeros as the reference log-probs. `chosen_nll` is
    (NLL sums, token counts) of the chosen rows over the loss's NLL span; for the ``completion``
    span it defaults to (-policy_chosen_logps, chosen_lengths).
    """
    spec = check_dpo_loss(loss_type, beta, label_smoothing, options)
    if spec.unpaired:
        raise ValueError(f"'{loss_type}' is an unpaired loss: use kto_loss")
    if (chosen_lengths is None) != (rejected_lengths is None):
        raise ValueError("pass both chosen_lengths and rejected_lengths, or neither")
    if (spec.normalise or spec.nll) and chosen_lengths is None:
        raise ValueError(f"the '{loss_type}' loss needs chosen_lengths and rejected_lengths")
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    if spec.normalise:  # TRL's average_log_prob: sum / number of completion tokens
        chosen_logratios = chosen_logratios / chosen_lengths.clamp(min=1)
        rejected_logratios = rejected_logratios / rejected_lengths.clamp(min=1)
    nll = None
    if spec.nll:
        if chosen_nll is None and spec.nll == "sequence":
            raise ValueError(f"the '{loss_type}' loss needs chosen_nll over the whole sequence")
        sums, counts = chosen_nll or (-policy_chosen_logps, chosen_lengths)
        nll = nll_shares(sums, counts)
    x = LogRatios(
        chosen_logratios, rejected_logratios, beta, label_smoothing, chosen_lengths,
        rejected_lengths, loss_options(loss_type, options), nll,
    )  # fmt: skip
    losses = spec.fn(x)
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def kto_loss(
    policy_logps: Tensor,
    reference_logps: Tensor,
    kl: Tensor,
    desirable: Tensor,
    beta: float = 0.1,
    loss_type: str = "kto",
    options: Mapping[str, float | None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-example losses of the unpaired `loss_type` and the (detached) rewards
    ``beta * (policy - reference)``. `desirable` (bool, batch) says which completions are
    good; `kl` is the batch's KL estimate (see :func:`kto_kl`)."""
    spec = check_dpo_loss(loss_type, beta, 0.0, options)
    if not spec.unpaired:
        raise ValueError(f"'{loss_type}' is a paired loss: use dpo_loss")
    logratios = policy_logps - reference_logps
    x = UnpairedLogRatios(logratios, desirable.bool(), kl, beta, loss_options(loss_type, options))
    return spec.fn(x), beta * logratios.detach()


def kto_kl(
    policy_kl_logps: Tensor,
    reference_kl_logps: Tensor,
    mean_over_ranks: Callable[[Tensor], Tensor] = lambda t: t,
) -> Tensor:
    """KTO's reference point: the mean log-ratio of mismatched (prompt, completion) pairs,
    detached, averaged over ranks and clamped at 0, as TRL computes it."""
    kl = (policy_kl_logps - reference_kl_logps).mean().detach()
    return mean_over_ranks(kl).clamp(min=0)


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


# --- reference-free (reference=False: no reference pass at all) ------------------------------


@register_dpo_loss(
    "simpo", label_smoothing=True, reference=False, normalise=True,
    nll="completion", options={"simpo_gamma": 0.5, "cpo_alpha": 0.0},
)  # fmt: skip
def simpo_loss(x: LogRatios) -> Tensor:
    """SimPO (Meng et al. 2024, arXiv 2405.14734): with per-token average log-probs,
    ``-(1 - ls) * logsigmoid(beta * h - gamma) - ls * logsigmoid(-(beta * h - gamma))``, plus
    ``cpo_alpha`` times the chosen answers' NLL (0 by default: plain SimPO; TRL's CPOConfig
    defaults to 1, its CPO-SimPO)."""
    z = x.beta * x.h - x.options["simpo_gamma"]
    return -(1 - x.ls) * F.logsigmoid(z) - x.ls * F.logsigmoid(-z) + x.options["cpo_alpha"] * x.nll


@register_dpo_loss(
    "cpo", label_smoothing=True, reference=False, nll="completion", options={"cpo_alpha": 1.0}
)
def cpo_loss(x: LogRatios) -> Tensor:
    """CPO (Xu et al. 2024, arXiv 2401.08417): summed log-probs,
    ``-(1 - ls) * logsigmoid(beta * h) - ls * logsigmoid(-beta * h)`` plus ``cpo_alpha`` times
    the token-mean NLL of the chosen completions in the batch (TRL's ``cpo_alpha``, default 1)."""
    h = x.beta * x.h
    return -(1 - x.ls) * F.logsigmoid(h) - x.ls * F.logsigmoid(-h) + x.options["cpo_alpha"] * x.nll


def log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for x < 0, stably (the branch at -ln 2 TRL uses)."""
    return torch.where(
        x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x))
    )


@register_dpo_loss("orpo", reference=False, normalise=True, nll="sequence")
def orpo_loss(x: LogRatios) -> Tensor:
    """ORPO (Hong et al. 2024, arXiv 2403.07691): with per-token average log-probs and
    ``log odds(y) = logp - log(1 - exp(logp))``, ``NLL - beta * logsigmoid(log odds_c -
    log odds_r)``. The NLL is the token mean over the chosen rows' prompt and completion, as
    TRL 1.16 computes it (TRL reverted a completion-only NLL to match the ORPO authors' code)."""
    c, r = x.chosen.float(), x.rejected.float()
    log_odds = (c - r) - (log1mexp(c) - log1mexp(r))
    return x.nll - x.beta * F.logsigmoid(log_odds)


# --- unpaired feedback (one completion and a desirable / undesirable label per row) -----------


@register_dpo_loss(
    "kto", unpaired=True, options={"desirable_weight": 1.0, "undesirable_weight": 1.0}
)
def kto_unpaired_loss(x: UnpairedLogRatios) -> Tensor:
    """KTO (Ethayarajh et al. 2024, arXiv 2402.01306, Eq. 7): with ``z`` the KL estimate,
    ``desirable_weight * (1 - sigmoid(beta * (r - z)))`` for a desirable completion and
    ``undesirable_weight * (1 - sigmoid(beta * (z - r)))`` for an undesirable one."""
    good = x.options["desirable_weight"] * (1 - torch.sigmoid(x.beta * (x.logratios - x.kl)))
    bad = x.options["undesirable_weight"] * (1 - torch.sigmoid(x.beta * (x.kl - x.logratios)))
    return torch.where(x.desirable, good, bad)
