"""Reading the MIMIC CSV files in chunks, with errors that name the file and the field."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from clinical_peft.util.errors import InputError, quote_value, require_file

OTHER_SEPARATORS = {";": "';'", "\t": "a tab", "|": "'|'"}


def read_csv_chunks(
    path: str | Path, columns: list[str], chunksize: int = 10_000
) -> Iterator[pd.DataFrame]:
    """Yield `columns` of a (possibly gzipped) CSV, `chunksize` rows at a time, as strings.

    Never loads the whole file: MIMIC-IV radiology alone is 2.3 M notes.
    """
    path = require_file(path)
    try:
        check_separator(path)
        with pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunksize, encoding="utf-8"
        ) as reader:
            for i, chunk in enumerate(reader):
                if i == 0:
                    check_header(path, list(chunk.columns), columns)
                yield chunk[columns]
    except UnicodeDecodeError as err:
        raise InputError(
            path, f"field 'text': bytes that are not UTF-8 near byte {err.start}"
        ) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InputError(path, f"truncated or corrupt gzip archive ({err})") from None
    except pd.errors.EmptyDataError:
        raise InputError(path, "file is empty (no header row)") from None
    except pd.errors.ParserError as err:
        raise InputError(path, f"malformed CSV ({str(err).splitlines()[0]})") from None


def check_separator(path: Path) -> None:
    """Refuse a first line with no comma but another separator (a CSV saved with ';')."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        first = f.readline(1 << 20)
    counts = {sep: first.count(sep.encode()) for sep in OTHER_SEPARATORS}
    sep = max(counts, key=counts.get)
    if counts[sep] and first.count(b",") == 0:
        raise InputError(path, f"expected ',' between fields, found {OTHER_SEPARATORS[sep]}?")


def check_header(path: Path, found: list[str], columns: list[str]) -> None:
    """Refuse a header that lacks one of `columns`. The names found are echoed only when the
    header is real (it names some of `columns`); otherwise it may be a row of patient text."""
    missing = [c for c in columns if c not in found]
    if not missing:
        return
    if len(missing) == len(columns):
        raise InputError(
            path,
            f"no header row naming the columns {', '.join(columns)} (a file without a header?)",
        )
    names = ", ".join(quote_value(name).strip("'") for name in found[:12])
    raise InputError(path, f"missing column '{missing[0]}' (found: {names})")


def read_jsonl(path: Path, keys: tuple[str, ...], booleans: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a JSONL file with string values for `keys` (true / false for those also in
    `booleans`); errors name the file and line."""
    rows = []
    with require_file(path).open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(
                    f"{path}:{line_no}",
                    f"bytes that are not UTF-8 (at byte {err.start} of the line)",
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{line_no}", f"invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{line_no}", "expected a JSON object")
            for key in keys:
                if key not in row:
                    raise InputError(f"{path}:{line_no}", f"missing key '{key}'")
                if key in booleans:
                    if not isinstance(row[key], bool):
                        raise InputError(f"{path}:{line_no}", f"field '{key}' is not true or false")
                elif not isinstance(row[key], str):
                    raise InputError(f"{path}:{line_no}", f"field '{key}' is not a string")
            rows.append({"line": line_no, **{k: row[k] for k in keys}})
    return rows
