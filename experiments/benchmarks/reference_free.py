# python experiments/benchmarks/reference_free.py [--losses simpo cpo orpo --hidden 256 --steps 6]
"""The reference-free preference losses (SimPO, CPO, ORPO) against DPO (sigmoid) in the same run:
seconds per training step and peak memory of our stage, each loss in its own subprocess on the
same model, data, batch and LoRA (dpo_vs_trl.py's `ours` side, `--loss-type`). DPO runs a
reference forward pass (adapter off, no graph) before the policy's; the reference-free losses
run none. Prints each loss's figures and its ratios to DPO's (< 1: saved): wall-clock and CPU
time per step (one thread per run; on a loaded machine the CPU-time ratio is the fair one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import dpo_vs_trl  # noqa: E402  (the sibling script: set-up and the measured child process)


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--losses", nargs="+", default=["simpo", "cpo", "orpo"])
    own, shared = parser.parse_known_args(argv)  # the rest: dpo_vs_trl.py's size options
    args = dpo_vs_trl.parse(shared)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        dpo_vs_trl.prepare(args, workdir)  # once, outside the measured processes
        for loss in ["sigmoid", *own.losses]:
            child = [*shared, "--loss-type", loss]
            results[loss] = dpo_vs_trl.run_child(args, "ours", child, workdir)
    memory = "max allocated" if args.device == "cuda" else "peak RSS"
    print(
        f"LLaMA hidden {args.hidden} x {args.layers} layers, vocab {args.vocab}, LoRA r "
        f"{args.rank}, batch {args.batch} pairs, {args.device}; {args.steps} timed steps after "
        f"{args.warmup}; ratios to DPO (sigmoid, with its reference pass) of the same run"
    )
    dpo = results["sigmoid"]
    for loss, r in results.items():
        r["time_ratio"] = r["s_per_step"] / dpo["s_per_step"]
        r["cpu_time_ratio"] = r["cpu_s_per_step"] / dpo["cpu_s_per_step"]
        r["memory_ratio"] = r["peak_mb"] / dpo["peak_mb"]
        print(
            f"{loss:8s} {r['s_per_step']:.3f} s/step ({r['cpu_s_per_step']:.3f} CPU s)  {memory} "
            f"{r['peak_mb']:.0f} MB  time x{r['time_ratio']:.2f} (CPU x{r['cpu_time_ratio']:.2f})"
            f"  memory x{r['memory_ratio']:.2f}"
        )
    return results


if __name__ == "__main__":
    main()
