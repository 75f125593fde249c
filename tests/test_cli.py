"""The command line: every YAML parses, bad input gives one line and exit 2, never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from test_hardening import assert_one_line_error as one_line_error
from test_hardening import cli

from clinical_peft.cli.commands import main
from clinical_peft.cli.stage import run_stage
from clinical_peft.stages import STAGES
from clinical_peft.studies.child import CLI, start, wait_to_end

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
STAGE_CONFIGS = sorted(p for stage in STAGES for p in (EXPERIMENTS / stage).glob("*.yaml"))
TRAINER_CONFIGS = sorted((EXPERIMENTS / "trainer").glob("*.yaml"))
#: a task's overlay on its stage's base.yaml, where the task differs (experiments/sft/<task>.yaml)
TASK_OVERLAYS = sorted(
    p for s in ("sft", "dpo") for p in (EXPERIMENTS / s).glob("*.yaml") if p.stem != "base"
)


def test_there_are_configs_for_every_stage():
    assert {p.parent.name for p in STAGE_CONFIGS} == set(STAGES)
    assert len(TRAINER_CONFIGS) >= 5


@pytest.mark.parametrize(
    "config", STAGE_CONFIGS + TRAINER_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_config_starts_with_its_command(config):
    first = config.read_text().splitlines()[0]
    assert first.startswith("# make ") or first.startswith("# python -m clinical_peft"), first


@pytest.mark.parametrize("config", STAGE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stage_config_parses(config, capsys):
    stage = config.parent.name
    with pytest.raises(SystemExit) as exit_info:
        run_stage(stage, ["-c", str(config), "--run_dir", "unused", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "model:" in printed and "data:" in printed


@pytest.mark.parametrize("overlay", TASK_OVERLAYS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_task_overlay_applies_on_its_stage_base(overlay, capsys):
    base = overlay.parent / "base.yaml"
    args = ["-c", str(base), "-c", str(overlay), "--run_dir", "x", "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        run_stage(overlay.parent.name, args)
    assert exit_info.value.code == 0
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["class_path"] == yaml.safe_load(base.read_text())["data"]["class_path"]
    assert data["init_args"]["task"] == overlay.stem


@pytest.mark.parametrize("trainer", TRAINER_CONFIGS, ids=lambda p: p.name)
def test_trainer_config_parses_with_every_stage(trainer, capsys):
    for stage in STAGES:
        config = next(p for p in STAGE_CONFIGS if p.parent.name == stage)
        args = ["-c", str(config), "--trainer", str(trainer), "--run_dir", "x", "--print_config"]
        with pytest.raises(SystemExit) as exit_info:
            run_stage(stage, args)
        assert exit_info.value.code == 0
        assert "accelerator:" in capsys.readouterr().out


class CliRun:
    """`python -m clinical_peft ARGS` as a grid starts it (clinical_peft.studies.child): a fork
    of a server that imported the libraries once, the process a new interpreter would be (its
    own environment, PYTHONPATH and OMP_NUM_THREADS included), ~9 s sooner. Started, not waited
    for: `pid`, `run` (kill, terminate), `finish` (the CompletedProcess)."""

    def __init__(self, *args: str, cwd: Path | None = None, env: dict | None = None) -> None:
        self.args = [*CLI, *args]
        self.folder = tempfile.TemporaryDirectory()
        self.out, self.err = Path(self.folder.name) / "stdout", Path(self.folder.name) / "stderr"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        with self.out.open("w") as stdout, self.err.open("w") as stderr:
            self.run = start(self.args, stdout, env, stderr, cwd or EXPERIMENTS.parent)
        self.pid = self.run.pid

    def finish(self, timeout: float = 300) -> subprocess.CompletedProcess:
        """Its exit code and output once it ends (stopped past `timeout` s: TimeoutExpired)."""
        code = wait_to_end(self.run, timeout)
        result = subprocess.CompletedProcess(self.args, code, self.out.read_text(), self.err.read_text())  # fmt: skip
        self.folder.cleanup()
        return result


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m clinical_peft ARGS` to its end, as CliRun starts it."""
    return CliRun(*args, cwd=cwd, env=env).finish(timeout)


