"""The run directory: every path in it (`RunDir`, the one place that spells its file names), and
its life: one run at a time (`RunLock`), refuse to overwrite a finished run, check a checkpoint
before a byte is written, clear what `--overwrite` replaces, and carry a resumed run's history
over."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

from clinical_peft.util.atomic import HeldLock
from clinical_peft.util.errors import InputError, path_problem


class RunDir:
    """The paths of one run directory (README, "The run directory"): the stage CLI, the stages,
    the floor, the grid and sweep runners, the reports, predict and export all name files here."""

    #: what a run writes into its directory: what `--overwrite` clears (nothing else is touched)
    OUTPUTS = ("config.yaml", "hparams.yaml", "metrics.csv", "metrics.json", "curves.png",
               "labels.json", "checkpoints", "adapter", "tokenizer", "predictions", "tensorboard",
               "reliability.png", "decision_curve.csv", "decision_curve.png", "subgroups.csv",
               "subgroups.png", "subgroup_gaps.csv", "report.md")  # fmt: skip

    #: the lock a run holds for its whole life (see `RunLock`); never counted as an output
    LOCK = ".run.lock"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    lock = property(lambda self: self.path / RunDir.LOCK)
    config = property(lambda self: self.path / "config.yaml")
    """The run's whole configuration (Lightning's CLI writes it; the floor writes its own)."""
    hparams = property(lambda self: self.path / "hparams.yaml")
    metrics = property(lambda self: self.path / "metrics.json")
    """Final metrics: written last, so a run with it is finished."""
    metrics_csv = property(lambda self: self.path / "metrics.csv")
    curves = property(lambda self: self.path / "curves.png")
    labels = property(lambda self: self.path / "labels.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_ckpt = property(lambda self: self.path / "checkpoints" / "last.ckpt")
    best_ckpt = property(lambda self: self.path / "checkpoints" / "best.ckpt")
    adapter = property(lambda self: self.path / "adapter")
    tokenizer = property(lambda self: self.path / "tokenizer")
    predictions = property(lambda self: self.path / "predictions")
    reliability = property(lambda self: self.path / "reliability.png")
    """The test split's reliability diagram (calibration), as are the files below."""
    decision_curve = property(lambda self: self.path / "decision_curve.csv")
    decision_curve_plot = property(lambda self: self.path / "decision_curve.png")
    subgroups = property(lambda self: self.path / "subgroups.csv")
    subgroups_plot = property(lambda self: self.path / "subgroups.png")
    subgroup_gaps = property(lambda self: self.path / "subgroup_gaps.csv")
    report = property(lambda self: self.path / "report.md")
    """The TRIPOD+AI-style summary."""
    tensorboard = "tensorboard"
    """The TensorBoard logger's version folder name, under the run directory."""
    external = property(lambda self: self.path / "external")
    """Scores of `predict` / `evaluate` on other data, a folder per input."""
    merged = property(lambda self: self.path / "merged")
    """`export`'s default output."""

    @property
    def scored_ckpt(self) -> Path:
        """The checkpoint a finished run's test scores came from: the one metrics.json's
        `scored_checkpoint` names (`scored_weights`); runs written before it: best, else last."""
        try:
            named = json.loads(self.metrics.read_text()).get("scored_checkpoint")
        except (OSError, ValueError, AttributeError):
            named = None
        if named in ("best", "last"):  # even if deleted since: not other weights in its place
            return self.best_ckpt if named == "best" else self.last_ckpt
        return self.best_ckpt if self.best_ckpt.is_file() else self.last_ckpt

    def prediction_file(self, split: str, suffix: str = ".npz") -> Path:
        return self.predictions / f"{split}{suffix}"

    def finished(self) -> bool:
        return self.metrics.is_file()


RUN_OUTPUTS = RunDir.OUTPUTS


