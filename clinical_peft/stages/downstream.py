"""OutcomePrediction: a classification head over the (adapter-stacked) backbone (study A, stage 2).

Backbone modes (YAML `model.clinical` x `model.downstream_lora`, see experiments/downstream/):
head only (none, false); LoRA (none, true); clinical adapter frozen or trainable (frozen |
trainable, false); each of those plus a downstream LoRA (frozen | trainable, true). Encoders
(BERT family) add full fine-tuning (`finetune_base: true`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig
from torchmetrics import SumMetric

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.data.contracts import OutcomeData
from clinical_peft.data.framing import framing_record
from clinical_peft.data.loader import is_filler
from clinical_peft.metrics.outcomes import OutcomeScores
from clinical_peft.metrics.predictions import write_predictions
from clinical_peft.models.backbone import config_record, default_lora, is_encoder
from clinical_peft.models.classifier import (
    head_names,
    load_sequence_classifier,
    needs_left_padding,
    stack_adapters,
)
from clinical_peft.stages.base import AdapterStage
from clinical_peft.stages.outcome_report import clinical_after_fit
from clinical_peft.util.atomic import write_json
from clinical_peft.util.errors import InputError


def pool_chunks(logits: torch.Tensor, doc_index: torch.Tensor, n_docs: int) -> torch.Tensor:
    """Mean of the logits of each note's windows (one window per note when truncating)."""
    sums = logits.new_zeros((n_docs, logits.shape[1])).index_add_(0, doc_index, logits)
    counts = torch.bincount(doc_index, minlength=n_docs).clamp(min=1).to(logits.dtype)
    return sums / counts[:, None]


