"""`python -m clinical_peft STAGE -c CONFIG.yaml [--key value ...]`: one run, one run directory.

Every stage runs the same way: build data and model from the config (Lightning's own CLI),
score the untrained adapter, fit (the final weights validated too), pick the best checkpoint,
score again, and write the run directory: config.yaml, metrics.json (`scored_checkpoint` and
`scored_step` name the weights scored), checkpoints/, adapter/, tokenizer/ (see README). A run
killed anywhere resumes to the same end (cli/checkpoints.py).

A run holds a lock on its run directory for its whole life (a second run into it is refused,
naming the first's pid). A run directory that holds anything is refused unless the run resumes
it (`--ckpt_path` inside it) or `--overwrite` is given; all that can be checked cheaply
(checkpoint, model and data folders, options) is checked before the first byte is written. SIGTERM and SIGINT stop a run
with a resumable `checkpoints/last.ckpt` and exit code 128 + the signal's number.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

from clinical_peft.util.quiet import quiet_known_noise

quiet_known_noise()  # before the libraries load: some read their switches at import

from lightning.pytorch.callbacks.progress import ProgressBar as AnyProgressBar  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger  # noqa: E402
from lightning.pytorch.utilities.exceptions import SIGTERMException  # noqa: E402

from clinical_peft.cli.callbacks import (  # noqa: E402
    AtomicCheckpointIO,
    Interrupted,
    ProgressBar,
    RestoreLoaderPosition,
    RunState,
    Scored,
    StopOnSignal,
    Throughput,
)
from clinical_peft.cli.checkpoints import (  # noqa: E402
    BestCheckpoint,
    LastCheckpoint,
    ValidateAtEnd,
    align_logging_step,
)
from clinical_peft.cli.model_card import write_model_cards  # noqa: E402
from clinical_peft.cli.run_dir import (  # noqa: E402
    RunDir,
    RunLock,
    before_metrics,
    check_checkpoint,
    claim_run_dir,
    clear_run_outputs,
    is_first_process,
    keep_logged_rows,
    read_checkpoint,
)
from clinical_peft.data.base import DataModuleBase  # noqa: E402
from clinical_peft.data.contracts import require_data  # noqa: E402
from clinical_peft.models.backbone import check_attention_trains  # noqa: E402
from clinical_peft.stages import STAGES  # noqa: E402
from clinical_peft.studies.tables import plot_run  # noqa: E402
from clinical_peft.util.atomic import write_json  # noqa: E402
from clinical_peft.util.errors import InputError, exit_code  # noqa: E402
from clinical_peft.util.flags import underscored  # noqa: E402

log = logging.getLogger("clinical_peft")


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
    """Lightning's CLI plus the run directory, checkpointing and the data <-> model links.

    The data module is any DataModuleBase subclass the config names (`data: class_path:`);
    `default_data` (else the stage's own, STAGES) where it names none."""

    def __init__(
        self,
        stage: str,
        model_class: type,
        default_data: type | None = None,
        *args,
        stopper: StopOnSignal | None = None,
        run_lock: RunLock | None = None,
        **kwargs,
    ) -> None:
        self.stage = stage
        self.run_lock = run_lock or RunLock()  # the caller releases it when the run ends
        self.stopper = stopper or StopOnSignal(RunDir(".").last_ckpt)
        default = default_data or _import(STAGES[stage][1])
        self.default_data = f"{default.__module__}.{default.__qualname__}"
        super().__init__(model_class, DataModuleBase, *args, subclass_mode_data=True, **kwargs)

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        given = args if isinstance(args, list) else sys.argv[1:]
        refuse_dropped_data_arguments(given, self.config.data)

    def before_instantiate_classes(self) -> None:
        # Before the model loads: these checks read nothing big and write nothing.
        config = self.config
        deepspeed = "deepspeed" in str(config.get("trainer", {}).get("strategy")).lower()
        self.checkpoint = {}
        if config.ckpt_path:  # what is wrong with it first, then what is in the run directory
            self.checkpoint = read_checkpoint(config.ckpt_path, self.stage, deepspeed)
        claim_run_dir(self.run_lock, config.run_dir, config.ckpt_path, config.overwrite)
        # config.yaml must not carry it: re-running a saved config would then overwrite unasked
        self.overwrite, config.overwrite = config.overwrite, False
        apply_budget(config, config.budget)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as err:
            # jsonargparse wraps what a data module chosen by class_path raised: the one-line
            # InputError is a cause further down the chain.
            cause: BaseException | None = err
            while cause is not None and not isinstance(cause, InputError):
                cause = cause.__cause__
            if cause is None:
                raise
            raise cause from None

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_dir", type=str, required=True, help="Where this run writes.")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="Resume from this.")
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace the outputs of an earlier run in --run_dir (else refused).",
        )
        for what in ("base", "data"):
            parser.add_argument(
                f"--allow_other_{what}",
                action="store_true",
                help=f"Resume a checkpoint made on other {what} than this run's (else refused).",
            )
        parser.add_argument(
            "--budget",
            type=int | None,
            default=None,
            help="Cap the run's work at N batches per loop: max_steps, limit_val_batches and "
            "limit_test_batches at most N, generation at most N x eval_batch_size examples.",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int | None,
            default=None,
            help="Also write checkpoints/last.ckpt every N optimizer steps (besides each epoch).",
        )
        # A config without `data: class_path` (an older run's config.yaml) reads the default.
        parser.set_defaults({"data": {"class_path": self.default_data}})
        # Data modules know nothing of models: the CLI hands them the model's tokenizer folder.
        parser.link_arguments("model.base_model", "data.init_args.tokenizer")
        for source, target in INSTANTIATE_LINKS.get(self.stage, []):
            parser.link_arguments(source, target, apply_on="instantiate")

    def instantiate_trainer(self, **kwargs):
        run_dir = RunDir(self.config.run_dir)
        model = self.model
        trainer_config = self._get(self.config_init, "trainer", default={})
        kwargs.update(
            logger=run_loggers(run_dir.path, trainer_config.get("logger")),
            use_distributed_sampler=False,  # our loaders shard themselves (data/loader.py)
        )
        strategy = trainer_config.get("strategy")
        if "deepspeed" not in str(type(strategy)).lower() + str(strategy).lower():
            kwargs["plugins"] = [AtomicCheckpointIO()]
        if getattr(strategy, "zero_stage_3", False):
            self.datamodule.even_evaluation_shards = True
            log.info(
                "ZeRO-3: ranks a batch short run a filler batch at evaluation (data/loader.py)"
            )
        callbacks = [
            BestCheckpoint(
                run_dir.checkpoints, run_dir.best_ckpt.stem, model.monitor, model.monitor_mode
            ),
            LastCheckpoint(run_dir.checkpoints, self.config.checkpoint_every_n_steps),
            ValidateAtEnd(),
            Throughput(),
            Scored(),
            RestoreLoaderPosition(),
            RunState(self.stage),
            self.stopper,
        ]
        user_callbacks = trainer_config.get("callbacks") or []
        own_bar = any(isinstance(cb, AnyProgressBar) for cb in user_callbacks)
        if trainer_config.get("enable_progress_bar") is not False and not own_bar:
            callbacks.append(ProgressBar())
        kwargs["callbacks"] = list(user_callbacks) + callbacks
        return super().instantiate_trainer(**kwargs)


