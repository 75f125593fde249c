"""Callbacks the CLI adds to every run: throughput, atomic checkpoint writes, what a resumed run
needs from its first part, and a clean stop on SIGTERM / SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import RunningStage, TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from clinical_peft.data.loader import is_filler
from clinical_peft.util.atomic import write_atomic

log = logging.getLogger(__name__)


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

    def state_dict(self) -> dict[str, float]:  # a resumed run counts its first part too
        return {"tokens": self.tokens, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.tokens, self.seconds = int(state["tokens"]), float(state["seconds"])

    def totals(self, trainer: L.Trainer) -> dict[str, float]:
        """Tokens and seconds of training steps, summed over ranks (tokens) for the whole run."""
        tokens = trainer.strategy.reduce(torch.tensor(float(self.tokens)), reduce_op="sum")
        tokens = float(tokens)
        return {
            "train/tokens": tokens,
            "train/step_seconds": self.seconds,
            "train/tokens_per_s": tokens / self.seconds if self.seconds else 0.0,
        }


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, with its total (and so its ETA) ending at `max_steps` when that comes
    first (Lightning caps it only under max_epochs -1), and without `v_num` (the last four
    letters of a logger's version: "oard" for TensorBoard's)."""

    @property
    def total_train_batches(self) -> int | float:
        total = super().total_train_batches
        max_steps = self.trainer.max_steps
        if max_steps is not None and max_steps > 0:
            left = (max_steps - self.trainer.global_step) * self.trainer.accumulate_grad_batches
            return min(total, max(left, 0))
        return total

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def batch_examples(batch: dict) -> int:
    """Examples in a batch: its labels' rows (notes, blocks, sequences) or its first tensor's."""
    tensor = batch.get("labels")
    if not isinstance(tensor, torch.Tensor):
        tensor = next(v for v in batch.values() if isinstance(v, torch.Tensor))
    return int(tensor.shape[0])


class Scored(L.Callback):
    """Examples actually scored by the last validation and test loops (`data/<split>/scored`
    in metrics.json; `data/<split>/partial` 1 when batch limits cut the split short, also
    said on the console), summed over ranks."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}  # split -> [examples, batches, batches in all]

    def _start(self, split: str, loaders) -> None:
        loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
        self.counts[split] = [0, 0, len(loader) if hasattr(loader, "__len__") else 0]

    def _batch(self, split: str, batch: dict) -> None:
        if not is_filler(batch):
            self.counts[split][0] += batch_examples(batch)
        self.counts[split][1] += 1

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start("val", trainer.val_dataloaders)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, *args) -> None:
        self._batch("val", batch)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start("test", trainer.test_dataloaders)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, *args) -> None:
        self._batch("test", batch)

    def totals(self, trainer: L.Trainer) -> dict[str, float]:
        metrics = {}
        for split, (examples, batches, all_batches) in sorted(self.counts.items()):
            total = trainer.strategy.reduce(torch.tensor(float(examples)), reduce_op="sum")
            metrics[f"data/{split}/scored"] = float(total)
            partial = 0 < batches < all_batches
            metrics[f"data/{split}/partial"] = float(partial)
            if partial:
                log.warning(
                    "%s: a partial evaluation, %d of %d batches (%d examples) scored "
                    "(limit_%s_batches)", split, batches, all_batches, int(total), split,
                )  # fmt: skip
        return metrics


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file, then rename: a crash mid-write keeps the previous checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        write_atomic(path, lambda tmp: torch.save(checkpoint, tmp))


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


class RunState(L.Callback):
    """Writes into every checkpoint the stage that made it (so that a checkpoint of another
    stage is refused) and the metrics measured before training (a resumed run reports them)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.metrics_before: dict[str, float] = {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["stage"] = self.stage
        checkpoint["metrics_before"] = dict(self.metrics_before)


class Interrupted(Exception):
    """A run stopped by SIGTERM or SIGINT; the message says how to resume it."""

    def __init__(self, signum: int, message: str) -> None:
        self.signum = signum
        super().__init__(message)


class StopOnSignal(L.Callback):
    """SIGTERM (a scheduler's preemption) and SIGINT (Ctrl+C) stop the run with a resumable
    `last.ckpt` and a non-zero exit, instead of Lightning's exit 0 (SIGTERM) or a checkpoint-less
    exit 1 (SIGINT).

    Inside a Trainer call Lightning's own SIGTERM handler notes the signal and its loops stop
    at the next batch boundary (on every rank) with `SIGTERMException`; a first SIGINT is routed
    to that same handler, a second one interrupts at once. When that happens while training,
    `on_exception` writes `last.ckpt` through the trainer (atomically, all ranks). Outside
    Trainer calls (loading, tokenizing, exporting) a signal raises `Interrupted` at once.
    """

    def __init__(self, last_path: str | Path) -> None:
        self.last_path = Path(last_path)
        self.signum: int | None = None
        self.saved_step: int | None = None

    @contextmanager
    def installed(self):
        """Handle SIGTERM and SIGINT within the block (main thread only: Python's rule)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for signum in previous:
            signal.signal(signum, self._handle)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        lightning = signal.getsignal(signal.SIGTERM)
        if lightning == self._handle:  # no Trainer call running: nothing to checkpoint
            raise Interrupted(signum, "")
        if signum == signal.SIGINT:
            if not first:
                raise KeyboardInterrupt  # a second Ctrl+C: stop now, without a checkpoint
            lightning(signal.SIGTERM, frame)  # Lightning stops at the next batch boundary

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        training = (
            trainer.state.fn == TrainerFn.FITTING and trainer.state.stage == RunningStage.TRAINING
        )
        # Mid-validation the loop state cannot resume exactly: the last checkpoint stands.
        if isinstance(exception, SIGTERMException) and training:
            trainer.save_checkpoint(self.last_path)
            self.saved_step = trainer.global_step

    def stop_if_signalled(self) -> None:
        """Stop between phases for a signal that a Trainer call noted but did not act on."""
        if self.signum is not None:
            raise Interrupted(self.signum, "")

    def interruption(self) -> Interrupted:
        """The error to stop with: which signal, and what to resume from."""
        signum = self.signum or signal.SIGTERM
        name = signal.Signals(signum).name
        last = self.last_path
        if self.saved_step is not None:
            done = f"interrupted by {name} at step {self.saved_step}, saved {last}"
        elif last.exists():
            done = f"interrupted by {name}; the newest checkpoint is {last}"
        else:
            return Interrupted(
                signum,
                f"interrupted by {name} before the first checkpoint: nothing to resume; start "
                f"again with --overwrite (make: OVERWRITE=1)",
            )
        return Interrupted(signum, f"{done}; resume with --ckpt_path {last} (make: CKPT={last})")
