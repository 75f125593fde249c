# python experiments/benchmarks/llama7b_lora.py [--deepspeed] [--seq-len 2048 --batch-size 4]
"""LoRA fine-tuning throughput of a LLaMA-7B-shaped model in bf16 on one GPU: tokens/s and MFU.

Random weights (no download): the shapes, not the values, set the speed. Runs the plain
PyTorch baseline and, with --deepspeed, the same steps under DeepSpeed ZeRO-2, and prints the
ratio against the baseline measured in the same run. `--tiny` runs a small shape on CPU as a
smoke test of the script itself.

Model FLOPs per token, for a frozen base with LoRA: 2N forward + 2N backward through the
activations (frozen weights get no weight gradient) + attention, where N = matmul parameters;
the usual 6N would overstate the work, since no weight gradient is computed for the base.
MFU = achieved model FLOP/s / peak bf16 FLOP/s (pass --peak-tflops for your card; H100 SXM
dense bf16 is about 989).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from clinical_peft.models.backbone import checkpoint_activations  # noqa: E402

LLAMA_7B = dict(
    hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096,
)  # fmt: skip
TINY = dict(
    hidden_size=128, intermediate_size=344, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, vocab_size=1024, max_position_embeddings=512,
)  # fmt: skip


def build(shape: dict, device: str) -> torch.nn.Module:
    config = LlamaConfig(**shape, attn_implementation="sdpa")
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.requires_grad_(False)
    checkpoint_activations(model)
    lora = LoraConfig(
        r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    return get_peft_model(model, lora)


def flops_per_token(shape: dict, seq_len: int) -> float:
    h, layers, inter = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"]
    matmul_params = layers * (4 * h * h + 3 * h * inter) + h * shape["vocab_size"]
    # QK^T and AV: 4*S*h per token and layer, halved by the causal mask; backward twice that
    attention_forward = 2 * layers * seq_len * h
    # matmuls: forward 2N, backward 2N (input gradients only). Model FLOPs, so the forward that
    # gradient checkpointing recomputes is not counted (it is cost, not useful work).
    return 4 * matmul_params + 3 * attention_forward


def run(model, optimizer_step, shape, args, device) -> tuple[float, float]:
    """Tokens per second over `args.steps` timed steps, and peak GPU memory in GiB (0 on CPU)."""
    tokens = torch.randint(0, shape["vocab_size"], (args.batch_size, args.seq_len), device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        loss = model(input_ids=tokens, labels=tokens).loss
        optimizer_step(loss)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return args.steps * args.batch_size * args.seq_len / seconds, peak


def plain(model, lr: float):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)

    def step(loss):
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return model, step


def zero2(model, lr: float, batch_size: int, device: str):
    import deepspeed

    config = {
        "train_micro_batch_size_per_gpu": batch_size,
        "bf16": {"enabled": True},
        "zero_optimization": {"stage": 2},
    }
    params = [p for p in model.parameters() if p.requires_grad]
    if device == "cuda":  # DeepSpeed's fused AdamW, as a ZeRO-2 job on GPUs runs it
        config["optimizer"] = {"type": "AdamW", "params": {"lr": lr}}
        optimizer = None
    else:  # the CPU smoke test: torch's AdamW (DeepSpeed's would compile a C++ op first)
        optimizer = torch.optim.AdamW(params, lr=lr)
        # one rank: nothing to all-reduce, so skip compiling DeepSpeed's shared-memory one
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=params, config=config, optimizer=optimizer
    )

    def step(loss):
        engine.backward(loss)
        engine.step()

    return engine, step


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--deepspeed", action="store_true", help="also run under ZeRO-2")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak")
    parser.add_argument("--tiny", action="store_true", help="small shape on CPU (smoke test)")
    args = parser.parse_args(argv)
    shape, device = (TINY, "cpu") if args.tiny else (LLAMA_7B, "cuda")
    if args.tiny:
        args.seq_len, args.batch_size = min(args.seq_len, 128), min(args.batch_size, 2)
    per_token = flops_per_token(shape, args.seq_len)

    results = {}
    model = build(shape, device)
    results["plain bf16 + LoRA"] = run(*plain(model, 3e-4), shape, args, device)
    if args.deepspeed:
        if "RANK" not in os.environ:  # single process: give DeepSpeed a one-rank world
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29511")
        engine, step = zero2(model, 3e-4, args.batch_size, device)
        results["DeepSpeed ZeRO-2 bf16 + LoRA"] = run(engine, step, shape, args, device)
    device_name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    shape_name = "tiny" if args.tiny else "LLaMA-7B"
    print(f"{device_name}, {shape_name}, seq {args.seq_len}, batch {args.batch_size}")
    baseline = results["plain bf16 + LoRA"][0]
    figures = {"device": device_name, "seq_len": args.seq_len, "batch_size": args.batch_size}
    for name, (tokens_per_s, peak) in results.items():
        mfu = tokens_per_s * per_token / (args.peak_tflops * 1e12)
        print(
            f"{name:30s} {tokens_per_s:10.0f} tokens/s  MFU {100 * mfu:5.1f} %  "
            f"peak {peak:5.1f} GiB  x{tokens_per_s / baseline:.2f} vs plain"
        )
        figures[name] = {"tokens_per_s": tokens_per_s, "mfu": mfu, "peak_gib": peak}
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
