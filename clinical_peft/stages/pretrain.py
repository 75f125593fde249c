"""DomainAdaptation: train a PEFT adapter on clinical notes as a causal LM (study A, stage 1)."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from clinical_peft.data.contracts import NotesData
from clinical_peft.models.backbone import check_packing
from clinical_peft.stages.causal_lm import CausalLMStage


class DomainAdaptation(CausalLMStage):
    """Held-out perplexity before and after, train perplexity per epoch (see CausalLMStage)."""

    data_protocol = NotesData

    def setup(self, stage: str) -> None:
        if getattr(self.trainer.datamodule, "mode", None) == "pack":
            check_packing(self.model, "data.mode", "use pad_per_note")

    def on_train_epoch_end(self) -> None:
        loss, ppl = self.train_loss.compute_and_reset()
        self.log_dict({"train/epoch_loss": loss, "train/ppl": ppl}, sync_dist=True)

    def evaluate_before_fit(self, trainer: L.Trainer, datamodule) -> dict[str, float]:
        (result,) = trainer.validate(self, datamodule=datamodule, verbose=False)
        return {"val/ppl_before": result["val/ppl"], "val/loss_before": result["val/loss"]}

    def evaluate_after_fit(self, trainer: L.Trainer, datamodule, run_dir: Path) -> dict:
        logged = trainer.callback_metrics  # read before validating replaces them
        train = {k: float(logged[k]) for k in ("train/ppl", "train/epoch_loss") if k in logged}
        result = self.validate_best(trainer, datamodule)  # and export the best weights
        data = {f"data/{k}": float(v) for k, v in getattr(datamodule, "stats", {}).items()}
        return {"val/ppl": result["val/ppl"], "val/loss": result["val/loss"], **train, **data}
