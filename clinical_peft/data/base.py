"""What every data module shares: the model's tokenizer, loaded once, and resumable loaders.

A data source is a subclass named in the YAML (`data: class_path: my_module.MyNotes`), which the
CLI accepts for any stage (cli.py). Its `__init__` takes `tokenizer`: the CLI links the model's
`base_model` folder to it, so a data module never imports the backbone factory. What each stage
reads from its batches and attributes is what its own data module provides: NotesDataModule
(pretrain: `input_ids`, `labels`, `attention_mask`), InstructionDataModule and
PreferenceDataModule (sft, dpo; generation evaluation also needs `GenerationData` of
generation.py), OutcomeDataModule (downstream; `kind`, `num_labels`, `class_weights` are linked
to the model). tests/test_data_source.py pretrains from a plain-text source defined there.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from transformers import PreTrainedTokenizerBase

from clinical_peft.data.cache import cache_key, content_stamp
from clinical_peft.data.loader import ResumableLoader
from clinical_peft.models.files import load_tokenizer
from clinical_peft.util.errors import InputError


class DataModuleBase(L.LightningDataModule):
    """Subclasses take a `tokenizer` argument and keep it as `tokenizer_path`; they set
    `datasets` (split name -> indexable examples, in `setup`), `collate` (examples -> batch),
    `batch_size`, `eval_batch_size`, `seed` and `num_workers`; `input_files` if a resumed run
    must find the same data."""

    tokenizer_path: str | None = None
    #: set by the CLI under ZeRO-3: evaluation shards get filler batches (see ResumableLoader)
    even_evaluation_shards: bool = False
    _tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            if self.tokenizer_path is None:
                raise InputError("data.tokenizer", "no tokenizer folder given")
            self._tokenizer = load_tokenizer(self.tokenizer_path)
        return self._tokenizer

    def input_files(self) -> list[Path]:
        """The data files this module reads (what a resumed run must find unchanged)."""
        return []

    def data_fingerprint(self) -> str:
        """A hash of the input files' contents (not their paths): stored in checkpoints, so that
        resuming onto other data is refused."""
        stamps = [(p.name, content_stamp(p)) for p in self.input_files() if p.is_file()]
        return cache_key({"files": stamps})

    def _loader(self, split: str, train: bool) -> ResumableLoader:
        return ResumableLoader(
            self.datasets[split],
            batch_size=self.batch_size if train else self.eval_batch_size,
            collate_fn=self.collate,
            shuffle=train,
            seed=self.seed,
            num_workers=self.num_workers,
            even_evaluation=self.even_evaluation_shards,
        )

    def train_dataloader(self) -> ResumableLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> ResumableLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> ResumableLoader:
        return self._loader("test", train=False)
