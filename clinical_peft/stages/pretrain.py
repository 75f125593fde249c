"""DomainAdaptation: train a PEFT adapter on clinical notes as a causal LM (study A, stage 1)."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from torchmetrics import SumMetric

from clinical_peft.backbone import AdapterSpec, add_adapter, check_method, load_causal_lm
from clinical_peft.stages.base import AdapterStage, OptimSpec


class TokenWeightedLoss(torch.nn.Module):
    """Sum of token losses and token count over a whole split (synced across ranks).

    Perplexity is exp(total loss / total tokens): batches with more tokens weigh more, which a
    mean of per-batch perplexities would get wrong.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loss_sum, self.tokens = SumMetric(), SumMetric()

    def update(self, mean_loss: torch.Tensor, labels: torch.Tensor) -> None:
        tokens = (labels[:, 1:] != -100).sum()  # the model predicts every label but the first
        self.loss_sum.update(mean_loss.detach().float() * tokens)
        self.tokens.update(tokens)

    def compute_and_reset(self) -> tuple[float, float]:
        loss = (self.loss_sum.compute() / self.tokens.compute()).item()
        self.loss_sum.reset()
        self.tokens.reset()
        return loss, math.exp(min(loss, 50.0))


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
        base = load_causal_lm(base_model, dtype)
        if gradient_checkpointing:
            base.gradient_checkpointing_enable()
            base.enable_input_require_grads()
        self.model = add_adapter(base, adapter)
        self.train_loss, self.val_loss = TokenWeightedLoss(), TokenWeightedLoss()

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(**batch).loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self(batch)
        self.train_loss.update(loss, batch["labels"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        loss, ppl = self.train_loss.compute_and_reset()
        self.log_dict({"train/epoch_loss": loss, "train/ppl": ppl}, sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_loss.update(self(batch), batch["labels"])

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
