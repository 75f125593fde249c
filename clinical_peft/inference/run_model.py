"""A finished downstream run, loaded from its directory alone for `predict` and `evaluate`: its
task and label names, its model with the trained weights of its checkpoint (checked as a resume
checks it: another stage, another base model or a truncated file is refused), its tokenizer and
its precision; and the `--device` to score on."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
import yaml
from peft import PeftConfig
from transformers.utils import logging as transformers_logging

from clinical_peft.cli.run_dir import (
    RunDir,
    check_checkpoint,
    data_settings,
    note_other_base,
    read_checkpoint,
)
from clinical_peft.data.outcomes import read_split
from clinical_peft.stages.downstream import OutcomePrediction
from clinical_peft.tasks.outcomes import get_task, label_space
from clinical_peft.util.errors import InputError, quote_value, require_file

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
#: what a downstream run's hparams.yaml holds and other stages' do not
DOWNSTREAM_KEYS = ("kind", "num_labels", "clinical", "downstream")


def run_hparams(run: Path) -> dict:
    """The model arguments of a downstream run (RUN/hparams.yaml); another run: InputError."""
    path = require_file(RunDir(run).hparams, "run hyperparameters")
    try:
        hparams = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise InputError(path, "not valid YAML") from None
    missing = [
        k for k in DOWNSTREAM_KEYS if k not in (hparams if isinstance(hparams, dict) else {})
    ]
    if missing:
        raise InputError(
            run, f"not a downstream run (hparams.yaml has no field '{missing[0]}'): predict and "
            "evaluate score the runs of the downstream stage"
        )  # fmt: skip
    return hparams


def run_info(run: Path) -> dict:
    """Task, label names and the data settings of the run (labels.json; else config.yaml)."""
    run_hparams(run)
    labels = RunDir(run).labels
    if labels.is_file():
        return json.loads(labels.read_text())
    config = require_file(RunDir(run).config, "run config")  # a run from before labels.json
    data = data_settings(yaml.safe_load(config.read_text()))
    task = get_task(data["task"])
    train = task.path(data["data_dir"], "train")
    if task.kind == "multilabel" and not train.is_file():
        raise InputError(labels, "not found: the run's label names are needed (re-run training)")
    codes = read_split(train, task.label_column, None)["label"] if task.kind == "multilabel" else []
    return {
        "task": task.key, "kind": task.kind, "label_names": label_space(task, data["data_dir"], codes),
        **{k: data[k] for k in ("max_length", "long_mode", "max_chunks")},
        "eval_batch_size": data["eval_batch_size"] or data["batch_size"],
    }  # fmt: skip


def pick_device(device: str | None) -> torch.device:
    """`--device` (default: cuda when there is one), refused unless this machine has it."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(
            "--device", f"unknown device {quote_value(device)} (cpu, cuda, cuda:N, mps)"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device", "no MPS device on this machine (use --device cpu)")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError("--device", f"{device}: no CUDA device on this machine (use cpu)")
        if dev.index is not None and dev.index >= count:
            raise InputError("--device", f"{device}: this machine has {count} CUDA device(s)")
    return dev


def load_stage(
    run: Path, base_model: str | None = None, allow_other_base: bool = False
) -> tuple[OutcomePrediction, dict]:
    """The run's model with its trained weights, in eval mode, and the base it runs on (its
    path and weight hash; `other_base` where it is not the one trained on, as allowed)."""
    hparams = run_hparams(run)
    paths = RunDir(run)
    adapter = paths.adapter / "clinical"
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # "head newly initialized": the checkpoint has it
    stage = OutcomePrediction(
        base_model=base_model or hparams["base_model"],
        kind=hparams["kind"],
        num_labels=hparams["num_labels"],
        class_weights=hparams.get("class_weights"),
        clinical=hparams["clinical"],
        # the run's own copy: the original folder may not exist on this machine
        clinical_adapter=str(adapter) if adapter.is_dir() else hparams["clinical_adapter"],
        downstream_lora=hparams["downstream_lora"],
        downstream=PeftConfig.from_peft_type(**hparams["downstream"]),
        finetune_base=hparams["finetune_base"],
        pooling=hparams.get("pooling", "last"),
        dtype=hparams.get("dtype", "float32"),
    )
    transformers_logging.set_verbosity(verbosity)
    ckpt = str(paths.scored_ckpt)
    checkpoint = read_checkpoint(ckpt, "downstream", deepspeed=False)
    check_checkpoint(ckpt, stage, "downstream", checkpoint, allow_other_base=allow_other_base,
                     base_option="--base_model")  # fmt: skip
    stage.load_state_dict(checkpoint["state_dict"], strict=False)
    base = {"base_model": str(stage.hparams.base_model), "base_weights": stage.base_weights()}
    trained = checkpoint.get("base_weights")
    if trained is not None and trained != base["base_weights"]:  # --allow_other_base asked
        base["other_base"] = f"trained on base weights {trained}, scored on these anyway"
        note_other_base(run, trained, base["base_model"], base["base_weights"], "scoring on")
    return stage.eval(), base


def load_run_tokenizer(run: Path, base_model: str):
    """The tokenizer the run saved (pad token included); the base's for an older run."""
    from clinical_peft.models.files import load_tokenizer, read_tokenizer

    if not RunDir(run).tokenizer.is_dir():
        return load_tokenizer(base_model)
    return read_tokenizer(RunDir(run).tokenizer)  # its own code (auto_map) never runs


def precision_context(run: Path, device: torch.device):
    """Autocast as the run's trainer did (its `precision`), so scores match the run's."""
    config = RunDir(run).config
    trainer = yaml.safe_load(config.read_text()).get("trainer", {}) if config.is_file() else {}
    dtype = AUTOCAST.get(str(trainer.get("precision")))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
