"""Adapters for tests: each pretraining method as its YAML defines it (experiments/pretrain/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from lightning.pytorch.cli import instantiate_class
from peft import LoraConfig, PeftConfig

PRETRAIN = Path(__file__).parents[1] / "experiments" / "pretrain"
#: the paper's five methods (study A, Table 2)
PAPER_METHODS = ("lora", "adaption_prompt", "prefix", "prompt", "p_tuning")
#: every method with a YAML: the paper's five, DoRA, (IA)^3, and whatever a researcher adds
METHODS = tuple(sorted(p.stem for p in PRETRAIN.glob("*.yaml")))


def adapter_config(method: str, **overrides) -> PeftConfig:
    """The adapter of experiments/pretrain/<method>.yaml; `overrides` that are fields of its
    config class replace the YAML's values (others are ignored, so one call serves all)."""
    spec = yaml.safe_load((PRETRAIN / f"{method}.yaml").read_text())["model"]["adapter"]
    config = instantiate_class((), spec)
    fields = {f.name for f in dataclasses.fields(config)}
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if k in fields})


def lora(**kwargs) -> LoraConfig:
    """A LoRA on q_proj and v_proj (r 16, alpha 32 unless given)."""
    kwargs = {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"], **kwargs}
    return LoraConfig(**kwargs)
