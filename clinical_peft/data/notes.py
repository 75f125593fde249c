"""NotesDataModule: MIMIC-IV-Note discharge and radiology notes for causal-LM pretraining.

Read in chunks -> cleaned as the paper did -> split 90/10 by patient -> tokenized -> packed into
fixed blocks (or padded one note at a time, the paper's recipe) -> cached as Arrow on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow.compute as pc
import torch
from datasets import Dataset, DatasetDict, Features, List, Value, load_from_disk
from datasets.exceptions import DatasetGenerationError

from clinical_peft.data.base import DataModuleBase
from clinical_peft.data.cache import cached_build, file_stamp, tokenizer_stamp
from clinical_peft.data.files import read_csv_chunks
from clinical_peft.data.framing import document_frame
from clinical_peft.data.loader import pad_rows
from clinical_peft.util.errors import InputError, require_dir, require_file, require_option

log = logging.getLogger(__name__)

NOTE_FILES = {"discharge": "discharge.csv.gz", "radiology": "radiology.csv.gz"}
NOTE_COLUMNS = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                "storetime", "text"]  # fmt: skip
CLEANING_VERSION = 1  # bump when clean_note changes, so cached datasets are rebuilt
PACKING_VERSION = 2  # bump when pack_blocks changes (2: document-masked)
STATS_VERSION = 2  # bump when stats.json gains a count (2: duplicate_note_ids)
_DEID = re.compile(r"\[\*\*|\*\*\]")
_SPACES = re.compile(r"\s+")


def clean_note(text: str) -> str:
    """The paper's cleaning: drop `[**`/`**]` brackets, newlines to spaces, collapse spaces."""
    return _SPACES.sub(" ", _DEID.sub("", text)).strip()


