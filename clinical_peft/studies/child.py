"""The process of one run, started by a grid or sweep runner: it never outlives its runner, so
no orphan goes on writing a run directory that a rerun would start on again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def exit_on_sigterm() -> None:
    """SIGTERM ends a runner as an exception does, so `run_to_end` stops the run it started."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def die_with_parent(parent: int):
    """A `preexec_fn`: on Linux the kernel sends the child SIGTERM when its runner dies, even by
    SIGKILL (PR_SET_PDEATHSIG), and the run stops as on any SIGTERM, with a resumable checkpoint.
    Elsewhere: None (a stopped runner still stops its run, `run_to_end`)."""
    if not sys.platform.startswith("linux"):
        return None

    def set_death_signal() -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the runner died before the call
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


def run_to_end(cmd: list[str], log, env: dict | None = None) -> int:
    """The run's exit code. The run stays in the runner's process group and dies with it; a
    runner that is stopped (SIGTERM, Ctrl-C) stops its run first: an orphaned run would go on
    writing a run directory whose lock is already released."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=die_with_parent(os.getpid()))  # fmt: skip
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
