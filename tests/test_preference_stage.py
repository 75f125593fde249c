"""The preference stage with the reference-free losses (SimPO, CPO, ORPO) and with KTO on unpaired
rows: equal to TRL 1.16's trainers on the same batch and weights, no reference pass where none
is needed, and the stage's checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from test_dpo import copy_policy, data_module, perturb, run_two_ranks

from clinical_peft.data.unpaired import UnpairedPreferenceDataModule
from clinical_peft.stages.dpo import UNPAIRED_STAT_KEYS, PreferenceOptimization
from clinical_peft.stages.losses import DPO_LOSSES
from clinical_peft.util.errors import InputError

ROOT = Path(__file__).parent.parent
TRL_LOSS = {"cpo": "sigmoid", "simpo": "simpo"}  # our name -> CPOTrainer's loss_type
REFERENCE_FREE = {name for name, loss in DPO_LOSSES.items() if not loss.reference}


def trl_pair_batch(batch: dict) -> dict:
    """Our collated pairs as TRL's CPO / ORPO trainers take them (one padding already)."""
    n = batch["input_ids"].shape[0] // 2
    out = {}
    for side, rows in (("chosen", slice(None, n)), ("rejected", slice(n, None))):
        for key in ("input_ids", "attention_mask", "labels"):
            out[f"{side}_{key}"] = batch[key][rows]
    return out