def is_held_out(subject_id: str, fraction: float, seed: int) -> bool:
    """A patient's side of the split, from a hash of their id: no patient on both sides, and
    the same answer for every note of theirs however the files are ordered or chunked."""
    digest = hashlib.sha256(f"{seed}:{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def note_paths(data_dir: str | Path, note_types: str) -> list[Path]:
    data_dir = require_dir(data_dir, "notes data")
    kinds = list(NOTE_FILES) if note_types == "both" else [note_types]
    if any(kind not in NOTE_FILES for kind in kinds):
        raise InputError(
            "data.note_types", f"unknown '{note_types}' (valid: discharge, radiology, both)"
        )
    return [data_dir / NOTE_FILES[kind] for kind in kinds]


def iter_clean_notes(
    paths: list[Path], counts: dict, max_notes: int | None = None
) -> Iterator[dict]:
    """Cleaned notes one at a time; empty or null texts are skipped and counted in `counts`."""
    for path in paths:
        for chunk in read_csv_chunks(path, NOTE_COLUMNS):
            for note_id, subject_id, text in zip(
                chunk["note_id"], chunk["subject_id"], chunk["text"]
            ):
                if max_notes is not None and counts["notes"] >= max_notes:
                    return
                text = clean_note(text)
                if not text:
                    counts["skipped_empty"] += 1
                    continue
                if not subject_id:
                    row = counts["notes"] + counts["skipped_empty"] + 1
                    raise InputError(path, f"field 'subject_id' is empty (note {row})")
                counts["notes"] += 1
                yield {"note_id": note_id, "subject_id": subject_id, "text": text}


def iter_split_notes(
    paths: list[Path],
    counts: dict,
    patients: dict[bool, set[str]],
    max_notes: int | None,
    fraction: float,
    seed: int,
) -> Iterator[dict]:
    """Cleaned notes with their side of the patient split (`held_out`). Each side's patients
    are gathered in `patients` as the notes stream by: memory grows with patients, not notes.
    The note ids go into the dataset, where duplicates are counted after the fact."""
    for note in iter_clean_notes(paths, counts, max_notes):
        held_out = is_held_out(note["subject_id"], fraction, seed)
        patients[held_out].add(note["subject_id"])
        yield {"note_id": note["note_id"], "text": note["text"], "held_out": held_out}


def unwrap_input_error(err: BaseException) -> BaseException:
    """The InputError that `datasets` wrapped in its own error while reading, if any."""
    cause = err
    while cause is not None and not isinstance(cause, InputError):
        cause = cause.__cause__ or cause.__context__
    return cause or err


def pack_blocks(token_lists: list[list[int]], block_size: int, pad_id: int) -> dict:
    """Pack notes (each already ends in EOS) into `block_size` blocks, document-masked.

    A note that fits in a block is never cut: if it does not fit in what is left of the current
    block, that block is padded and closed. A longer note fills what is left and goes on in the
    next blocks. Positions restart at every note and every block, so a note attends only to
    itself (see `backbone.token_logits`), and a note's first token is never a target (that
    would be the next note's BOS predicted from an EOS, an easy token the paper never scored).
    So held-out NLL equals the per-note (`pad_per_note`) NLL for notes shorter than a block.
    No token is lost or repeated; padding has labels -100.
    """
    out: dict[str, list] = {"input_ids": [], "labels": [], "position_ids": []}
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []

    def close_block() -> None:
        pad = block_size - len(ids)
        out["input_ids"].append(ids + [pad_id] * pad)
        out["labels"].append(labels + [-100] * pad)
        out["position_ids"].append(positions + [0] * pad)
        ids.clear(), labels.clear(), positions.clear()

    for tokens in token_lists:
        if len(tokens) <= block_size and len(ids) + len(tokens) > block_size:
            close_block()
        start = 0
        while start < len(tokens):
            piece = tokens[start : start + block_size - len(ids)]
            ids.extend(piece)
            labels.extend([-100, *piece[1:]])
            positions.extend(range(len(piece)))
            start += len(piece)
            if len(ids) == block_size:
                close_block()
    if ids:
        close_block()
    return out


class NotesDataModule(DataModuleBase):
    def __init__(
        self,
        data_dir: str | None = None,
        tokenizer: str | None = None,
        note_types: Literal["discharge", "radiology", "both"] = "both",
        mode: Literal["pack", "pad_per_note"] = "pack",
        block_size: int = 256,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        max_notes: int | None = None,
        cache_dir: str = "cache",
        num_workers: int = 0,
        tokenize_num_proc: int = 1,
        seed: int = 0,
        framing: str = "auto",
    ) -> None:
        """
        Args:
            data_dir: folder with MIMIC-IV-Note `discharge.csv.gz` and/or `radiology.csv.gz`.
            tokenizer: folder of the tokenizer (linked from the model's `base_model`).
            note_types: which notes to train on.
            mode: `pack` notes into full blocks, document-masked (each note attends only to
                itself; same perplexity as one note at a time), or `pad_per_note` (the paper's
                recipe: every note truncated to `block_size` and padded alone).
            block_size: tokens per training example.
            val_fraction: share of patients held out for perplexity.
            split_seed: seed of the patient split.
            max_notes: read only the first N non-empty notes (quick experiments).
            cache_dir: where cleaned, tokenized datasets are kept (patient text stays here).
            tokenize_num_proc: processes for tokenization.
            seed: seed of the training order.
            framing: the tokens around each note: `auto` (the model's own document convention:
                SmolLM2 no BOS + `<|endoftext|>`, LLaMA-2 `<s>` ... `</s>`, Llama-3
                `<|begin_of_text|>` ... `<|end_of_text|>`), one of those by name (`endoftext`,
                `llama2`, `llama3`), or `tokenizer` (its BOS and EOS, chat markers or not).
        """
        super().__init__()
        if mode not in ("pack", "pad_per_note"):
            raise InputError("data.mode", f"unknown '{mode}' (valid: pack, pad_per_note)")
        if block_size < 8:
            raise InputError("data.block_size", f"{block_size} is too short (at least 8 tokens)")
        if not 0 < val_fraction < 1:
            raise InputError(
                "data.val_fraction",
                f"{val_fraction}: a share of patients, between 0 and 1 (not either)",
            )
        if max_notes is not None and max_notes < 1:
            raise InputError("data.max_notes", f"{max_notes}: at least 1 (or null for all notes)")
        self.paths = note_paths(
            require_option(data_dir, "data.data_dir", "the MIMIC-IV-Note folder"), note_types
        )
        self.tokenizer_path = tokenizer
        self.note_types, self.mode, self.block_size = note_types, mode, block_size
        self.val_fraction, self.split_seed, self.max_notes = val_fraction, split_seed, max_notes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.cache_dir, self.num_workers, self.seed = Path(cache_dir), num_workers, seed
        self.tokenize_num_proc, self.framing = tokenize_num_proc, framing
        self.cache_hit: bool | None = None
        self.stats: dict = {}

    def input_files(self) -> list[Path]:
        return list(self.paths)

    def _cache_parts(self) -> dict:
        return {
            "kind": "notes",
            "files": [file_stamp(p) for p in self.paths if p.exists()],
            "missing": [str(p) for p in self.paths if not p.exists()],
            "cleaning": CLEANING_VERSION,
            "packing": PACKING_VERSION,
            "stats": STATS_VERSION,
            "tokenizer": tokenizer_stamp(self.tokenizer),
            "frame": document_frame(self.tokenizer, self.framing),
            **{
                k: getattr(self, k)
                for k in ("mode", "block_size", "val_fraction", "split_seed", "max_notes")
            },
        }

    def prepare_data(self) -> None:
        for path in self.paths:
            require_file(path)
        self.cache_path, self.cache_hit = cached_build(
            self.cache_dir / "notes", self._cache_parts(), self._build
        )
        self.stats = json.loads((self.cache_path / "stats.json").read_text())
        log.info("notes: %s (cache %s)", self.stats, "hit" if self.cache_hit else "built")
        if self.stats.get("skipped_empty"):  # also in metrics.json as data/skipped_empty
            log.warning("notes: %d empty notes skipped", self.stats["skipped_empty"])
        if self.stats.get("duplicate_note_ids"):  # also data/duplicate_note_ids
            log.warning(
                "notes: %d duplicate note_ids (counted; their notes are kept)",
                self.stats["duplicate_note_ids"],
            )

    def _build(self, out: Path) -> None:
        # Streams: no per-note Python list is kept, so memory stays flat as the corpus grows
        # (MIMIC-IV-Note has 2.6 M notes). The split is a column written with the notes.
        counts = {"notes": 0, "skipped_empty": 0}
        patients: dict[bool, set[str]] = {False: set(), True: set()}
        try:
            raw = Dataset.from_generator(
                iter_split_notes,
                gen_kwargs={
                    "paths": self.paths, "counts": counts, "patients": patients,
                    "max_notes": self.max_notes, "fraction": self.val_fraction,
                    "seed": self.split_seed,
                },
                cache_dir=str(out / "raw"),
                features=Features(
                    {"note_id": Value("string"), "text": Value("string"), "held_out": Value("bool")}
                ),
            )  # fmt: skip
        except DatasetGenerationError as err:
            raise unwrap_input_error(err) from None
        except ValueError:  # what `datasets` says of a generator that yielded nothing
            raw = None
        if raw is None or len(raw) == 0:
            raise InputError(self.paths[0], "field 'text': no non-empty notes found")
        # Counted by Arrow over the cached column, not in a Python set of 2.6 M ids; the
        # notes are all kept (in file order), as duplicate admission ids are in outcome files.
        counts["duplicate_note_ids"] = (
            len(raw) - pc.count_distinct(raw.data.column("note_id"), mode="all").as_py()
        )
        if not patients[False] or not patients[True]:
            side = "training" if not patients[False] else "validation"
            n = len(patients[False]) + len(patients[True])
            raise InputError(
                "data.val_fraction",
                f"{self.val_fraction} of {n} patients leaves the {side} split empty",
            )
        tokenizer = self.tokenizer
        prefix, suffix = document_frame(tokenizer, self.framing)
        block, pad = self.block_size, tokenizer.pad_token_id

        def tokenize(batch: dict, held_out: bool) -> dict:
            """Token ids of this batch's notes on one side of the split (in file order)."""
            texts = [t for t, h in zip(batch["text"], batch["held_out"]) if h == held_out]
            if not texts:  # the tokenizer refuses an empty batch
                return {"ids": []}
            ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
            return {"ids": [prefix + tokens + suffix for tokens in ids["input_ids"]]}

        def arrange(batch: dict) -> dict:
            if self.mode == "pack":
                return pack_blocks(batch["ids"], block, pad)
            notes = [n[:block] for n in batch["ids"]]  # paper recipe: truncate each note alone
            return {"input_ids": notes, "labels": notes}

        notes = DatasetDict(
            {
                split: raw.map(
                    tokenize,
                    fn_kwargs={"held_out": held_out},
                    batched=True,
                    batch_size=100,  # long notes: a batch's token lists are the peak memory
                    remove_columns=["note_id", "text", "held_out"],
                    features=Features({"ids": List(Value("int64"))}),
                    num_proc=self.tokenize_num_proc if self.tokenize_num_proc > 1 else None,
                    desc=f"tokenizing {split} notes",
                )
                for split, held_out in (("train", False), ("val", True))
            }
        )
        # One process arranges the blocks, so they do not depend on how many tokenized.
        tokenized = notes.map(
            arrange, batched=True, batch_size=1000, remove_columns=["ids"], desc="arranging blocks"
        )
        tokenized.save_to_disk(str(out / "tokenized"))
        stats = {
            **counts,
            "train_notes": len(notes["train"]),
            "val_notes": len(notes["val"]),
            "train_patients": len(patients[False]),
            "val_patients": len(patients[True]),
            "train_examples": len(tokenized["train"]),
            "val_examples": len(tokenized["val"]),
        }
        (out / "stats.json").write_text(json.dumps(stats, indent=1))
        shutil.rmtree(out / "raw")  # cleaned text is needed no more: keep only token ids

    def setup(self, stage: str | None = None) -> None:
        if not self.stats:
            self.prepare_data()
        self.datasets = load_from_disk(str(self.cache_path / "tokenized")).with_format("torch")

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """Stack packed blocks (with their per-note positions); pad per-note examples to
        `block_size`, as the paper did."""
        pad_id = self.tokenizer.pad_token_id
        input_ids = pad_rows([ex["input_ids"] for ex in examples], pad_id, self.block_size)
        labels = pad_rows([ex["labels"] for ex in examples], -100, self.block_size)
        # Real tokens (counted for throughput): in packed blocks a note's first token is no
        # target, and the separator may be the pad token (SmolLM2), so padding is the tail
        # after the last token that is a target, a later position or not the pad token.
        if self.mode == "pack":
            positions = torch.stack([ex["position_ids"] for ex in examples])
            keep = (labels != -100) | (positions > 0) | (input_ids != pad_id)
            real = keep.flip(1).cummax(1).values.flip(1)
        else:
            real = labels != -100
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": real.long()}
        if "position_ids" in examples[0]:
            batch["position_ids"] = torch.stack([ex["position_ids"] for ex in examples])
        return batch
