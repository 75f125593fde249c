# python experiments/benchmarks/pipeline.py [--sizes 10000 100000 300000] [--workdir runs/bench/pipeline]
"""Pretraining data pipeline at growing corpus sizes: notes/s and peak memory, anonymous vs file.

The corpus: `write_notes` once at the size of the smallest step (MIMIC's mix: 1 discharge note
for 7 radiology reports), then tiled to each size with fresh patient and note ids, streamed to
gzip so that writing it costs no memory. Tiling keeps the mix of note lengths fixed, so the
figures at each size differ only by the corpus size.

Each size is read, cleaned, split, tokenized, packed and cached by `NotesDataModule.prepare_data`
in a fresh process, so its peak memory is its own. Memory is sampled from /proc/self/status
every 20 ms: RssAnon (Python objects, heaps: what can run a machine out of memory) and RssFile
(pages of the memory-mapped Arrow files: page cache the kernel drops when memory is short).
Prints notes/s and both peaks per size, the growth per added note, and a projection to the
2.6 M notes of MIMIC-IV-Note. Importable: ``main(argv) -> dict``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MIMIC_NOTES = 331_794 + 2_321_355  # MIMIC-IV-Note v2.2 discharge + radiology
FILES = {"discharge": "discharge.csv.gz", "radiology": "radiology.csv.gz"}
DISCHARGE_SHARE = 1 / 8  # 7 of every 8 MIMIC-IV notes are radiology reports


def base_corpus(folder: Path, n_notes: int) -> None:
    from clinical_peft.synthetic import write_notes

    n_discharge = max(1, round(n_notes * DISCHARGE_SHARE))
    write_notes(folder, n_discharge=n_discharge, n_radiology=n_notes - n_discharge, seed=0)


def tile_corpus(base: Path, out: Path, n_notes: int) -> int:
    """Write `out` with about `n_notes` notes: copies of `base`'s rows, each copy with its own
    patient ids (so the patient split stays random) and note ids. Streams: constant memory.
    Written to a temporary folder renamed at the end: a folder that exists is complete."""
    final, out = out, out.with_name(f".{out.name}.tmp")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    csv.field_size_limit(2**31 - 1)
    counts = {}
    for name in FILES.values():
        with gzip.open(base / name, "rt", newline="", encoding="utf-8") as f:
            counts[name] = sum(1 for _ in csv.reader(f)) - 1
    total = sum(counts.values())
    written = 0
    for name, have in counts.items():
        want = round(n_notes * have / total)
        with (
            gzip.open(out / name, "wt", newline="", encoding="utf-8", compresslevel=1) as dst,
        ):
            writer = csv.writer(dst, lineterminator="\n")
            copy = 0
            n = 0
            while n < want:
                with gzip.open(base / name, "rt", newline="", encoding="utf-8") as src:
                    reader = csv.reader(src)
                    header = next(reader)
                    if copy == 0:
                        writer.writerow(header)
                    for row in reader:
                        if n == want:
                            break
                        if copy:  # columns: note_id, subject_id, ...
                            row[0] = f"{copy}-{row[0]}"
                            row[1] = f"{copy}{row[1]}"
                        writer.writerow(row)
                        n += 1
                copy += 1
        written += want
    out.rename(final)
    return written


class PeakSampler:
    """Peak RssAnon / RssFile (MB) of this process, sampled in a thread; VmHWM is exact."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.every_s, self.peak = every_s, {"RssAnon": 0.0, "RssFile": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> dict[str, float]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0]) / 1024  # kB -> MB
        return fields

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            now = self.read()
            for key in self.peak:
                self.peak[key] = max(self.peak[key], now[key])

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def child(notes: Path, model: Path, cache: Path, block_size: int) -> dict:
    """prepare_data on one corpus, in this process; figures as a dict."""
    from clinical_peft.data.notes import NotesDataModule

    data = NotesDataModule(str(notes), str(model), block_size=block_size, cache_dir=str(cache))
    data.tokenizer  # noqa: B018 (loaded before the clock starts, as in training)
    before = PeakSampler.read()
    with PeakSampler() as sampler:
        started, cpu = time.perf_counter(), time.process_time()
        data.prepare_data()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = PeakSampler.read()
    return {
        "notes": data.stats["notes"],
        "seconds": seconds,
        "notes_per_s": data.stats["notes"] / seconds,
        "notes_per_cpu_s": data.stats["notes"] / cpu,  # steadier on a loaded machine
        "anon_start_mb": before["RssAnon"],
        "peak_anon_mb": max(sampler.peak["RssAnon"], after["RssAnon"]),
        "peak_file_mb": max(sampler.peak["RssFile"], after["RssFile"]),
        "peak_rss_mb": after["VmHWM"],
        "train_examples": data.stats["train_examples"],
    }


