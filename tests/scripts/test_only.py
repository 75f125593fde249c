"""Test-only Lightning pieces, named by class_path from the test configs."""

from __future__ import annotations

import os
import signal

import deepspeed.ops
import lightning as L
import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DeepSpeedStrategy as LightningDeepSpeedStrategy
from lightning.pytorch.trainer.states import TrainerFn

from clinical_peft.cli.strategies import DeepSpeedStrategy

# CPUDeepSpeedStrategy's ranks all-reduce over gloo (see there)
deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


class KillAtStep(L.Callback):
    """SIGKILL this process right after optimizer step `step`: a crash no handler can soften."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class KillAtValidation(L.Callback):
    """SIGKILL this process as a validation at optimizer step `step` starts (or ends, before the
    checkpoint callbacks act on it): during fitting (`fitting` true), or in a Trainer call after
    it (the stage's final scoring)."""

    def __init__(self, step: int, fitting: bool = True, at: str = "start") -> None:
        self.step, self.fitting, self.at = step, fitting, at

    def _kill(self, trainer, at: str) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING
        if (trainer.global_step, fitting, at) == (self.step, self.fitting, self.at):
            os.kill(os.getpid(), signal.SIGKILL)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._kill(trainer, "start")

    def on_validation_end(self, trainer, pl_module) -> None:
        self._kill(trainer, "end")


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy with its CUDA-only guard skipped, for smoke tests on CPU.

    DeepSpeed itself runs ZeRO on CPU with the gloo backend; only Lightning refuses. The ranks
    all-reduce over gloo, not DeepSpeed's CPU shared-memory op: that is a C++ extension it
    compiles on a machine's first run (~60 s of a 2-core CPU), and no GPU run uses it.
    """

    def setup_environment(self) -> None:
        super(LightningDeepSpeedStrategy, self).setup_environment()  # DDPStrategy's, no guard

    def setup_distributed(self) -> None:
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        return torch.device("cpu", 0)  # DeepSpeed wants a device index, even on CPU


class SignalAtStep(L.Callback):
    """Send `signum` to this process right after optimizer step `step` (a scheduler's SIGTERM,
    a user's Ctrl+C)."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class PauseAtStep(L.Callback):
    """After optimizer step `step`, write this process's id to `marker` and sleep: a run that
    is still going while a test does something beside it."""

    def __init__(self, step: int, marker: str, seconds: float = 300) -> None:
        self.step, self.marker, self.seconds = step, marker, seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            import time
            from pathlib import Path

            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(self.seconds)