def apply_budget(config, budget: int | None) -> None:
    """`--budget N`: every loop of the run capped at N batches (a smaller setting is kept), so
    one number sizes a real-model run for a CPU; config.yaml records the capped values."""
    if budget is None:
        return
    if budget < 1:
        raise InputError("budget", f"{budget}: at least 1 batch")
    trainer = config.trainer
    if trainer.max_steps is None or trainer.max_steps < 0 or trainer.max_steps > budget:
        trainer.max_steps = budget
    for key in ("limit_val_batches", "limit_test_batches"):
        value = trainer.get(key)
        if value is None or isinstance(value, float) or value > budget:
            trainer[key] = budget
    data = config.data.get("init_args") or {}
    if "max_eval_examples" in data:  # instruction data: generations of the test split
        cap = budget * (data.get("eval_batch_size") or data.get("batch_size") or 1)
        if data["max_eval_examples"] is None or data["max_eval_examples"] > cap:
            data["max_eval_examples"] = cap


def refuse_dropped_data_arguments(args: list[str], data) -> None:
    """jsonargparse silently drops the `--data.*` arguments a later `--data <class>` does not take."""
    keys = []
    for arg in args:
        if isinstance(arg, str) and arg.startswith("--data."):
            key = arg.removeprefix("--data.").split("=", 1)[0].removeprefix("init_args.")
            if key not in ("class_path", "init_args", "help"):
                keys.append(key.split(".")[0])
    dropped = [f"data.{key}" for key in dict.fromkeys(keys) if key not in data.init_args]
    if dropped:
        raise InputError(
            ", ".join(dropped),
            f"not an argument of {data.class_path}, the data class chosen after it on the "
            "command line",
        )


def run_loggers(run_dir: Path, user: object) -> list[Logger]:
    """The CSV logger first (metrics.csv, curves.png and metrics.json read it), TensorBoard's
    event files in run_dir/tensorboard, then whatever loggers the user named (MLflow, W&B, ...)."""
    named = user if isinstance(user, list) else [user]
    return [
        CSVLogger(save_dir=run_dir, name="", version=""),
        TensorBoardLogger(
            save_dir=run_dir, name="", version=RunDir.tensorboard, default_hp_metric=False
        ),
        *(logger for logger in named if isinstance(logger, Logger)),
    ]


def log_final_metrics(trainer, metrics: dict) -> None:
    """The run's final metrics (metrics.json) into every logger but the CSV one, and close them."""
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    for logger in trainer.loggers[1:]:
        logger.log_metrics({f"final/{k}": v for k, v in numbers.items()}, step=trainer.global_step)
        logger.finalize("success")


