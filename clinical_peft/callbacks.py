"""Callbacks the CLI adds to every run: throughput, and atomic checkpoint writes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def count_tokens(batch: dict) -> int:
    """Real (non-padding) tokens in a batch: the sum of every attention mask in it."""
    return int(sum(v.sum() for k, v in batch.items() if k.endswith("attention_mask")))


class Throughput(L.Callback):
    """Shows tokens/s in the progress bar and keeps run totals for metrics.json."""

    def __init__(self) -> None:
        self.tokens = 0
        self.seconds = 0.0
        self._window_tokens, self._window_start = 0, 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._window_start = time.perf_counter()
        self._window_tokens = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tokens = count_tokens(batch)
        self.tokens += tokens
        self.seconds += time.perf_counter() - self._batch_start
        self._window_tokens += tokens
        elapsed = time.perf_counter() - self._window_start
        if elapsed > 0:
            rate = self._window_tokens * trainer.world_size / elapsed
            pl_module.log("tok/s", rate, prog_bar=True, logger=False)

    def totals(self, trainer: L.Trainer) -> dict[str, float]:
        """Tokens and seconds of training steps, summed over ranks (tokens) for the whole run."""
        tokens = trainer.strategy.reduce(torch.tensor(float(self.tokens)), reduce_op="sum")
        tokens = float(tokens)
        return {
            "train/tokens": tokens,
            "train/step_seconds": self.seconds,
            "train/tokens_per_s": tokens / self.seconds if self.seconds else 0.0,
        }


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file, then rename: a crash mid-write keeps the previous checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)


class RestoreLoaderPosition(L.Callback):
    """Hand the saved position of the training loader back to it when a run resumes.

    Lightning restores loader state only if the loader is built after the checkpoint is read,
    but `estimated_stepping_batches` (the LR schedule's length) builds it before; so this
    callback keeps the saved state and gives it to the loader just before training starts.
    """

    def __init__(self) -> None:
        self._states: list[dict] = []

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        fit_state = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
        self._states = list(fit_state.get("combined_loader", []))

    def on_train_start(self, trainer, pl_module) -> None:
        if self._states and trainer.fit_loop._combined_loader is not None:
            trainer.fit_loop._combined_loader._load_state_dicts(self._states)
        self._states = []
