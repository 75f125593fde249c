"""Known noise of the libraries, dropped for every command (stages and helpers alike)."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_known_noise() -> None:
    """Drop messages that say nothing about this run, so that what is left gets read."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if not os.environ.get("CUDA_VISIBLE_DEVICES", "x"):  # no GPU asked for: keep DeepSpeed quiet
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for message in (
        ".*LightningCLI's args parameter.*",
        ".*is_gradient_checkpointing.*",  # raised inside peft / transformers, not our call
        ".*isinstance\\(treespec, LeafSpec\\).*",  # raised inside Lightning
        ".*`loftq_config` specified but will be ignored.*",  # peft, for every LoraConfig the CLI builds
    ):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: "Tip:" not in record.getMessage())
    try:
        from transformers.utils import logging as transformers_logging  # ~1 s; torch not loaded
    except ImportError:  # a bare interpreter (the Makefile reading the task registries)
        return
    transformers_logging.disable_progress_bar()  # a "Loading weights" bar per model load
