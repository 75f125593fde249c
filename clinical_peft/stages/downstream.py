"""OutcomePrediction: a classification head over the (adapter-stacked) backbone (study A, stage 2).

Backbone modes (YAML `model.clinical` x `model.downstream_lora`, see experiments/downstream/):
head only (none, false); LoRA (none, true); clinical adapter frozen or trainable (frozen |
trainable, false); each of those plus a downstream LoRA (frozen | trainable, true). Encoders
(BERT family) add full fine-tuning (`finetune_base: true`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import SumMetric

from clinical_peft.backbone import (
    AdapterSpec,
    load_sequence_classifier,
    stack_adapters,
)
from clinical_peft.data.loader import is_filler
from clinical_peft.errors import InputError
from clinical_peft.metrics import OutcomeScores
from clinical_peft.stages.base import AdapterStage, OptimSpec


def pool_chunks(logits: torch.Tensor, doc_index: torch.Tensor, n_docs: int) -> torch.Tensor:
    """Mean of the logits of each note's windows (one window per note when truncating)."""
    sums = logits.new_zeros((n_docs, logits.shape[1])).index_add_(0, doc_index, logits)
    counts = torch.bincount(doc_index, minlength=n_docs).clamp(min=1).to(logits.dtype)
    return sums / counts[:, None]


