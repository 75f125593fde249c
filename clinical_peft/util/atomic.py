"""Atomic file writes (the one helper every writer of results, checkpoints and data uses) and
file locks."""

from __future__ import annotations

import fcntl
import json
import os
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
