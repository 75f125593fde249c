"""Sweeps: a 3-trial Optuna sweep on the tiny model is killed, resumes (by two workers sharing its
storage at once), ends with 3 finished trials and a best.yaml overlay the downstream CLI takes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend
from test_cli import CliRun, in_process

from clinical_peft.studies.sweep import Sweep, nested
from clinical_peft.synthetic import write_outcome_tasks
from clinical_peft.util.errors import InputError

pytestmark = pytest.mark.slow


def test_nested_overlay():
    assert nested({"model.optim.lr": 0.1, "model.beta": 0.3}) == {
        "model": {"optim": {"lr": 0.1}, "beta": 0.3}
    }


def test_objective_must_be_a_validation_metric(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("objective: {metric: test/auroc}\nparams: {model.beta: {type: float, low: 0, high: 1}}\n")  # fmt: skip
    with pytest.raises(InputError, match="objective.metric"):
        Sweep(spec, None, tmp_path / "sweeps")


def test_a_spec_that_is_not_yaml_or_not_a_mapping_is_one_line(tmp_path):
    spec = tmp_path / "s.yaml"
    for text, words in [("params: [unclosed\n", "not valid YAML (line 2)"),
                        ("- a list\n", "a sweep spec is a mapping")]:  # fmt: skip
        spec.write_text(text)
        with pytest.raises(InputError, match=re.escape(f"{spec}: {words}")):
            Sweep(spec, None, tmp_path / "sweeps")


def test_a_budget_of_no_trials_is_refused_before_anything_is_written(tmp_path):
    from clinical_peft.studies.sweep import main as sweep_main

    spec = tmp_path / "s.yaml"
    spec.write_text("params: {model.beta: {type: float, low: 0, high: 1}}\n")
    with pytest.raises(InputError, match="--trials: at least 1 .got 0"):
        sweep_main([str(spec), "--trials", "0", "--out", str(tmp_path / "sweeps")])
    assert not (tmp_path / "sweeps").exists()


def test_trial_configs_of_older_sweeps_still_name_the_pruning_callback():
    import clinical_peft.studies.sweep as sweep
    from clinical_peft.studies.pruning import OptunaPruning

    assert sweep.OptunaPruning is OptunaPruning  # its import path before it moved


def test_storage_is_a_url_or_a_journal_file(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("params: {model.beta: {type: float, low: 0, high: 1}}\n")
    with pytest.raises(InputError, match="--storage.*journal file path ending in .log"):
        Sweep(spec, None, tmp_path / "sweeps", storage="study.db")
    (tmp_path / "taken.log").mkdir()
    with pytest.raises(InputError, match="taken.log: journal storage is a folder"):
        Sweep(spec, None, tmp_path / "sweeps", storage=str(tmp_path / "taken.log"))
    assert not (tmp_path / "sweeps").exists()  # refused before anything was written


def sweep_command(tiny_model, tmp_path, *extra: str) -> list[str]:
    """`python -m clinical_peft sweep` of 3 tiny downstream trials on synthetic outcomes."""
    data = tmp_path / "outcomes"
    write_outcome_tasks(data, n_admissions=300, seed=0, n_diag_codes=20, n_proc_codes=12)
    # Tiny trials: the spec's args are CLI overrides, so a test spec adds its own.
    spec = yaml.safe_load(open("experiments/sweeps/downstream.yaml"))
    spec["args"].update({"data.max_length": 64, "trainer.limit_train_batches": 2, "trainer.max_epochs": 2,
                         "trainer.enable_progress_bar": False})  # fmt: skip
    path = tmp_path / "downstream.yaml"
    path.write_text(yaml.safe_dump(spec))
    return [
        sys.executable, "-m", "clinical_peft", "sweep", str(path), "--task", "mor",
        "--trials", "3", "--out", str(tmp_path / "sweeps"), "--var", f"model={tiny_model}",
        "--var", f"outcomes={data}", "--var", f"cache={tmp_path / 'cache'}",
        "--var", "clinical=none", *extra,
    ]  # fmt: skip


def run_workers(args: list[str], n: int = 2) -> None:
    """`n` workers of one sweep at once, each to its end: n - 1 warm forks (`python -m` ARGS)
    and one in this process meanwhile."""
    workers = [CliRun(*args[3:]) for _ in range(n - 1)]
    here = in_process(*args[3:])
    assert here.returncode == 0, here.stdout + here.stderr
    for worker in workers:
        done = worker.finish(timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr


def test_killed_sweep_resumes_with_two_workers_and_writes_best(tiny_model, tmp_path):
    args = sweep_command(tiny_model, tmp_path)
    out = tmp_path / "sweeps"
    sweep_dir = out / "downstream-mor"
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (sweep_dir / "trial1").is_dir() and time.time() < deadline:  # trial 0 finished
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_workers(args)
    study = optuna.load_study(
        study_name="downstream-mor", storage=f"sqlite:///{sweep_dir / 'study.db'}"
    )
    states = [t.state for t in study.trials]
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert 3 <= len(finished) <= 4, states  # the two workers may both start the last one
    orphan = study.trials[1]  # killed while running: failed, its params tried again
    assert orphan.state.name == "FAIL"
    assert any(t.params == orphan.params for t in study.trials[2:])
    for t in finished:  # pruning saw the epoch-end validation metric of each fit
        assert t.intermediate_values, t.number
    best = yaml.safe_load((sweep_dir / "best.yaml").read_text())
    assert best["model"]["optim"]["lr"] == pytest.approx(study.best_trial.params["model.optim.lr"])
    assert (sweep_dir / "report.md").is_file() and (sweep_dir / "history.png").is_file()
    assert_best_overlay_parses(sweep_dir, study, tmp_path)


def test_two_workers_share_a_journal_file_storage(tiny_model, tmp_path):
    """`make sweep STORAGE=<file>.log`: Optuna's journal file, in a folder not made yet, named
    relative to the working directory (as in the Makefile), shared by two workers at once."""
    journal = tmp_path / "shared" / "study.log"
    relative = os.path.relpath(journal)
    run_workers(sweep_command(tiny_model, tmp_path, "--storage", relative))
    sweep_dir = tmp_path / "sweeps" / "downstream-mor"
    assert not (sweep_dir / "study.db").exists()  # the journal, not the default SQLite
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="downstream-mor", storage=storage)
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert 3 <= len(finished) <= 4, [t.state for t in study.trials]
    assert len({t.number for t in study.trials}) == len(study.trials)
    for t in finished:  # each trial's own process reported to the journal too
        assert t.intermediate_values, t.number
        assert (sweep_dir / f"trial{t.number}" / "metrics.json").is_file()
    best = yaml.safe_load((sweep_dir / "best.yaml").read_text())
    assert best["model"]["optim"]["lr"] == pytest.approx(study.best_trial.params["model.optim.lr"])
    assert_best_overlay_parses(sweep_dir, study, tmp_path)


def assert_best_overlay_parses(sweep_dir, study, tmp_path) -> None:
    """best.yaml is a config the downstream stage accepts (parsed and printed, not run)."""
    printed = in_process("downstream", "-c", "experiments/downstream/base.yaml", "--data.task", "mor",
                         "-c", str(sweep_dir / "best.yaml"), "--run_dir", str(tmp_path / "x"),
                         "--print_config")  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    config = yaml.safe_load(printed.stdout)
    assert config["model"]["downstream"]["class_path"] == "peft.LoraConfig"
    r = study.best_trial.params["model.downstream.init_args.r"]
    assert config["model"]["downstream"]["init_args"]["r"] == r
