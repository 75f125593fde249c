"""Hostile use of the commands beside the stages (issue 21): two runs racing for one run
directory, a killed grid runner, predict / evaluate / export / grid / sweep given what they
must refuse; every refusal is one line (exit 2) and nothing already written is lost or leaked."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import CliRun, in_process
from test_hardening import ROOT, SCRIPTS, assert_one_line_error, cli, pretrain, snapshot

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{SCRIPTS}{os.pathsep}{ROOT}"}


def wait_for(path: Path, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert path.exists(), f"{path} never appeared"


def lock_holder(lock: Path, seconds: float = 240) -> int:
    """The pid a run writes into its run directory's lock ("pid N on HOST") before its first step."""
    deadline = time.time() + seconds
    while not (lock.is_file() and lock.read_text().startswith("pid")) and time.time() < deadline:
        time.sleep(0.2)
    return int(lock.read_text().split()[1])


def wait_until_gone(pid: int, seconds: float = 60) -> bool:
    """Whether process `pid` is gone (or a zombie) within `seconds`."""
    deadline = time.time() + seconds
    while not gone(pid) and time.time() < deadline:
        time.sleep(0.1)
    return gone(pid)


# --- 1. one run per run directory ------------------------------------------------------------
@pytest.mark.slow
def test_a_run_directory_in_use_is_refused_and_a_dead_holder_never_blocks(
    notes_dir, tiny_model, tmp_path, capfd
):
    """A second run into a folder another run is writing is refused, `--overwrite` or not,
    naming the holder's pid; once the holder is killed (-9), its lock is free."""
    run, marker = tmp_path / "run", tmp_path / "paused"
    pause = {"class_path": "test_only.PauseAtStep", "init_args": {"step": 1, "marker": str(marker)}}
    first = pretrain(notes_dir, tiny_model, run, "--trainer.callbacks", json.dumps([pause]))
    holder = CliRun(*first, env=ENV, cwd=ROOT)
    try:
        wait_for(marker)
        before = snapshot(run)
        for extra in ([], ["--overwrite"]):
            line = assert_one_line_error(
                *cli(capfd, pretrain(notes_dir, tiny_model, run, *extra)), str(run), "in use"
            )
            assert f"pid {holder.pid}" in line
            assert snapshot(run) == before  # the holder's files untouched
    finally:
        holder.run.kill()
        holder.finish()  # -9, and its output files removed
    assert (run / ".run.lock").is_file()  # what the killed run left: a lock nobody holds
    code, output = cli(capfd, pretrain(notes_dir, tiny_model, run, "--overwrite"))
    assert code == 0, output[-3000:]
    assert (run / "metrics.json").is_file() and not (run / ".run.lock").exists()


def race(args: list[str], run: Path) -> str:
    """Start two runs of `args` together; one must finish, the other be refused in one line."""
    runs = [CliRun(*args, env=ENV, cwd=ROOT) for _ in range(2)]
    results = [(done.returncode, done.stderr) for done in (run.finish(600) for run in runs)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], [err[-2000:] for _, err in results]
    refused = next(err for code, err in results if code == 2)
    assert "Traceback" not in refused and str(run) in refused
    return refused


@pytest.mark.slow
def test_two_runs_started_together_into_one_folder_one_is_refused(notes_dir, tiny_model, tmp_path):
    run = tmp_path / "run"
    race(pretrain(notes_dir, tiny_model, run), run)