def pad_left(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Right-padded rows moved to the right end, so the last position is the last real token."""
    width = input_ids.shape[1]
    shift = width - attention_mask.sum(dim=1, keepdim=True)
    index = (torch.arange(width, device=input_ids.device) - shift) % width
    return input_ids.gather(1, index), attention_mask.gather(1, index)


def probabilities(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """binary: P(positive) (N,); multiclass: softmax (N, C); multilabel: sigmoid (N, L)."""
    if kind == "multilabel":
        return torch.sigmoid(logits.float())
    probs = torch.softmax(logits.float(), dim=-1)
    return probs[:, 1] if kind == "binary" else probs


class OutcomePrediction(AdapterStage):
    data_protocol = OutcomeData

    def __init__(
        self,
        base_model: str,
        kind: str = "multilabel",
        num_labels: int = 2,
        class_weights: list[float] | None = None,
        clinical: Literal["frozen", "trainable", "none"] = "frozen",
        clinical_adapter: str | None = None,
        downstream_lora: bool = True,
        downstream: LoraConfig | None = None,
        finetune_base: bool = False,
        select_by: Literal["loss", "auroc"] = "loss",
        pooling: Literal["last", "mean"] = "last",
        **kwargs,
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
            pooling: a decoder's note representation: the `last` real token (the paper, and
                transformers' default) or the `mean` over real tokens (of the head's per-token
                logits, which equals the head on the mean hidden state: the head is linear).
            **kwargs: what every stage takes (`AdapterStage`: optim, dtype, ...).
        """
        super().__init__(base_model, **kwargs)
        dtype, gradient_checkpointing = self.dtype_name, self.gradient_checkpointing
        downstream = downstream or default_lora()
        if clinical not in ("frozen", "trainable", "none"):
            raise InputError(
                "model.clinical", f"unknown '{clinical}' (valid: frozen, trainable, none)"
            )
        if select_by not in ("loss", "auroc"):
            raise InputError("model.select_by", f"unknown '{select_by}' (valid: loss, auroc)")
        if pooling not in ("last", "mean"):
            raise InputError("model.pooling", f"unknown '{pooling}' (valid: last, mean)")
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
                "downstream_lora": downstream_lora, "downstream": config_record(downstream),
                "finetune_base": finetune_base, "select_by": select_by, "pooling": pooling,
                "dtype": dtype,
            }
        )  # fmt: skip
        if select_by == "auroc":
            self.monitor, self.monitor_mode = "val/auroc", "max"
        self.kind = kind
        # A binary task has a two-class head, as the paper's weighted cross-entropy needs.
        model = load_sequence_classifier(
            base_model, num_labels, dtype, gradient_checkpointing=gradient_checkpointing,
            attn_implementation=self.attn_implementation,
        )  # fmt: skip
        if finetune_base:
            model.requires_grad_(True)
        self.model = stack_adapters(
            model,
            clinical_adapter if clinical != "none" else None,
            clinical_trainable=clinical == "trainable",
            downstream=downstream if downstream_lora else None,
        )
        self.left_pad = needs_left_padding(self.model)
        self.pooling = pooling
        if pooling == "mean" and is_encoder(base_model):
            raise InputError("model.pooling", "mean pooling is for decoders (encoders pool [CLS])")
        weights = torch.tensor(class_weights) if class_weights else None
        self.register_buffer("class_weight", weights, persistent=False)
        self.loss_sum, self.loss_count = SumMetric(), SumMetric()
        self.scores = OutcomeScores(kind, 1 if kind == "binary" else num_labels)
        self._collect: dict | None = None

    def forward(self, batch: dict) -> torch.Tensor:
        """Logits per note (chunk logits averaged in `chunks` mode)."""
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        if self.left_pad:
            input_ids, attention_mask = pad_left(input_ids, attention_mask)
        if self.pooling == "mean":
            logits = self._mean_pooled(input_ids, attention_mask)
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return pool_chunks(logits.float(), batch["doc_index"], len(batch["labels"]))

    def _mean_pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the head's per-token logits over real tokens (read from the head's output,
        before transformers picks the last token; virtual tokens of prompt learning dropped)."""
        per_token = {}
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        head = getattr(base, head_names(base)[0])  # peft may wrap it: the wrapper's output counts
        hook = head.register_forward_hook(lambda _m, _i, out: per_token.update(logits=out))
        try:
            self.model(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            hook.remove()
        logits = per_token["logits"][:, -input_ids.shape[1] :]
        mask = attention_mask[..., None].to(logits.dtype)
        return (logits * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def loss_sums(
        self, logits: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed (class-weighted) loss and its total weight: their ratio is the paper's loss
        over a batch, and over a whole split when both are summed across batches."""
        if self.kind == "multilabel":
            total = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
            return total, torch.tensor(float(labels.numel()), device=logits.device)
        nll = F.cross_entropy(logits, labels, reduction="none")
        weight = (
            self.class_weight[labels] if self.class_weight is not None else torch.ones_like(nll)
        )
        return (weight * nll).sum(), weight.sum()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The paper's loss over a batch: (class-weighted) cross-entropy, or BCE for multilabel."""
        total, weight = self.loss_sums(logits, labels)
        return total / weight

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def _eval_step(self, batch: dict) -> None:
        logits = self(batch)
        if is_filler(batch):
            return
        total, weight = self.loss_sums(logits, batch["labels"])
        self.loss_sum.update(total.detach())
        self.loss_count.update(weight)
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
        parts: dict[str, dict] = {}
        for split in ("val", "test"):
            self._collect = {"ids": [], "scores": [], "labels": []}
            if split == "val":  # the paper: test with the lowest-val-loss checkpoint
                result = self.validate_best(trainer, datamodule)
            else:
                (result,) = trainer.test(self, datamodule=datamodule, verbose=False)
            metrics.update({k: float(v) for k, v in result.items()})
            parts[split] = self._write_predictions(trainer, RunDir(run_dir).predictions, split)
            self._collect = None
        metrics.update({k: float(v) for k, v in getattr(datamodule, "stats", {}).items()})
        if trainer.is_global_zero:  # what `predict` / `evaluate` need to score notes as here
            write_json(RunDir(run_dir).labels, run_labels(datamodule))
            # calibration, decision curve, subgroups and report.md (rank 0 holds every score)
            metrics.update(clinical_after_fit(run_dir, datamodule, parts, metrics, self.device))
        return metrics

    def _write_predictions(self, trainer: L.Trainer, folder: Path, split: str) -> dict:
        """predictions/{split}.npz (ids, scores, labels over the whole split) and an ROC plot;
        returns the split's ids, scores and labels (rank 0: all of them)."""
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
        if trainer.is_global_zero:
            write_predictions(folder, split, part["ids"], part["scores"], part["labels"], self.kind)
        return part

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


def run_labels(datamodule) -> dict:
    """The task, its label names (the columns of the scores) and how notes were tokenized."""
    keys = ("max_length", "long_mode", "max_chunks", "eval_batch_size")
    return {
        "task": datamodule.task.key, "kind": datamodule.kind,
        "label_names": list(datamodule.label_names), **{k: getattr(datamodule, k) for k in keys},
        "framing": framing_record(datamodule.tokenizer, getattr(datamodule, "framing", "auto")),
    }  # fmt: skip
