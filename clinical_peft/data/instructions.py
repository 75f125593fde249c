"""Instruction data of study B: prompt/completion JSONL for SFT, prompt/chosen/rejected for DPO
(prompt/completion/label for KTO: `clinical_peft.data.unpaired`).

Layout: `<data_dir>/<task>/sft_{train,val,test}.jsonl` with `{"prompt", "completion"}` and
`<data_dir>/<task>/dpo_{train,val,test}.jsonl` with `{"prompt", "chosen", "rejected"}`.
Completions start with a space (" Yes") so that prompt + completion reads as one text.

Prompt and completion are tokenized apart and their ids concatenated (then EOS), so the
boundary is exact and labels are -100 on exactly the prompt tokens. Tokenized splits are cached
on disk (patient text stays in the cache folder, never in logs or configs).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict, load_from_disk

from clinical_peft.data.base import DataModuleBase
from clinical_peft.data.cache import cache_key, cached_build, file_stamp, tokenizer_stamp
from clinical_peft.data.files import read_jsonl
from clinical_peft.data.loader import pad_rows
from clinical_peft.tasks.instructions import get_task
from clinical_peft.util.errors import InputError, require_dir, require_file, require_option

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 2  # bump when tokenization changes, so cached datasets are rebuilt


def check_task(task: str) -> None:
    get_task(task)  # InputError listing the registered tasks


def pack_examples(examples: list[dict], block_size: int) -> list[dict]:
    """Greedy packing: whole examples (each ends in EOS) side by side up to `block_size` tokens.

    Examples are never split, so every completion keeps its own prompt in context. Positions
    restart at 0 with every example: the model builds its attention mask from them, so an
    example never attends to the one packed before it (see `backbone.token_logits`).
    """
    blocks, ids, labels, positions = [], [], [], []
    for ex in examples:
        if ids and len(ids) + len(ex["input_ids"]) > block_size:
            blocks.append({"input_ids": ids, "labels": labels, "position_ids": positions})
            ids, labels, positions = [], [], []
        ids, labels = ids + ex["input_ids"], labels + ex["labels"]
        positions = positions + list(range(len(ex["input_ids"])))
    if ids:
        blocks.append({"input_ids": ids, "labels": labels, "position_ids": positions})
    return blocks


class _InstructionData(DataModuleBase):
    """What SFT and DPO data share: files, tokenization of prompts, cache, loaders, test prompts."""

    kind = ""  # "sft", "dpo" or "kto": the file prefix
    keys: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()  # those of `keys` that are true / false, not text

    def __init__(
        self,
        data_dir: str | None = None,
        task: str = "triage",
        tokenizer: str | None = None,
        max_length: int = 512,
        use_chat_template: bool = False,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        max_eval_examples: int | None = None,
        cache_dir: str = "cache",
        num_workers: int = 0,
        seed: int = 0,
        allow_overlap: bool = False,
    ) -> None:
        """
        Args:
            data_dir: folder with one subfolder per task holding `<kind>_{train,val,test}.jsonl`.
            task: a task of the `clinical_peft.tasks.instructions.TASKS` registry (e.g. triage):
                the file folder, and the metrics of the generation evaluation.
            tokenizer: folder of the tokenizer (linked from the model's `base_model`).
            max_length: tokens per sequence; prompts this long are dropped (counted), completions
                are cut to fit.
            use_chat_template: wrap prompts in the tokenizer's chat template when it has one.
            max_eval_examples: generate for at most this many test examples.
            cache_dir: where tokenized datasets are kept.
            seed: seed of the training order.
            allow_overlap: accept val/test prompts that repeat a train prompt (leakage: refused
                unless asked for; counted as `prompts_in_train`).
        """
        super().__init__()
        check_task(task)
        self.allow_overlap = allow_overlap
        data_dir = require_option(data_dir, "data.data_dir", "the folder of the instruction tasks")
        self.task_dir = require_dir(Path(data_dir) / task, f"{task} task data")
        self.task, self.tokenizer_path, self.max_length = task, tokenizer, max_length
        self.use_chat_template = use_chat_template
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.max_eval_examples, self.cache_dir = max_eval_examples, Path(cache_dir)
        self.num_workers, self.seed = num_workers, seed
        self.stats: dict = {}

    def path(self, split: str) -> Path:
        return self.task_dir / f"{self.kind}_{split}.jsonl"

    # --- tokenization -------------------------------------------------------------------
    def prompt_ids(self, prompt: str) -> list[int]:
        tokenizer = self.tokenizer
        if self.use_chat_template and tokenizer.chat_template:
            messages = [{"role": "user", "content": prompt}]
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return tokenizer(text, add_special_tokens=False)["input_ids"]  # the template has BOS
        return tokenizer(prompt)["input_ids"]  # BOS if the tokenizer adds one

    def fitting_prompt(self, row: dict, counts: dict) -> list[int] | None:
        """The row's prompt ids, or None (counted) when the prompt alone fills max_length."""
        prompt = self.prompt_ids(row["prompt"])
        if len(prompt) >= self.max_length:
            counts["dropped_long_prompt"] += 1
            return None
        return prompt

    def completion_ids(self, completion: str) -> list[int]:
        if self.use_chat_template and self.tokenizer.chat_template:
            completion = completion.lstrip()  # the template separates the turns itself
        ids = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        return ids + [self.tokenizer.eos_token_id]

    def tokenize_split(self, rows: list[dict], counts: dict) -> list[dict]:
        raise NotImplementedError

    # --- cache --------------------------------------------------------------------------
    def input_files(self) -> list[Path]:
        return [self.path(split) for split in SPLITS]

    def _cache_parts(self) -> dict:
        return {
            "kind": self.kind,
            "version": FORMAT_VERSION,
            "files": [file_stamp(self.path(s)) for s in SPLITS if self.path(s).is_file()],
            "tokenizer": tokenizer_stamp(self.tokenizer),
            **{k: getattr(self, k) for k in self._setting_names()},
        }

    def _setting_names(self) -> list[str]:
        return ["max_length", "use_chat_template", "allow_overlap"]

    def prepare_data(self) -> None:
        for split in ("train", "val"):
            require_file(self.path(split))
        folder = self.cache_dir / "instructions"
        self.cache_path, hit = cached_build(folder, self._cache_parts(), self._build)
        self.stats = json.loads((self.cache_path / "stats.json").read_text())
        log.info(
            "%s/%s: %s (cache %s)", self.kind, self.task, self.stats, "hit" if hit else "built"
        )

    def _build(self, out: Path) -> None:
        splits, stats, train_prompts = {}, {}, set()
        answer = self.keys[1]  # completion (SFT) or chosen (DPO): empty, there is nothing to learn
        for split in SPLITS:
            if not self.path(split).is_file():
                continue  # a missing test split only skips the generation evaluation
            counts = {"read": 0, "dropped_long_prompt": 0, "skipped_identical": 0}
            rows = read_jsonl(self.path(split), self.keys, self.booleans)
            counts["read"] = len(rows)
            kept = [row for row in rows if row[answer].strip()]
            counts[f"skipped_empty_{answer}"], rows = len(rows) - len(kept), kept
            if split == "train":
                train_prompts = {row["prompt"] for row in rows}
            else:
                counts["prompts_in_train"] = self._check_overlap(split, rows, train_prompts)
            examples = self.tokenize_split(rows, counts)
            dropped = {k: v for k, v in counts.items() if k != "read" and v}
            if dropped:
                log.warning("%s: %s", self.path(split), dropped)
            if not examples and split != "test":
                raise InputError(
                    self.path(split),
                    f"no usable examples ({counts['read']} read, "
                    f"{counts['dropped_long_prompt']} prompts of max_length={self.max_length} "
                    f"tokens or more, {counts['skipped_identical']} with chosen == rejected)",
                )
            splits[split] = Dataset.from_list(examples) if examples else None
            stats[split] = {**counts, "examples": len(examples)}
        DatasetDict({k: v for k, v in splits.items() if v is not None}).save_to_disk(
            str(out / "tokenized")
        )
        (out / "stats.json").write_text(json.dumps(stats, indent=1))

    def _check_overlap(self, split: str, rows: list[dict], train_prompts: set[str]) -> int:
        """Val/test prompts that repeat a train prompt: leakage, refused unless allowed."""
        repeated = sum(row["prompt"] in train_prompts for row in rows)
        if repeated and not self.allow_overlap:
            raise InputError(
                self.path(split),
                f"field 'prompt': {repeated} lines repeat a prompt of {self.path('train').name} "
                "(train/test leakage); --data.allow_overlap true to accept",
            )
        return repeated

    def setup(self, stage: str | None = None) -> None:
        if not self.stats:
            self.prepare_data()
        self.datasets = load_from_disk(str(self.cache_path / "tokenized"))

    # --- loaders ------------------------------------------------------------------------
    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generation_examples(self, split: str = "test", capped: bool = True) -> list[dict]:
        """`{"id", "prompt_ids", "reference"}` per example (at most `max_eval_examples` unless
        not `capped`)."""
        if not hasattr(self, "datasets"):
            self.setup()
        if split not in self.datasets:
            return []
        data = self.datasets[split]
        if capped and self.max_eval_examples is not None:
            data = data.select(range(min(self.max_eval_examples, len(data))))
        return [
            {"id": ex["line"], "prompt_ids": ex["prompt_ids"], "reference": ex["reference"]}
            for ex in data
        ]

    def unsharded_batches(self, split: str):
        """Every example of `split` in evaluation batches, in file order, on every rank."""
        return torch.utils.data.DataLoader(
            self.datasets[split], batch_size=self.eval_batch_size, collate_fn=self.collate
        )

    def cache_file(self, name: str, parts: dict) -> Path:
        """A file under the data cache for results derived from this tokenized data, keyed by
        `parts` and the data (e.g. precomputed reference log-probs)."""
        return self.cache_dir / name / f"{cache_key({**parts, 'data': self.cache_path.name})}.pt"

    def count_metrics(self) -> dict[str, float]:
        """Examples read, kept and dropped per split, for metrics.json (counts only, no text)."""
        return {
            f"data/{split}/{name}": float(value)
            for split, counts in self.stats.items()
            for name, value in counts.items()
        }

    def pad(self, sequences: list[list[int]], value: int, length: int) -> torch.Tensor:
        return pad_rows(sequences, value, length)


class InstructionDataModule(_InstructionData):
    """SFT data: loss on completion tokens only, optional packing of training examples."""

    kind, keys = "sft", ("prompt", "completion")

    def __init__(self, *args, packing: bool = False, **kwargs) -> None:
        """
        Args:
            packing: pack whole training examples into blocks of `max_length` tokens.
            *args, **kwargs: what SFT and DPO data share (`_InstructionData`: data_dir, task,
                tokenizer, max_length, ...; the files are `sft_{train,val,test}.jsonl`).
        """
        super().__init__(*args, **kwargs)
        self.packing = packing

    def _setting_names(self) -> list[str]:
        return [*super()._setting_names(), "packing"]

    def tokenize_split(self, rows: list[dict], counts: dict) -> list[dict]:
        examples = []
        for row in rows:
            prompt = self.fitting_prompt(row, counts)
            if prompt is None:
                continue
            completion = self.completion_ids(row["completion"])[: self.max_length - len(prompt)]
            examples.append(
                {
                    "line": row["line"],
                    "input_ids": prompt + completion,
                    "labels": [-100] * len(prompt) + completion,
                    "prompt_ids": prompt,
                    "reference": row["completion"],
                }
            )
        return examples

    def _build(self, out: Path) -> None:
        super()._build(out)
        if self.packing:  # pack the training split; evaluation stays one example per row
            data = load_from_disk(str(out / "tokenized"))
            train = pack_examples(list(data["train"]), self.max_length)
            packed = DatasetDict({**data, "train": Dataset.from_list(train)})
            packed.save_to_disk(str(out / "packed"))
            (out / "tokenized").rename(out / "unpacked")
            (out / "packed").rename(out / "tokenized")

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(ex["input_ids"]) for ex in examples)
        ids = [ex["input_ids"] for ex in examples]
        batch = {
            "input_ids": self.pad(ids, self.tokenizer.pad_token_id, length),
            "attention_mask": self.pad([[1] * len(x) for x in ids], 0, length),
            "labels": self.pad([ex["labels"] for ex in examples], -100, length),
        }
        if "position_ids" in examples[0]:  # packed: the positions delimit the examples
            # padding at position 0 starts one more (unlabelled) sequence of its own
            batch["position_ids"] = self.pad([ex["position_ids"] for ex in examples], 0, length)
        return batch


