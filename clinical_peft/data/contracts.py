"""What each stage reads from its data module, one `Protocol` per stage.

A data source named by `data: class_path:` (README, "A new data source") must provide what its
stage's protocol lists; the stage CLI checks it before fitting (`require_data`) and names what is
missing in one line. DataModuleBase provides `tokenizer`, `data_fingerprint` and the loaders.
Attributes a stage reads only if present (`stats`, written by `prepare_data`; NotesDataModule's `mode`,
InstructionDataModule's `packing`) are not part of the contract.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from transformers import PreTrainedTokenizerBase

from clinical_peft.util.errors import InputError


@runtime_checkable
class StageData(Protocol):
    """What every stage reads: the tokenizer (saved into the run), the data's fingerprint
    (stored in checkpoints) and the training and validation loaders."""

    tokenizer: PreTrainedTokenizerBase

    def data_fingerprint(self) -> str: ...

    def train_dataloader(self) -> Any: ...

    def val_dataloader(self) -> Any: ...


@runtime_checkable
class NotesData(StageData, Protocol):
    """pretrain: batches of `input_ids`, `labels`, `attention_mask` (the causal-LM loss)."""


@runtime_checkable
class OutcomeData(StageData, Protocol):
    """downstream: batches of `input_ids`, `attention_mask`, `labels` (+ `ids`, `doc_index`);
    `kind`, `num_labels` and `class_weights` are linked to the model; the rest goes into
    labels.json and metrics.json."""

    kind: str
    num_labels: int
    class_weights: list[float] | None
    task: Any  # a clinical_peft.tasks.outcomes.TaskSpec
    label_names: list[str]
    max_length: int
    long_mode: str
    max_chunks: int
    eval_batch_size: int

    def test_dataloader(self) -> Any: ...


@runtime_checkable
class GenerationData(Protocol):
    """What evaluation by generation reads (the sft and dpo stages' GenerationEvaluation)."""

    tokenizer: PreTrainedTokenizerBase
    task: str  # a key of the instruction-task registry: parser, metrics, new-token cap
    eval_batch_size: int

    def generation_examples(self, split: str, capped: bool = True) -> list[dict]:
        """`{"id", "prompt_ids", "reference"}` per example of `split` (a module with
        `max_eval_examples` returns at most that many unless not `capped`)."""
        ...

    def count_metrics(self) -> dict[str, float]:
        """`data/...` counts for metrics.json (e.g. skipped examples)."""
        ...


@runtime_checkable
class InstructionData(StageData, GenerationData, Protocol):
    """sft: batches of `input_ids`, `labels` (completion tokens only), `attention_mask`."""


@runtime_checkable
class PreferenceData(InstructionData, Protocol):
    """dpo: chosen / rejected batches, and the reference log-probs' cache."""

    def cache_file(self, name: str, key: dict) -> Any: ...

    def unsharded_batches(self, split: str) -> Any: ...


def members(protocol: type) -> list[str]:
    """A protocol's attributes and methods, in declaration order, base protocols first."""
    names: list[str] = []
    for cls in reversed(protocol.__mro__):
        if cls in (object, Protocol, Any) or not getattr(cls, "_is_protocol", False):
            continue
        for name in [*getattr(cls, "__annotations__", {}), *vars(cls)]:
            if not name.startswith("_") and name not in names:
                names.append(name)
    return names


def require_data(datamodule: object, protocol: type, reads: str) -> None:
    """Refuse, naming what is missing, a data module that lacks what `reads` needs."""
    missing = [name for name in members(protocol) if not hasattr(datamodule, name)]
    if missing:
        raise InputError(
            "data.class_path",
            f"{type(datamodule).__name__} lacks {', '.join(missing)}, which {reads} reads "
            f"({protocol.__module__}.{protocol.__qualname__})",
        )