def run_stage(stage: str, args: list[str]) -> dict:
    stopper = StopOnSignal(RunDir(".").last_ckpt)  # the path is set once run_dir is known
    run_lock = RunLock()  # taken once the run directory is known, held to the run's end
    with stopper.installed():
        try:
            return _run_stage(stage, args, stopper, run_lock)
        except (SIGTERMException, Interrupted):
            raise stopper.interruption() from None
        except Exception:
            if stopper.signum is None:
                raise
            # raised by the signal inside a library that wrapped it (e.g. `datasets`)
            raise stopper.interruption() from None
        finally:
            run_lock.release()


def _run_stage(stage: str, args: list[str], stopper: StopOnSignal, run_lock: RunLock) -> dict:
    cli = StageCLI(
        stage,
        _import(STAGES[stage][0]),
        args=args,
        stopper=stopper,
        run_lock=run_lock,
        run=False,
        seed_everything_default=0,
        auto_configure_optimizers=False,
        # Metric states reset inside inference mode could not be updated in training later;
        # the sanity check is redundant since every stage evaluates before fitting.
        trainer_defaults={
            "inference_mode": False,
            "num_sanity_val_steps": 0,
        },  # stages build their own (trainable parameters only)
        save_config_kwargs={"overwrite": True, "config_filename": RunDir(".").config.name},
        parser_kwargs={"prog": f"python -m clinical_peft {stage}"},
    )
    paths = RunDir(cli.config.run_dir)
    run_dir = paths.path
    stopper.last_path = paths.last_ckpt
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    require_data(data, model.data_protocol, f"the {stage} stage")  # before any fitting
    if trainer.limit_val_batches == 0:  # the held-out scores and best.ckpt come from validation
        raise InputError(
            "--trainer.limit_val_batches",
            f"0 turns off validation, which the {stage} stage scores on (before and after "
            "training, and to choose best.ckpt); cap it with a small number instead",
        )
    check_attention_trains(getattr(model, "attn_implementation", None),
                           trainer.strategy.root_device.type)  # fmt: skip
    model.base_fingerprint()  # cached now, before a sharding strategy (FSDP) wraps the network
    run_state = next(cb for cb in trainer.callbacks if isinstance(cb, RunState))
    ckpt_path = cli.config.ckpt_path
    if ckpt_path:
        before = check_checkpoint(
            ckpt_path, model, stage, cli.checkpoint, data,
            cli.config.allow_other_base, cli.config.allow_other_data,
        )  # fmt: skip
        resumed_step = cli.checkpoint.get("global_step", 0)
        cli.checkpoint = {}  # its optimizer state is not needed twice in memory
    resumes_inside = ckpt_path and Path(ckpt_path).resolve().is_relative_to(run_dir.resolve())
    if cli.overwrite and not resumes_inside and is_first_process():
        clear_run_outputs(run_dir)  # only now: every check above has passed
    if ckpt_path:
        # A resumed run keeps what was measured before training in its first part.
        metrics = before or before_metrics(paths.metrics)
        keep_logged_rows(trainer, paths.metrics_csv, resumed_step)
    else:
        metrics = model.evaluate_before_fit(trainer, data)
    run_state.metrics_before = dict(metrics)
    stopper.stop_if_signalled()
    started = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    stopper.stop_if_signalled()
    align_logging_step(trainer)
    metrics["time/fit_seconds"] = time.perf_counter() - started
    # before scoring: validating from best.ckpt restores the callbacks' state of its step
    throughput = next(cb for cb in trainer.callbacks if isinstance(cb, Throughput))
    totals = throughput.totals(trainer)
    metrics.update(model.evaluate_after_fit(trainer, data, run_dir))
    metrics.update(model.scored_weights)
    metrics.update(totals)
    scored = next(cb for cb in trainer.callbacks if isinstance(cb, Scored))
    metrics.update(scored.totals(trainer))  # the loops evaluate_after_fit ran
    metrics.update(model.parameter_counts())
    metrics["base_fingerprint"] = model.base_fingerprint()
    model.export(run_dir)  # on every rank: ZeRO-3 gathers the adapter's shards
    if trainer.is_global_zero:
        data.tokenizer.save_pretrained(paths.tokenizer)
        write_json(paths.metrics, metrics)
        plot_run(run_dir)
        write_model_cards(run_dir, stage, metrics)
        log_final_metrics(trainer, metrics)
    return metrics


def main(stage: str, argv: list[str]) -> int:
    """Run `stage` (the dispatcher, clinical_peft.cli.commands, chose it): exit code 0, 2 with a
    one-line error, or 128 + the signal's number when SIGTERM / SIGINT stopped it."""

    def run() -> None:
        metrics = run_stage(stage, underscored(argv))
        summary = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        if is_first_process():  # every rank of a DDP run returns here; one line is the run's
            print(f"{stage} done: {summary}")

    try:
        return exit_code(run)
    except Interrupted as err:  # not an `error_line`: exit_code lets it through
        print(f"error: {err}", file=sys.stderr)
        return 128 + err.signum
