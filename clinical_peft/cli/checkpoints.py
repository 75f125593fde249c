"""When a run validates and writes `last.ckpt`, so that a run killed at any point resumes to the
uninterrupted run's weights, best checkpoint and metrics.

Lightning writes an every-N-steps `last.ckpt` right after the optimizer step, before the
validation that may follow it. A run killed between the two resumes past that validation: at
`max_steps` as finished (the final validation and best-checkpoint update never run), mid-run
without that validation (Lightning skips it on restart). So a step that validation follows is
saved after the validation (and after `best.ckpt`), and the final weights are always validated
inside `fit`, where the best-checkpoint callback sees them.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn


def validation_follows(trainer: L.Trainer) -> bool:
    """Whether the fit loop validates after the training batch that just ended: Lightning's own
    decision (it makes it once this batch's hooks are done, from the same state)."""
    loop = trainer.fit_loop.epoch_loop
    return loop._should_check_val_fx(trainer.fit_loop._data_fetcher)


def epoch_finishes(trainer: L.Trainer) -> bool:
    """Whether the training batch that just ended is its epoch's last (not: max_steps stopped
    the epoch midway)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return progress.is_last_batch or progress.current.ready == trainer.num_training_batches


def training_ends(trainer: L.Trainer) -> bool:
    """Whether the training batch that just ended is the run's last (max_steps, or the last batch
    of the last epoch)."""
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return True
    epochs = trainer.max_epochs
    last_epoch = epochs not in (None, -1) and trainer.current_epoch + 1 >= epochs
    return last_epoch and epoch_finishes(trainer)


class ValidateAtEnd(L.Callback):
    """Validate the final weights inside `fit` even when training stops between two scheduled
    validations (`max_steps`, `val_check_interval`): Lightning validates after a batch once
    `trainer.should_stop` is set, and the best checkpoint then considers the final weights."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if training_ends(trainer):
            trainer.should_stop = True


class _ModelCheckpointKey(ModelCheckpoint):
    @property
    def state_key(self) -> str:  # ModelCheckpoint's: earlier checkpoints restore its state
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)


class BestCheckpoint(_ModelCheckpointKey):
    """`checkpoints/best.ckpt`: the weights of the best `monitor` value, saved as each
    validation ends (never deferred to the epoch's end, so `LastCheckpoint` can follow it)."""

    def __init__(self, dirpath: str, filename: str, monitor: str, mode: str) -> None:
        super().__init__(dirpath=dirpath, filename=filename, monitor=monitor, mode=mode,
                         save_top_k=1, enable_version_counter=False, save_on_train_epoch_end=False)  # fmt: skip


class LastCheckpoint(_ModelCheckpointKey):
    """`checkpoints/last.ckpt` every N optimizer steps, at each epoch's end and at training's
    end (Lightning's `save_last` with `save_top_k=0` writes it at the end only). A step that
    validation follows is written after that validation and the best checkpoint's update (the
    epoch's last step: after the epoch's end), so a resumed run never skips either; an epoch
    that max_steps stops midway is not ended by a checkpoint (training it further resumes
    mid-epoch)."""

    def __init__(self, dirpath: str, every_n_steps: int | None) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0,
                         every_n_train_steps=every_n_steps, enable_version_counter=False,
                         save_on_train_epoch_end=False)  # fmt: skip
        self._after_validation: int | None = None  # the step whose save waits for validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if epoch_finishes(trainer):
            return  # written at the epoch's end, after its validation and its hooks
        due = bool(self._every_n_train_steps) and step % self._every_n_train_steps == 0
        if training_ends(trainer):  # the final weights, whatever N: what a run without
            due = True  # validation scores ("last"), and what predict then loads
        if validation_follows(trainer):
            self._after_validation = step if due else self._after_validation
        elif due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._after_validation == trainer.global_step:  # the best checkpoint has saved
            self._after_validation = None
            if not self._should_skip_saving_checkpoint(trainer):  # fitting, not saved yet
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if fitting and epoch_finishes(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def align_logging_step(trainer: L.Trainer) -> None:
    """After `fit`: a resumed fit with nothing left to train (its checkpoint was written at
    max_steps) skips the loop reset that moves Lightning's logging step past the checkpoint's
    own, so the final scores would land one step early in metrics.csv. A no-op otherwise."""
    loop = trainer.fit_loop.epoch_loop
    loop._batches_that_stepped = max(loop._batches_that_stepped, trainer.global_step)
