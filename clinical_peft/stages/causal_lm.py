"""What pretraining and SFT share: one causal LM from the backbone factory under one adapter,
trained on the summed NLL of the labelled tokens and scored token-weighted over whole splits."""

from __future__ import annotations

import torch
from peft import PeftConfig

from clinical_peft.data.loader import is_filler
from clinical_peft.metrics.outcomes import TokenWeightedLoss
from clinical_peft.models.backbone import (
    add_adapter,
    config_record,
    default_lora,
    load_causal_lm,
    token_logits,
)
from clinical_peft.stages.base import AdapterStage
from clinical_peft.stages.losses import causal_lm_loss_sums


class CausalLMStage(AdapterStage):
    def __init__(
        self,
        base_model: str,
        adapter: PeftConfig | None = None,
        quantization: str = "none",
        **kwargs,
    ) -> None:
        """
        Args:
            base_model: folder of a local Hugging Face causal LM.
            adapter: a peft config (YAML: `class_path: peft.LoraConfig` + `init_args`; any peft
                config class); default: the paper's LoRA (r 16, alpha 32, q_proj and v_proj).
            quantization: the frozen base in 4-bit NF4 or 8-bit (QLoRA; needs bitsandbytes),
                or none (`clinical_peft.models.quantization`).
            **kwargs: what every stage takes (`AdapterStage`: optim, dtype, ...).
        """
        super().__init__(base_model, **kwargs)
        dtype, gradient_checkpointing = self.dtype_name, self.gradient_checkpointing
        adapter = adapter or default_lora()
        self.save_hyperparameters(
            {"base_model": base_model, "adapter": config_record(adapter), "dtype": dtype,
             "quantization": quantization}
        )  # fmt: skip
        self.quantization = quantization
        base = load_causal_lm(
            base_model, dtype, gradient_checkpointing=gradient_checkpointing,
            quantization=quantization, attn_implementation=self.attn_implementation,
        )  # fmt: skip
        self.model = add_adapter(base, adapter)
        self.train_loss, self.val_loss = TokenWeightedLoss(), TokenWeightedLoss()

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed NLL of the labelled tokens (labels -100 elsewhere) and their count."""
        return causal_lm_loss_sums(token_logits(self.model, batch), batch["labels"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        nll, tokens = self(batch)
        self.train_loss.update(nll, tokens)
        loss = nll / tokens.clamp(min=1)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        nll, tokens = self(batch)
        if not is_filler(batch):
            self.val_loss.update(nll, tokens)

    def on_validation_epoch_end(self) -> None:
        loss, ppl = self.val_loss.compute_and_reset()  # token-weighted over the split and ranks
        self.log_dict({"val/loss": loss, "val/ppl": ppl}, prog_bar=True)
