"""`python -m clinical_peft STAGE -c CONFIG.yaml [--key value ...]`: one run, one run directory.

Every stage runs the same way: build data and model from the config (Lightning's own CLI),
score the untrained adapter, fit, pick the best checkpoint, score again, and write the run
directory: config.yaml, metrics.json, checkpoints/, adapter/, tokenizer/ (see README).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if not os.environ.get("CUDA_VISIBLE_DEVICES", "x"):  # no GPU asked for: keep DeepSpeed quiet
    os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from clinical_peft.callbacks import AtomicCheckpointIO, RestoreLoaderPosition, Throughput  # noqa: E402
from clinical_peft.data import loader  # noqa: E402
from clinical_peft.errors import InputError  # noqa: E402
from clinical_peft.report import plot_run  # noqa: E402
from clinical_peft.stages.base import write_json  # noqa: E402

log = logging.getLogger("clinical_peft")


def quiet_known_noise() -> None:
    """Drop messages that say nothing about this run, so that what is left gets read."""
    for message in (
        ".*LightningCLI's args parameter.*",
        ".*is_gradient_checkpointing.*",  # raised inside peft / transformers, not our call
        ".*isinstance\\(treespec, LeafSpec\\).*",  # raised inside Lightning
    ):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: "Tip:" not in record.getMessage())
    transformers_logging.disable_progress_bar()  # a "Loading weights" bar per model load


quiet_known_noise()

#: stage name -> (LightningModule, LightningDataModule), as import paths
STAGES = {
    "pretrain": ("clinical_peft.stages.pretrain:DomainAdaptation", "clinical_peft.data.notes:NotesDataModule"),
    "sft": ("clinical_peft.stages.sft:SupervisedFineTuning", "clinical_peft.data.instructions:InstructionDataModule"),
    "dpo": ("clinical_peft.stages.dpo:PreferenceOptimization", "clinical_peft.data.instructions:PreferenceDataModule"),
    "downstream": ("clinical_peft.stages.downstream:OutcomePrediction", "clinical_peft.data.outcomes:OutcomeDataModule"),
}  # fmt: skip

#: stage name -> links from a data module attribute to a model argument, made once the data
#: module exists (e.g. the number of labels a task has); `model.base_model` -> `data.tokenizer`
#: is linked for every stage.
INSTANTIATE_LINKS: dict[str, list[tuple[str, str]]] = {}
INSTANTIATE_LINKS["downstream"] = [
    ("data.kind", "model.kind"),
    ("data.num_labels", "model.num_labels"),
    ("data.class_weights", "model.class_weights"),
]


def _import(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


class StageCLI(LightningCLI):
    """Lightning's CLI plus the run directory, checkpointing and the data <-> model links."""

    def __init__(self, stage: str, *args, **kwargs) -> None:
        self.stage = stage
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_dir", type=str, required=True, help="Where this run writes.")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="Resume from this.")
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int | None,
            default=None,
            help="Also write checkpoints/last.ckpt every N optimizer steps (besides each epoch).",
        )
        # Data modules know nothing of models: the CLI hands them the model's tokenizer folder.
        parser.link_arguments("model.base_model", "data.tokenizer")
        for source, target in INSTANTIATE_LINKS.get(self.stage, []):
            parser.link_arguments(source, target, apply_on="instantiate")

    def instantiate_trainer(self, **kwargs):
        run_dir = Path(self.config.run_dir)
        model = self.model
        kwargs.update(
            logger=CSVLogger(save_dir=run_dir, name="", version=""),
            use_distributed_sampler=False,  # our loaders shard themselves (data/loader.py)
        )
        trainer_config = self._get(self.config_init, "trainer", default={})
        strategy = trainer_config.get("strategy")
        if "deepspeed" not in str(type(strategy)).lower() + str(strategy).lower():
            kwargs["plugins"] = [AtomicCheckpointIO()]
        if getattr(strategy, "zero_stage_3", False):
            loader.EVEN_EVALUATION_SHARDS = True
            log.info(
                "ZeRO-3: ranks a batch short run a filler batch at evaluation (data/loader.py)"
            )
        callbacks = [
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="best",
                monitor=model.monitor,
                mode=model.monitor_mode,
                save_top_k=1,
                enable_version_counter=False,
            ),
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                save_last=True,
                save_top_k=0,
                every_n_train_steps=self.config.checkpoint_every_n_steps,
                enable_version_counter=False,
            ),
            Throughput(),
            RestoreLoaderPosition(),
        ]
        user_callbacks = trainer_config.get("callbacks") or []
        kwargs["callbacks"] = list(user_callbacks) + callbacks
        return super().instantiate_trainer(**kwargs)


