"""OutcomeDataModule: admission notes and labels of one outcome task (pmv, mor, los, diag, proc).

CSV files -> labels parsed and checked -> tokenized (truncated to `max_length`, or cut into
windows of it) -> cached as Arrow on disk -> batches of notes of similar length.

A batch holds `input_ids`/`attention_mask` of its windows (one per note when truncating),
`doc_index` (which note each window belongs to), `labels` per note and the notes' `ids`.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Literal

import torch
from datasets import Dataset, DatasetDict, load_from_disk

from clinical_peft.data.base import DataModuleBase
from clinical_peft.data.cache import cached_build, file_stamp, tokenizer_stamp
from clinical_peft.data.demographics import find_tables
from clinical_peft.data.files import read_csv_chunks
from clinical_peft.data.framing import document_frame
from clinical_peft.data.loader import ResumableLoader, pad_rows
from clinical_peft.metrics.recalibration import check_method
from clinical_peft.tasks.outcomes import SPLITS, class_weights, get_task, label_space, parse_labels
from clinical_peft.util.errors import (
    InputError,
    at_least_one,
    require_dir,
    require_file,
    require_option,
    row_name,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when tokenization changes, so cached datasets are rebuilt


def read_split(path: Path, label_column: str | None, max_rows: int | None) -> dict[str, list[str]]:
    """Columns id, text and the label of one split file, as strings; empty text is an error.
    Without a label column (notes to score) only id and text are read; `label` stays empty."""
    columns = {"id": [], "text": [], "label": []}
    names = ["id", "text", *([label_column] if label_column else [])]
    for chunk in read_csv_chunks(path, names):
        labels = chunk[label_column] if label_column else [""] * len(chunk)
        for row_id, text, label in zip(chunk["id"], chunk["text"], labels, strict=True):
            if max_rows is not None and len(columns["id"]) >= max_rows:
                return columns
            if not text.strip():
                row = len(columns["id"]) + 1
                raise InputError(path, f"field 'text': empty note ({row_name(row, row_id)})")
            columns["id"].append(row_id)
            columns["text"].append(text)
            if label_column:
                columns["label"].append(label)
    if not columns["id"]:
        raise InputError(path, "no rows")
    return columns


def windows(tokens: list[int], size: int, max_windows: int | None) -> list[list[int]]:
    """Consecutive windows of `size` tokens (the first `max_windows` of them)."""
    cut = [tokens[i : i + size] for i in range(0, max(len(tokens), 1), size)]
    return cut[:max_windows] if max_windows else cut


def special_frame(tokenizer, framing: str = "auto") -> tuple[list[int], list[int]]:
    """The tokens around a window: [CLS] ... [SEP] for the BERT family; for decoders the
    model's document convention (`clinical_peft.data.framing`), so the pooled last token is
    its end-of-document token."""
    if tokenizer.cls_token_id is not None:
        return [tokenizer.cls_token_id], [tokenizer.sep_token_id]
    return document_frame(tokenizer, framing)


def encode_notes(
    tokenizer,
    texts: list[str],
    max_length: int,
    long_mode: str,
    max_chunks: int,
    framing: str = "auto",
) -> tuple[list[list[list[int]]], int, int]:
    """Each note's windows (one when truncating), and the tokens kept and in all: training,
    evaluation and `predict` tokenize notes here, so they see the same windows."""
    begin, end = special_frame(tokenizer, framing)
    size = max_length - len(begin) - len(end)
    max_windows = 1 if long_mode == "truncate" else max_chunks
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    chunks = [[begin + w + end for w in windows(t, size, max_windows)] for t in ids]
    kept = sum(min(len(t), size * max_windows) for t in ids)
    return chunks, kept, sum(map(len, ids))


def collate_notes(examples: list[dict], pad_id: int, kind: str, num_labels: int) -> dict:
    """A batch of notes: their windows padded, which note each window is of, labels and ids."""
    chunks = [chunk for ex in examples for chunk in ex["chunks"]]
    doc_index = [i for i, ex in enumerate(examples) for _ in ex["chunks"]]
    if kind == "multilabel":
        labels = torch.zeros((len(examples), num_labels))
        for i, ex in enumerate(examples):
            labels[i, ex["labels"]] = 1.0
    else:
        labels = torch.tensor([ex["labels"][0] for ex in examples])
    return {
        "input_ids": pad_rows(chunks, pad_id),
        "attention_mask": pad_rows([[1] * len(c) for c in chunks], 0),
        "doc_index": torch.tensor(doc_index),
        "labels": labels,
        "ids": [ex["id"] for ex in examples],
    }


def length_batches(lengths: list[int], batch_size: int, seed: int | None) -> list[list[int]]:
    """Indices in batches of notes of similar length, so that little padding is needed.

    Evaluation (seed None): sorted by length. Training: shuffled, then sorted by length inside
    pools of 50 batches and cut, so batches mix notes from across the split; the loader then
    shuffles the order of the batches every epoch.
    """
    order = list(range(len(lengths)))
    if seed is None:
        order.sort(key=lambda i: -lengths[i])
    else:
        random.Random(seed).shuffle(order)
        pool = 50 * batch_size
        order = [
            i
            for start in range(0, len(order), pool)
            for i in sorted(order[start : start + pool], key=lambda i: -lengths[i])
        ]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class BatchedDataset(torch.utils.data.Dataset):
    """Item i is the list of examples of batch i (the loader then takes batches of one)."""

    def __init__(self, dataset: Dataset, batches: list[list[int]]) -> None:
        self.dataset, self.batches = dataset, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> list[dict]:
        return [self.dataset[j] for j in self.batches[i]]


class OutcomeDataModule(DataModuleBase):
    def __init__(
        self,
        task: str = "proc",
        data_dir: str | None = None,
        tokenizer: str | None = None,
        max_length: int = 512,
        long_mode: Literal["truncate", "chunks"] = "truncate",
        max_chunks: int = 8,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        max_examples: int | None = None,
        cache_dir: str = "cache",
        num_workers: int = 0,
        seed: int = 0,
        allow_overlap: bool = False,
        demographics: str | None = None,
        min_group: int = 10,
        recalibrate: Literal["none", "platt", "temperature"] = "none",
        framing: str = "auto",
    ) -> None:
        """
        Args:
            task: pmv, mor, los, diag or proc (see data/tasks.py for files and columns).
            data_dir: folder with the task CSVs the clinical-outcome-prediction scripts write.
            tokenizer: folder of the tokenizer (linked from the model's `base_model`).
            max_length: tokens per window, special tokens included (the paper truncated notes
                to this length).
            long_mode: `truncate` each note to its first window (the paper), or cut it into
                `chunks` of `max_length` tokens whose logits the model averages per note.
            max_chunks: in `chunks` mode, windows kept per note (the first ones).
            batch_size: notes per training batch (a note may bring several windows).
            max_examples: read only the first N rows of every split (quick experiments).
            cache_dir: where tokenized datasets are kept (patient text stays here).
            seed: seed of the batch composition and order.
            allow_overlap: accept admission ids found in train and in val or test (leakage:
                refused unless asked for).
            demographics: folder of MIMIC-III ADMISSIONS/PATIENTS.csv.gz (or MIMIC-IV
                hosp/admissions, patients): the test split's performance per gender, age band,
                ethnicity and insurance (subgroups.csv; see data/demographics.py).
            min_group: subgroups of fewer admissions are never written nor printed.
            recalibrate: fit `platt` or `temperature` scaling on val and report the test
                split's calibration after it too (`test_recalibrated/...`; scores unchanged).
            framing: decoders: the tokens around each window (`auto`: the model's document
                convention; see `clinical_peft.data.framing` and the notes module's option).
        """
        super().__init__()
        self.allow_overlap, self.framing = allow_overlap, framing
        if demographics is not None:
            find_tables(demographics)  # refused now, not after training
        at_least_one(min_group, "data.min_group")
        self.demographics, self.min_group = demographics, min_group
        self.recalibrate = recalibrate
        if long_mode not in ("truncate", "chunks"):
            raise InputError("data.long_mode", f"unknown '{long_mode}' (valid: truncate, chunks)")
        if max_length < 8:
            raise InputError("data.max_length", f"{max_length} is too short (at least 8)")
        self.task = get_task(task)
        check_method(recalibrate, self.task.kind, "data.recalibrate")
        self.data_dir = require_dir(
            require_option(data_dir, "data.data_dir", "the folder of the task CSVs"),
            "outcome task data",
        )
        self.paths = {split: self.task.path(self.data_dir, split) for split in SPLITS}
        self.tokenizer_path = tokenizer
        self.max_length, self.long_mode, self.max_chunks = max_length, long_mode, max_chunks
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.max_examples, self.cache_dir = max_examples, Path(cache_dir)
        self.num_workers, self.seed = num_workers, seed
        self.stats: dict = {}

        # What the model needs before any tokenizing (linked by the CLI): kind, label count and
        # the class weights N / (C * count_c) of the train split.
        train = read_split(self.paths["train"], self.task.label_column, max_examples)
        self.label_names = label_space(self.task, self.data_dir, train["label"])
        labels, _ = parse_labels(
            self.task, train["label"], train["id"], self.paths["train"], self.label_names
        )
        self.kind = self.task.kind
        self.num_labels = len(self.label_names)
        self.class_weights: list[float] | None = None
        if self.kind != "multilabel":
            try:
                weights = class_weights(torch.tensor([y[0] for y in labels]), self.num_labels)
            except ValueError as err:
                raise InputError(
                    self.paths["train"], f"field '{self.task.label_column}': {err}"
                ) from None
            self.class_weights = [round(float(w), 6) for w in weights]

    def input_files(self) -> list[Path]:
        return [*self.paths.values(), self.data_dir / (self.task.codes_file or "-")]

    def _cache_parts(self) -> dict:
        codes = self.data_dir / (self.task.codes_file or "-")
        return {
            "kind": "outcomes",
            "version": FORMAT_VERSION,
            "task": self.task.key,
            "files": [file_stamp(p) for p in self.paths.values() if p.exists()],
            "codes": file_stamp(codes) if codes.is_file() else None,
            "tokenizer": tokenizer_stamp(self.tokenizer),
            "frame": special_frame(self.tokenizer, self.framing),
            **{k: getattr(self, k) for k in ("max_length", "long_mode", "max_chunks", "max_examples",
                                             "allow_overlap")},
        }  # fmt: skip

    def prepare_data(self) -> None:
        for path in self.paths.values():
            require_file(path)
        self.cache_path, hit = cached_build(
            self.cache_dir / "outcomes", self._cache_parts(), self._build
        )
        self.stats = json.loads((self.cache_path / "stats.json").read_text())
        log.info("%s: %s (cache %s)", self.task.key, self.stats, "hit" if hit else "built")
        for split in ("val", "test"):
            if self.stats.get(f"data/unknown_codes_{split}"):
                log.warning(
                    "%s: %d codes of the %s split are not in the label space (not scorable)",
                    self.paths[split], self.stats[f"data/unknown_codes_{split}"], split,
                )  # fmt: skip

    def _build(self, out: Path) -> None:
        stats: dict[str, float] = {}
        parts, train_ids = {}, set()
        for split, path in self.paths.items():
            rows = read_split(path, self.task.label_column, self.max_examples)
            labels, unknown = parse_labels(
                self.task, rows["label"], rows["id"], path, self.label_names
            )
            stats.update(self._check_ids(split, path, rows["id"], train_ids))
            if split == "train":
                train_ids = set(rows["id"])
                if self.kind == "multilabel" and not any(labels):
                    raise InputError(path, f"field '{self.task.label_column}': every code list "
                                           "is empty (or no code is in the label space)")  # fmt: skip
            chunks, kept, total = encode_notes(
                self.tokenizer, rows["text"], self.max_length, self.long_mode, self.max_chunks,
                self.framing,
            )  # fmt: skip
            stats[f"data/{split}_notes"] = len(chunks)
            stats[f"data/{split}_tokens_dropped_share"] = 1 - kept / max(1, total)
            if self.kind == "multilabel":
                stats[f"data/unknown_codes_{split}"] = unknown
            parts[split] = Dataset.from_dict(
                {
                    "id": rows["id"],
                    "chunks": chunks,
                    "labels": labels,
                    "length": [sum(len(c) for c in doc) for doc in chunks],
                }
            )
        DatasetDict(parts).save_to_disk(str(out / "tokenized"))
        (out / "stats.json").write_text(json.dumps(stats, indent=1))

    def _check_ids(self, split: str, path: Path, ids: list[str], train: set[str]) -> dict:
        """Duplicate ids in a split are counted; ids of train met again in val or test are
        leakage, refused unless `allow_overlap`."""
        stats = {f"data/{split}_duplicate_ids": float(len(ids) - len(set(ids)))}
        if stats[f"data/{split}_duplicate_ids"]:
            log.warning("%s: %d duplicate ids", path, len(ids) - len(set(ids)))
        overlap = len(set(ids) & train)
        if overlap and not self.allow_overlap:
            raise InputError(
                path,
                f"field 'id': {overlap} admissions of {self.paths['train'].name} are here too "
                "(train/test leakage); --data.allow_overlap true to accept",
            )
        if overlap:
            stats[f"data/{split}_ids_in_train"] = float(overlap)
            log.warning("%s: %d admissions also in train (allowed)", path, overlap)
        return stats

    def setup(self, stage: str | None = None) -> None:
        if not self.stats:
            self.prepare_data()
        self.datasets = load_from_disk(str(self.cache_path / "tokenized"))

    def collate(self, items: list[list[dict]]) -> dict:
        (examples,) = items  # one pre-built batch
        return collate_notes(examples, self.tokenizer.pad_token_id, self.kind, self.num_labels)

    def _loader(self, split: str, train: bool) -> ResumableLoader:
        lengths = self.datasets[split]["length"]
        size = self.batch_size if train else self.eval_batch_size
        batches = length_batches(lengths, size, self.seed if train else None)
        return ResumableLoader(
            BatchedDataset(self.datasets[split], batches),
            batch_size=1,
            collate_fn=self.collate,
            shuffle=train,
            seed=self.seed,
            num_workers=self.num_workers,
            even_evaluation=self.even_evaluation_shards,
        )
