"""DomainAdaptation: train a PEFT adapter on clinical notes as a causal LM (study A, stage 1)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import lightning as L
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
from clinical_peft.losses import causal_lm_loss_sums
from clinical_peft.metrics import TokenWeightedLoss
from clinical_peft.stages.base import AdapterStage, OptimSpec


class DomainAdaptation(AdapterStage):
    def __init__(
        self,
        base_model: str = "cache/tiny-llama",
        adapter: AdapterSpec | None = None,
        optim: OptimSpec | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
    ) -> None:
        """
        Args:
            base_model: folder of a local Hugging Face causal LM (a LLaMA checkpoint, or the
                built-in tiny LLaMA that `make tiny-model` writes).
            adapter: the PEFT method and its hyperparameters.
            optim: optimizer and learning-rate schedule.
            dtype: weights of the frozen base: float32, bfloat16 or float16.
            gradient_checkpointing: recompute activations in backward to save memory.
        """
        super().__init__(optim)
        adapter = adapter or AdapterSpec()
        check_method(adapter.method)
        self.save_hyperparameters(
            {"base_model": base_model, "adapter": asdict(adapter), "dtype": dtype}
        )
        self.base_model_path = base_model
        base = load_causal_lm(base_model, dtype, gradient_checkpointing=gradient_checkpointing)
        self.model = add_adapter(base, adapter)
        self.train_loss, self.val_loss = TokenWeightedLoss(), TokenWeightedLoss()

    def setup(self, stage: str) -> None:
        if getattr(self.trainer.datamodule, "mode", None) == "pack":
            check_packing(self.model, "data.mode", "use pad_per_note")

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed NLL of the labelled tokens and their count."""
        return causal_lm_loss_sums(token_logits(self.model, batch), batch["labels"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        nll, tokens = self(batch)
        self.train_loss.update(nll, tokens)
        loss = nll / tokens.clamp(min=1)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        loss, ppl = self.train_loss.compute_and_reset()
        self.log_dict({"train/epoch_loss": loss, "train/ppl": ppl}, sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        nll, tokens = self(batch)
        if not is_filler(batch):
            self.val_loss.update(nll, tokens)

    def on_validation_epoch_end(self) -> None:
        loss, ppl = self.val_loss.compute_and_reset()
        self.log_dict({"val/loss": loss, "val/ppl": ppl}, prog_bar=True, sync_dist=True)

    def evaluate_before_fit(self, trainer: L.Trainer, datamodule) -> dict[str, float]:
        (result,) = trainer.validate(self, datamodule=datamodule, verbose=False)
        return {"val/ppl_before": result["val/ppl"], "val/loss_before": result["val/loss"]}

    def evaluate_after_fit(self, trainer: L.Trainer, datamodule, run_dir: Path) -> dict:
        logged = trainer.callback_metrics  # read before validating replaces them
        train = {k: float(logged[k]) for k in ("train/ppl", "train/epoch_loss") if k in logged}
        result = self.validate_best(trainer, datamodule)  # and export the best weights
        return {"val/ppl": result["val/ppl"], "val/loss": result["val/loss"], **train}
