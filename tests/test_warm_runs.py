"""A grid or sweep runner's runs are forks of one process that imported Lightning, transformers
and peft once (clinical_peft.studies.child): each is still the run `python -m clinical_peft` would
be, with its own folder, log and exit code, relaunched right for more ranks, and dead with its
runner."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_hardening import pretrain
from test_hardening_commands import ENV, ROOT, assert_dies_with_its_runner, lock_holder

from clinical_peft.studies.child import CLI, dress_as_cli, fork_server, run_to_end

LINUX = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"
)


def test_a_warm_run_has_the_runners_folder_and_its_own_log_and_exit_code(tmp_path, monkeypatch):
    assert fork_server() is not None  # Linux and macOS have one
    (tmp_path / "spec.yaml").write_text("seeds: 3\nrows:\n  floor:\n    stage: downstream\n")
    monkeypatch.chdir(tmp_path)  # the relative spec path reads from the runner's folder
    log = tmp_path / "count.log"
    with log.open("w") as handle:
        assert run_to_end([*CLI, "grid", "spec.yaml", "--count"], handle) == 0
    assert log.read_text().split() == ["3"]
    with log.open("w") as handle:
        assert run_to_end([*CLI, "grid", "nope.yaml", "--count"], handle) == 2
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.yaml" in errors[0], log.read_text()


def test_a_warm_run_relaunches_further_ranks_as_the_cli(monkeypatch):
    """Lightning starts ranks 1.. of DDP / DeepSpeed as `[python, -m, __main__'s module, *argv]`."""
    from lightning.fabric.strategies.launchers.subprocess_script import _basic_subprocess_cmd

    import __main__

    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(__main__, "__spec__", getattr(__main__, "__spec__", None), raising=False)
    dress_as_cli(["grid", "--help"])
    cmd = _basic_subprocess_cmd()
    assert list(cmd) == [sys.executable, "-m", "clinical_peft.__main__", "grid", "--help"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "--count" in done.stdout + done.stderr


@LINUX
def test_a_warm_run_dies_with_its_runner_killed_by_sigkill(notes_dir, tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    args = pretrain(notes_dir, tiny_model, run_dir, "--trainer.max_steps", "100000")
    runner = (
        "import sys; from clinical_peft.studies.child import CLI, run_to_end\n"
        f"run_to_end([*CLI, *{args!r}], open({str(tmp_path / 'run.log')!r}, 'w'))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", runner], env=ENV, cwd=ROOT, start_new_session=True
    )
    run_pid = lock_holder(run_dir / ".run.lock")
    assert run_pid != proc.pid  # the run is its own process
    assert_dies_with_its_runner(run_pid, proc)
