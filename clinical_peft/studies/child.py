"""The process of one run, started by a grid or sweep runner: it never outlives its runner, so
no orphan goes on writing a run directory that a rerun would start on again.

Every run of `python -m clinical_peft <stage>` spends ~9 s of a 2-core CPU importing Lightning,
torchmetrics, transformers and peft before it reads its first option. Where the platform has
multiprocessing's fork server (Linux, macOS), a runner starts one that imports them once, and
each run is a fresh fork of it: a process that has only imported modules, not run anything, so
it starts where a new interpreter would, ~9 s sooner. Elsewhere, or for any other command, the
run is a new interpreter (`subprocess`)."""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import os
import signal
import subprocess
import sys

from clinical_peft.util.quiet import quiet_known_noise

#: what every run imports first (the fork server's preload)
WARM_MODULES = ["clinical_peft.cli.stage", "clinical_peft.stages.downstream",
                "clinical_peft.stages.pretrain", "clinical_peft.stages.dpo"]  # fmt: skip
CLI = [sys.executable, "-m", "clinical_peft"]


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


class Run:
    """A started run, whichever way it was started: its pid, wait, terminate and kill."""

    def __init__(self, process) -> None:  # a subprocess.Popen or a multiprocessing.Process
        self.process = process
        self.pid: int = process.pid

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; subprocess.TimeoutExpired when it still runs after `timeout` s."""
        if isinstance(self.process, subprocess.Popen):
            return self.process.wait(timeout)
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("a run", timeout)
        return self.process.exitcode

    def terminate(self) -> None:
        self.process.terminate()

    def kill(self) -> None:
        self.process.kill()


def start(cmd: list[str], log, env: dict | None = None, errors=None, cwd=None) -> Run:
    """Start `cmd` with its output in the open file `log` (stderr too, unless in the open file
    `errors`): a warm fork for `python -m clinical_peft ...` where the platform allows, else a
    new interpreter that dies with its starter on Linux (PR_SET_PDEATHSIG)."""
    server = fork_server()
    if server is None or cmd[: len(CLI)] != CLI:
        return Run(subprocess.Popen(cmd, stdout=log, stderr=errors or subprocess.STDOUT, env=env,
                                    cwd=cwd, preexec_fn=die_with_parent(os.getpid())))  # fmt: skip
    for handle in (log, errors or log):
        handle.flush()
    files = (log.name, (errors or log).name)
    where = str(cwd or os.getcwd())
    run = server.Process(target=_warm_run, args=(cmd[len(CLI) :], files, dict(env or os.environ), where))  # fmt: skip
    run.start()
    return Run(run)


def run_to_end(cmd: list[str], log, env: dict | None = None, errors=None, cwd=None,
               timeout: float | None = None) -> int:  # fmt: skip
    """The run's exit code (-N: killed by signal N), its output as `start` says. The run stays
    in the runner's process group and dies with it (`wait_to_end`)."""
    return wait_to_end(start(cmd, log, env, errors, cwd), timeout)


def wait_to_end(run: Run, timeout: float | None = None) -> int:
    """The run's exit code; past `timeout` seconds it is stopped and subprocess.TimeoutExpired
    raised. A runner that is stopped (SIGTERM, Ctrl-C) stops its run first: an orphaned run
    would go on writing a run directory whose lock is already released."""
    try:
        return run.wait(timeout)
    except BaseException:
        run.terminate()  # SIGTERM: the run writes its resumable checkpoint and exits
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
        raise


def fork_server():
    """multiprocessing's fork-server context preloading WARM_MODULES, or None where the
    platform has none (CLINICAL_PEFT_FRESH_PROCESS=1: none, every run a new interpreter)."""
    if os.environ.get("CLINICAL_PEFT_FRESH_PROCESS") == "1":
        return None
    return _fork_server_context()


@functools.cache  # one server per runner, started on first use
def _fork_server_context():
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WARM_MODULES)
    return context


def dress_as_cli(argv: list[str]) -> None:
    """Make this process look like `python -m clinical_peft ARGV` to whatever inspects it:
    Lightning relaunches `[sys.executable, "-m", __main__.__spec__.name, *sys.argv[1:]]` for
    each further rank of a multi-process run."""
    import importlib.util

    import __main__

    spec = importlib.util.find_spec("clinical_peft.__main__")
    __main__.__spec__ = spec
    sys.argv = [spec.origin, *argv]


def _warm_run(argv: list[str], files: tuple[str, str], env: dict[str, str], cwd: str) -> None:
    """A run in a fork of the server: the runner's environment and folder, its output in the
    files (stdout, stderr) the runner opened; its exit code."""
    os.environ.clear()
    os.environ.update(env)
    quiet_known_noise()  # its switches, in this environment
    os.chdir(cwd)
    # what a new interpreter reads from its environment at start: the import path, the threads
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[1:1] = paths
    if env.get("OMP_NUM_THREADS", "").isdigit():
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    if sys.platform.startswith("linux"):  # dies with the server, which dies with its runner
        die_with_parent(os.getppid())()
    sys.stdout.flush()
    sys.stderr.flush()
    for target, path in zip((1, 2), files, strict=True):  # file descriptors: libraries' too
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, target)
        os.close(fd)
    dress_as_cli(argv)
    from clinical_peft.cli.commands import main

    try:
        code = main(argv)
    except SystemExit as stop:  # a signal handler's exit (128 + N)
        code = stop.code if isinstance(stop.code, int) else 1
    atexit._run_exitfuncs()  # as an interpreter's exit would; multiprocessing skips them
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