def probabilities(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """binary: P(positive) (N,); multiclass: softmax (N, C); multilabel: sigmoid (N, L)."""
    if kind == "multilabel":
        return torch.sigmoid(logits.float())
    probs = torch.softmax(logits.float(), dim=-1)
    return probs[:, 1] if kind == "binary" else probs


class OutcomePrediction(AdapterStage):
    def __init__(
        self,
        base_model: str = "cache/tiny-llama",
        kind: str = "multilabel",
        num_labels: int = 2,
        class_weights: list[float] | None = None,
        clinical: Literal["frozen", "trainable", "none"] = "frozen",
        clinical_adapter: str | None = "runs/pretrain/lora/adapter",
        downstream_lora: bool = True,
        downstream: AdapterSpec | None = None,
        finetune_base: bool = False,
        select_by: Literal["loss", "auroc"] = "loss",
        optim: OptimSpec | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
    ) -> None:
        """
        Args:
            base_model: folder of a local Hugging Face model: a LLaMA (decoder, pools the last
                non-pad token) or a BERT-family encoder (pools [CLS]).
            kind: binary, multiclass or multilabel (linked from the data module).
            num_labels: classes or labels (linked from the data module).
            class_weights: N / (C * count_c) of the train split (linked; None for multilabel).
            clinical: the clinical adapter from pretraining: frozen, trainable, or none.
            clinical_adapter: folder of the clinical adapter (`runs/pretrain/lora/adapter`).
            downstream_lora: add a fresh downstream LoRA (with the head in its modules_to_save).
            downstream: the downstream LoRA's hyperparameters (method must be lora).
            finetune_base: train every base weight (full fine-tuning; the encoder baselines).
            select_by: checkpoint for the test split: lowest val `loss` (the paper) or best
                val `auroc`.
            optim: optimizer and learning-rate schedule.
            dtype: weights of the frozen base: float32, bfloat16 or float16.
            gradient_checkpointing: recompute activations in backward to save memory.
        """
        super().__init__(optim)
        downstream = downstream or AdapterSpec(method="lora")
        if clinical not in ("frozen", "trainable", "none"):
            raise InputError("CLINICAL", f"unknown '{clinical}' (valid: frozen, trainable, none)")
        if select_by not in ("loss", "auroc"):
            raise InputError("model.select_by", f"unknown '{select_by}' (valid: loss, auroc)")
        if finetune_base and (clinical != "none" or downstream_lora):
            raise InputError(
                "model.finetune_base", "full fine-tuning needs clinical none and no LoRA"
            )
        if clinical != "none" and not clinical_adapter:
            raise InputError("model.clinical_adapter", f"needed with clinical '{clinical}'")
        self.save_hyperparameters(
            {
                "base_model": base_model, "kind": kind, "num_labels": num_labels,
                "class_weights": class_weights, "clinical": clinical,
                "clinical_adapter": clinical_adapter if clinical != "none" else None,
                "downstream_lora": downstream_lora, "downstream": asdict(downstream),
                "finetune_base": finetune_base, "select_by": select_by, "dtype": dtype,
            }
        )  # fmt: skip
        if select_by == "auroc":
            self.monitor, self.monitor_mode = "val/auroc", "max"
        self.kind = kind
        # A binary task has a two-class head, as the paper's weighted cross-entropy needs.
        model = load_sequence_classifier(
            base_model, num_labels, dtype, gradient_checkpointing=gradient_checkpointing
        )
        if finetune_base:
            model.requires_grad_(True)
        self.model = stack_adapters(
            model,
            clinical_adapter if clinical != "none" else None,
            clinical_trainable=clinical == "trainable",
            downstream=downstream if downstream_lora else None,
        )
        weights = torch.tensor(class_weights) if class_weights else None
        self.register_buffer("class_weight", weights, persistent=False)
        self.loss_sum, self.loss_count = SumMetric(), SumMetric()
        self.scores = OutcomeScores(kind, 1 if kind == "binary" else num_labels)
        self._collect: dict | None = None

    def forward(self, batch: dict) -> torch.Tensor:
        """Logits per note (chunk logits averaged in `chunks` mode)."""
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return pool_chunks(out.logits.float(), batch["doc_index"], len(batch["labels"]))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.cross_entropy(logits, labels, weight=self.class_weight)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def _eval_step(self, batch: dict) -> None:
        logits = self(batch)
        if is_filler(batch):
            return
        n = len(batch["labels"])
        self.loss_sum.update(self.loss(logits, batch["labels"]).detach() * n)
        self.loss_count.update(torch.tensor(float(n), device=logits.device))
        probs = probabilities(logits, self.kind)
        self.scores.update(probs, batch["labels"])
        if self._collect is not None:
            self._collect["ids"] += list(batch["ids"])
            self._collect["scores"].append(probs.detach().cpu().numpy())
            self._collect["labels"].append(batch["labels"].cpu().numpy())

    def _eval_end(self, split: str) -> None:
        loss = (self.loss_sum.compute() / self.loss_count.compute()).item()
        self.scores.split = split  # named in the warning about non-finite scores
        metrics = {f"{split}/{k}": v for k, v in self.scores.compute().items()}
        self.log_dict({f"{split}/loss": loss, **metrics}, prog_bar=split == "val")
        for metric in (self.loss_sum, self.loss_count, self.scores):
            metric.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def evaluate_after_fit(self, trainer: L.Trainer, datamodule, run_dir: Path) -> dict:
        metrics: dict = {}
        for split in ("val", "test"):
            self._collect = {"ids": [], "scores": [], "labels": []}
            if split == "val":  # the paper: test with the lowest-val-loss checkpoint
                result = self.validate_best(trainer, datamodule)
            else:
                (result,) = trainer.test(self, datamodule=datamodule, verbose=False)
            metrics.update({k: float(v) for k, v in result.items()})
            self._write_predictions(trainer, run_dir / "predictions", split)
            self._collect = None
        metrics.update({k: float(v) for k, v in datamodule.stats.items()})
        return metrics

    def _write_predictions(self, trainer: L.Trainer, folder: Path, split: str) -> None:
        """predictions/{split}.npz (ids, scores, labels over the whole split) and an ROC plot."""
        part = {
            "ids": self._collect["ids"],
            "scores": np.concatenate(self._collect["scores"]),
            "labels": np.concatenate(self._collect["labels"]),
        }
        if trainer.world_size > 1:  # gather every rank's shard of the split
            parts = [None] * trainer.world_size
            torch.distributed.all_gather_object(parts, part)
            part = {
                "ids": [i for p in parts for i in p["ids"]],
                "scores": np.concatenate([p["scores"] for p in parts]),
                "labels": np.concatenate([p["labels"] for p in parts]),
            }
        if not trainer.is_global_zero:
            return
        ids = np.array(part["ids"])
        if all(str(i).isdigit() for i in part["ids"]):
            ids = ids.astype(np.int64)
        labels = part["labels"].astype(np.int64)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / f"{split}.npz", ids=ids, scores=part["scores"], labels=labels)
        plot_roc(part["scores"], labels, self.kind, folder / f"{split}_roc.png", split)

    def save_adapters(self, folder: Path) -> None:
        """Adapters in peft's format (adapter/clinical, adapter/downstream); a head that no
        adapter holds goes to adapter/head.safetensors."""
        from safetensors.torch import save_file

        if hasattr(self.model, "peft_config") or self.hparams.finetune_base:
            self.model.save_pretrained(folder)  # full fine-tuning saves the whole model
        if not self.hparams.downstream_lora and not self.hparams.finetune_base:
            head = {
                name: param.detach().contiguous()
                for name, param in self.model.named_parameters()
                if param.requires_grad and ".clinical" not in name
            }
            folder.mkdir(parents=True, exist_ok=True)
            save_file(head, folder / "head.safetensors")


def plot_roc(scores: np.ndarray, labels: np.ndarray, kind: str, path: Path, title: str) -> None:
    """ROC curve: binary, or micro-average over classes / labels (one-hot vs probabilities)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    if kind == "multiclass":
        labels = np.eye(scores.shape[1], dtype=np.int64)[labels]
    s, y = torch.from_numpy(scores.reshape(-1)).double(), torch.from_numpy(labels.reshape(-1))
    fig, ax = plt.subplots(figsize=(4, 4))
    if 0 < int(y.sum()) < y.numel():
        fpr, tpr, _ = binary_roc(s, y)
        auc = float(binary_auroc(s, y))
        label = "AUROC" if kind == "binary" else "micro AUROC"
        ax.plot(fpr.numpy(), tpr.numpy(), label=f"{label} {auc:.3f}")
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title} ({kind})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
