"""Optuna storage of a sweep: the runner and every trial's pruning callback open it alike."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

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


#: how a sweep hands its storage URL to its trials' pruning callback: never in a file, where a
#: password in the URL would stay (the trial configs, each run's config.yaml, report.md)
STORAGE_ENV = "CLINICAL_PEFT_SWEEP_STORAGE"
SECRET_KEYS = re.compile(r"(^|[?&;])([^=&;]*(?:password|passwd|pwd|secret|token|api_?key)[^=&;]*=)[^&;]*",
                         re.IGNORECASE)  # fmt: skip


def redacted(storage: str) -> str:
    """The storage as it may be shown: `user:***@host`, `password=***` in the query."""
    parts = urlsplit(storage)
    user, at, host = parts.netloc.rpartition("@")
    if at and ":" in user:
        storage = storage.replace(parts.netloc, f"{user.split(':', 1)[0]}:***@{host}", 1)
    head, mark, query = storage.partition("?")
    return head + mark + SECRET_KEYS.sub(r"\1\2***", query)


def storage_error(storage: str, err: Exception) -> InputError:
    """A storage Optuna cannot open, in one line that shows no credentials."""
    shown = redacted(storage)
    if isinstance(err, ImportError):
        return InputError("--storage", f"{shown}: its database driver is not installed ({err})")
    return InputError("--storage", f"{shown}: cannot be opened ({type(err).__name__})")