def measure(notes: Path, model: Path, cache: Path, block_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(notes), str(model), str(cache), str(block_size)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"pipeline child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def slope(rows: list[dict], key: str) -> float:
    """Growth in kB per added note between the smallest and the largest corpus."""
    first, last = rows[0], rows[-1]
    return 1024 * (last[key] - first[key]) / max(1, last["notes"] - first["notes"])


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument(
        "--model", help="tokenizer's model folder (default: a tiny LLaMA built here)"
    )
    parser.add_argument("--workdir", help="keep corpora and model here (default: a temp folder)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        notes, model, cache, block = args.child
        result = child(Path(notes), Path(model), Path(cache), int(block))
        print(json.dumps(result))
        return result

    from clinical_peft.models.tiny_llama import build_tiny_llama

    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        base = work / f"corpus-base-{sizes[0]}"
        model = Path(args.model) if args.model else work / "tiny-llama"
        if not base.is_dir():
            base_corpus(base, sizes[0])
        if not (model / "config.json").is_file():
            build_tiny_llama(base, model)
        rows = []
        for size in sizes:
            corpus = work / f"corpus-{sizes[0]}-x-{size}"
            if not corpus.is_dir():
                tile_corpus(base, corpus, size)
            with tempfile.TemporaryDirectory(dir=work) as cache:
                rows.append({"size": size, **measure(corpus, model, Path(cache), args.block_size)})
    print("notes      notes/s  peak RSS MB  (anon MB  file MB)  anon at start MB")
    for r in rows:
        print(
            f"{r['notes']:8d} {r['notes_per_s']:9.0f} {r['peak_rss_mb']:11.0f}  "
            f"({r['peak_anon_mb']:8.0f} {r['peak_file_mb']:8.0f})  {r['anon_start_mb']:8.0f}"
        )
    first, last = rows[0], rows[-1]
    result = {
        "rows": rows,
        "throughput_ratio": last["notes_per_s"] / first["notes_per_s"],
        "throughput_ratio_cpu": last["notes_per_cpu_s"] / first["notes_per_cpu_s"],
        "peak_rss_ratio": last["peak_rss_mb"] / first["peak_rss_mb"],
        "peak_anon_ratio": last["peak_anon_mb"] / first["peak_anon_mb"],
        "anon_kb_per_note": slope(rows, "peak_anon_mb"),
        "file_kb_per_note": slope(rows, "peak_file_mb"),
    }
    # Projection to MIMIC-IV-Note: peak anonymous memory grows by its slope per note; the time
    # at the throughput of the largest corpus.
    result["mimic_anon_gb"] = (
        last["peak_anon_mb"] + result["anon_kb_per_note"] * (MIMIC_NOTES - last["notes"]) / 1024
    ) / 1024
    result["mimic_hours"] = MIMIC_NOTES / last["notes_per_s"] / 3600
    print(
        f"largest / smallest corpus ({last['notes']} / {first['notes']} notes): "
        f"notes/s x{result['throughput_ratio']:.2f} (per CPU second "
        f"x{result['throughput_ratio_cpu']:.2f}), peak RSS x{result['peak_rss_ratio']:.2f}, "
        f"peak anon x{result['peak_anon_ratio']:.2f}; growth per note: "
        f"anon {result['anon_kb_per_note']:.2f} kB, file-backed {result['file_kb_per_note']:.2f} kB"
    )
    print(
        f"projection to MIMIC-IV-Note ({MIMIC_NOTES:,} notes): peak anon memory about "
        f"{result['mimic_anon_gb']:.1f} GB, {result['mimic_hours']:.2f} h on one core"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
