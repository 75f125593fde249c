"""The registry of preference losses: name -> what the loss reads and needs, and the one check
of a loss's name and hyperparameters. The losses themselves register in
`clinical_peft.stages.losses`, which re-exports all of this."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class LogRatios:
    """What every paired loss reads: per-example log-ratios policy - reference (batch,).

    For a loss with ``reference=False`` they are the policy's log-probs; for one with
    ``normalise=True`` they are divided by the completion lengths (per-token averages)."""

    chosen: Tensor
    rejected: Tensor
    beta: float
    ls: float  # label smoothing
    chosen_lengths: Tensor | None = None  # completion token counts (ipo)
    rejected_lengths: Tensor | None = None
    options: Mapping[str, float] = field(default_factory=dict)  # the loss's own (DPOLoss.options)
    nll: Tensor | None = None  # per example; its batch mean is the chosen answers' token-mean NLL

    @property
    def h(self) -> Tensor:
        """chosen - rejected log-ratio."""
        return self.chosen - self.rejected


@dataclass(frozen=True)
class UnpairedLogRatios:
    """What an unpaired loss (KTO) reads: each completion's log-ratio, whether it is desirable,
    and the batch's KL estimate (detached)."""

    logratios: Tensor
    desirable: Tensor  # bool, (batch,)
    kl: Tensor  # scalar
    beta: float
    options: Mapping[str, float] = field(default_factory=dict)


DPOLossFn = Callable[[LogRatios], Tensor]

#: the NLL a loss adds on the chosen answers: over the completion tokens (CPO) or over the whole
#: prompt + completion sequence (ORPO, as TRL computes it and the ORPO authors' code does)
NLL_SPANS = ("completion", "sequence")


@dataclass(frozen=True)
class DPOLoss:
    """A preference loss and what it needs."""

    fn: DPOLossFn | Callable[[UnpairedLogRatios], Tensor]
    label_smoothing: bool = False  # uses label_smoothing (else it must be 0)
    reference: bool = True  # needs the reference log-probs (else the caller may skip that pass)
    normalise: bool = False  # log-probs divided by completion length, in loss and rewards
    nll: str | None = None  # one of NLL_SPANS: the NLL term on the chosen answers it adds
    options: Mapping[str, float] = field(default_factory=dict)  # its own hyperparameters: defaults
    unpaired: bool = False  # reads (prompt, completion, label) rows, not pairs (kto_loss)


#: every preference loss by name; `--model.loss_type` accepts exactly these
DPO_LOSSES: dict[str, DPOLoss] = {}

#: the hyperparameters a loss may take besides beta and label_smoothing: the check of a value
OPTION_CHECKS: dict[str, tuple[Callable[[float], bool], str]] = {
    "simpo_gamma": (lambda v: v >= 0, "must be >= 0"),  # SimPO's target reward margin
    "cpo_alpha": (lambda v: v >= 0, "must be >= 0"),  # weight of CPO's NLL term
    "desirable_weight": (lambda v: v > 0, "must be > 0"),  # KTO's per-class weights
    "undesirable_weight": (lambda v: v > 0, "must be > 0"),
}


class LossConfigError(ValueError):
    """A bad loss hyperparameter; ``field`` names it (loss_type, beta, label_smoothing, ...)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def register_dpo_loss(
    name: str,
    *,
    label_smoothing: bool = False,
    reference: bool = True,
    normalise: bool = False,
    nll: str | None = None,
    options: Mapping[str, float] | None = None,
    unpaired: bool = False,
) -> Callable[[DPOLossFn], DPOLossFn]:
    """Decorator adding a loss function to :data:`DPO_LOSSES` under `name`."""
    unknown = set(options or {}) - set(OPTION_CHECKS)
    if unknown or nll not in (None, *NLL_SPANS):
        raise ValueError(f"DPO loss {name!r}: unknown option {sorted(unknown) or nll!r}")

    def add(fn: DPOLossFn) -> DPOLossFn:
        if name in DPO_LOSSES:
            raise ValueError(f"DPO loss {name!r} is already registered")
        DPO_LOSSES[name] = DPOLoss(
            fn, label_smoothing, reference, normalise, nll, dict(options or {}), unpaired
        )
        return fn

    return add


def check_dpo_loss(
    loss_type: str,
    beta: float,
    label_smoothing: float = 0.0,
    options: Mapping[str, float | None] | None = None,
) -> DPOLoss:
    """The registered loss `loss_type`, after checking its hyperparameters (LossConfigError).

    `options` are the hyperparameters of :data:`OPTION_CHECKS` as given (None: not given, the
    loss's default); one the loss does not use must not be given."""
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
    for name, value in (options or {}).items():
        if value is None:
            continue
        if name not in spec.options:
            users = ", ".join(k for k, v in DPO_LOSSES.items() if name in v.options)
            raise LossConfigError(
                name, f"the '{loss_type}' loss does not use it (got {value}; used by: {users})"
            )
        valid, problem = OPTION_CHECKS[name]
        if not valid(value):
            raise LossConfigError(name, f"{problem}, got {value}")
    return spec


def loss_options(loss_type: str, given: Mapping[str, float | None] | None = None) -> dict:
    """The options of `loss_type`: its defaults, overridden by those given (not None)."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    return {**DPO_LOSSES[loss_type].options, **given}