def data_settings(config: dict) -> dict:
    """The data module's arguments in a saved config.yaml: `data.init_args` under the
    `class_path` the YAML chose, or the `data` section itself (older runs, the baseline's)."""
    data = config.get("data") or {}
    return (data.get("init_args") or {}) if "class_path" in data else data


def is_first_process() -> bool:
    """Rank 0 of the whole job, from the launchers' variables (no Trainer exists yet)."""
    keys = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
    return all(os.environ.get(key, "0") == "0" for key in keys)


def check_run_dir(run_dir: str, ckpt_path: str | None, overwrite: bool) -> None:
    """Refuse a run directory that is a file, or that holds anything (an earlier run) unless
    this run resumes from a checkpoint inside it or `overwrite` is asked for."""
    path = Path(run_dir)
    problem = path_problem(path, "folder")
    if problem is None:
        entries = sorted(p.name for p in path.iterdir() if p.name != RunDir.LOCK)
    elif problem == "not found" and not path.is_symlink():
        return
    else:
        raise InputError(path, f"run directory {problem}")
    resumes = ckpt_path is not None and Path(ckpt_path).resolve().is_relative_to(path.resolve())
    # Other ranks start later and would find rank 0's first files: only rank 0 judges.
    if entries and not overwrite and not resumes and is_first_process():
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        last = RunDir(path).last_ckpt
        resume = f"--ckpt_path {last} to resume it, " if last.exists() else ""
        raise InputError(
            path,
            f"run directory is not empty ({shown}): pass --overwrite to replace its run "
            f"(make: OVERWRITE=1), {resume}or another run directory",
        )


class RunLock:
    """The lock on a run directory (`RunDir.lock`) that a run holds from before its first byte
    to its end: a second run into the folder is refused, naming the holder; a crashed run's
    lock is free. Folders made to hold the lock are removed again if the run wrote nothing."""

    def __init__(self) -> None:
        self.held: HeldLock | None = None
        self.made: list[Path] = []

    def acquire(self, run_dir: Path) -> None:
        made = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
        run_dir.mkdir(parents=True, exist_ok=True)
        held = HeldLock(RunDir(run_dir).lock)
        holder = held.acquire()
        if holder is not None:
            raise InputError(
                run_dir,
                f"run directory is in use by another run ({holder}): wait for it to end, or "
                "choose another run directory",
            )
        self.held, self.made = held, made

    def release(self) -> None:
        if self.held is not None:
            self.held.release()
            self.held = None
        for folder in self.made:  # innermost first; a folder the run wrote into stays
            try:
                folder.rmdir()
            except OSError:
                break
        self.made = []


def note_other_base(run: Path, trained: str, base: str, this: str, doing: str) -> None:
    """Say, on stderr, that `--allow_other_base` let `run` (trained on base weights `trained`)
    go on `doing` `base` (weights `this`)."""
    print(f"note: {run} was trained on other base weights ({trained}); {doing} {base} ({this}) "
          "as --allow_other_base asks", file=sys.stderr)  # fmt: skip


def claim_run_dir(lock: RunLock, run_dir: str, ckpt_path: str | None, overwrite: bool) -> None:
    """Take the run directory's lock, then `check_run_dir`. Only the job's first process takes
    it: the other ranks of a multi-process run write into the same folder."""
    path = Path(run_dir)
    if is_first_process() and path_problem(path, "folder") in (None, "not found"):
        lock.acquire(path)  # a file or a broken link where the folder belongs: refused below
    check_run_dir(run_dir, ckpt_path, overwrite)


