# python experiments/benchmarks/dapt_memory.py [--model cache/smollm2-135m-instruct] [--steps 3]
"""Memory of DAPT training on a real model: peak RSS with and without gradient checkpointing,
and 4-bit QLoRA (NF4 base, bitsandbytes) against LoRA on a float32 base.

Every variant is the pretraining stage of `make pretrain` (`DomainAdaptation`, LoRA r 16 on
q_proj / v_proj; its forward and loss), trained for `--warmup` + `--steps` steps of the same
packed batches (AdamW, clipping at 1.0), each in a fresh process so its peak is its own. Two
peaks per variant, both from /proc/self/status: the whole process's (VmHWM: loading included;
a float32 base is read before it is quantized) and training's alone (the kernel's high-water
mark reset, through /proc/self/clear_refs, once the model is built and the batches are
ready). Also: resident memory before the first step (the weights) and tokens/s.
Importable: ``main(argv) -> dict``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: name -> the stage's arguments
VARIANTS = {
    "lora": {},
    "lora-checkpointing": {"gradient_checkpointing": True},
    "qlora-nf4": {"quantization": "nf4"},
    "qlora-nf4-checkpointing": {"quantization": "nf4", "gradient_checkpointing": True},
}


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(args: argparse.Namespace, variant: str) -> dict:
    import torch
    from peft import LoraConfig

    sys.path.insert(0, str(HERE))
    from dapt_real import LORA, batches, ours_loss, timed

    from clinical_peft.stages.pretrain import DomainAdaptation

    torch.manual_seed(0)
    data = batches(args)
    module = DomainAdaptation(base_model=args.model, adapter=LoraConfig(**LORA),
                              **VARIANTS[variant]).train()  # fmt: skip
    params = [p for p in module.parameters() if p.requires_grad]
    weights_mb, load_peak_mb = status_mb("VmRSS"), status_mb("VmHWM")
    reset = reset_peak()
    figures = timed(lambda b: ours_loss(module, b), params, data, args.warmup)
    return {
        **figures,
        "rss_before_training_mb": weights_mb,
        "load_peak_mb": load_peak_mb,
        "peak_mb": status_mb("VmHWM"),
        "training_peak_mb": status_mb("VmHWM") if reset else float("nan"),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cache/smollm2-135m-instruct")
    parser.add_argument("--notes", default="data/synthetic/notes")
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(args, args.child)
        print(json.dumps(result))
        return result
    results = {}
    for variant in args.variants:
        cmd = [sys.executable, __file__, *argv, "--child", variant]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{variant}: {proc.stderr.strip().splitlines()[-1]}")
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[variant]
        print(
            f"{variant:36s} training peak {r['training_peak_mb']:7.0f} MB, process peak "
            f"{r['peak_mb']:7.0f} MB (weights resident {r['rss_before_training_mb']:.0f} MB), "
            f"{r['tokens_per_s']:.0f} tokens/s",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