@pytest.mark.parametrize(
    ("loss_type", "options"),
    [
        ("cpo", {"cpo_alpha": 1.0}),
        ("simpo", {"simpo_gamma": 0.5, "cpo_alpha": 0.0}),
        ("simpo", {"simpo_gamma": 1.0, "cpo_alpha": 0.5}),
        ("orpo", {}),
    ],
)
def test_stage_equals_trl_reference_free_trainers(
    instructions_dir, tiny_model, tmp_path, monkeypatch, loss_type, options
):
    """Same batch, same weights (TRL's loss code runs our network): TRL 1.16's CPOTrainer
    (cpo, simpo) and ORPOTrainer give our loss and rewards, and no reference pass runs."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl.experimental.cpo import CPOConfig, CPOTrainer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    data = data_module(instructions_dir, tiny_model, tmp_path)
    stage = PreferenceOptimization(str(tiny_model), beta=0.3, loss_type=loss_type, **options)
    stage.eval()
    perturb(stage, seed=2)
    monkeypatch.setattr(stage, "reference_logps", lambda *_: pytest.fail("reference pass ran"))
    batch = data.collate(list(data.datasets["train"])[:4])
    with torch.no_grad():
        ours = {k: v.mean().item() for k, v in stage(batch).items()}

    rows = [json.loads(x) for x in (instructions_dir / "triage" / "dpo_train.jsonl").open()][:4]
    common = {"output_dir": str(tmp_path / "trl"), "beta": 0.3, "report_to": [], "use_cpu": True,
              "bf16": False, "per_device_train_batch_size": 4}  # fmt: skip
    if loss_type == "orpo":
        trainer_class, config = ORPOTrainer, ORPOConfig(**common)
    else:
        config = CPOConfig(**common, loss_type=TRL_LOSS[loss_type], **options)
        trainer_class = CPOTrainer
    trainer = trainer_class(
        model=AutoModelForCausalLM.from_pretrained(tiny_model), args=config,
        train_dataset=Dataset.from_list(rows), processing_class=data.tokenizer,
    )  # fmt: skip
    with torch.no_grad():
        loss, theirs = trainer.get_batch_loss_metrics(stage.model, trl_pair_batch(batch), "train")
    theirs = {k: float(v) for k, v in theirs.items()}
    assert loss.item() == pytest.approx(ours["loss"], rel=1e-5)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert theirs[key] == pytest.approx(ours[key], rel=1e-5, abs=1e-6), key
    assert abs(ours["rewards/margins"]) > 1e-4


def kto_rows(instructions_dir, split: str, count: int, skip: int = 0) -> list[dict]:
    """`count` rows of distinct prompts (so each row's mismatched completion is its
    predecessor's, as TRL's +1 rotation within a batch makes it)."""
    rows, prompts = [], set()
    for line in (instructions_dir / "triage" / f"kto_{split}.jsonl").open():
        row = json.loads(line)
        if row["prompt"] not in prompts:
            prompts.add(row["prompt"])
            rows.append(row)
    return rows[skip : skip + count]


def write_kto(folder, rows_by_split: dict[str, list[dict]]):
    (folder / "triage").mkdir(parents=True, exist_ok=True)
    for split, rows in rows_by_split.items():
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / "triage" / f"kto_{split}.jsonl").write_text(lines)
    return folder


def kto_data(folder, tiny_model, tmp_path) -> UnpairedPreferenceDataModule:
    data = UnpairedPreferenceDataModule(
        str(folder), "triage", str(tiny_model), max_length=256, cache_dir=str(tmp_path / "cache")
    )
    data.setup()
    return data


@pytest.mark.parametrize(("wd", "wu"), [(1.0, 1.0), (0.8, 1.33)])
def test_kto_stage_equals_trl_kto_trainer(instructions_dir, tiny_model, tmp_path, wd, wu):
    """Same rows, same weights: TRL 1.16's KTOTrainer (reference: the adapter switched off) gives
    our loss, KL estimate, rewards and log-probs, on the same token sequences."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import KTOConfig, KTOTrainer

    rows = kto_rows(instructions_dir, "train", 4)
    assert {row["label"] for row in rows} == {True, False}
    folder = write_kto(
        tmp_path / "kto", {"train": rows, "val": kto_rows(instructions_dir, "val", 2)}
    )
    data = kto_data(folder, tiny_model, tmp_path)
    # LoRA's A from a fixed state, not whatever ran before in this process: seeds 0-3 give a
    # negative KL estimate, which KTO clamps to 0 (a comparison of zeros); 4 gives 0.28
    torch.manual_seed(4)
    stage = PreferenceOptimization(
        str(tiny_model), beta=0.3, loss_type="kto", desirable_weight=wd, undesirable_weight=wu
    )
    stage.eval()
    perturb(stage, seed=2)
    batch = data.collate([data.datasets["train"][i] for i in range(4)])
    with torch.no_grad():
        stats = stage(batch)
    config = KTOConfig(
        output_dir=str(tmp_path / "trl"), beta=0.3, desirable_weight=wd, undesirable_weight=wu,
        max_length=None, per_device_train_batch_size=4, report_to=[], use_cpu=True, bf16=False,
    )  # fmt: skip
    trainer = KTOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model), args=config,
        train_dataset=Dataset.from_list(rows), processing_class=data.tokenizer,
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                               task_type="CAUSAL_LM"),
    )  # fmt: skip
    copy_policy(stage, trainer.model)  # the same policy weights in TRL's network
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    # the same sequences (completions, then mismatched ones) and completion positions
    mask = batch["attention_mask"].bool()
    for prefix, rows_ in (("", slice(None, 4)), ("KL_", slice(4, None))):
        theirs = trl_batch[f"{prefix}input_ids"][trl_batch[f"{prefix}attention_mask"].bool()]
        assert torch.equal(theirs, batch["input_ids"][rows_][mask[rows_]])
        completion = trl_batch[f"{prefix}completion_mask"].bool()
        assert completion.sum() == (batch["labels"][rows_] != -100).sum()
    assert torch.equal(trl_batch["label"], batch["label"])
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, trl_batch)
    theirs = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    assert loss.item() == pytest.approx(stats["loss"].mean().item(), abs=1e-6)
    assert theirs["kl"] == pytest.approx(stats["kl"].item(), abs=1e-5)
    for key in ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"):
        assert theirs[key] == pytest.approx(stats[key].mean().item(), rel=1e-5), key
    assert stats["kl"].item() > 0 and abs(stats["rewards/chosen"].mean().item()) > 1e-4


def test_kto_step_zero_and_gradients(instructions_dir, tiny_model, tmp_path):
    """At step 0 (policy = reference) every log-ratio and the KL are 0, so each row's loss is
    its weight x (1 - sigmoid(0)); only the matched rows carry a graph."""
    data = kto_data(instructions_dir, tiny_model, tmp_path)
    stage = PreferenceOptimization(str(tiny_model), loss_type="kto", undesirable_weight=1.5)
    batch = data.collate(list(data.datasets["val"])[:6])
    stats = stage(batch)
    assert set(stats) == set(UNPAIRED_STAT_KEYS)
    expected = torch.where(batch["label"], 0.5, 0.75)
    torch.testing.assert_close(stats["loss"], expected)
    assert stats["kl"].item() == 0.0 and stats["loss"].requires_grad
    stats["loss"].mean().backward()
    assert any(p.grad is not None for p in stage.model.parameters() if p.requires_grad)


