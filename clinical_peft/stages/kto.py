"""KTO in the preference stage: the forward pass of an unpaired loss (rows of prompt, completion
and a desirable / undesirable label; `UnpairedPreferenceDataModule`), and the check that a loss
gets the kind of rows it reads. Functions of the stage (`PreferenceOptimization`)."""

from __future__ import annotations

import torch

from clinical_peft.stages.losses import DPO_LOSSES, kto_kl, kto_loss
from clinical_peft.util.errors import InputError


def unpaired_forward(stage, batch: dict, split: str | None) -> dict[str, torch.Tensor]:
    """KTO on rows of (prompt, completion, label): the batch holds the completions, then
    the same prompts with mismatched completions, whose log-ratios estimate the KL term."""
    reference = stage.reference_logps(batch, split)
    n = batch["label"].shape[0]
    matched, mismatched = ({k: batch[k][rows] for k in ROW_KEYS}
                           for rows in (slice(None, n), slice(n, None)))  # fmt: skip
    policy = stage.sequence_logps(matched)
    with torch.no_grad():  # the KL estimate is detached: no graph for its rows
        policy_kl = stage.sequence_logps(mismatched)
    # mean over ranks in training (every rank runs every step); validation keeps its own
    kl = kto_kl(policy_kl, reference[n:], mean_over_ranks if split == "train" else _same)
    losses, rewards = kto_loss(
        policy, reference[:n], kl, batch["label"], stage.beta, stage.loss_type,
        stage.loss_options,
    )  # fmt: skip
    good = batch["label"].bool()
    return {
        "loss": losses,
        "kl": kl.reshape(1),
        "rewards/chosen": rewards[good],
        "rewards/rejected": rewards[~good],
        "logps/chosen": policy[good].detach(),
        "logps/rejected": policy[~good].detach(),
    }


def check_data_kind(stage, datamodule) -> None:
    """Refuse a data module whose rows are not the kind the stage's loss reads."""
    unpaired = getattr(datamodule, "unpaired", False)
    if datamodule is None or unpaired == stage.loss.unpaired:
        return
    kinds = {True: "unpaired rows (prompt, completion, label)",
             False: "pairs (prompt, chosen, rejected)"}  # fmt: skip
    fitting = ", ".join(k for k, v in DPO_LOSSES.items() if v.unpaired == unpaired)
    raise InputError(
        "model.loss_type",
        f"the '{stage.loss_type}' loss reads {kinds[stage.loss.unpaired]}; "
        f"{type(datamodule).__name__} holds {kinds[unpaired]} (losses for those: {fitting})",
    )


#: the batch entries with one row per sequence (matched rows, then mismatched, in KTO)
ROW_KEYS = ("input_ids", "attention_mask", "labels")


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over all ranks (itself in a single process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    total = value.clone()
    torch.distributed.all_reduce(total)  # a sum: gloo has no average
    return total / torch.distributed.get_world_size()


def _same(value: torch.Tensor) -> torch.Tensor:
    return value
