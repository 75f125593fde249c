"""What a sweep checks around its trials: before the first, that the files and folders every
trial reads exist; after the last, that at least one trial finished (else the first failure's
error, in one line, and a non-zero exit)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from clinical_peft.studies.grid import last_error
from clinical_peft.util.errors import InputError, path_problem, require_file

#: trial arguments naming folders that every trial reads, and how to get each one
TRIAL_INPUTS = {
    "model.base_model": ("base model", "a local model folder; make tiny-model builds the default"),
    "data.data_dir": ("data", "the task's files; make sweep writes the synthetic ones"),
    "model.clinical_adapter": (
        "clinical adapter",
        "make pretrain METHOD=lora builds it, as make sweep does; or --var clinical=none",
    ),
    "model.sft_adapter": ("SFT adapter", "make sft builds it"),
}


def trial_log(sweep_dir: Path, number: int) -> Path:
    """The output of trial `number`'s process."""
    return sweep_dir / "logs" / f"trial{number}.log"


def check_trial_inputs(configs: list[str], args: dict[str, str]) -> None:
    """Refuse, in one line before any trial starts, a config file or an input folder that every
    trial would miss (each would fail on it in turn)."""
    for config in configs:
        require_file(config, "config")
    for key, (what, remedy) in TRIAL_INPUTS.items():
        value = args.get(key)
        unused = key == "model.clinical_adapter" and args.get("model.clinical") == "none"
        if value is None or unused:
            continue
        problem = path_problem(value, "folder")
        if problem:
            raise InputError(
                value, f"{what} folder {problem} (the trials' --{key}: {remedy}); no trial started"
            )


def refuse_if_none_finished(study: optuna.Study, sweep_dir: Path) -> None:
    """No trial completed or pruned: InputError naming the first failed trial's error."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials):
        return
    failed = sorted((t for t in trials if t.state == TrialState.FAIL), key=lambda t: t.number)
    if not failed:
        raise InputError(sweep_dir, "no trial finished")
    first = failed[0]
    log = trial_log(sweep_dir, first.number)
    error = first.user_attrs.get("error") or (last_error(log) if log.is_file() else "")
    error = error.removeprefix("error: ")  # the trial's own one-line error
    raise InputError(
        sweep_dir,
        f"no trial finished ({len(failed)} failed); trial {first.number}: "
        f"{error or '(no error recorded)'} (log: {log})",
    )