def in_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m clinical_peft ARGS` in this process: for a grid or sweep runner, whose own
    start is not what its tests prove; its runs are warm forks as ever. The exit code and what
    it printed; the environment and the SIGTERM handler a runner installs are put back."""
    handler, saved = signal.getsignal(signal.SIGTERM), dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, handler)
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess([*CLI, *args], code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """`one_line_error` on a subprocess's exit code and stderr."""
    one_line_error(result.returncode, result.stderr, *words)


def pretrain_args(notes_dir, tiny_model, run_dir) -> list[str]:
    return [
        "pretrain", "-c", "experiments/pretrain/lora.yaml",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(notes_dir),
        "--data.cache_dir", str(run_dir.parent / "cache"), "--run_dir", str(run_dir),
        "--data.block_size", "32", "--data.max_notes", "30", "--trainer.max_steps", "2",
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip


@pytest.mark.slow
def test_bad_inputs_give_one_line_errors(notes_dir, tiny_model, tmp_path, capfd):
    def refused(extra: list[str], *words: str) -> None:  # in this process: no import per case
        one_line_error(*cli(capfd, [*args, *extra]), *words)

    run = tmp_path / "run"
    args = pretrain_args(notes_dir, tiny_model, run)
    refused(
        ["--model.adapter.init_args.target_modules", "[nope_proj]"], "model.adapter", "nope_proj"
    )
    missing = str(tmp_path / "mimic")
    refused(["--data.data_dir", missing], missing, "folder not found")
    refused(["--model.base_model", missing], missing, "base model")

    # a good run, then a truncated checkpoint: refused, and nothing of the run is touched
    whole = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=EXPERIMENTS.parent)
    assert whole.returncode == 0, whole.stderr[-3000:]  # one run through a new `python -m ...`
    last = run / "checkpoints" / "last.ckpt"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(last.read_bytes()[:500])
    refused(["--ckpt_path", str(broken)], "broken.ckpt", "corrupt or truncated checkpoint")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_data_argument_the_chosen_class_would_drop_is_refused(notes_dir, tiny_model, tmp_path, capfd):  # fmt: skip
    """jsonargparse drops, without a word, the `--data.*` arguments that a later `--data <class>`
    does not take: the run would go on without them. Refused in one line naming each one."""
    run = tmp_path / "run"
    args = [*pretrain_args(notes_dir, tiny_model, run), "--data", "clinical_peft.data.outcomes.OutcomeDataModule"]  # fmt: skip
    line = one_line_error(*cli(capfd, args), "data.block_size", "data.max_notes", "OutcomeDataModule")  # fmt: skip
    assert "data.data_dir" not in line and "data.cache_dir" not in line  # both classes take them
    assert not run.exists()


def test_tiny_model_command_takes_the_builders_arguments(notes_dir, tmp_path, capfd):
    """`make tiny-model`'s command: its options are `build_tiny_llama`'s (read by jsonargparse)."""
    out = tmp_path / "tiny"
    code, _ = cli(capfd, ["tiny-model", str(notes_dir), str(out), "--vocab_size", "300",
                          "--hidden_size", "16", "--num_layers", "1"])  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert code == 0 and (config["hidden_size"], config["num_hidden_layers"]) == (16, 1)
    one_line_error(
        *cli(capfd, ["tiny-model", str(tmp_path / "nope"), str(out)]), "nope", "not found"
    )


def test_unknown_command_lists_the_valid_ones():
    result = run_cli("finetune")
    assert result.returncode == 2 and "pretrain" in result.stderr


def test_a_helper_command_starts_without_lightning(tmp_path):
    """`grid --count` (a SLURM array's first call), `report`, ...: Lightning and torch load only
    for the stages (~10 s a process on these CPUs), and bad input is still one line."""
    spec = tmp_path / "g.yaml"
    spec.write_text("seeds: 3\nrows:\n  floor: {stage: baseline, args: {task: mor}}\n")
    probe = (
        "import runpy, sys; sys.argv = ['clinical_peft', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('clinical_peft', run_name='__main__')\n"
        "finally:\n    print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))\n"
    )
    for command, last_lines in [(["grid", str(spec), "--count"], ["3", "[]"]),
                                (["sweep", "--help"], ["[]"])]:  # fmt: skip
        done = subprocess.run([sys.executable, "-c", probe, *command],
                              capture_output=True, text=True, cwd=EXPERIMENTS.parent)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-len(last_lines) :] == last_lines, done.stdout
    missing = run_cli("grid", str(tmp_path / "nope.yaml"), "--count")
    assert_one_line_error(missing, "nope.yaml")


def test_a_folder_that_cannot_be_written_is_one_line(notes_dir, tiny_model, tmp_path, capfd):
    """An output path under a file (or without permission): the path and the reason, exit 2."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    out = blocked / "run"
    for args in (pretrain_args(notes_dir, tiny_model, out),
                 ["tiny-model", str(notes_dir), str(out), "--vocab_size", "300"],
                 ["synthetic", "--out", str(out), "--what", "outcomes"]):  # fmt: skip
        line = one_line_error(*cli(capfd, args), str(blocked), "Not a directory")
        assert line.startswith(f"error: {blocked}"), line


def test_synthetic_refuses_counts_below_one(tmp_path, capfd):
    """`--n-admissions 0` ended in random.sample's traceback, after the folder was made."""
    out = tmp_path / "synthetic"
    for flag in ("--n-admissions", "--n-proc-codes", "--n-discharge"):
        one_line_error(
            *cli(capfd, ["synthetic", "--out", str(out), flag, "0"]), f"{flag}: at least 1"
        )
    assert not out.exists()
