# python experiments/benchmarks/dapt_real.py [--model cache/smollm2-135m-instruct] [--steps 4]
"""DAPT training speed on a real model: this project's step against a plain transformers + peft
loop at the same shapes, where the time goes, and the share of the machine's matmul peak.

One process, the same packed batches (block 256, batch 2, the notes' own tokenizer), the same
LoRA (r 16 on q_proj / v_proj), AdamW and gradient clipping at 1.0 for every variant, each its
own model, all timed in turn batch by batch (so a drift in the machine's speed, which between
processes is several per cent here, is shared by all rather than charged to one):

- plain, causal: what a user writes (`model(input_ids, attention_mask, labels=...)`), documents
  of a block attending to each other (the causal fast path);
- plain, document-masked: the same loop given the blocks' `position_ids`, so transformers builds
  the block-diagonal mask (what packing needs to be right);
- ours, per attention kernel: the pretraining stage's own forward and loss
  (`DomainAdaptation`: `token_logits` + `causal_lm_loss_sums`), document-masked;
- ours, Lightning stage: the stage fitted by a Lightning Trainer in this process, each of its
  steps (hooks, logging, clipping and the scheduler included) followed by one step of every
  variant above on the same batch;
- ours, CLI (`python -m clinical_peft pretrain`, a fresh process, not interleaved): its
  `train/tokens_per_s` over the steps after the first `warmup`, a cross-check of the above.

Then a profile of the stage's step (top operators by self CPU time), and model FLOPs/s of
LoRA training (forward + input-gradient backward through the frozen base: 4 x its matmul FLOPs
per token, plus attention) against a float32 GEMM measured here. Importable: ``main(argv)``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from peft import LoraConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LIGHTNING = "ours, Lightning stage"
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])


def batches(args) -> list[dict]:
    from clinical_peft.data.notes import NotesDataModule

    data = NotesDataModule(args.notes, args.model, block_size=args.block_size,
                           batch_size=args.batch_size, cache_dir=args.cache)  # fmt: skip
    data.prepare_data()
    data.setup()
    loader = iter(data.train_dataloader())
    return [next(loader) for _ in range(args.warmup + args.steps)]


def stage(model: str, attention: str | None):
    from clinical_peft.stages.pretrain import DomainAdaptation

    torch.manual_seed(0)
    return DomainAdaptation(base_model=model, adapter=LoraConfig(**LORA),
                            attn_implementation=attention).train()  # fmt: skip


def plain_loss(network, batch: dict, masked: bool) -> torch.Tensor:
    """The loop a user writes with transformers + peft: the model's own loss."""
    if masked:
        inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    else:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    return network(**inputs, labels=batch["labels"], use_cache=False).loss


def ours_loss(module, batch: dict) -> torch.Tensor:
    nll, tokens = module(batch)
    return nll / tokens.clamp(min=1)


def train_step(loss_fn, params) -> Callable[[dict], None]:
    """One training step as a user's loop takes it: backward, clipping, AdamW."""
    optimizer = torch.optim.AdamW(params, lr=2e-4)

    def step(batch: dict) -> None:
        loss_fn(batch).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def rate(tokens: int, seconds: float, cpu: float) -> dict:
    return {"tokens_per_s": tokens / seconds, "tokens_per_cpu_s": tokens / cpu, "seconds": seconds}


def timed(loss_fn, params, data: list[dict], warmup: int) -> dict:
    """One variant alone (dapt_memory.py, a process per variant): tokens/s after warmup."""
    step = train_step(loss_fn, params)
    for batch in data[:warmup]:
        step(batch)
    started, cpu = time.perf_counter(), time.process_time()
    for batch in data[warmup:]:
        step(batch)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return rate(sum(int(b["attention_mask"].sum()) for b in data[warmup:]), seconds, cpu)


class Interleaved(L.Callback):
    """Times each Lightning step of the stage, and after it one step of every variant in `steps`
    on the same batch (their order turning each round); sums over the batches after `warmup`."""

    def __init__(self, steps: dict[str, Callable[[dict], None]], warmup: int) -> None:
        self.steps, self.warmup = steps, warmup
        self.seconds = dict.fromkeys([LIGHTNING, *steps], 0.0)
        self.cpu = dict.fromkeys(self.seconds, 0.0)
        self.tokens = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.started = time.perf_counter(), time.process_time()

    def record(self, name: str, started: tuple[float, float], batch_idx: int) -> None:
        if batch_idx >= self.warmup:
            self.seconds[name] += time.perf_counter() - started[0]
            self.cpu[name] += time.process_time() - started[1]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record(LIGHTNING, self.started, batch_idx)
        self.tokens += int(batch["attention_mask"].sum()) if batch_idx >= self.warmup else 0
        names = list(self.steps)
        turn = batch_idx % len(names)
        for name in names[turn:] + names[:turn]:
            started = time.perf_counter(), time.process_time()
            self.steps[name](batch)
            self.record(name, started, batch_idx)

    def rates(self) -> dict[str, dict]:
        return {
            name: rate(self.tokens, self.seconds[name], self.cpu[name]) for name in self.seconds
        }


