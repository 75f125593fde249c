"""User-facing input errors: printed as one line by the CLI, never as a traceback."""

from __future__ import annotations

import errno
import stat
import sys
from collections.abc import Callable
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


def at_least_one(value: int | None, where: str) -> None:
    """Seeds, trials, resamples, batch sizes: below 1 would run nothing, or fail deep inside."""
    if value is not None and value < 1:
        raise InputError(where, f"at least 1 (got {value})")


def error_line(err: BaseException) -> str | None:
    """The one line a user gets for bad input or a path the system refuses (a folder under a
    file, no permission: an OSError that names its path), or None: anything else is a bug
    and keeps its traceback."""
    if isinstance(err, InputError):
        return f"error: {err}"
    if isinstance(err, OSError) and err.filename is not None:
        return f"error: {err.filename}: {err.strerror or type(err).__name__}"
    return None


def exit_code(run: Callable[[], object]) -> int:
    """0 once `run()` returns; 2 after printing its `error_line`; any other error propagates."""
    try:
        run()
    except Exception as err:
        if (line := error_line(err)) is None:
            raise
        print(line, file=sys.stderr)
        return 2
    return 0


def path_problem(path: str | Path, kind: str = "file") -> str | None:
    """Why `path` is not an existing `kind` ("file" or "folder"), or None when it is one."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if path.is_symlink() else "not found"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"cannot be read ({err.strerror})"
    if kind == "folder":
        return None if stat.S_ISDIR(mode) else "is a file, not a folder"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return None if stat.S_ISREG(mode) else "is not a regular file"


def require_dir(path: str | Path, what: str) -> Path:
    """Return `path` as a Path, or raise InputError if it is not an existing folder."""
    problem = path_problem(path, "folder")
    if problem:
        raise InputError(path, f"{what} folder {problem}")
    return Path(path)


def require_file(path: str | Path, what: str = "") -> Path:
    """Return `path` as a Path, or raise InputError saying why it is not a readable file."""
    problem = path_problem(path, "file")
    if problem:
        raise InputError(path, f"{what} file {problem}".strip())
    return Path(path)


def quote_value(value: object, limit: int = 20) -> str:
    """A field value fit for an error message: quoted when it is one short word, else only its
    length, so that a note that landed in the wrong column is never echoed."""
    text = str(value).strip()
    if len(text) <= limit and not any(c.isspace() for c in text):
        return f"'{text}'"
    return f"a text of {len(text)} characters"


def row_name(number: int, row_id: object) -> str:
    """`row id 1002`, or `row 7` (its position) when the id field holds text instead of an id."""
    quoted = quote_value(row_id)
    return f"row id {quoted[1:-1]}" if quoted.startswith("'") else f"row {number}"


def require_option(value, key: str, what: str):
    """`value`, or InputError naming the config key when it was not given."""
    if value is None:
        raise InputError(key, f"required: {what}")
    return value
