"""SupervisedFineTuning: a LoRA policy on prompt -> completion pairs, loss on completions only
(study B, step 1). Evaluated by greedy generation on the test split, before and after."""

from __future__ import annotations

from dataclasses import asdict

import torch

from clinical_peft.backbone import (
    AdapterSpec,
    add_adapter,
    check_method,
    check_packing,
    load_causal_lm,
    token_logits,
)
from clinical_peft.data.loader import is_filler
from clinical_peft.generation import GenerationEvaluation
from clinical_peft.losses import causal_lm_loss_sums
from clinical_peft.metrics import TokenWeightedLoss
from clinical_peft.stages.base import AdapterStage, OptimSpec


class SupervisedFineTuning(GenerationEvaluation, AdapterStage):
    def __init__(
        self,
        base_model: str = "cache/tiny-llama",
        adapter: AdapterSpec | None = None,
        optim: OptimSpec | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        max_new_tokens: int | None = None,
        evaluate_base: bool = True,
    ) -> None:
        """
        Args:
            base_model: folder of a local Hugging Face causal LM (e.g. Llama-3-8B-Instruct, or
                the built-in tiny LLaMA).
            adapter: the PEFT method of the policy (the study trained all weights; LoRA here).
            optim: optimizer and learning-rate schedule.
            dtype: weights of the frozen base: float32, bfloat16 or float16.
            gradient_checkpointing: recompute activations in backward to save memory.
            max_new_tokens: cap on generated tokens at evaluation (default: per task).
            evaluate_base: also score the untrained model by generation (the table's "base").
        """
        super().__init__(optim)
        adapter = adapter or AdapterSpec()
        check_method(adapter.method)
        self.save_hyperparameters(
            {"base_model": base_model, "adapter": asdict(adapter), "dtype": dtype}
        )
        self.max_new_tokens, self.evaluate_base = max_new_tokens, evaluate_base
        base = load_causal_lm(base_model, dtype, gradient_checkpointing=gradient_checkpointing)
        self.model = add_adapter(base, adapter)
        self.val_loss = TokenWeightedLoss()

    def setup(self, stage: str) -> None:
        if getattr(self.trainer.datamodule, "packing", False):
            check_packing(self.model, "data.packing", "set it to false")

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed NLL of the completion tokens (labels -100 elsewhere) and their count."""
        return causal_lm_loss_sums(token_logits(self.model, batch), batch["labels"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        nll, tokens = self(batch)
        loss = nll / tokens.clamp(min=1)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        nll, tokens = self(batch)
        if not is_filler(batch):
            self.val_loss.update(nll, tokens)

    def on_validation_epoch_end(self) -> None:
        loss, _ = self.val_loss.compute_and_reset()  # token-weighted over the split and ranks
        self.log("val/loss", loss, prog_bar=True)