def check_checkpoint_path(path: str, deepspeed: bool) -> None:
    """Refuse a checkpoint path that is missing, or of the wrong kind (a DeepSpeed checkpoint is
    a folder, any other one a file)."""
    problem = path_problem(path, "folder" if deepspeed else "file")
    if problem == "not found":
        old = Path(f"{path}.old")  # see strategies.DeepSpeedStrategy
        if old.is_dir():
            raise InputError(
                path, f"not found, but {old} is: a crash cut its replacement short; resume from it"
            )
    if problem == "is a folder, not a file":
        raise InputError(
            path,
            "checkpoint is a folder, not a file (a DeepSpeed checkpoint folder needs the "
            "DeepSpeed trainer config it was written with)",
        )
    if problem == "is a file, not a folder":
        raise InputError(path, "checkpoint is a file; the DeepSpeed strategy reads folders")
    if problem:
        raise InputError(path, f"checkpoint file {problem}")


def load_checkpoint_file(path: str | Path, mmap: bool = False):
    """`torch.load` of a checkpoint file (tensors only); a file it cannot read: InputError."""
    import torch  # here: the run directory's paths load without torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # truncated zip, pickle garbage, ...
        raise InputError(path, f"corrupt or truncated checkpoint ({type(err).__name__})") from None