def check_checkpoint(path: str, model) -> None:
    """Refuse a missing, truncated or foreign checkpoint before training starts."""
    if Path(path).is_dir():  # a DeepSpeed checkpoint: a folder of shards, read by the strategy
        return
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        old = Path(f"{path}.old")  # see strategies.DeepSpeedStrategy
        if old.is_dir():
            raise InputError(
                path, f"not found, but {old} is: a crash cut its replacement short; resume from it"
            ) from None
        raise InputError(path, "checkpoint file not found") from None
    except Exception as err:  # truncated zip, pickle garbage, ...
        raise InputError(path, f"corrupt or truncated checkpoint ({type(err).__name__})") from None
    if "state_dict" not in checkpoint or "loops" not in checkpoint:
        raise InputError(path, "field 'state_dict': not a Lightning training checkpoint")
    stored = checkpoint.get("base_fingerprint")
    if stored is not None and stored != model.base_fingerprint():
        raise InputError(
            path,
            f"field 'base_fingerprint': trained on another base model ({stored}, this base is "
            f"{model.base_fingerprint()}); pass --model.base_model of the model it was trained on",
        )


def run_stage(stage: str, args: list[str]) -> dict:
    model_class, data_class = (_import(p) for p in STAGES[stage])
    cli = StageCLI(
        stage,
        model_class,
        data_class,
        args=args,
        run=False,
        seed_everything_default=0,
        auto_configure_optimizers=False,
        # Metric states reset inside inference mode could not be updated in training later;
        # the sanity check is redundant since every stage evaluates before fitting.
        trainer_defaults={
            "inference_mode": False,
            "num_sanity_val_steps": 0,
        },  # stages build their own (trainable parameters only)
        save_config_kwargs={"overwrite": True, "config_filename": "config.yaml"},
        parser_kwargs={"prog": f"python -m clinical_peft {stage}"},
    )
    run_dir = Path(cli.config.run_dir)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    ckpt_path = cli.config.ckpt_path
    metrics_path = run_dir / "metrics.json"
    if ckpt_path:
        check_checkpoint(ckpt_path, model)
        # A resumed run keeps what was measured before training in its first part.
        previous = _read_metrics(metrics_path)
        metrics = {k: v for k, v in previous.items() if k.endswith("_before")}
    else:
        metrics = model.evaluate_before_fit(trainer, data)
    started = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    metrics["time/fit_seconds"] = time.perf_counter() - started
    metrics.update(model.evaluate_after_fit(trainer, data, run_dir))
    throughput = next(cb for cb in trainer.callbacks if isinstance(cb, Throughput))
    metrics.update(throughput.totals(trainer))
    metrics.update(model.parameter_counts())
    metrics["base_fingerprint"] = model.base_fingerprint()
    model.export(run_dir)  # on every rank: ZeRO-3 gathers the adapter's shards
    if trainer.is_global_zero:
        data.tokenizer.save_pretrained(run_dir / "tokenizer")
        write_json(metrics_path, metrics)
        plot_run(run_dir)
    return metrics


def _read_metrics(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = [*STAGES, "tiny-model", "synthetic", "report", "baseline"]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(f"usage: python -m clinical_peft {{{','.join(commands)}}} [options]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    try:
        if command in STAGES:
            metrics = run_stage(command, rest)
            summary = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
            print(f"{command} done: {summary}")
        else:
            _import(f"clinical_peft.commands:{command.replace('-', '_')}")(rest)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