def test_kto_data(instructions_dir, tiny_model, tmp_path):
    """The generator writes unpaired rows for every task: each pair split in two, labelled; the
    data module pairs each row with another prompt's completion and generates for the
    desirable rows only."""
    from clinical_peft.tasks.instructions import TASKS

    for task in TASKS:
        for split in ("train", "val", "test"):
            kto = [json.loads(x) for x in (instructions_dir / task / f"kto_{split}.jsonl").open()]
            dpo = [json.loads(x) for x in (instructions_dir / task / f"dpo_{split}.jsonl").open()]
            assert len(kto) == 2 * len(dpo)
            assert sorted((r["prompt"], r["completion"]) for r in kto if r["label"]) == sorted(
                (r["prompt"], r["chosen"]) for r in dpo
            )
    data = kto_data(instructions_dir, tiny_model, tmp_path)
    train = data.datasets["train"]
    assert data.stats["train"]["desirable"] == data.stats["train"]["examples"] / 2
    for i in range(len(train)):  # never a row's own prompt's answer
        row = train[i]
        source = train[(i - 1) % len(train)]
        if row["prompt_ids"] != source["prompt_ids"]:
            assert row["kl_completion_ids"] == source["completion_ids"]
        else:
            assert row["kl_completion_ids"] != row["completion_ids"]
    test = data.generation_examples("test")
    assert len(test) == data.stats["test"]["desirable"] and all(ex["reference"] for ex in test)


def test_kto_file_errors(tiny_model, tmp_path):
    good = {"prompt": "Triage?", "completion": " Urgent", "label": True}
    for bad, problem in [
        ({**good, "label": "true"}, "kto_train.jsonl:2: field 'label' is not true or false"),
        ({"prompt": "p", "label": False}, "kto_train.jsonl:2: missing key 'completion'"),
    ]:
        folder = write_kto(tmp_path / "bad", {"train": [good, bad], "val": [good]})
        with pytest.raises(InputError, match=problem):
            kto_data(folder, tiny_model, tmp_path)


def test_loss_and_data_must_be_the_same_kind(instructions_dir, tiny_model, tmp_path):
    """A paired loss on unpaired rows (or KTO on pairs) is refused before anything runs."""
    from types import SimpleNamespace

    from clinical_peft.stages.kto import check_data_kind

    unpaired = UnpairedPreferenceDataModule(str(instructions_dir), "triage", str(tiny_model))
    paired = data_module(instructions_dir, tiny_model, tmp_path)
    dpo = PreferenceOptimization(str(tiny_model))
    kto = PreferenceOptimization(str(tiny_model), loss_type="kto")
    with pytest.raises(InputError, match=r"model.loss_type: the 'sigmoid' loss reads pairs .*; "
                                         r"UnpairedPreferenceDataModule holds unpaired rows "
                                         r"\(prompt, completion, label\) \(losses for those: kto\)"):  # fmt: skip
        check_data_kind(dpo, unpaired)
    with pytest.raises(InputError, match="the 'kto' loss reads unpaired rows"):
        check_data_kind(kto, paired)
    check_data_kind(kto, unpaired)
    check_data_kind(SimpleNamespace(loss=dpo.loss, loss_type="sigmoid"), paired)
    with pytest.raises(InputError, match="model.simpo_gamma: the 'kto' loss does not use it"):
        PreferenceOptimization(str(tiny_model), loss_type="kto", simpo_gamma=1.0)


