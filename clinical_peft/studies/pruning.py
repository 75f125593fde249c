"""The sweep's pruning callback, loaded by each trial's run (the sweep runner needs no Lightning)."""

from __future__ import annotations

import os

import lightning as L
import optuna
from lightning.pytorch.utilities import rank_zero_warn

from clinical_peft.studies.storage import STORAGE_ENV, open_storage


class OptunaPruning(L.Callback):
    """Report `monitor` to trial `trial_id` after each validation epoch of fitting; prune.
    The storage comes from the sweep through the environment (STORAGE_ENV), so that no file
    holds its URL; `storage` is what the trial configs of older sweeps name."""

    def __init__(
        self, study_name: str, trial_id: int, monitor: str, storage: str | None = None
    ) -> None:
        self.study_name, self.trial_id, self.monitor = study_name, trial_id, monitor
        self.storage = storage or os.environ.get(STORAGE_ENV)
        if not self.storage:
            rank_zero_warn(f"OptunaPruning: no {STORAGE_ENV} (not run by a sweep): no pruning")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or not trainer.is_global_zero:
            return  # evaluation before / after fitting is no training progress
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not self.storage:
            return
        study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage))
        trial = optuna.trial.Trial(study, self.trial_id)
        trial.report(float(value), step=trainer.current_epoch)
        if trial.should_prune():
            trial.set_user_attr("pruned_at_epoch", trainer.current_epoch)
            trainer.should_stop = True
