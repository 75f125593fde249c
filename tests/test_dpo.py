"""PreferenceOptimization: equal to TRL's DPOTrainer, log 2 at step 0, the SFT adapter as the
frozen reference, cached reference log-probs, learning above chance, two-process DDP."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from methods import adapter_config, lora
from test_cli import run_cli

from clinical_peft.cli.stage import StageCLI, run_stage
from clinical_peft.data.instructions import PreferenceDataModule
from clinical_peft.models.backbone import token_logits
from clinical_peft.stages.dpo import STAT_KEYS, PreferenceOptimization
from clinical_peft.stages.losses import DPO_LOSSES, DPOLoss, sequence_logps
from clinical_peft.util.errors import InputError

ROOT = Path(__file__).parent.parent


def data_module(instructions_dir, tiny_model, tmp_path, task="triage") -> PreferenceDataModule:
    data = PreferenceDataModule(
        str(instructions_dir), task, str(tiny_model), max_length=256, cache_dir=str(tmp_path)
    )
    data.setup()
    return data


def perturb(stage: PreferenceOptimization, seed: int = 0, adapter: str = "default") -> None:
    """Random LoRA B matrices, so that the policy differs from the reference."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in stage.model.named_parameters():
            if "lora_B" in name and f".{adapter}." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)


def copy_policy(stage: PreferenceOptimization, model: torch.nn.Module) -> None:
    """The stage's policy adapter weights into `model` (a peft model with the same names)."""
    with torch.no_grad():
        for name, param in stage.model.named_parameters():
            if ".default." in name:
                model.get_parameter(name).copy_(param)


@pytest.mark.parametrize("start", ["base", "sft_adapter"])
def test_stage_equals_trl_dpo_trainer(instructions_dir, tiny_model, tmp_path, start):
    """Same batch, same weights: TRL 1.16's DPOTrainer (reference: adapter disabled for a new
    adapter, a frozen copy "ref" for an existing one) gives our loss, rewards and log-probs."""
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    data = data_module(instructions_dir, tiny_model, tmp_path)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    if start == "base":
        stage = PreferenceOptimization(str(tiny_model), beta=0.3)
        trl_model, peft_config = (
            base,
            LoraConfig(
                r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
            ),
        )
    else:
        sft = PreferenceOptimization(str(tiny_model))
        perturb(sft, seed=1)
        sft.model.save_pretrained(tmp_path / "sft")
        stage = PreferenceOptimization(str(tiny_model), sft_adapter=str(tmp_path / "sft"), beta=0.3)
        trl_model = PeftModel.from_pretrained(base, tmp_path / "sft", is_trainable=True)
        peft_config = None  # TRL copies the loaded adapter as its frozen reference "ref"
    stage.eval()
    perturb(stage, seed=2)  # the policy moves away from the reference
    examples = list(data.datasets["train"])[:4]
    batch = data.collate(examples)
    with torch.no_grad():
        ours = {k: v.mean().item() for k, v in stage(batch).items()}

    rows = [json.loads(x) for x in (instructions_dir / "triage" / "dpo_train.jsonl").open()][:4]
    config = DPOConfig(
        output_dir=str(tmp_path / "trl"), beta=0.3, max_length=None, per_device_train_batch_size=4,
        report_to=[], use_cpu=True, bf16=False,
    )  # fmt: skip
    trainer = DPOTrainer(
        model=trl_model, args=config, train_dataset=Dataset.from_list(rows),
        processing_class=data.tokenizer, peft_config=peft_config,
    )  # fmt: skip
    copy_policy(stage, trainer.model)  # the same policy weights in TRL's network
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    # the same token sequences and the same completion positions
    n = batch["input_ids"].shape[1]
    assert trl_batch["input_ids"].shape[1] == n
    mask = batch["attention_mask"].bool()
    assert torch.equal(trl_batch["input_ids"][mask], batch["input_ids"][mask])
    assert torch.equal(trl_batch["completion_mask"].bool(), batch["labels"] != -100)
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, trl_batch)
    theirs = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    assert loss.item() == pytest.approx(ours["loss"], abs=1e-5)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert theirs[key] == pytest.approx(ours[key], abs=1e-5), key
    for key in ("logps/chosen", "logps/rejected"):  # sums of ~100 float32 terms: relative 1e-6
        assert theirs[key] == pytest.approx(ours[key], rel=1e-6), key
    assert abs(ours["rewards/margins"]) > 1e-3 and abs(ours["loss"] - math.log(2)) > 1e-4