def stage_args(stage: str, tiny_model, data_dir, run_dir, *extra: str) -> list[str]:
    return [
        "-c", f"experiments/{stage}/base.yaml", "--data.task", "triage",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(data_dir),
        "--data.cache_dir", str(run_dir.parent / "cache"), "--data.max_length", "256",
        "--data.max_eval_examples", "4", "--model.evaluate_base", "false",
        "--trainer.max_steps", "3", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--run_dir", str(run_dir), *extra,
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "loss_type"), [("dpo", "orpo"), ("dpo", "simpo"), ("dpo", "cpo"), ("kto", "kto")]
)
def test_runs_from_the_command_line(
    instructions_dir, tiny_model, tmp_path, monkeypatch, stage, loss_type
):
    """`python -m clinical_peft dpo --model.loss_type orpo` (simpo, cpo) and `... kto` train the
    tiny model and write a run directory; the reference-free losses run no reference pass (the
    network's forward passes in training steps counted)."""
    from clinical_peft.cli.stage import run_stage

    calls = {"token_logps": 0, "reference_logps": 0}  # in training steps: network forwards
    for name in calls:
        method = getattr(PreferenceOptimization, name)

        def counted(self, *args, _method=method, _name=name, **kwargs):
            calls[_name] += self.training
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(PreferenceOptimization, name, counted)
    run = tmp_path / "run"
    args = stage_args(stage, tiny_model, instructions_dir, run, "--model.loss_type", loss_type)
    metrics = run_stage(stage, args)
    assert all(math.isfinite(metrics[k]) for k in ("val/loss", "val/loss_before"))
    assert metrics["val/loss"] != metrics["val/loss_before"]
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["loss_type"] == loss_type
    # 3 training steps: one forward each without a reference; KTO's reference (completions and
    # mismatched ones at once), policy and detached policy-KL forwards, three each
    per_step = {"token_logps": 1, "reference_logps": 0} if loss_type in REFERENCE_FREE else {
        "token_logps": 3, "reference_logps": 1}  # fmt: skip
    assert calls == {k: 3 * v for k, v in per_step.items()}
    if stage == "kto":
        assert metrics["val/kl_before"] == 0.0 and "val/rewards/chosen" in metrics


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize(("stage", "loss_type"), [("kto", "kto"), ("dpo", "orpo")])
def test_two_process_ddp_run(instructions_dir, tiny_model, tmp_path, stage, loss_type):
    """Two CPU ranks (gloo): KTO's KL estimate is averaged over them every step (an all-reduce
    that would hang or fail if a rank skipped it); ORPO, reference-free, trains as DPO does."""
    run = tmp_path / "ddp"
    args = stage_args(stage, tiny_model, instructions_dir, run, "--model.loss_type", loss_type)
    metrics = run_two_ranks(stage, args, timeout=600)
    assert math.isfinite(metrics["val/loss"]) and metrics["val/loss"] != metrics["val/loss_before"]
    assert json.loads((run / "metrics.json").read_text()) == metrics


def test_study_table_has_a_kto_column(tmp_path):
    from clinical_peft.studies.tables_instruct import main

    for stage, value in (("sft", 0.5), ("dpo", 0.6), ("kto", 0.7)):
        (tmp_path / stage / "triage").mkdir(parents=True)
        (tmp_path / stage / "triage" / "metrics.json").write_text(
            json.dumps({"test/f1_provider": value})
        )
    out = tmp_path / "table"
    main(["--tasks", "triage", "--sft", str(tmp_path / "sft"), "--dpo", str(tmp_path / "dpo"),
          "--kto", str(tmp_path / "kto"), "--out", str(out)])  # fmt: skip
    lines = out.with_suffix(".csv").read_text().splitlines()
    assert lines[:2] == ["task,metric,base,SFT,DPO,KTO", "triage,F1 provider,,0.500,0.600,0.700"]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize(("stage", "loss_type", "zero"), [("kto", "kto", 3), ("dpo", "orpo", 2)])
def test_two_rank_deepspeed_run(instructions_dir, tiny_model, tmp_path, stage, loss_type, zero):
    """Under DeepSpeed as DPO runs (two CPU ranks): KTO under ZeRO-3, whose reference is the
    sharded policy with its adapter disabled, and ORPO, reference-free, under ZeRO-2; each trains
    and exports a whole adapter that plain peft loads."""
    from peft import PeftModel
    from test_scale import deepspeed_on_cpu, run_script
    from transformers import AutoModelForCausalLM

    run = tmp_path / f"zero{zero}"
    args = stage_args(stage, tiny_model, instructions_dir, run, "--model.loss_type", loss_type,
                      *deepspeed_on_cpu(stage=zero, ranks=2))  # fmt: skip
    result = run_script(stage, args)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["val/loss"]) and metrics["val/loss"] != metrics["val/loss_before"]
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), run / "adapter"
    )
    lora_b = [p for n, p in plain.named_parameters() if "lora_B" in n]
    assert lora_b and max(p.abs().max().item() for p in lora_b) > 0  # trained: B left zero
