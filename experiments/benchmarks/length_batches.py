# python experiments/benchmarks/length_batches.py [--model cache/tiny-llama] [--notes 480] [--max-length 512 2048]
"""Downstream training on length-grouped batches versus random batches padded to the longest.

Admission notes are long-tailed (shared/PAPERS.md: median about 720-800 LLaMA tokens, maximum
over 22,000), so here note lengths are drawn from a log-normal with median 760 tokens (sigma
0.8; clipped to 30..22,000), then truncated to each `--max-length` window (the paper: 512). Both
sides train the downstream stage (`OutcomePrediction`: LoRA + head, binary) on the very same
notes for one epoch, with the data module's own `collate` (pad to the longest in the batch):
only the batch composition differs, `length_batches` (ours) against a plain shuffle.
Prints samples/s of both, padding share and the ratio. Importable: ``main(argv) -> dict``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from clinical_peft.data.outcomes import OutcomeDataModule, length_batches  # noqa: E402
from clinical_peft.models.backbone import load_tokenizer  # noqa: E402
from clinical_peft.stages.downstream import OutcomePrediction  # noqa: E402


def make_notes(n: int, max_length: int, vocab: int, special: list[int], seed: int) -> list[dict]:
    """`n` examples shaped like the data module's: one window (truncated note), a label."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(760), 0.8, n), 30, 22_000).astype(int)
    examples = []
    for i, length in enumerate(lengths):
        body = rng.integers(10, vocab, min(int(length), max_length - len(special))).tolist()
        chunk = special[:1] + body + special[1:]
        examples.append({"id": str(i), "chunks": [chunk], "labels": [i % 2], "length": len(chunk)})
    return examples


def random_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """The baseline: shuffled notes cut into batches, whatever their lengths."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def epoch(model: OutcomePrediction, examples: list[dict], batches, collate, warmup: int) -> dict:
    """Train one epoch over `batches` (after `warmup` untimed ones); samples/s and padding."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    for batch_ids in batches[:warmup]:  # one-off costs, no update
        batch = collate([[examples[i] for i in batch_ids]])
        model.loss(model(batch), batch["labels"]).backward()
        optimizer.zero_grad(set_to_none=True)
    samples = real = positions = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for batch_ids in batches:
        batch = collate([[examples[i] for i in batch_ids]])
        loss = model.loss(model(batch), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        samples += len(batch_ids)
        real += int(batch["attention_mask"].sum())
        positions += batch["attention_mask"].numel()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "samples": samples,
        "samples_per_s": samples / wall,
        "samples_per_cpu_s": samples / cpu,
        "padding_share": 1 - real / positions,
        "batches": len(batches),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cache/tiny-llama")
    parser.add_argument("--notes", type=int, default=480, help="notes in the epoch")
    parser.add_argument(
        "--max-length", type=int, nargs="+", default=[512, 2048], help="windows (512: the paper)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    special = [tokenizer.bos_token_id, tokenizer.eos_token_id]
    # The data module's own collate, without reading task files: it needs these three fields.
    module = SimpleNamespace(tokenizer=tokenizer, kind="binary", num_labels=2)

    def collate(items):
        return OutcomeDataModule.collate(module, items)

    figures = {}
    for window in args.max_length:
        examples = make_notes(args.notes, window, len(tokenizer), special, args.seed)
        lengths = [ex["length"] for ex in examples]
        plans = {
            "random": random_batches(len(examples), args.batch_size, args.seed),
            "grouped": length_batches(lengths, args.batch_size, args.seed),
        }
        results = {}
        for name, batches in plans.items():
            torch.manual_seed(args.seed)
            model = OutcomePrediction(
                base_model=args.model, kind="binary", num_labels=2, clinical="none",
                clinical_adapter=None,
            )  # fmt: skip
            results[name] = epoch(model, examples, batches, collate, args.warmup)
        print(
            f"{len(examples)} notes, window {window}, batch {args.batch_size}: median "
            f"{int(np.median(lengths))} tokens after truncation, "
            f"{np.mean([n >= window for n in lengths]):.0%} truncated"
        )
        for name, r in results.items():
            print(
                f"  {name:8s} {r['samples_per_s']:8.1f} samples/s  {r['samples_per_cpu_s']:8.1f} "
                f"samples/cpu-s  padding {100 * r['padding_share']:5.1f} %"
            )
        base, ours = results["random"], results["grouped"]
        results["ratio"] = ours["samples_per_s"] / base["samples_per_s"]
        results["ratio_cpu"] = ours["samples_per_cpu_s"] / base["samples_per_cpu_s"]
        print(
            f"  ratio length-grouped / random: samples/s x{results['ratio']:.2f} wall, "
            f"x{results['ratio_cpu']:.2f} cpu"
        )
        figures[str(window)] = results
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