@pytest.mark.slow
def test_two_downstream_runs_started_together_into_one_folder_one_is_refused(tiny_model, tmp_path):
    """`make downstream TASK=mor CLINICAL=none OUT=X` twice at once: one run's results stand."""
    from clinical_peft.synthetic import write_outcome_tasks

    write_outcome_tasks(tmp_path / "outcomes", n_admissions=40, seed=0)
    run = tmp_path / "mor"
    args = ["downstream", "-c", str(ROOT / "experiments/downstream/base.yaml"),
            "--data.task", "mor", "--model.base_model", str(tiny_model), "--model.clinical", "none",
            "--data.data_dir", str(tmp_path / "outcomes"), "--data.cache_dir", str(tmp_path / "cache"),
            "--data.max_length", "64", "--trainer.max_steps", "3", "--run_dir", str(run),
            "--trainer", str(ROOT / "experiments/trainer/cpu.yaml"),
            "--trainer.enable_progress_bar", "false"]  # fmt: skip
    assert "in use" in race(args, run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/auroc" in metrics and not (run / ".run.lock").exists()


def test_a_failed_start_leaves_no_run_directory_and_no_lock(notes_dir, tiny_model, tmp_path, capfd):
    run = tmp_path / "new" / "run"
    args = pretrain(notes_dir, tiny_model, run, "--data.block_size", "0")
    assert_one_line_error(*cli(capfd, args), "data.block_size")
    assert not (tmp_path / "new").exists()


# --- 2. a grid runner's run dies with it; a held run directory is left alone ---------------------
def grid_runner(tmp_path: Path, run: str) -> tuple[Path, str]:
    """A one-cell grid spec, and a runner script whose run is the Python code `run`."""
    spec = tmp_path / "one.yaml"
    spec.write_text("rows:\n  floor:\n    stage: baseline\n    args: {task: mor}\n")
    runner = (
        "import sys; import clinical_peft.studies.grid as g\n"
        f"g.command = lambda *a, **k: [sys.executable, '-c', {run!r}]\n"
        f"g.main([{str(spec)!r}, '--out', {str(tmp_path / 'g')!r}, '--n_boot', '10'])\n"
    )
    return spec, runner


def gone(pid: int) -> bool:
    """No such process, or a zombie: dead, waiting to be reaped by whoever adopted it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_run_dies_with_its_runner_killed_by_sigkill(tmp_path):
    pid_file = tmp_path / "run.pid"
    run = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(120)"  # fmt: skip
    _, runner = grid_runner(tmp_path, run)
    proc = subprocess.Popen([sys.executable, "-c", runner], env=ENV, start_new_session=True)
    wait_for(pid_file, 120)
    assert_dies_with_its_runner(int(pid_file.read_text()), proc)


def assert_dies_with_its_runner(
    run_pid: int, runner: subprocess.Popen, seconds: float = 60
) -> None:
    """SIGKILL the runner (it can stop nothing itself): the run must be gone within `seconds`."""
    runner.kill()
    runner.wait()
    alive = not wait_until_gone(run_pid, seconds)
    if alive:
        os.kill(run_pid, signal.SIGKILL)
    assert not alive, "the run outlived its runner"


def test_a_runner_never_starts_a_run_whose_directory_is_held(tmp_path, capfd):
    from clinical_peft.studies import grid

    marker = tmp_path / "started"
    run_dir = tmp_path / "g" / "one" / "floor" / "seed0"  # an orphan's, killed runner's run
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"the orphan's")
    held = (run_dir / ".run.lock").open("a+")  # what a running run holds (README: flock)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    held.write(f"pid {os.getpid()} on this host\n")
    held.flush()
    spec, _ = grid_runner(tmp_path, "")
    original = grid.command
    grid.command = lambda *a, **k: [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    try:
        grid.main([str(spec), "--out", str(tmp_path / "g"), "--index", "0"])
    except SystemExit as exit_:
        assert exit_.code == 0
    finally:
        grid.command = original
        held.close()
    output = "".join(capfd.readouterr())
    assert "floor/seed0: busy" in output and f"pid {os.getpid()}" in output
    assert not marker.exists()  # no second process on the held run
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"the orphan's"
    assert not run_dir.with_name("seed0.attempt1").exists()


# --- 3. two inputs never share predict's default output --------------------------------------
def test_default_outputs_are_named_by_file_and_path_as_the_makefile_says(tmp_path):
    from clinical_peft.inference.predict import output_folder

    run = tmp_path / "run"
    inputs = [tmp_path / "site1" / "notes.csv", tmp_path / "site2" / "notes.csv",
              tmp_path / "notes.v1.csv", tmp_path / "notes.v2.csv"]  # fmt: skip
    outputs = [output_folder(run, path, None) for path in inputs]
    assert len(set(outputs)) == 4 and all(o.parent == run / "external" for o in outputs)
    assert outputs[0] == output_folder(run, tmp_path / "site1" / "x" / ".." / "notes.csv", None)
    assert outputs[0].name.startswith("notes.csv-") and outputs[2].name.startswith("notes.v1.csv-")
    assert output_folder(run, inputs[0], tmp_path / "mine") == tmp_path / "mine"
    helps = {line.split(":")[0]: line for line in (ROOT / "Makefile").read_text().splitlines()
             if line.startswith(("predict:", "evaluate:"))}  # fmt: skip
    assert "default RUN/external/<file>-<hash>/predictions.csv" in helps["predict"]
    assert "default RUN/external/<folder>-<hash>" in helps["evaluate"]


# --- 8, 9. grid and sweep specs: their schema, one line each ----------------------------------
ROW = "rows:\n  a: {stage: baseline, args: {task: mor}}\n"


@pytest.mark.parametrize(
    "text, words",
    [
        ("tasks: mor\n" + ROW, "field 'tasks': expected a list of names, got the text 'mor'"),
        ("rows:\n  a: {stage: baseline, arsg: {task: mor}}\n",
         "field 'rows.a.arsg': unknown key (did you mean 'args'?)"),
        ("seed: 3\n" + ROW, "field 'seed': unknown key (did you mean 'seeds'?)"),
        ("seeds: many\n" + ROW, "field 'seeds': expected a whole number, got the text 'many'"),
        ("seeds: true\n" + ROW, "field 'seeds': expected a whole number, got true"),
        ("rows:\n  - a\n  - b\n", "field 'rows': expected a mapping of row name: settings, got a list"),
        ("rows:\n  a: [baseline]\n", "field 'rows.a': expected a mapping, got a list"),
        ("defaults: {configs: x.yaml}\n" + ROW,
         "field 'defaults.configs': expected a list of config files, got the text 'x.yaml'"),
        ("prerequisites: {clinical: {stag: pretrain}}\n" + ROW,
         "field 'prerequisites.clinical.stag': unknown key (did you mean 'stage'?)"),
    ],
)  # fmt: skip
def test_a_misread_grid_spec_is_refused_by_key(tmp_path, capfd, text, words):
    spec = tmp_path / "g.yaml"
    spec.write_text(text)
    line = assert_one_line_error(*cli(capfd, ["grid", str(spec), "--count"]), str(spec), words)
    assert "Traceback" not in line


SPACE = "params: {model.beta: {type: float, low: 0, high: 1}}\n"


@pytest.mark.parametrize(
    "text, words",
    [
        ("pruner: {n_startup_trial: 3}\n" + SPACE,
         "field 'pruner.n_startup_trial': unknown key (did you mean 'n_startup_trials'?)"),
        ("params: {model.beta: {type: float, high: 1}}\n",
         "field 'params.model.beta.low': required for a float parameter"),
        ("objective: val/auroc\n" + SPACE, "field 'objective': expected a mapping"),
        ("params: {model.beta: {type: uniform, low: 0, high: 1}}\n",
         "field 'params.model.beta.type': unknown 'uniform' (valid: float, int, categorical)"),
        ("params: {model.lr: {type: float, low: 0, high: 1, log: true}}\n", "params.model.lr"),
        ("params: {model.r: {type: categorical, choices: []}}\n", "params.model.r"),
        ("parms: {}\n", "field 'parms': unknown key (did you mean 'params'?)"),
        ("objective: {metric: val/auroc, direction: up}\n" + SPACE, "maximize or minimize"),
    ],
)  # fmt: skip
def test_a_misread_sweep_spec_is_refused_by_key_before_anything_runs(tmp_path, capfd, text, words):
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    args = ["sweep", str(spec), "--out", str(tmp_path / "sweeps"), "--trials", "1"]
    assert_one_line_error(*cli(capfd, args), str(spec), words)
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("value, words", [(None, "SLURM_ARRAY_TASK_ID is not set"),
                                          ("x7", "SLURM_ARRAY_TASK_ID: not a job index")])  # fmt: skip
def test_grid_array_without_a_slurm_index_is_one_line(tmp_path, capfd, monkeypatch, value, words):
    spec = tmp_path / "g.yaml"
    spec.write_text(ROW)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    if value is not None:
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", value)
    args = ["grid", str(spec), "--out", str(tmp_path / "g"), "--array"]
    assert_one_line_error(*cli(capfd, args), words)
    assert not (tmp_path / "g").exists()


# --- 5. a sweep's storage credentials reach no file and no console line -----------------------
def test_storage_urls_are_shown_redacted():
    from clinical_peft.studies.storage import redacted

    assert redacted("postgresql://user:pw@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert redacted("sqlite:///file:s.db?password=SECRET&uri=true") == (
        "sqlite:///file:s.db?password=***&uri=true"
    )
    assert redacted("mysql://u:p@ss@h/db?sslpassword=x&ssl=1") == "mysql://u:***@h/db?sslpassword=***&ssl=1"  # fmt: skip
    assert redacted("runs/shared/study.log") == "runs/shared/study.log"


def test_a_storage_whose_driver_is_missing_is_one_line_without_the_password(tmp_path, capfd):
    try:
        import psycopg2  # noqa: F401

        pytest.skip("psycopg2 is installed here")
    except ImportError:
        pass
    spec = tmp_path / "s.yaml"
    spec.write_text(SPACE)
    args = ["sweep", str(spec), "--out", str(tmp_path / "sweeps"), "--trials", "1",
            "--storage", "postgresql://user:SECRET@localhost/db"]  # fmt: skip
    code, output = cli(capfd, args)
    assert_one_line_error(code, output, "--storage", "user:***@localhost", "driver")
    assert "SECRET" not in output


@pytest.mark.slow
def test_a_sweeps_storage_password_is_in_no_file(tiny_model, tmp_path):
    import optuna
    from test_sweep import sweep_command

    db = tmp_path / "shared.db"
    storage = f"sqlite:///file:{db}?password=SECRET&uri=true"
    args = sweep_command(tiny_model, tmp_path, "--trials", "1", "--storage", storage)
    result = in_process(*args[3:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SECRET" not in result.stdout + result.stderr
    sweep_dir = tmp_path / "sweeps" / "downstream-mor"
    files = [p for p in sweep_dir.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and (sweep_dir / "report.md") in files
    for path in files:
        assert b"SECRET" not in path.read_bytes(), path
    assert "password=***" in (sweep_dir / "report.md").read_text()
    (trial,) = optuna.load_study(study_name="downstream-mor", storage=storage).trials
    assert trial.intermediate_values  # the trial's pruning callback found the storage
