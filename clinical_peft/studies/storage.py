"""Optuna storage of a sweep: the runner and every trial's pruning callback open it alike."""

from __future__ import annotations

from pathlib import Path

import optuna

from clinical_peft.util.errors import InputError


def open_storage(storage: str):
    """An RDB URL as is; a *.log path: Optuna's journal file (safe for many processes)."""
    if storage.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    return storage


def shared_storage(storage: str) -> str:
    """`--storage` checked: an RDB URL as is; a journal *.log path with its folder made, and
    absolute (the trials' pruning callback and report.md name the one file)."""
    if storage.endswith(".log"):
        path = Path(storage).expanduser().absolute()
        if path.is_dir():
            raise InputError(path, "journal storage is a folder, not a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(path, f"journal storage folder not made ({err.strerror})") from None
        return str(path)
    if "://" not in storage:
        raise InputError(
            "--storage",
            f"{storage!r} is neither an RDB URL (sqlite:///..., postgresql://...) nor a journal "
            "file path ending in .log",
        )
    return storage
