# python experiments/benchmarks/checkpoint_size.py [--notes data/synthetic/notes] [--model cache/tiny-llama]
"""Checkpoint size: our adapter-only `last.ckpt` against a checkpoint that keeps every tensor.

Measured: a two-step `pretrain` run (LoRA, experiments/pretrain/lora.yaml) writes `last.ckpt`;
the same checkpoint with the whole model's state dict put back (frozen base included, what
Lightning saves by default) is written next to it, and the two files' bytes are compared.
From shapes, for LLaMA-7B with the paper's LoRA (r 16 on q_proj and v_proj: 8,388,608
parameters): ours holds the adapter in fp32 plus AdamW's two fp32 moments (12 bytes per
trainable parameter); the full checkpoint adds the frozen base in bf16 (2 bytes per parameter).
The same formula is checked against the measured bench model. Importable: ``main(argv) -> dict``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LLAMA_7B = {"hidden": 4096, "inter": 11008, "layers": 32, "vocab": 32000}
TRAINABLE_BYTES = 4 + 8  # fp32 weight + AdamW exp_avg and exp_avg_sq


def llama_params(hidden: int, inter: int, layers: int, vocab: int) -> int:
    """Parameters of a LLaMA (untied embeddings): attention, MLP, two norms per layer."""
    per_layer = 4 * hidden * hidden + 3 * hidden * inter + 2 * hidden
    return layers * per_layer + 2 * vocab * hidden + hidden


def lora_params(hidden: int, layers: int, rank: int = 16, modules: int = 2) -> int:
    """LoRA on `modules` square projections (q_proj, v_proj) per layer: A (r x h) + B (h x r)."""
    return layers * modules * 2 * hidden * rank


def from_shapes(base: int, lora: int, base_bytes: int) -> dict[str, float]:
    ours = TRAINABLE_BYTES * lora
    full = ours + base_bytes * base
    return {"ours_bytes": ours, "full_bytes": full, "ratio": ours / full}


def pretrain_two_steps(notes: str, model: str, run_dir: Path) -> Path:
    cmd = [
        sys.executable, "-m", "clinical_peft", "pretrain",
        "-c", str(ROOT / "experiments/pretrain/lora.yaml"),
        "--trainer", str(ROOT / "experiments/trainer/cpu.yaml"),
        "--model.base_model", model, "--data.data_dir", notes,
        "--data.cache_dir", str(run_dir / "cache"), "--run_dir", str(run_dir / "run"),
        "--data.max_notes", "64", "--trainer.max_steps", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"pretrain failed:\n{result.stderr[-3000:]}")
    return run_dir / "run" / "checkpoints" / "last.ckpt"


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="data/synthetic/notes")
    parser.add_argument("--model", default="cache/tiny-llama")
    args = parser.parse_args(argv)
    from peft import LoraConfig

    from clinical_peft.stages.pretrain import DomainAdaptation

    with tempfile.TemporaryDirectory() as tmp:
        last = pretrain_two_steps(args.notes, args.model, Path(tmp))
        checkpoint = torch.load(last, map_location="cpu", weights_only=False)
        lora = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]
        )
        module = DomainAdaptation(base_model=args.model, adapter=lora)  # as lora.yaml
        module.load_state_dict(checkpoint["state_dict"], strict=False)
        full_path = Path(tmp) / "full.ckpt"
        torch.save({**checkpoint, "state_dict": module.state_dict()}, full_path)
        ours_bytes, full_bytes = last.stat().st_size, full_path.stat().st_size
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        total = sum(p.numel() for p in module.parameters())
    bench = {
        "ours_bytes": ours_bytes,
        "full_bytes": full_bytes,
        "ratio": ours_bytes / full_bytes,
        "trainable": trainable,
        "total": total,
        # the formula on this model (fp32 base: 4 bytes), to check it against the files
        "predicted": from_shapes(total - trainable, trainable, 4),
    }
    base7b = llama_params(**LLAMA_7B)
    lora7b = lora_params(LLAMA_7B["hidden"], LLAMA_7B["layers"])
    llama = {**from_shapes(base7b, lora7b, 2), "base": base7b, "lora": lora7b}
    print(
        f"bench model ({total:,} parameters, {trainable:,} trainable): last.ckpt {ours_bytes:,} B"
        f", full {full_bytes:,} B, ratio {100 * bench['ratio']:.2f} % (from shapes: "
        f"{100 * bench['predicted']['ratio']:.2f} %)"
    )
    print(
        f"LLaMA-7B from shapes ({base7b:,} parameters, LoRA {lora7b:,}): adapter checkpoint "
        f"{llama['ours_bytes'] / 2**20:.0f} MiB, full (bf16 base) {llama['full_bytes'] / 2**30:.2f}"
        f" GiB, ratio {100 * llama['ratio']:.2f} %"
    )
    return {"bench": bench, "llama7b": llama}


if __name__ == "__main__":
    main(sys.argv[1:])
