"""Atomic file writes (the one helper every writer of results, checkpoints and data uses) and
file locks."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` into a temporary file beside `path`, then rename it over `path`: a crash
    leaves the previous file, never half of a new one. The name holds the process id, so ranks
    writing side by side never share a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically: a crash leaves the previous file, never half of a new one."""
    write_atomic(
        path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    )


@contextmanager
def locked(path: Path, wait: bool = True):
    """An exclusive flock on `path`; yields False at once if `wait` is off and it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class HeldLock:
    """An exclusive flock on the file `path`, taken without waiting and held until `release`
    (or the process's end: the kernel drops the lock of a dead process, so a crash never
    blocks the next taker). The file names its holder ("pid N on HOST") and is removed on
    release."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.handle = None

    def acquire(self) -> str | None:
        """None once this process holds the lock; else who holds it."""
        while True:
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                return holder or "another process"
            # Its last holder may have removed the file between our open and flock: retry then.
            try:
                if os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            handle.close()
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self.handle = handle
        return None

    def release(self) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)  # before unlocking: see the retry in `acquire`
            self.handle.close()
            self.handle = None


def lock_holder(path: str | Path) -> str | None:
    """Who holds the `HeldLock` on `path` now, or None (no file is made)."""
    try:
        handle = Path(path).open()
    except (FileNotFoundError, NotADirectoryError):
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
