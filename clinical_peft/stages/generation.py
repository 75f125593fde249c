"""Evaluation by generation for the instruction tasks of study B: greedy, batched, scored per task.

What is scored and how (parsers, metrics, new-token caps) is each task's spec in
`clinical_peft.tasks.instructions`; metrics.json gets `test/<metric>` and `test/unparsable` (the
share of generations the task's parser could not read), with `_before` for the untrained model.
What a stage and its data module must provide to use it is stated once, in
`GenerationEvaluation` and `GenerationData`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.data.contracts import GenerationData, require_data
from clinical_peft.data.loader import busiest_rank_batches, pad_rows, rank_and_world
from clinical_peft.stages.base import whole_fsdp_parameters
from clinical_peft.tasks.instructions import get_task, score

log = logging.getLogger(__name__)


def stop_ids(model: torch.nn.Module, tokenizer) -> list[int]:
    """The tokenizer's EOS and every id the model's `generation_config` stops on: instruct
    models list several (Llama-3-Instruct: `<|eot_id|>` and `<|end_of_text|>`)."""
    config = getattr(model, "generation_config", None)
    listed = getattr(config, "eos_token_id", None)
    listed = [] if listed is None else [listed] if isinstance(listed, int) else list(listed)
    return list(dict.fromkeys([tokenizer.eos_token_id, *listed]))


def cut_at_stop(row: list[int], stops: list[int]) -> list[int]:
    """`row` up to (without) its first stop id."""
    return next((row[:i] for i, token in enumerate(row) if token in stops), row)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int = 8,
    rounds: int | None = None,
    filler: list[int] | None = None,
) -> list[str]:
    """Greedy completions of token-id prompts, batched with left padding; text up to the
    first stop id (`stop_ids`).

    `rounds` (ZeRO-3): run exactly this many batches, each step in lockstep with the other
    ranks (`synced_gpus`), since every forward pass gathers sharded weights from all of them; a
    rank out of prompts generates for the `filler` prompt and discards the text.
    """
    synced = rounds is not None
    if rounds is None:
        rounds = math.ceil(len(prompts) / batch_size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad, stops = tokenizer.pad_token_id, stop_ids(model, tokenizer)
    texts = []
    for start in range(0, rounds * batch_size, batch_size):
        batch = prompts[start : start + batch_size]
        is_filler = not batch
        batch = batch or [filler]
        # left padding: every prompt ends at the same column
        input_ids = pad_rows(batch, pad, left=True)
        attention_mask = pad_rows([[1] * len(p) for p in batch], 0, left=True)
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=stops,
            synced_gpus=synced,
        )
        if is_filler:
            continue
        for row in output[:, input_ids.shape[1] :].tolist():
            texts.append(tokenizer.decode(cut_at_stop(row, stops), skip_special_tokens=True))
    model.train(was_training)
    return texts


def evaluate_generation(
    model: torch.nn.Module,
    tokenizer,
    examples: list[dict],
    task: str,
    prefix: str,
    out_path: Path | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    synced: bool = False,
) -> dict[str, float]:
    """Generate for `examples` (`{"id", "prompt_ids", "reference"}`), score, save on rank 0.

    Each rank generates its share; the texts are gathered so every rank returns the same metrics.
    Generations go to `out_path` as JSONL (`id`: the example's line in its file, `prediction`):
    never into logs, and without the reference texts, which stay in the data files.
    """
    if not examples:
        log.info("no %s examples: generation evaluation skipped", prefix)
        return {}
    rank, world = rank_and_world()
    mine = examples[rank::world]
    # ZeRO-3: every rank runs as many batches as the busiest one (see `generate`)
    rounds = busiest_rank_batches(len(examples), batch_size) if synced else None
    texts = generate(
        model,
        tokenizer,
        [ex["prompt_ids"] for ex in mine],
        max_new_tokens or get_task(task).max_new_tokens,
        batch_size,
        rounds,
        examples[0]["prompt_ids"],
    )
    rows = [{"id": ex["id"], "prediction": text} for ex, text in zip(mine, texts, strict=True)]
    if world > 1:
        gathered: list = [None] * world
        torch.distributed.all_gather_object(gathered, rows)
        rows = [row for part in gathered for row in part]
    rows.sort(key=lambda row: row["id"])
    if out_path is not None and rank == 0:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    references = {ex["id"]: ex["reference"] for ex in examples}
    metrics = score(task, [r["prediction"] for r in rows], [references[r["id"]] for r in rows])
    log.info(
        "%s: %.1f %% of %d generations unparsable", prefix, 100 * metrics["unparsable"], len(rows)
    )
    return {**{f"{prefix}/{k}": v for k, v in metrics.items()}, f"data/{prefix}/scored": len(rows)}


def evaluate_stage(
    network: torch.nn.Module,
    trainer,
    datamodule,
    out_path: Path | None,
    max_new_tokens: int | None = None,
    suffix: str = "",
) -> dict[str, float]:
    """`test/<metric><suffix>` of a stage's network on its data module's test prompts, and
    `data/test/partial<suffix>` 1 when `max_eval_examples` left some out (also logged)."""
    examples = datamodule.generation_examples("test")
    metrics = evaluate_generation(
        network,
        datamodule.tokenizer,
        examples,
        datamodule.task,
        "test",
        out_path,
        max_new_tokens,
        datamodule.eval_batch_size,
        synced=getattr(trainer.strategy, "zero_stage_3", False),
    )
    if metrics:
        available = available_examples(datamodule, "test", len(examples))
        metrics["data/test/partial"] = float(len(examples) < available)
        if len(examples) < available:
            log.warning(
                "test: a partial evaluation by generation, %d of %d prompts scored "
                "(data.max_eval_examples)", len(examples), available,
            )  # fmt: skip
    return {key + suffix: value for key, value in metrics.items()}


def available_examples(datamodule, split: str, generated: int) -> int:
    """How many prompts `split` holds for generation before `max_eval_examples` caps them
    (`generated`, the prompts generated for, when nothing caps them)."""
    if getattr(datamodule, "max_eval_examples", None) is None:
        return generated
    return len(datamodule.generation_examples(split, capped=False))


def check_generation_data(datamodule: object) -> None:
    """Refuse, naming what is missing, a data module that cannot feed generation evaluation."""
    require_data(datamodule, GenerationData, "evaluation by generation")


class GenerationEvaluation:
    """The run-directory hooks of the instruction stages (mixed into an AdapterStage): loss on
    the validation split, then greedy generation on the test split scored with the task's
    metric, before training (the "base" column) and after (with the best checkpoint).

    A stage mixing it in provides `validate_best(trainer, datamodule)` (AdapterStage's; checked
    when the class is created) and sets `model`, the network that generates, in `__init__`;
    `max_new_tokens` (None: the task's cap) and `evaluate_base` are its options. Its data
    module is a `GenerationData` (checked before evaluation).
    """

    REQUIRED_METHODS = ("validate_best",)
    model: torch.nn.Module
    max_new_tokens: int | None = None
    evaluate_base: bool = True

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in cls.REQUIRED_METHODS if not callable(getattr(cls, name, None))]
        if missing:
            raise TypeError(
                f"{cls.__name__} uses GenerationEvaluation without {', '.join(missing)}"
            )

    def evaluate_before_fit(self, trainer, datamodule) -> dict[str, float]:
        check_generation_data(datamodule)
        (result,) = trainer.validate(self, datamodule=datamodule, verbose=False)
        metrics = {f"{k}_before": v for k, v in result.items() if k.startswith("val/")}
        if self.evaluate_base:
            with whole_fsdp_parameters(trainer):
                metrics.update(
                    evaluate_stage(
                        self.model, trainer, datamodule, None, self.max_new_tokens, "_before"
                    )
                )
        return metrics

    def evaluate_after_fit(self, trainer, datamodule, run_dir: Path) -> dict:
        check_generation_data(datamodule)  # a resumed run skipped the check before fitting
        result = self.validate_best(trainer, datamodule)
        out = RunDir(run_dir).prediction_file("test", ".jsonl")
        with whole_fsdp_parameters(trainer):
            metrics = evaluate_stage(self.model, trainer, datamodule, out, self.max_new_tokens)
        return {**result, **metrics, **datamodule.count_metrics()}
