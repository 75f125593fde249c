"""Byte-exact writers shared by the synthetic generator: seeded streams, CSV and JSONL bytes,
atomic writes."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from clinical_peft.util.atomic import write_atomic


def rng_for(family: str, seed: int) -> random.Random:
    # A string seed is hashed with sha512, so streams do not depend on PYTHONHASHSEED.
    return random.Random(f"clinical-peft/{family}/{seed}")


def write_file(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def csv_bytes(header: list[str], rows: list[list], quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=quoting, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