# the paired losses with a reference (the others: tests/test_preference_stage.py)
@pytest.mark.parametrize(
    "loss_type", [k for k, v in DPO_LOSSES.items() if v.reference and not v.unpaired]
)
def test_step_zero_policy_equals_reference(instructions_dir, tiny_model, tmp_path, loss_type):
    data = data_module(instructions_dir, tiny_model, tmp_path)
    stage = PreferenceOptimization(str(tiny_model), loss_type=loss_type, label_smoothing=0.0)
    stats = stage(data.collate(list(data.datasets["val"])[:4]))
    assert torch.all(stats["rewards/margins"] == 0) and torch.all(stats["rewards/chosen"] == 0)
    expected = {"sigmoid": math.log(2), "robust": math.log(2), "hinge": 1.0, "ipo": (1 / 0.2) ** 2,
                "nca_pair": 2 * math.log(2), "sppo_hard": 2 * (0.5 / 0.1) ** 2}  # fmt: skip
    assert stats["loss"].mean().item() == pytest.approx(expected[loss_type], abs=1e-6)
    assert stats["loss"].requires_grad  # the policy is trainable


def test_log_probs_from_hidden_states_equal_the_full_logits(instructions_dir, tiny_model, tmp_path):
    """The stage takes log-probs from the backbone's hidden states through the LM head on the
    completion positions only: the same values and gradients as from the model's full logits."""
    stage = PreferenceOptimization(str(tiny_model))
    assert stage.fused_head
    perturb(stage)
    data = data_module(instructions_dir, tiny_model, tmp_path)
    batch = data.collate(list(data.datasets["val"])[:3])
    lora = [p for n, p in stage.model.named_parameters() if p.requires_grad]
    results = []
    for logps_of in (stage.sequence_logps, lambda b: sequence_logps(token_logits(stage.model, b),
                                                                    b["labels"])):  # fmt: skip
        stage.zero_grad()
        logps = logps_of(batch)
        logps.sum().backward()
        results.append((logps.detach(), torch.cat([p.grad.flatten() for p in lora])))
    (fast, fast_grad), (full, full_grad) = results
    torch.testing.assert_close(fast, full, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(fast_grad, full_grad, rtol=1e-4, atol=1e-6)
    assert fast_grad.abs().sum() > 0
    # prompt learning puts virtual tokens in front: those stages use the full logits
    prompt = PreferenceOptimization(str(tiny_model), adapter=adapter_config("prompt"))
    assert not prompt.fused_head
    with torch.no_grad():  # (virtual tokens start random: the policy differs from the base)
        assert torch.isfinite(prompt(batch)["loss"]).all()


def test_loss_options_are_checked_by_the_registry(tiny_model):
    with pytest.raises(InputError, match=r"model.loss_type: unknown DPO loss 'dpop' \(valid: sig"):
        PreferenceOptimization(str(tiny_model), loss_type="dpop")
    with pytest.raises(InputError, match="model.label_smoothing: the 'ipo' loss does not use it"):
        PreferenceOptimization(str(tiny_model), loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(InputError, match="model.beta: must be > 0"):
        PreferenceOptimization(str(tiny_model), beta=0.0)


def test_a_registered_loss_needs_no_other_edit(monkeypatch, instructions_dir, tiny_model, tmp_path):
    """One registry entry makes a loss usable from the stage's config (`--model.loss_type`), its
    hyperparameters checked and, being reference-free, no reference pass run."""

    def toy(x):
        return x.beta * (x.rejected - x.chosen) / x.chosen_lengths + x.ls

    monkeypatch.setitem(DPO_LOSSES, "toy", DPOLoss(toy, label_smoothing=True, reference=False))
    args = dpo_args(tiny_model, instructions_dir, tmp_path / "run", "--model.loss_type", "toy",
                    "--model.beta", "0.5", "--model.label_smoothing", "0.2")  # fmt: skip
    cli = StageCLI("dpo", PreferenceOptimization, PreferenceDataModule, args=args, run=False,
                   auto_configure_optimizers=False)  # fmt: skip
    stage, data = cli.model, cli.datamodule
    assert stage.loss_type == "toy"
    data.setup()
    batch = data.collate(list(data.datasets["val"])[:4])
    monkeypatch.setattr(stage, "reference_logps", lambda *_: pytest.fail("reference pass ran"))
    stats = stage(batch)
    lengths = (batch["labels"][:4, 1:] != -100).sum(dim=1)
    logps_c, logps_r = stats["logps/chosen"], stats["logps/rejected"]
    torch.testing.assert_close(stats["loss"], 0.5 * (logps_r - logps_c) / lengths + 0.2)
    torch.testing.assert_close(stats["rewards/chosen"], 0.5 * logps_c)
    assert stats["loss"].requires_grad
    with pytest.raises(InputError, match=r"model.label_smoothing: must lie in \[0, 0.5\)"):
        PreferenceOptimization(str(tiny_model), loss_type="toy", label_smoothing=0.5)
    with pytest.raises(InputError, match="valid: .*sppo_hard, .*, toy"):
        PreferenceOptimization(str(tiny_model), loss_type="dpop")


def test_a_policy_without_an_sft_adapter_is_announced(tiny_model, tmp_path, caplog):
    """`make dpo` before `make sft` trains from the base: the run says so, an SFT start does not."""
    with caplog.at_level("WARNING", logger="clinical_peft"):
        PreferenceOptimization(str(tiny_model)).model.save_pretrained(tmp_path / "sft")
    assert "no model.sft_adapter" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="clinical_peft"):
        PreferenceOptimization(str(tiny_model), sft_adapter=str(tmp_path / "sft"))
    assert "no model.sft_adapter" not in caplog.text


def test_sft_adapter_is_the_frozen_reference(instructions_dir, tiny_model, tmp_path):
    # an "SFT" adapter with non-zero weights
    sft = PreferenceOptimization(str(tiny_model), adapter=lora(r=4))
    perturb(sft, seed=1)
    sft.model.save_pretrained(tmp_path / "sft")
    stage = PreferenceOptimization(str(tiny_model), sft_adapter=str(tmp_path / "sft"), beta=0.1)
    data = data_module(instructions_dir, tiny_model, tmp_path)
    batch = data.collate(list(data.datasets["val"])[:4])
    with torch.no_grad():
        sft_logps = sft.sequence_logps(batch)
        stats = stage(batch)
    # step 0: the policy is a copy of the reference, so log 2 and zero margins
    assert stats["loss"].mean().item() == pytest.approx(math.log(2), abs=1e-6)
    torch.testing.assert_close(stats["logps/chosen"], sft_logps[:4])
    trainable = {n for n, p in stage.model.named_parameters() if p.requires_grad}
    assert trainable and all(".default." in n for n in trainable)
    assert any(".reference." in n for n, _ in stage.model.named_parameters())
    # a trained policy moves; the reference does not
    perturb(stage, seed=2)
    with torch.no_grad():
        assert torch.equal(stage.reference_logps(batch), sft_logps)
        assert not torch.allclose(stage.sequence_logps(batch), sft_logps)
    # only the policy is exported, as a plain adapter folder
    stage.export(tmp_path / "run")
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "run" / "adapter" / "reference").exists()