class Batches:
    """`data` as one loader (a bare list of batches reads to Lightning as a list of loaders)."""

    def __init__(self, data: list[dict]) -> None:
        self.data = data

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def interleaved(steps: dict[str, Callable[[dict], None]], args, data: list[dict]) -> dict:
    """Fit the stage with a Lightning Trainer over `data`, every variant of `steps` interleaved."""
    timer = Interleaved(steps, args.warmup)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=len(data), gradient_clip_val=1.0, callbacks=[timer],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        inference_mode=False,
    )  # fmt: skip
    trainer.fit(stage(args.model, None), train_dataloaders=Batches(data))
    return timer.rates()


def cli_run(args) -> dict:
    """The pretrain command in a fresh process: the tokens/s of its steps after the first
    `warmup`, as the loops above count them (the difference of a run of warmup + steps steps and
    one of warmup steps: its `train/tokens` and `train/step_seconds`)."""

    def run(steps: int) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [
                sys.executable, "-m", "clinical_peft", "pretrain",
                "-c", "experiments/pretrain/lora.yaml", "-c", "experiments/models/smollm2/pretrain.yaml",
                "--model.base_model", args.model, "--data.data_dir", args.notes,
                "--data.cache_dir", args.cache, "--data.block_size", str(args.block_size),
                "--data.batch_size", str(args.batch_size), "--model.optim.warmup_steps", "0",
                "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "1",
                "--trainer.enable_progress_bar", "false", "--run_dir", str(out),
            ]  # fmt: skip
            result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(result.stderr.strip().splitlines()[-1])
            return json.loads((out / "metrics.json").read_text())

    short, long = run(args.warmup), run(args.warmup + args.steps)
    seconds = long["train/step_seconds"] - short["train/step_seconds"]
    return {"tokens_per_s": (long["train/tokens"] - short["train/tokens"]) / seconds,
            "seconds": seconds}  # fmt: skip


def profile(module, params, data: list[dict], rows: int = 12) -> list[dict]:
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for batch in data:
            ours_loss(module, batch).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count}
        for e in events[:rows]
    ]


def gemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """float32 FLOP/s of a large square matmul on this machine (best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def training_flops_per_token(config, block: int) -> float:
    """LoRA training of a frozen base: forward (2 x matmul params) and the input-gradient half of
    backward (2 x again; the frozen weights get no gradient), plus attention scores and values
    (4 x layers x hidden x context, forward, twice that backward), the LM head included."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (hidden // config.num_attention_heads)
    per_layer = hidden * (2 * hidden + 2 * kv) + 3 * hidden * config.intermediate_size
    matmul = layers * per_layer + hidden * config.vocab_size
    attention = 4 * layers * hidden * block / 2  # causal: half the context on average
    return 4 * matmul + 3 * attention


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cache/smollm2-135m-instruct")
    parser.add_argument("--notes", default="data/synthetic/notes")
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--attention", nargs="+", default=["sdpa", "eager", "flex_attention"])
    parser.add_argument("--no-cli", action="store_true", help="skip the pretrain command's run")
    args = parser.parse_args(argv)
    data = batches(args)
    steps: dict[str, Callable[[dict], None]] = {}
    for masked in (False, True):
        module = stage(args.model, None)
        params = [p for p in module.parameters() if p.requires_grad]
        name = f"plain, {'document-masked' if masked else 'causal'}"
        steps[name] = train_step(lambda b, m=module, k=masked: plain_loss(m.model, b, k), params)
    for attention in args.attention:
        module = stage(args.model, attention)
        params = [p for p in module.parameters() if p.requires_grad]
        step = train_step(lambda b, m=module: ours_loss(m, b), params)
        try:
            step(data[0])  # a kernel that cannot train here says so at once
        except NotImplementedError as err:  # FlexAttention has no CPU backward (torch 2.13)
            print(f"{'ours, ' + attention:44s} cannot train here: {str(err).splitlines()[0]}")
            continue
        steps[f"ours, {attention}"] = step
    rows = interleaved(steps, args, data)
    if not args.no_cli:
        rows["ours, CLI (python -m clinical_peft pretrain)"] = cli_run(args)
    for name, row in rows.items():
        print(f"{name:44s} {row['tokens_per_s']:7.1f} tokens/s", flush=True)
    module = stage(args.model, None)
    params = [p for p in module.parameters() if p.requires_grad]
    top = profile(module, params, data[: 1 + min(2, args.steps)])
    print("profile of our step (self CPU time):")
    for row in top:
        print(f"  {row['share']:6.1%}  {row['calls']:6d}  {row['op']}")
    peak = gemm_peak()
    flops = training_flops_per_token(module.model.config, args.block_size)
    reference = rows["plain, causal"]["tokens_per_s"]
    result = {
        "rows": rows,
        "ratios": {k: r["tokens_per_s"] / reference for k, r in rows.items()},
        "profile": top,
        "gemm_gflops": peak / 1e9,
        "mfu": {k: r["tokens_per_s"] * flops / peak for k, r in rows.items()},
    }
    print(f"float32 GEMM peak {peak / 1e9:.1f} GFLOP/s; model FLOPs per token {flops / 1e6:.0f} M")
    for name, ratio in result["ratios"].items():
        print(f"{name:44s} x{ratio:.2f} vs plain causal, MFU {result['mfu'][name]:.1%}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
