"""An on-disk cache of processed datasets, keyed by everything that changes the result."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from transformers import PreTrainedTokenizerBase


def file_stamp(path: str | Path) -> dict:
    """What identifies an input file's content cheaply: its path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def content_stamp(path: str | Path, sample: int = 1 << 20) -> str:
    """What identifies a file's content wherever it lies, cheaply: its size and a hash of its first,
    middle and last MiB (a copy elsewhere gives the same stamp, other data another)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        for start in sorted({0, max(0, size // 2 - sample // 2), max(0, size - sample)}):
            f.seek(start)
            digest.update(f.read(sample))
    return digest.hexdigest()[:16]


def tokenizer_stamp(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of the tokenizer's vocabulary, merges and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab())
    specials = json.dumps(
        [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id], default=str
    )
    return hashlib.sha256((state + specials).encode()).hexdigest()[:16]


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_build(folder: Path, parts: dict, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Return `folder/<key>` built by `build(tmp_dir)` unless it exists already; and if it was a hit.

    The build writes into a temporary sibling that is renamed at the end, so an interrupted
    build never leaves a half-written cache entry that a later run would trust.
    """
    target = folder / cache_key(parts)
    if (target / "key.json").is_file():
        return target, True
    # One temporary folder per process: nodes sharing a filesystem may build at the same time.
    tmp = folder / f".tmp-{target.name}-{socket.gethostname()}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        (tmp / "key.json").write_text(json.dumps(parts, indent=1, sort_keys=True, default=str))
        if target.exists() and not (target / "key.json").is_file():
            shutil.rmtree(target, ignore_errors=True)  # a stale entry, never a complete one
        tmp.rename(target)
    except OSError:
        if not (target / "key.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # ours, or the loser of a race
    return target, False