@pytest.mark.parametrize("disable_dropout", [True, False])
def test_dropout_is_off_unless_asked_for(instructions_dir, tiny_model, tmp_path, disable_dropout):
    sft = PreferenceOptimization(str(tiny_model), adapter=lora(r=4, lora_dropout=0.5))
    perturb(sft, seed=1)
    sft.model.save_pretrained(tmp_path / "sft")
    stage = PreferenceOptimization(
        str(tiny_model), sft_adapter=str(tmp_path / "sft"), disable_dropout=disable_dropout
    ).train()
    data = data_module(instructions_dir, tiny_model, tmp_path)
    with torch.no_grad():
        stats = stage(data.collate(list(data.datasets["val"])[:4]))
    # in training mode the step-0 policy equals its reference only without dropout
    at_log2 = stats["loss"].mean().item() == pytest.approx(math.log(2), abs=1e-6)
    assert at_log2 == disable_dropout


def test_precomputed_reference_equals_the_live_one(instructions_dir, tiny_model, tmp_path):
    data = data_module(instructions_dir, tiny_model, tmp_path)
    stage = PreferenceOptimization(str(tiny_model), precompute_reference=True)
    perturb(stage)
    cache = stage.load_or_compute_reference(data)  # the adapter is switched off: the base
    assert len(list((tmp_path / "reference_logps").glob("*.pt"))) == 1
    assert cache["val"].shape == (len(data.datasets["val"]), 2)
    stage.reference_cache = cache
    batch = data.collate([data.datasets["val"][i] for i in (5, 2, 7)])
    with torch.no_grad():
        cached = stage(batch, "val")
        live = stage(batch, None)
    for key in STAT_KEYS:
        torch.testing.assert_close(cached[key], live[key], rtol=1e-5, atol=1e-5)
    assert stage.load_or_compute_reference(data)["train"].equal(cache["train"])  # from disk


