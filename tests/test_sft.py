"""SupervisedFineTuning: loss on completion tokens only; an end-to-end run writes the run dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from methods import adapter_config

from clinical_peft.cli.stage import run_stage
from clinical_peft.data.instructions import InstructionDataModule
from clinical_peft.models.backbone import token_logits
from clinical_peft.stages.sft import SupervisedFineTuning
from clinical_peft.synthetic import write_instruction_tasks
from clinical_peft.util.errors import InputError


@pytest.fixture(scope="module")
def instructions_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("instructions")
    write_instruction_tasks(folder, n_per_task=60, seed=0)
    return folder


def test_loss_counts_completion_tokens_only(instructions_dir, tiny_model, tmp_path):
    data = InstructionDataModule(
        str(instructions_dir), "classification", str(tiny_model), cache_dir=str(tmp_path)
    )
    data.setup()
    examples = list(data.datasets["train"])[:3]
    batch = data.collate(examples)
    stage = SupervisedFineTuning(str(tiny_model)).eval()
    with torch.no_grad():
        nll, tokens = stage(batch)
        logits = stage.model(input_ids=batch["input_ids"]).logits
    # by hand: -log p of each completion token (and EOS) given everything before it
    expected, count = 0.0, 0
    for i, ex in enumerate(examples):
        start = len(ex["prompt_ids"])
        for t in range(start, len(ex["input_ids"])):
            expected -= F.log_softmax(logits[i, t - 1], -1)[ex["input_ids"][t]].item()
            count += 1
    assert tokens.item() == count
    assert nll.item() == pytest.approx(expected, rel=1e-5)
    # the prompt tokens' labels play no part: labelling them changes the loss
    relabelled = {
        **batch,
        "labels": torch.where(batch["attention_mask"].bool(), batch["input_ids"], -100),
    }
    with torch.no_grad():
        assert stage(relabelled)[1].item() > count


@pytest.mark.slow
def test_sft_run_lowers_loss_and_writes_predictions(instructions_dir, tiny_model, tmp_path):
    run = tmp_path / "run"
    args = [
        "-c", "experiments/sft/base.yaml", "--data.task", "classification",
        "--model.base_model", str(tiny_model),
        "--data.data_dir", str(instructions_dir),
        "--data.cache_dir", str(tmp_path / "cache"),
        "--data.max_eval_examples", "4",
        "--data.packing", "true",
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--run_dir", str(run),
    ]  # fmt: skip
    metrics = run_stage("sft", args)
    assert metrics["val/loss"] < metrics["val/loss_before"]
    assert 0 <= metrics["test/f1"] <= 1 and 0 <= metrics["test/f1_before"] <= 1
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["data/train/examples"] == 48
    # share of generations the parser could not read, after and before training
    assert 0 <= saved["test/unparsable"] <= 1 and 0 <= saved["test/unparsable_before"] <= 1
    # 4 of the 6 test prompts generated for (max_eval_examples): a partial evaluation, said so
    assert saved["data/test/scored"] == saved["data/test/scored_before"] == 4
    assert saved["data/test/partial"] == saved["data/test/partial_before"] == 1
    # throughput counts every real token of the packed blocks, in both epochs
    unpacked = InstructionDataModule(
        str(instructions_dir), "classification", str(tiny_model), cache_dir=str(tmp_path / "c2")
    )
    unpacked.setup()
    assert saved["train/tokens"] == 2 * sum(len(x) for x in unpacked.datasets["train"]["input_ids"])
    rows = [json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(set(row) == {"id", "prediction"} for row in rows)
    assert (run / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize("method", ["lora", "adaption_prompt"])
def test_packed_examples_do_not_see_each_other(instructions_dir, tiny_model, tmp_path, method):
    data = InstructionDataModule(
        str(instructions_dir), "triage", str(tiny_model), cache_dir=str(tmp_path), packing=True
    )
    data.setup()
    stage = SupervisedFineTuning(str(tiny_model), adapter=adapter_config(method)).eval()
    for param in stage.model.parameters():  # an adapter that acts (LoRA B starts at zero)
        if param.requires_grad:
            torch.nn.init.normal_(param, std=0.2)
    unpacked = InstructionDataModule(
        str(instructions_dir), "triage", str(tiny_model), cache_dir=str(tmp_path)
    )
    unpacked.setup()
    singles = list(unpacked.datasets["train"])
    blocks = list(data.datasets["train"])[:2]
    assert all(b["position_ids"].count(0) > 1 for b in blocks)  # several examples per block
    batch = data.collate(blocks)
    assert "position_ids" in batch
    assert batch["attention_mask"].sum() == sum(len(b["input_ids"]) for b in blocks)  # counted
    n_examples = sum(b["position_ids"].count(0) for b in blocks)
    with torch.no_grad():
        packed = token_logits(stage.model, batch)
        nll, tokens = stage(batch)
        alone = [stage(unpacked.collate([ex])) for ex in singles[:n_examples]]
        # each example's logits in the block equal those of the example run on its own
        row, start = 0, 0
        for ex in singles[:n_examples]:
            if start + len(ex["input_ids"]) > len(blocks[row]["input_ids"]):
                row, start = row + 1, 0
            own = token_logits(stage.model, unpacked.collate([ex]))[0]
            torch.testing.assert_close(
                packed[row, start : start + len(ex["input_ids"])], own, atol=1e-4, rtol=1e-4
            )
            start += len(ex["input_ids"])
    # and the packed loss is the sum of the examples' losses: no token lost or gained
    assert tokens.item() == sum(t.item() for _, t in alone)
    assert nll.item() == pytest.approx(sum(n.item() for n, _ in alone), rel=1e-4)


def test_packing_refuses_prompt_learning_methods(instructions_dir, tiny_model, tmp_path):
    args = [
        "-c", "experiments/sft/base.yaml", "--data.task", "triage",
        "--model.base_model", str(tiny_model), "--model.adapter",
        '{"class_path": "peft.PrefixTuningConfig", "init_args": {"num_virtual_tokens": 4}}',
        "--data.data_dir", str(instructions_dir), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.packing", "true", "--run_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    with pytest.raises(InputError, match="data.packing.*prefix"):
        run_stage("sft", args)
    assert not (tmp_path / "run" / "checkpoints").exists()
