"""One knob caps a run's work (issue 22, item 6): `--budget N` sets max_steps,
limit_val_batches, limit_test_batches (and generation's max_eval_examples) to at most N batches;
a per-base-model overlay gives a real model sensible settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonargparse import Namespace

from clinical_peft.cli.stage import apply_budget
from clinical_peft.util.errors import InputError


def config(**data) -> Namespace:
    trainer = Namespace(max_steps=-1, limit_val_batches=1.0, limit_test_batches=3)
    return Namespace(trainer=trainer, data=Namespace(class_path="x", init_args=Namespace(**data)))


def test_budget_caps_every_loop():
    cfg = config(max_eval_examples=None, eval_batch_size=4, batch_size=8)
    apply_budget(cfg, 5)
    assert cfg.trainer.max_steps == 5 and cfg.trainer.limit_val_batches == 5
    assert cfg.trainer.limit_test_batches == 3  # already smaller: kept
    assert cfg.data.init_args.max_eval_examples == 20  # 5 batches of 4


def test_no_budget_changes_nothing_and_a_bad_one_is_refused():
    cfg = config()
    apply_budget(cfg, None)
    assert cfg.trainer.max_steps == -1 and cfg.trainer.limit_val_batches == 1.0
    with pytest.raises(InputError, match="budget"):
        apply_budget(cfg, 0)


@pytest.mark.slow
def test_budget_reaches_the_trainer_and_config_yaml(notes_dir, tiny_model, tmp_path):
    from test_pretrain import pretrain

    run = tmp_path / "run"
    metrics = pretrain(notes_dir, tiny_model, run, "--budget", "2", "--data.eval_batch_size", "2")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2 and saved["trainer"]["limit_val_batches"] == 2
    assert metrics["data/val/scored"] == 4 and metrics["data/val/partial"] == 1


@pytest.mark.parametrize("stage", ["pretrain", "downstream", "sft", "dpo"])
def test_smollm2_overlays_are_valid_stage_configs(stage):
    """Each overlay names only keys its stage's base YAML has (a typo would be refused late)."""
    overlay = yaml.safe_load(Path(f"experiments/models/smollm2/{stage}.yaml").read_text())
    base = yaml.safe_load(
        Path(f"experiments/{stage}/{'lora' if stage == 'pretrain' else 'base'}.yaml").read_text()
    )

    def keys(tree: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in tree.items():
            out.add(prefix + key)
            if isinstance(value, dict):
                out |= keys(value, f"{prefix}{key}.")
        return out

    assert keys(overlay) <= keys(base) | {"data.eval_batch_size"}


def test_attention_kernel_reaches_the_model_from_the_command_line(notes_dir, tiny_model, tmp_path):
    """`--model.attn_implementation eager` loads the base with that kernel and is saved in
    config.yaml; an unknown kernel is refused in one line before anything is written."""
    from test_pretrain import pretrain

    from clinical_peft.models.backbone import load_causal_lm

    run = tmp_path / "run"
    pretrain(notes_dir, tiny_model, run, "--budget", "1", "--model.attn_implementation", "eager")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["attn_implementation"] == "eager"
    with pytest.raises(InputError, match="model.attn_implementation: unknown 'fast' .*sdpa"):
        load_causal_lm(tiny_model, attn_implementation="fast")