def deepspeed_client_state(path: str | Path) -> dict:
    """What Lightning's DeepSpeed strategy wrote beside the shards of a checkpoint folder (the
    stage, fingerprints, loops, callbacks, `metrics_before`), from rank 0's model-states file,
    with a `state_dict` of the trainable tensors' shapes (meta tensors: no weights are read)."""
    path = Path(path)
    tag = path / "latest"
    tag = tag.read_text().strip() if tag.is_file() else "checkpoint"  # Lightning's tag
    names = ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")  # ZeRO-3
    found = [path / tag / name for name in names if (path / tag / name).is_file()]
    if not found:
        raise InputError(path, f"not a DeepSpeed checkpoint folder (no {tag}/{names[0]})")
    import torch

    state = load_checkpoint_file(found[0], mmap=True)  # a ZeRO-2 file's weights are not read
    if not isinstance(state, dict) or "loops" not in state:
        raise InputError(found[0], "field 'loops': not a Lightning DeepSpeed checkpoint")
    # the optimizer's (trainable) tensors, whole shapes even where ZeRO-3 shards them
    groups = state.get("param_shapes") or []
    shapes = {name: shape for group in groups for name, shape in group.items()}
    if not shapes:  # no ZeRO optimizer: the module's own tensors
        shapes = {name: t.shape for name, t in (state.get("module") or {}).items()}
    client = {k: v for k, v in state.items() if k not in ("module", "optimizer")}
    client["state_dict"] = {
        name: torch.empty(shape, device="meta") for name, shape in shapes.items()
    }
    return client


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a checkpoint (file or DeepSpeed folder) was written at; its tensors are
    memory-mapped, not read."""
    path = Path(path)
    state = deepspeed_client_state(path) if path.is_dir() else load_checkpoint_file(path, mmap=True)
    return int(state.get("global_step", 0))


def scored_weights(best: str | Path | None, final_step: int) -> dict:
    """metrics.json's record of the weights a run was scored with (`RunDir.scored_ckpt` reads it
    back): `scored_checkpoint` "best" (checkpoints/best.ckpt) or "last" (the final weights,
    where no best checkpoint was written) and `scored_step`, the optimizer step of those weights."""
    if best:
        return {"scored_checkpoint": "best", "scored_step": checkpoint_step(best)}
    return {"scored_checkpoint": "last", "scored_step": final_step}


def read_checkpoint(path: str, stage: str | None = None, deepspeed: bool | None = None) -> dict:
    """A checkpoint of `stage`, loaded (a DeepSpeed folder: what its strategy stored beside the
    shards, see `deepspeed_client_state`); else InputError."""
    if deepspeed is None:
        deepspeed = Path(path).is_dir()
    check_checkpoint_path(path, deepspeed)
    checkpoint = deepspeed_client_state(path) if deepspeed else load_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or not {"state_dict", "loops"} <= checkpoint.keys():
        raise InputError(path, "field 'state_dict': not a Lightning training checkpoint")
    stored = checkpoint.get("stage")
    if stage and stored and stored != stage:
        raise InputError(path, f"field 'stage': a checkpoint of {stored}, not of {stage}")
    return checkpoint


def check_checkpoint(
    path: str,
    model,
    stage: str | None = None,
    checkpoint=None,
    data=None,
    allow_other_base: bool = False,
    allow_other_data: bool = False,
    base_option: str = "--model.base_model",
) -> dict:
    """Refuse a missing, truncated or foreign checkpoint before training starts (or scoring:
    `base_option` names the command's base-model option); return the metrics it carries from
    before training (empty for older checkpoints)."""
    if checkpoint is None:
        checkpoint = read_checkpoint(path, stage)
    if model is None or not checkpoint:
        return {}
    stored = checkpoint.get("base_fingerprint")
    if stored is not None and stored != model.base_fingerprint():
        raise InputError(
            path,
            f"field 'base_fingerprint': trained on another base model ({stored}, this base is "
            f"{model.base_fingerprint()}); pass {base_option} of the model it was trained on",
        )
    stored, this = checkpoint.get("quantization", "none"), getattr(model, "quantization", "none")
    if stored != this and not allow_other_base:  # the adapter learnt to correct another base
        raise InputError(
            path,
            f"field 'quantization': trained on a {stored} base, this run loads it {this}; pass "
            f"--model.quantization {stored}, or --allow_other_base to resume on this one anyway",
        )
    # Older checkpoints name no stage: their tensors must still be this model's trainable ones.
    state, params = checkpoint["state_dict"], dict(model.named_parameters())
    model.check_holds_trainables(state, path)
    for key in sorted(model.trainable_keys()):
        if tuple(state[key].shape) != tuple(params[key].shape):
            raise InputError(
                path,
                f"field 'state_dict': {key} has shape {tuple(state[key].shape)}, this model's "
                f"{tuple(params[key].shape)}: a checkpoint of another stage or adapter",
            )
    # weights and data last: a checkpoint of another stage or adapter is named as such first
    stored = checkpoint.get("base_weights")
    if stored is not None and stored != model.base_weights() and not allow_other_base:
        raise InputError(
            path,
            f"field 'base_weights': trained on a base with the same shapes but other weights "
            f"({stored}, this base's are {model.base_weights()}); pass {base_option} of the "
            "model it was trained on, or --allow_other_base to use this one anyway",
        )
    stored = checkpoint.get("data_fingerprint")
    if stored is not None and data is not None and not allow_other_data:
        if stored != data.data_fingerprint():
            raise InputError(
                path,
                f"field 'data_fingerprint': started on other data ({stored}, this data is "
                f"{data.data_fingerprint()}); pass --data.data_dir of the data it was started "
                "on, or --allow_other_data to go on with this data anyway",
            )
    return dict(checkpoint.get("metrics_before", {}))


def clear_run_outputs(run_dir: Path) -> None:
    """What `--overwrite` removes: the files and folders a run writes, nothing else."""
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def before_metrics(path: Path) -> dict:
    """The `*_before` metrics of an earlier metrics.json (checkpoints older than `metrics_before`)."""
    previous = json.loads(path.read_text()) if path.is_file() else {}
    return {k: v for k, v in previous.items() if k.endswith("_before")}


def keep_logged_rows(trainer, path: Path, step: int) -> None:
    """Hand the rows that the first part of a resumed run logged before its checkpoint (made at
    global `step`) to the CSV logger, which would otherwise start metrics.csv afresh; later rows
    are logged again."""
    if not trainer.is_global_zero or not path.is_file():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        keys = list(reader.fieldnames or [])
        rows = [r for r in reader if r.get("step", "").isdigit() and int(r["step"]) < step]
    writer = trainer.logger.experiment  # made now: it deletes the old file
    writer.metrics[:0] = [{k: v for k, v in row.items() if v != ""} for row in rows]
    writer.metrics_keys = keys + [k for k in writer.metrics_keys if k not in keys]
