"""User-facing input errors: printed as one line by the CLI, never as a traceback."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input the user can fix: a missing file or column, an unusable value, a wrong checkpoint.

    The message names the file (or option) and the field, e.g.
    ``data/discharge.csv.gz: missing column 'text' (found: note_id, subject_id)``.
    """

    def __init__(self, where: str | Path, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def require_dir(path: str | Path, what: str) -> Path:
    """Return `path` as a Path, or raise InputError if it is not an existing folder."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, f"{what} folder not found")
    return path


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} file not found")
    return path


def require_option(value, key: str, what: str):
    """`value`, or InputError naming the config key when it was not given."""
    if value is None:
        raise InputError(key, f"required: {what}")
    return value