def dpo_args(tiny_model, data_dir, run_dir, *extra: str) -> list[str]:
    return [
        "-c", "experiments/dpo/base.yaml", "--data.task", "triage",
        "--model.base_model", str(tiny_model),
        "--data.data_dir", str(data_dir),
        "--data.cache_dir", str(run_dir.parent / "cache"),
        "--data.max_length", "256",
        "--data.max_eval_examples", "8",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--run_dir", str(run_dir),
        *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_short_run_prefers_chosen_answers(instructions_dir, tiny_model, tmp_path):
    run = tmp_path / "run"
    args = dpo_args(tiny_model, instructions_dir, run, "--trainer.max_steps", "30",
                    "--model.optim.lr", "1e-2", "--model.precompute_reference", "true")  # fmt: skip
    metrics = run_stage("dpo", args)
    assert metrics["val/loss_before"] == pytest.approx(math.log(2), abs=1e-5)
    assert metrics["val/rewards/margins_before"] == 0.0
    assert metrics["val/rewards/accuracies"] > 0.5
    assert metrics["val/rewards/margins"] > 0 and metrics["val/loss"] < math.log(2)
    saved = json.loads((run / "metrics.json").read_text())
    assert "test/f1_provider" in saved and "test/f1_urgency_before" in saved
    assert 0 <= saved["test/unparsable"] <= 1 and 0 <= saved["test/unparsable_before"] <= 1
    lines = (run / "predictions" / "test.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == sorted(json.loads(x)["id"] for x in lines)
    assert len(lines) == 8
    logged = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/rewards/accuracies", "val/rewards/margins", "val/logps/rejected"} <= set(logged)


def run_two_ranks(stage: str, args: list[str], timeout: int = 400) -> dict:
    """`stage` with `args` under experiments/trainer/ddp_cpu.yaml (two gloo ranks, one thread
    each) in a subprocess; the run's metrics.json."""
    result = run_cli(stage, *args, "--trainer", "experiments/trainer/ddp_cpu.yaml",
                     cwd=ROOT, env={"OMP_NUM_THREADS": "1"}, timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr + result.stdout
    run = Path(args[args.index("--run_dir") + 1])
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_two_process_ddp_run(instructions_dir, tiny_model, tmp_path):
    run = tmp_path / "ddp"
    args = dpo_args(tiny_model, instructions_dir, run, "--trainer.max_steps", "3")
    metrics = run_two_ranks("dpo", args)
    assert metrics["val/loss_before"] == pytest.approx(math.log(2), abs=1e-5)
    assert math.isfinite(metrics["val/loss"]) and metrics["val/loss"] != metrics["val/loss_before"]
    # generation was shared between the ranks and gathered: every test prompt once
    lines = (run / "predictions" / "test.jsonl").read_text().splitlines()
    assert len({json.loads(x)["id"] for x in lines}) == len(lines) == 8
