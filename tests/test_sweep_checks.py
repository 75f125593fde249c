"""A sweep refuses, before any trial, inputs that every trial would miss (the clinical adapter
`make sweep` did not build), and exits non-zero with the first trial's error when no trial
finished (it printed "0 finished trials; best: None" and exited 0)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest

from clinical_peft.cli.commands import main
from clinical_peft.studies import sweep
from clinical_peft.synthetic import write_outcome_tasks

ROOT = Path(__file__).parent.parent


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    data, model = tmp_path / "outcomes", tmp_path / "model"
    write_outcome_tasks(data, n_admissions=30, seed=0)
    model.mkdir()  # only its existence is checked before trials start
    return {"outcomes": data, "model": model, "out": tmp_path / "sweeps"}


def run_sweep(inputs: dict, capsys, *variables: str) -> tuple[int, list[str]]:
    """`python -m clinical_peft sweep downstream --task mor --trials 2`, in this process."""
    args = ["sweep", "downstream", "--task", "mor", "--trials", "2", "--out", str(inputs["out"]),
            "--var", f"model={inputs['model']}", "--var", f"outcomes={inputs['outcomes']}"]  # fmt: skip
    for variable in variables:
        args += ["--var", variable]
    code = main(args)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def trials(inputs: dict) -> list:
    storage = f"sqlite:///{inputs['out'] / 'downstream-mor' / 'study.db'}"
    return optuna.load_study(study_name="downstream-mor", storage=storage).get_trials()


def failing_trial(message: str):
    """In place of a trial's process: print a traceback's end and `message`, exit 2."""
    started = []

    def run(cmd: list[str], log, env: dict | None = None) -> int:
        started.append(cmd)
        log.write(f"Traceback (most recent call last):\n  ...\n{message}\n")
        return 2

    run.started = started
    return run


def test_a_missing_clinical_adapter_is_refused_before_any_trial(inputs, capsys, monkeypatch):
    adapter = inputs["out"].parent / "pretrain" / "lora" / "adapter"
    trial = failing_trial(f"error: {adapter}: clinical adapter folder not found")
    monkeypatch.setattr(sweep, "run_to_end", trial)
    code, err = run_sweep(inputs, capsys, f"clinical_adapter={adapter}")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {adapter}: clinical adapter folder not found")
    assert "make pretrain METHOD=lora" in err[0] and "no trial started" in err[0]
    assert not trial.started and trials(inputs) == []


def test_without_a_clinical_adapter_the_adapter_path_is_not_needed(inputs, capsys, monkeypatch):
    trial = failing_trial("error: x: stop here")
    monkeypatch.setattr(sweep, "run_to_end", trial)
    missing = f"clinical_adapter={inputs['out'].parent / 'nowhere'}"
    code, err = run_sweep(inputs, capsys, "clinical=none", missing)
    assert trial.started  # past the check: the trials ran (and failed)
    assert "--model.clinical" in trial.started[0] and "none" in trial.started[0]


def test_no_finished_trial_exits_non_zero_with_the_first_error(inputs, capsys, monkeypatch):
    inputs["model"].joinpath("x").mkdir()
    adapter = inputs["model"] / "x"
    monkeypatch.setattr(sweep, "run_to_end", failing_trial("error: notes.csv: field 'id': empty"))
    code, err = run_sweep(inputs, capsys, f"clinical_adapter={adapter}")
    assert code == 2, err
    assert len(err) == 1, err  # one line, no traceback, no "best: None"
    assert err[0].startswith(f"error: {inputs['out'] / 'downstream-mor'}: no trial finished")
    assert "(2 failed); trial 0: notes.csv: field 'id': empty" in err[0]
    assert "trial0.log" in err[0]
    assert [t.state for t in trials(inputs)] == [optuna.trial.TrialState.FAIL] * 2


def dry_run(tmp_path: Path, *variables: str) -> list[str]:
    """`make -n sweep ...` in a fresh checkout (nothing built), continuation lines joined."""
    checkout = tmp_path / "checkout"
    checkout.mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", checkout)
    for name in ("clinical_peft", "experiments", "pyproject.toml"):
        (checkout / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_DEFAULT_ENV")}
    result = subprocess.run(["make", "-n", "sweep", *variables], capture_output=True, text=True,
                            cwd=checkout, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.replace("\\\n", " ").splitlines() if "clinical_peft" in line]  # fmt: skip


def test_make_sweep_builds_the_clinical_adapter_its_trials_need(tmp_path):
    lines = dry_run(tmp_path, "TASK=mor", "TRIALS=3")
    pretrain = [i for i, x in enumerate(lines) if "clinical_peft pretrain" in x]
    (sweep_line,) = [i for i, x in enumerate(lines) if "clinical_peft sweep" in x]
    assert pretrain and pretrain[0] < sweep_line, lines
    assert "--run_dir runs/pretrain/lora" in lines[pretrain[0]]
    # as for make downstream: no clinical adapter, none built, and the trials are told so
    lines = dry_run(tmp_path / "none", "TASK=mor", "CLINICAL=none")
    assert not [x for x in lines if "clinical_peft pretrain" in x]
    assert "--var clinical=none" in lines[-1]
    # the DPO sweep builds its own data instead
    lines = dry_run(tmp_path / "dpo", "SWEEP=dpo", "TASK=triage")
    assert any("--out data/synthetic/instructions" in x for x in lines)
    assert not [x for x in lines if "clinical_peft pretrain" in x]
