"""Reading the MIMIC CSV files in chunks, with errors that name the file and the field."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from clinical_peft.errors import InputError


def read_csv_chunks(
    path: str | Path, columns: list[str], chunksize: int = 10_000
) -> Iterator[pd.DataFrame]:
    """Yield `columns` of a (possibly gzipped) CSV, `chunksize` rows at a time, as strings.

    Never loads the whole file: MIMIC-IV radiology alone is 2.3 M notes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunksize, encoding="utf-8"
        ) as reader:
            for i, chunk in enumerate(reader):
                if i == 0:
                    missing = [c for c in columns if c not in chunk.columns]
                    if missing:
                        found = ", ".join(chunk.columns[:12])
                        raise InputError(path, f"missing column '{missing[0]}' (found: {found})")
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