class PreferenceDataModule(_InstructionData):
    """DPO data: each batch holds the chosen rows first, then the rejected rows, one padding."""

    kind, keys = "dpo", ("prompt", "chosen", "rejected")

    def tokenize_split(self, rows: list[dict], counts: dict) -> list[dict]:
        examples = []
        for row in rows:
            if row["chosen"] == row["rejected"]:
                counts["skipped_identical"] += 1  # no preference to learn from
                continue
            prompt = self.fitting_prompt(row, counts)
            if prompt is None:
                continue
            room = self.max_length - len(prompt)
            chosen = self.completion_ids(row["chosen"])[:room]
            rejected = self.completion_ids(row["rejected"])[:room]
            if chosen == rejected:  # identical once cut to max_length
                counts["skipped_identical"] += 1
                continue
            examples.append(
                {
                    "line": row["line"],
                    "prompt_ids": prompt,
                    "chosen_ids": chosen,
                    "rejected_ids": rejected,
                    "reference": row["chosen"],
                }
            )
        return examples

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        # the row number in its split, to look up precomputed reference log-probs
        self.datasets = DatasetDict(
            {k: v.add_column("index", list(range(len(v)))) for k, v in self.datasets.items()}
        )

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        answers = [ex["chosen_ids"] for ex in examples] + [ex["rejected_ids"] for ex in examples]
        return {
            **self.prompts_and_answers(2 * [ex["prompt_ids"] for ex in examples], answers),
            "index": torch.tensor([ex["index"] for ex in examples], dtype=torch.long),
        }

    def prompts_and_answers(
        self, prompts: list[list[int]], answers: list[list[int]]
    ) -> dict[str, torch.Tensor]:
        """One row per prompt + answer, one padding for all, labels on the answers only."""
        seqs = [p + a for p, a in zip(prompts, answers, strict=True)]
        labels = [[-100] * len(p) + a for p, a in zip(prompts, answers, strict=True)]
        length = max(len(s) for s in seqs)
        return {
            "input_ids": self.pad(seqs, self.tokenizer.pad_token_id, length),
            "attention_mask": self.pad([[1] * len(s) for s in seqs], 0, length),
            "labels": self.pad(labels, -100, length),
        }
