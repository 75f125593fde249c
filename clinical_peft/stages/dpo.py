"""PreferenceOptimization: DPO of a LoRA policy on prompt/chosen/rejected triples (study B, step 2),
or any loss of the registry (`clinical_peft.stages.losses`): the reference-free SimPO, CPO and
ORPO, which run no reference pass at all, and KTO on unpaired (prompt, completion, label) rows
(the `kto` stage: the same module on `UnpairedPreferenceDataModule`).

The reference is the same network, never a second copy: with the policy adapter switched off
when DPO starts from the base model, or, when it starts from an SFT adapter (as the study did),
that adapter loaded a second time as the frozen "reference" beside the trainable policy copy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from peft import PeftConfig, PeftModel
from torchmetrics import SumMetric

from clinical_peft.data.cache import file_stamp
from clinical_peft.data.contracts import PreferenceData
from clinical_peft.data.loader import is_filler
from clinical_peft.models.backbone import (
    REFERENCE_ADAPTER,
    add_adapter,
    config_record,
    default_lora,
    load_causal_lm,
    load_policy_and_reference,
    token_logits,
    use_adapter,
)
from clinical_peft.stages.base import AdapterStage
from clinical_peft.stages.generation import GenerationEvaluation
from clinical_peft.stages.kto import check_data_kind, unpaired_forward
from clinical_peft.stages.logps import completion_token_logps, token_logps
from clinical_peft.stages.losses import (
    LossConfigError,
    check_dpo_loss,
    dpo_loss,
)
from clinical_peft.util.atomic import write_atomic
from clinical_peft.util.errors import InputError

log = logging.getLogger(__name__)

#: logged as `train/<key>` and `val/<key>`
STAT_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
             "rewards/accuracies", "logps/chosen", "logps/rejected")  # fmt: skip
#: those of an unpaired loss (KTO): a row is desirable (chosen) or not (rejected), never both
UNPAIRED_STAT_KEYS = ("loss", "kl", "rewards/chosen", "rewards/rejected", "logps/chosen",
                      "logps/rejected")  # fmt: skip


class PreferenceOptimization(GenerationEvaluation, AdapterStage):
    data_protocol = PreferenceData

    def __init__(
        self,
        base_model: str,
        adapter: PeftConfig | None = None,
        sft_adapter: str | None = None,
        beta: float = 0.1,
        loss_type: str = "sigmoid",
        label_smoothing: float = 0.0,
        simpo_gamma: float | None = None,
        cpo_alpha: float | None = None,
        desirable_weight: float | None = None,
        undesirable_weight: float | None = None,
        precompute_reference: bool = False,
        max_new_tokens: int | None = None,
        evaluate_base: bool = True,
        disable_dropout: bool = True,
        quantization: str = "none",
        **kwargs,
    ) -> None:
        """
        Args:
            base_model: folder of a local Hugging Face causal LM.
            adapter: the PEFT method of a fresh policy (unused with `sft_adapter`).
            sft_adapter: adapter folder of an SFT run (e.g. runs/sft/triage/adapter): it becomes
                the frozen reference, and the policy starts as a copy of it.
            beta: strength of the implicit KL penalty (the study: 0.1, 0.3, 0.5).
            loss_type: a loss of `clinical_peft.stages.losses.DPO_LOSSES` (sigmoid: DPO).
            label_smoothing: assumed share of flipped preferences (for the losses that use it).
            simpo_gamma: SimPO's target reward margin (default 0.5).
            cpo_alpha: weight of the NLL on the chosen answers (cpo: default 1; simpo: 0).
            desirable_weight, undesirable_weight: KTO's weights of the two kinds of row
                (default 1 each; KTO's authors suggest keeping weight x count of the two within
                1 to 4/3 of each other).
            precompute_reference: compute reference log-probs once before training, cached on
                disk beside the tokenized data; training then needs one forward per step.
            max_new_tokens: cap on generated tokens at evaluation (default: per task).
            evaluate_base: also score the starting model by generation (before training).
            disable_dropout: set every dropout to 0 (TRL's default): with dropout the policy's
                and the reference's log-probs are noisy, and they differ even at step 0.
            quantization: the frozen base in 4-bit NF4 or 8-bit (QLoRA; needs bitsandbytes),
                or none (`clinical_peft.models.quantization`).
            **kwargs: what every stage takes (`AdapterStage`: optim, dtype, ...).
        """
        super().__init__(base_model, **kwargs)  # optim, dtype, ... (AdapterStage)
        dtype, gradient_checkpointing = self.dtype_name, self.gradient_checkpointing
        self.loss_options = {"simpo_gamma": simpo_gamma, "cpo_alpha": cpo_alpha,
                             "desirable_weight": desirable_weight,
                             "undesirable_weight": undesirable_weight}  # fmt: skip
        try:
            self.loss = check_dpo_loss(loss_type, beta, label_smoothing, self.loss_options)
        except LossConfigError as err:
            raise InputError(f"model.{err.field}", err.problem) from None
        adapter = adapter or default_lora()
        self.save_hyperparameters(
            {"base_model": base_model, "adapter": config_record(adapter), "sft_adapter": sft_adapter,
             "beta": beta, "loss_type": loss_type, "label_smoothing": label_smoothing,
             **{k: v for k, v in self.loss_options.items() if v is not None}, "dtype": dtype,
             "quantization": quantization}
        )  # fmt: skip
        self.quantization = quantization
        self.beta, self.loss_type, self.label_smoothing = beta, loss_type, label_smoothing
        self.stat_keys = UNPAIRED_STAT_KEYS if self.loss.unpaired else STAT_KEYS
        self.sft_adapter = sft_adapter
        self.precompute_reference, self.max_new_tokens = precompute_reference, max_new_tokens
        self.evaluate_base = evaluate_base
        base = load_causal_lm(
            base_model, dtype, gradient_checkpointing=gradient_checkpointing,
            quantization=quantization, attn_implementation=self.attn_implementation,
        )  # fmt: skip
        if sft_adapter:
            self.model = load_policy_and_reference(base, sft_adapter)
        else:
            self.model = add_adapter(base, adapter)
            if rank_zero_only.rank == 0:
                log.warning(
                    "no model.sft_adapter: the policy is a fresh adapter and the base model its "
                    "reference (the paper starts preference tuning from an SFT run's adapter: "
                    "`make sft` first, or --model.sft_adapter runs/sft/<task>/adapter)"
                )
        if disable_dropout:
            for module in self.model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        self.fused_head = fused_head_applies(self.model)
        names = [k.replace("/", "_") for k in self.stat_keys]
        self.val_sums = torch.nn.ModuleDict({k: SumMetric() for k in names})
        self.val_counts = torch.nn.ModuleDict({k: SumMetric() for k in names})
        self.reference_cache: dict[str, torch.Tensor] | None = None

    # --- log-probs ------------------------------------------------------------------------
    def token_logps(self, batch: dict, labels: torch.Tensor) -> torch.Tensor:
        """Log-probs of `labels` at every predicted position (0 where -100), (rows, tokens - 1).

        The LM head runs on the labelled positions only (see `completion_token_logps`): the
        (rows, tokens, vocab) logits of the whole batch are never built.
        """
        if not self.fused_head:
            return token_logps(token_logits(self.model, batch), labels)
        lm = self.model.get_base_model()  # the adapter's layers live inside it
        hidden = lm.base_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).last_hidden_state
        return completion_token_logps(hidden, labels, lm.get_output_embeddings())

    def sequence_logps(self, batch: dict) -> torch.Tensor:
        """Summed completion log-probs of every row (chosen rows first, then rejected)."""
        return self.token_logps(batch, batch["labels"]).sum(dim=1)

    def policy_logps(self, batch: dict) -> tuple[torch.Tensor, tuple | None]:
        """The policy's summed completion log-probs, and for a loss whose NLL spans the whole
        sequence (ORPO) the (NLL sums, token counts) of the chosen rows' prompt + completion,
        from the same forward pass."""
        if self.loss.nll != "sequence":
            return self.sequence_logps(batch), None
        n = batch["input_ids"].shape[0] // 2
        labels = batch["labels"].clone()
        labels[:n] = batch["input_ids"][:n].masked_fill(batch["attention_mask"][:n] == 0, -100)
        per_token = self.token_logps(batch, labels)
        completion = batch["labels"][:, 1:] != -100
        policy = (per_token * completion).sum(dim=1)
        return policy, (-per_token[:n].sum(dim=1), (labels[:n, 1:] != -100).sum(dim=1))

    def reference_logps(self, batch: dict, split: str | None = None) -> torch.Tensor:
        if self.reference_cache is not None and split in self.reference_cache:
            rows = self.reference_cache[split][batch["index"].cpu()]  # (batch, [chosen, rejected])
            return torch.cat([rows[:, 0], rows[:, 1]]).to(self.device)
        switch = (use_adapter(self.model, REFERENCE_ADAPTER) if self.sft_adapter
                  else self.model.disable_adapter())  # fmt: skip
        with torch.no_grad(), switch:
            return self.sequence_logps(batch)

    def forward(self, batch: dict, split: str | None = None) -> dict[str, torch.Tensor]:
        """Per-example loss and statistics of a collated batch."""
        if self.loss.unpaired:
            return self.unpaired_forward(batch, split)
        # the reference first, so its transient activations never coexist with the policy's graph
        reference = self.reference_logps(batch, split) if self.loss.reference else None
        policy, chosen_nll = self.policy_logps(batch)
        if reference is None:  # a reference-free loss: log-ratios are the policy's log-probs
            reference = torch.zeros_like(policy)
        n = policy.shape[0] // 2
        lengths = (batch["labels"][:, 1:] != -100).sum(dim=1)
        losses, chosen, rejected = dpo_loss(
            policy[:n], policy[n:], reference[:n], reference[n:],
            beta=self.beta, loss_type=self.loss_type, label_smoothing=self.label_smoothing,
            chosen_lengths=lengths[:n], rejected_lengths=lengths[n:], chosen_nll=chosen_nll,
            options=self.loss_options,
        )  # fmt: skip
        return {
            "loss": losses,
            "rewards/chosen": chosen,
            "rewards/rejected": rejected,
            "rewards/margins": chosen - rejected,
            "rewards/accuracies": (chosen > rejected).float(),
            "logps/chosen": policy[:n].detach(),
            "logps/rejected": policy[n:].detach(),
        }

    def unpaired_forward(self, batch: dict, split: str | None) -> dict[str, torch.Tensor]:
        return unpaired_forward(self, batch, split)

    def setup(self, stage: str) -> None:
        check_data_kind(self, getattr(self.trainer, "datamodule", None))

    # --- steps ----------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        stats = self(batch, "train")
        for key in self.stat_keys:
            if stats[key].numel():  # (a KTO batch may hold no desirable row, or no undesirable)
                self.log(f"train/{key}", stats[key].detach().mean(), prog_bar=key == "loss")
        return stats["loss"].mean()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        stats = self(batch, "val")
        if is_filler(batch):
            return
        for key in self.stat_keys:
            name = key.replace("/", "_")
            self.val_sums[name].update(stats[key].detach().sum())
            self.val_counts[name].update(stats[key].numel())

    def on_validation_epoch_end(self) -> None:
        # means over the whole split and all ranks, not means of batch means
        for key in self.stat_keys:
            name = key.replace("/", "_")
            total, count = self.val_sums[name].compute(), self.val_counts[name].compute()
            self.log(f"val/{key}", total / count.clamp(min=1), prog_bar=key == "loss")
            self.val_sums[name].reset()
            self.val_counts[name].reset()

    # --- precomputed reference -------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.precompute_reference and self.loss.reference and self.reference_cache is None:
            self.reference_cache = self.load_or_compute_reference(self.trainer.datamodule)

    def load_or_compute_reference(self, datamodule) -> dict[str, torch.Tensor]:
        """Reference log-probs (rows: examples; columns: chosen, rejected) of train and val,
        cached under the data cache, keyed by the reference network and the tokenized data."""
        model_dir = Path(self.base_model_path)
        reference = [file_stamp(p) for p in sorted(model_dir.glob("*.safetensors"))]
        if self.sft_adapter:
            reference += [
                file_stamp(p) for p in sorted(Path(self.sft_adapter).glob("adapter_model*"))
            ]
        path = datamodule.cache_file(
            "reference_logps", {"reference": reference, "dtype": self.dtype_name}
        )
        if path.is_file():
            return torch.load(path, weights_only=True)
        cache = {}
        for split in ("train", "val"):  # every rank computes all rows: simple, done once
            rows = []
            for batch in datamodule.unsharded_batches(split):
                batch = {k: v.to(self.device) for k, v in batch.items()}
                logps = self.reference_logps(batch).float().cpu()
                rows.append(torch.stack(logps.chunk(2), dim=1))
            cache[split] = torch.cat(rows)
        write_atomic(path, lambda tmp: torch.save(cache, tmp))
        log.info("reference log-probs cached in %s", path)
        return cache

    # --- run directory --------------------------------------------------------------------
    def save_adapters(self, folder: Path) -> None:
        """The policy only, as a plain peft adapter folder (the reference is the SFT adapter)."""
        self.model.save_pretrained(folder, selected_adapters=["default"])


#: config fields that rescale the logits after the LM head (TRL's fused head reads the same)
_LOGIT_SCALING = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier",
                  "lm_head_multiplier")  # fmt: skip


def fused_head_applies(model: PeftModel) -> bool:
    """Whether the logits are exactly the LM head of the backbone's last hidden states, so that
    log-probs can be taken from the hidden states: not under prompt-learning adapters (virtual
    tokens in front) nor for models that rescale their logits."""
    if model.active_peft_config.is_prompt_learning:
        return False
    config = model.get_base_model().config.get_text_config()
    return all(getattr(config, key, None) in (None, 1.0) for key in _LOGIT_SCALING)
