"""What every stage shares: optimizer and schedule over trainable parameters only, small
checkpoints that hold only trainable tensors, and the base-model fingerprint check."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from clinical_peft.cli.run_dir import RunDir, scored_weights
from clinical_peft.data.contracts import StageData
from clinical_peft.models.backbone import fingerprint, parameter_counts, weights_fingerprint
from clinical_peft.util.errors import InputError


@dataclass
class OptimSpec:
    """AdamW with linear warm-up, then decay."""

    lr: float = 3e-4
    """Peak learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 10
    """Optimizer steps of linear warm-up from 0."""
    schedule: str = "cosine"
    """Decay after warm-up: cosine (to 0), linear (to 0) or constant."""
    betas: tuple[float, float] = (0.9, 0.999)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` of `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class AdapterStage(L.LightningModule):
    """Base of the training stages. Subclasses set `self.model` (a peft-wrapped network)."""

    #: metric used to pick `checkpoints/best.ckpt`, and its direction
    monitor, monitor_mode = "val/loss", "min"
    #: how the frozen base is loaded (clinical_peft.models.quantization); recorded in checkpoints
    quantization: str = "none"
    #: what the stage reads from its data module (clinical_peft/data/contracts.py), checked by
    #: the stage CLI before fitting
    data_protocol: type = StageData

    def __init__(
        self,
        base_model: str,
        optim: OptimSpec | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        attn_implementation: str | None = None,
    ) -> None:
        """What every stage takes, in one place: a stage declares its own arguments and hands
        these on (`**kwargs`); the CLI still reads them as `--model.base_model`, `--model.optim.lr`.

        Args:
            base_model: folder of a local Hugging Face model: a LLaMA-family causal LM (a
                LLaMA checkpoint, an instruct model, or the built-in tiny LLaMA that `make
                tiny-model` writes); downstream also takes a BERT-family encoder.
            optim: optimizer and learning-rate schedule.
            dtype: weights of the frozen base: float32, bfloat16 or float16.
            gradient_checkpointing: recompute activations in backward to save memory.
            attn_implementation: transformers' attention kernel (sdpa, eager, flex_attention,
                flash_attention_2); none: the model's default (SDPA). Packed batches are
                document-masked under each (`experiments/benchmarks/dapt_real.py` times them).
        """
        super().__init__()
        self.base_model_path, self.dtype_name = base_model, dtype
        self.gradient_checkpointing = gradient_checkpointing
        self.attn_implementation = attn_implementation
        self.optim = optim or OptimSpec()
        self.scored_weights: dict = {}  # what `validate_best` scored, for metrics.json
        if self.optim.schedule not in ("cosine", "linear", "constant"):
            raise InputError("model.optim.schedule", f"unknown '{self.optim.schedule}'")
        # Checkpoints hold trainable tensors only; the frozen base comes from `base_model`.
        self.strict_loading = False

    # --- optimisation -------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=self.optim.lr, weight_decay=self.optim.weight_decay, betas=self.optim.betas
        )
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: lr_factor(step, total, self.optim.warmup_steps, self.optim.schedule),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        # Lightning's FSDP precision refuses to clip by norm: the norm spans every rank's shard,
        # so FSDP's own clip_grad_norm_ computes it (the adapter's gradients, all-reduced)
        from torch.distributed.fsdp import FullyShardedDataParallel

        model = self._trainer.strategy.model if self._trainer is not None else None
        if gradient_clip_val and isinstance(model, FullyShardedDataParallel):
            if gradient_clip_algorithm not in (None, "norm"):
                raise InputError("trainer.gradient_clip_algorithm", "FSDP clips by norm only")
            model.clip_grad_norm_(gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    # --- parameters and checkpoints -----------------------------------------------------
    def on_fit_start(self) -> None:
        # The whole network trains, frozen base included, as under HF's Trainer: HF models load in
        # eval mode, and there activation checkpointing (and any dropout) would silently stay off.
        self.train()
        counts = self.parameter_counts()
        rank_zero_info(
            f"trainable parameters: {counts['params/trainable']:,} of {counts['params/total']:,}"
            f" ({100 * counts['params/share']:.4f} %)"
        )

    def parameter_counts(self) -> dict[str, float]:
        return parameter_counts(self.model)

    def base_fingerprint(self) -> str:
        if not hasattr(self, "_fingerprint"):
            self._fingerprint = fingerprint(self.model)
        return self._fingerprint

    def base_weights(self) -> str:
        """A hash of the base model's weights from its files (see `weights_fingerprint`)."""
        if not hasattr(self, "_weights"):
            self._weights = weights_fingerprint(self.hparams.base_model)
        return self._weights

    def trainable_keys(self) -> set[str]:
        # FSDP's shard units sit between a module and its parameters: names as unwrapped
        return {unwrapped_name(name) for name, p in self.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep = self.trainable_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["base_fingerprint"] = self.base_fingerprint()
        checkpoint["base_weights"] = self.base_weights()
        checkpoint["quantization"] = self.quantization
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and hasattr(datamodule, "data_fingerprint"):
            checkpoint["data_fingerprint"] = datamodule.data_fingerprint()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        stored = checkpoint.get("base_fingerprint")
        if stored is not None and stored != self.base_fingerprint():
            raise InputError(
                "checkpoint",
                f"field 'base_fingerprint': made on another base model ({stored}, this one is "
                f"{self.base_fingerprint()}); pass the base model it was trained on",
            )
        if "state_dict" not in checkpoint:  # DeepSpeed keeps tensors in its own shard files
            return
        self.check_holds_trainables(checkpoint["state_dict"], "checkpoint")

    def check_holds_trainables(self, state: dict, source: str | Path) -> None:
        """Refuse a state dict that lacks any trainable tensor of this stage."""
        missing = self.trainable_keys() - state.keys()
        if missing:
            raise InputError(source, f"field 'state_dict': lacks trainable tensor {min(missing)}")

    # --- run directory ------------------------------------------------------------------
    def evaluate_before_fit(self, trainer: L.Trainer, datamodule) -> dict[str, float]:
        """Metrics of the untrained adapter (e.g. perplexity before), for metrics.json."""
        return {}

    def evaluate_after_fit(self, trainer: L.Trainer, datamodule, run_dir: Path) -> dict:
        """Final metrics for metrics.json; may load the best checkpoint and write predictions."""
        return {}

    def validate_best(self, trainer: L.Trainer, datamodule) -> dict[str, float]:
        """Validate with the weights of `checkpoints/best.ckpt`, which then stay in the model.

        The strategy loads the checkpoint, so DeepSpeed's sharded checkpoints work too; under
        ZeRO-3 (which DeepSpeed cannot load into an evaluation engine) the stage loads it itself.
        Which weights were scored goes to `scored_weights` (metrics.json).
        """
        best = best_checkpoint(trainer) or None
        self.scored_weights = scored_weights(best, trainer.global_step)
        if best and getattr(trainer.strategy, "zero_stage_3", False):
            self.load_zero3_checkpoint(best)
            best = None
        (result,) = trainer.validate(self, datamodule=datamodule, ckpt_path=best, verbose=False)
        return result

    def load_zero3_checkpoint(self, path: str | Path) -> None:
        """Put the trainable weights of a ZeRO-3 checkpoint folder into this sharded module."""
        import deepspeed
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        saved = get_fp32_state_dict_from_zero_checkpoint(str(path), tag="checkpoint")
        params = dict(self.named_parameters())
        saved = {k.removeprefix("_forward_module."): v for k, v in saved.items()}
        self.check_holds_trainables(saved, path)
        targets = [params[k] for k in saved]
        with deepspeed.zero.GatheredParameters(targets, modifier_rank=0):
            if self.global_rank == 0:  # rank 0 writes; leaving the context re-shards to all
                for key, value in saved.items():
                    params[key].data.copy_(value)

    def export(self, run_dir: Path) -> None:
        """Write run_dir/adapter. Called on every rank: under DeepSpeed ZeRO-3 the adapter's
        shards are gathered first, then rank 0 saves."""
        trainer = self._trainer  # None when used outside a Trainer
        with gathered_parameters(self.model), whole_fsdp_parameters(trainer):
            if trainer is None or trainer.is_global_zero:
                self.save_adapters(RunDir(run_dir).adapter)

    def save_adapters(self, folder: Path) -> None:
        """The adapter in peft's format (loadable with plain `PeftModel.from_pretrained`)."""
        self.model.save_pretrained(folder)

    def load_trainable_from(self, ckpt_path: str | Path) -> None:
        """Load the trainable tensors of a checkpoint of this run (e.g. the best one)."""
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        self.on_load_checkpoint(checkpoint)
        self.load_state_dict(checkpoint["state_dict"], strict=False)


def gathered_parameters(model: torch.nn.Module):
    """Context in which ZeRO-3-partitioned adapter parameters are whole; a no-op otherwise.

    Frozen adapters count too: a stacked clinical adapter is saved beside the downstream one.
    """
    adapters = tuple(getattr(model, "peft_config", {}))
    params = [
        p
        for name, p in model.named_parameters()
        if p.requires_grad or any(f".{adapter}." in f"{name}." for adapter in adapters)
    ]
    if not any(hasattr(p, "ds_id") for p in params):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


#: what torch's FSDP (and its activation checkpointing) put into parameter names
WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def unwrapped_name(name: str) -> str:
    """A parameter's name without FSDP's wrapper modules (its name in a full state dict)."""
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def whole_fsdp_parameters(trainer: L.Trainer | None):
    """Context in which an FSDP-sharded network holds its whole parameters on every rank, for
    work outside a forward pass (generating, saving the adapter); a no-op under other
    strategies. Like ZeRO-3's gathering, each rank then holds the whole base while inside."""
    from lightning.pytorch.strategies import FSDPStrategy

    strategy = getattr(trainer, "strategy", None)
    if not isinstance(strategy, FSDPStrategy) or strategy.model is None:
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(strategy.model, writeback=False)


def best_checkpoint(trainer: L.Trainer) -> str:
    """Path of the checkpoint that the monitored metric chose, or "" if none was saved."""
    chosen = [cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.monitor]
    return chosen[0] if chosen else ""
