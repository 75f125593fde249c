"""DomainAdaptation end to end: every method fits, perplexity falls, exact resume, plain-peft reload."""

from __future__ import annotations

import json
import math

import pytest
import torch
from methods import METHODS
from peft import PeftModel
from transformers import AutoModelForCausalLM

from clinical_peft.cli.stage import run_stage
from clinical_peft.stages.pretrain import DomainAdaptation
from clinical_peft.studies.tables import pretrain_table

pytestmark = pytest.mark.slow


def pretrain(notes_dir, tiny_model, run_dir, *extra: str, method: str = "lora") -> dict:
    args = [
        "-c", f"experiments/pretrain/{method}.yaml",
        "--trainer", "experiments/trainer/cpu.yaml",
        "--model.base_model", str(tiny_model),
        "--data.data_dir", str(notes_dir),
        "--data.cache_dir", str(run_dir.parent / "cache"),
        "--data.block_size", "64",
        "--data.max_notes", "120",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--run_dir", str(run_dir),
        *extra,
    ]  # fmt: skip
    return run_stage("pretrain", args)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_fits_and_writes_the_run_directory(notes_dir, tiny_model, tmp_path, method):
    run = tmp_path / method
    metrics = pretrain(notes_dir, tiny_model, run, "--trainer.max_steps", "4", method=method)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    for key in (
        "val/ppl_before",
        "val/ppl",
        "train/ppl",
        "params/trainable",
        "params/total",
        "train/tokens_per_s",
    ):
        assert math.isfinite(saved[key]) and saved[key] > 0, key
    assert saved["val/ppl"] == pytest.approx(math.exp(saved["val/loss"]), rel=1e-5)
    assert (run / "config.yaml").is_file() and (run / "tokenizer" / "tokenizer.json").is_file()
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["peft_type"]
    # the checkpoint holds the trainable tensors only, not the frozen base
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert sum(t.numel() for t in ckpt["state_dict"].values()) == saved["params/trainable"]
    assert ckpt["optimizer_states"] and ckpt["loops"]


def test_lora_lowers_perplexity_and_reloads_with_plain_peft(notes_dir, tiny_model, tmp_path):
    run = tmp_path / "lora"
    metrics = pretrain(
        notes_dir, tiny_model, run, "--trainer.max_epochs", "3", "--model.optim.lr", "3e-3"
    )
    assert metrics["val/ppl"] < 0.85 * metrics["val/ppl_before"]

    # a collaborator with plain transformers + peft gets the same network
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    plain = PeftModel.from_pretrained(base, run / "adapter").eval()
    stage = DomainAdaptation(base_model=str(tiny_model)).eval()
    stage.load_trainable_from(run / "checkpoints" / "best.ckpt")
    ids = torch.randint(4, 1000, (2, 32))
    with torch.no_grad():
        expected = stage.model(input_ids=ids).logits
        got = plain(input_ids=ids).logits
        untrained = AutoModelForCausalLM.from_pretrained(tiny_model)(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got - untrained).abs().max() > 1e-3  # the adapter really changes the output


def test_resume_mid_epoch_gives_the_same_weights(notes_dir, tiny_model, tmp_path):
    constant = ["--model.optim.schedule", "constant", "--model.optim.warmup_steps", "0"]
    straight = tmp_path / "straight"
    pretrain(notes_dir, tiny_model, straight, "--trainer.max_steps", "10", *constant)

    interrupted = tmp_path / "interrupted"
    every = ["--checkpoint_every_n_steps", "3"]
    pretrain(notes_dir, tiny_model, interrupted, "--trainer.max_steps", "6", *every, *constant)
    first_part = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert first_part["global_step"] == 6
    steps_per_epoch = first_part["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]
    assert first_part["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 0
    assert steps_per_epoch["ready"] == 6  # stopped mid-epoch

    last = str(interrupted / "checkpoints" / "last.ckpt")
    pretrain(
        notes_dir,
        tiny_model,
        interrupted,
        "--trainer.max_steps",
        "10",
        "--ckpt_path",
        last,
        *constant,
    )

    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert max(a[k].abs().max().item() for k in a if "lora_B" in k) > 0  # it did train


def test_table_2_names_each_method_dora_apart_from_lora(tmp_path):
    """The Table 2 analogue names a run by its adapter's method: DoRA is peft's LoRA with
    `use_dora`, and a run without an adapter config keeps its folder name."""
    adapters = {"a": {"peft_type": "LORA"}, "b": {"peft_type": "LORA", "use_dora": True},
                "c": {"peft_type": "IA3"}, "mine": None}  # fmt: skip
    for name, config in adapters.items():
        run = tmp_path / name
        (run / "adapter").mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"val/ppl": 10.0}))
        if config:
            (run / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    rows = pretrain_table([tmp_path / n for n in adapters], tmp_path / "table")
    assert [r["method"] for r in rows] == ["lora", "dora", "ia3", "mine"]
    assert "| dora |" in (tmp_path / "table.md").read_text()
