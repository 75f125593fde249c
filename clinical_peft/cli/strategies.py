"""Lightning strategies made safe for how the stages use them: DeepSpeed with checkpoints that a
crash cannot half-write; FSDP across a validate-then-fit run, and on CPU ranks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import strategies


class DeepSpeedStrategy(strategies.DeepSpeedStrategy):
    """DeepSpeed writes a checkpoint as a folder of shards, one file per rank, over the previous
    folder of that name. Here every rank writes into `<path>.partial`, and rank 0 swaps the
    finished folder in. A crash while writing leaves the previous checkpoint whole: at `<path>`,
    or at `<path>.old` if it struck between the two renames (the CLI points there). Assumes a
    filesystem that every rank sees, as DeepSpeed's own checkpoints do.
    """

    def save_checkpoint(
        self, checkpoint: dict, filepath: Any, storage_options: Any | None = None
    ) -> None:
        final = Path(self.broadcast(str(filepath)))
        partial = final.with_name(final.name + ".partial")
        old = final.with_name(final.name + ".old")
        if self.is_global_zero:
            shutil.rmtree(partial, ignore_errors=True)  # left by an earlier crash
        self.barrier("checkpoint_start")
        super().save_checkpoint(checkpoint, partial, storage_options)
        self.barrier("checkpoint_written")  # every rank's shards are in `partial`
        if self.is_global_zero:
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            partial.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        self.barrier("checkpoint_swapped")


class FSDPStrategy(strategies.FSDPStrategy):
    """Lightning's FSDP strategy, for stages that validate before they fit, and on CPU ranks.

    Lightning wraps the LightningModule in FSDP at each trainer run. The stages validate before
    fitting (the "before" scores): at `fit`, Lightning finds the decoder layers already wrapped
    and wraps nothing, so the root's parameters (embeddings, head) stay sharded as flat
    1-D views and the first forward fails. Here the first run's wrapper is kept and reused.

    With `accelerator: cpu` (gloo; experiments/trainer/fsdp_cpu.yaml, to check the code path on
    a CPU machine as ddp_cpu.yaml does for DDP) the module is wrapped with `device_id` cpu,
    which torch's FSDP accepts and Lightning does not pass, and full state dicts are gathered
    without Lightning's `offload_to_cpu` (on CPU it frees the gathered tensors before they are
    copied: a segmentation fault).
    """

    _wrapped: torch.nn.Module | None = None

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        from torch.distributed.fsdp import FullyShardedDataParallel

        if self._wrapped is not None and self._wrapped.module is model:
            return self._wrapped  # wrapped by an earlier run of this trainer
        if self.root_device.type == "cpu":
            model = FullyShardedDataParallel(
                module=model, cpu_offload=self.cpu_offload, device_id=self.root_device,
                mixed_precision=self.mixed_precision_config,
                sharding_strategy=self.sharding_strategy, **self.kwargs,
            )  # fmt: skip
        policy = (
            self.kwargs.pop("auto_wrap_policy", None) if self.root_device.type == "cpu" else None
        )
        try:  # Lightning's own steps after wrapping (metrics, activation checkpointing)
            self._wrapped = super()._setup_model(model)
        finally:
            if policy is not None:  # already applied: Lightning would warn and drop it
                self.kwargs["auto_wrap_policy"] = policy
        return self._wrapped

    def lightning_module_state_dict(self) -> dict[str, Any]:
        if self.root_device.type != "cpu" or self._state_dict_type != "full":
            return super().lightning_module_state_dict()
        with full_state_dict_in_place(self.model):
            return self.model.state_dict()

    def optimizer_state(self, optimizer) -> dict[str, Any]:
        if self.root_device.type != "cpu" or self._state_dict_type != "full":
            return super().optimizer_state(optimizer)
        from torch.distributed.fsdp import FullyShardedDataParallel, OptimStateKeyType

        optimizer = getattr(optimizer, "_optimizer", optimizer)  # a LightningOptimizer's own
        with full_state_dict_in_place(self.model):
            state = FullyShardedDataParallel.optim_state_dict(self.model, optimizer)
        if self.global_rank == 0:  # keyed by parameter id, as Lightning stores it
            state = FullyShardedDataParallel.rekey_optim_state_dict(
                state, OptimStateKeyType.PARAM_ID, self.model
            )
        return state


def full_state_dict_in_place(model: torch.nn.Module):
    """FSDP's full (rank 0) state-dict context, gathered where the parameters live."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.api import FullOptimStateDictConfig

    return FSDP.state_dict_type(
        model, StateDictType.FULL_STATE_DICT,
        FullStateDictConfig(offload_to_cpu=False, rank0_only=True),
        FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=True),
    )  # fmt: skip
