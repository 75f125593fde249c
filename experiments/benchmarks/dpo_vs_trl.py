# python experiments/benchmarks/dpo_vs_trl.py [--hidden 256 --layers 4 --steps 6 --batch 8]
"""Our DPO stage versus TRL's DPOTrainer with a peft LoRA config: step time and peak memory.

Both train the same LLaMA-shaped model (built here, tokenizer trained on synthetic notes) on the
same synthetic triage pairs, with the same batch, lengths and LoRA (r 64 on every projection, as
`make dpo`); TRL's reference is its adapter-off pass, ours too. `--model` trains a real model
instead (SmolLM2: `--model cache/smollm2-135m-instruct --rank 16 --targets q_proj v_proj
--chat-template`, as MODEL=smollm2), its prompts in its chat template on both sides. Each run is a separate
subprocess, so its peak memory is its own: RSS (`ru_maxrss`) on CPU, max allocated on GPU.
Ours runs the LightningModule of `make dpo` under a Lightning Trainer (no validation, no
generation); with `--precompute-reference` both precompute the reference log-probs first.
Prints seconds per step (warm-up steps excluded), peak memory, and the ratios ours / TRL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TASK = "triage"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=6, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--batch", type=int, default=8, help="pairs per step")
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--rank", type=int, default=64, help="LoRA r (alpha = 2 r)")
    parser.add_argument("--targets", nargs="+", default=TARGETS, help="LoRA target modules")
    parser.add_argument(
        "--model", help="a model folder (e.g. cache/smollm2-135m-instruct) instead of a built one"
    )
    parser.add_argument(
        "--chat-template", action="store_true",
        help="prompts in the tokenizer's chat template (ours: use_chat_template; TRL: messages)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads per run (0: every core)"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precompute-reference", action="store_true")
    parser.add_argument("--loss-type", default="sigmoid", help="ours only: a loss of DPO_LOSSES")
    parser.add_argument(
        "--gradient-checkpointing", action="store_true",
        help="in both (TRL's DPOConfig turns it on by default; `make dpo` does not)",
    )  # fmt: skip
    parser.add_argument("--only", choices=["ours", "trl"], help="run one side only")
    parser.add_argument("--workdir", help="keep data and model here (default: a temp folder)")
    # internal: run one side in this process and print its figures as JSON
    parser.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.threads = args.threads or os.cpu_count() or 1
    return args


# --- set-up ------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, workdir: Path) -> tuple[Path, Path]:
    """Synthetic notes -> tokenizer + LLaMA of the asked shape; synthetic instruction pairs."""
    from clinical_peft.models.tiny_llama import build_tiny_llama
    from clinical_peft.synthetic import write_instruction_tasks, write_notes

    data_dir, model_dir = workdir / "instructions", workdir / f"llama-{args.hidden}x{args.layers}"
    if not (data_dir / TASK / "dpo_train.jsonl").is_file():
        write_instruction_tasks(data_dir, n_per_task=200, seed=0)
    if args.model:
        return data_dir, Path(args.model).resolve()
    if not (model_dir / "config.json").is_file():
        write_notes(workdir / "notes", n_discharge=40, n_radiology=280, seed=0)
        build_tiny_llama(
            workdir / "notes", model_dir, vocab_size=args.vocab, hidden_size=args.hidden,
            num_layers=args.layers, num_heads=max(1, args.hidden // 64),
            intermediate_size=int(args.hidden * 2.6875),  # 1376 at 512, as LLaMA's ratio
        )  # fmt: skip
    return data_dir, model_dir


def peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    """This process's resident memory now (Linux), to tell set-up memory from training memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fit_timed(stage, data, args: argparse.Namespace) -> dict:
    """`stage` fitted on `data` for warmup + steps steps under a bare Lightning Trainer; each
    step's padded tokens, wall and CPU seconds (on a loaded machine other processes stretch
    wall time unevenly, not CPU time), warm-up steps left out of the times."""
    import lightning as L

    times, cpu, result = [], [], {"padded_tokens": []}

    class StepTimer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            result.setdefault("rss_at_start_mb", current_rss_mb())
            result["padded_tokens"].append(batch["input_ids"].numel())
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            times.append(time.perf_counter() - self.started)
            cpu.append(time.process_time() - self.cpu_started)

    trainer = L.Trainer(
        accelerator=args.device, devices=1, max_steps=args.warmup + args.steps,
        gradient_clip_val=1.0, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[StepTimer()],
    )  # fmt: skip
    trainer.fit(stage, datamodule=data)
    cpu = cpu[args.warmup :]
    return {**result, "step_times": times[args.warmup :], "cpu_s_per_step": sum(cpu) / len(cpu)}


class TrlTimer:
    """Times a transformers Trainer's steps (wall and CPU); its trainer subclass appends each
    batch's padded tokens to `result["padded_tokens"]`."""

    def __init__(self) -> None:
        self.times, self.cpu, self.result = [], [], {"padded_tokens": []}

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class StepTimer(TrainerCallback):
            def on_step_begin(self, args_, state, control, **kwargs) -> None:
                timer.result.setdefault("rss_at_start_mb", current_rss_mb())
                self.started, self.cpu_started = time.perf_counter(), time.process_time()

            def on_step_end(self, args_, state, control, **kwargs) -> None:
                timer.times.append(time.perf_counter() - self.started)
                timer.cpu.append(time.process_time() - self.cpu_started)

        return StepTimer()

    def figures(self, warmup: int) -> dict:
        cpu = self.cpu[warmup:]
        return {**self.result, "step_times": self.times[warmup:],
                "cpu_s_per_step": sum(cpu) / len(cpu)}  # fmt: skip


def child_ours(args: argparse.Namespace, data_dir: Path, model_dir: Path, workdir: Path) -> dict:
    from peft import LoraConfig

    from clinical_peft.data.instructions import PreferenceDataModule
    from clinical_peft.stages.base import OptimSpec
    from clinical_peft.stages.dpo import PreferenceOptimization

    data = PreferenceDataModule(
        str(data_dir), TASK, str(model_dir), max_length=args.max_length, batch_size=args.batch,
        eval_batch_size=args.batch, cache_dir=str(workdir / "cache"),
        use_chat_template=args.chat_template,
    )  # fmt: skip
    stage = PreferenceOptimization(
        str(model_dir), beta=0.1, precompute_reference=args.precompute_reference,
        loss_type=args.loss_type,
        gradient_checkpointing=args.gradient_checkpointing,
        adapter=LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                            target_modules=args.targets),
        optim=OptimSpec(lr=3e-5, warmup_steps=0, schedule="constant"), evaluate_base=False,
    )  # fmt: skip
    return fit_timed(stage, data, args)


def child_trl(args: argparse.Namespace, data_dir: Path, model_dir: Path, workdir: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    timer = TrlTimer()

    class CountingDPOTrainer(DPOTrainer):
        def compute_loss(self, model, inputs, *rest, **kwargs):
            timer.result["padded_tokens"].append(inputs["input_ids"].numel())
            return super().compute_loss(model, inputs, *rest, **kwargs)

    rows = [json.loads(line) for line in (data_dir / TASK / "dpo_train.jsonl").open()]
    rows = [{k: row[k] for k in ("prompt", "chosen", "rejected")} for row in rows]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if args.chat_template and tokenizer.chat_template:  # TRL applies the template to messages
        rows = [as_messages(row) for row in rows]
    config = DPOConfig(
        output_dir=str(workdir / "trl"), beta=0.1, max_length=args.max_length,
        per_device_train_batch_size=args.batch, max_steps=args.warmup + args.steps,
        gradient_checkpointing=args.gradient_checkpointing, learning_rate=3e-5, lr_scheduler_type="constant", max_grad_norm=1.0,
        precompute_ref_log_probs=args.precompute_reference, report_to=[], save_strategy="no",
        logging_strategy="no", use_cpu=args.device == "cpu", bf16=False, dataloader_num_workers=0,
    )  # fmt: skip
    lora = LoraConfig(
        r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0, target_modules=args.targets,
        task_type="CAUSAL_LM",
    )  # fmt: skip
    trainer = CountingDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        args=config, train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer, peft_config=lora, callbacks=[timer.callback()],
    )  # fmt: skip
    trainer.train()
    return timer.figures(args.warmup)


def as_messages(row: dict) -> dict:
    """A prompt / completion(s) row in TRL's conversational form (user turn, assistant turns)."""
    return {
        k: [{"role": "user" if k == "prompt" else "assistant", "content": v.strip()}]
        for k, v in row.items()
    }


def run_child(
    args: argparse.Namespace, side: str, argv: list[str], workdir: Path, script: str = __file__
) -> dict:
    """`script` with `--child side` in a fresh process (its own peak memory): its JSON line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, script, *argv, "--child", side, "--workdir", str(workdir)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{side} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare_sides(results: dict, memory: str) -> dict:
    """Prints each side's step time, peak memory and padded tokens, and (both sides run) adds
    the ratios ours / TRL to `results`: time_ratio, memory_ratio, cpu_time_ratio where timed."""
    for side, r in results.items():
        tokens = sum(r["padded_tokens"]) / len(r["padded_tokens"])
        cpu = f" ({r['cpu_s_per_step']:.3f} CPU s)" if "cpu_s_per_step" in r else ""
        print(
            f"{side:5s} {r['s_per_step']:.3f} s/step{cpu}  {memory} {r['peak_mb']:.0f} MB"
            f" (RSS {r.get('rss_at_start_mb', float('nan')):.0f} MB at the first step)"
            f"  {tokens:.0f} padded tokens/step"
        )
    if len(results) == 2:
        ours, trl = results["ours"], results["trl"]
        results["time_ratio"] = ours["s_per_step"] / trl["s_per_step"]
        results["memory_ratio"] = ours["peak_mb"] / trl["peak_mb"]
        cpu = ""
        if "cpu_s_per_step" in ours and "cpu_s_per_step" in trl:
            results["cpu_time_ratio"] = ours["cpu_s_per_step"] / trl["cpu_s_per_step"]
            cpu = f" (CPU time x{results['cpu_time_ratio']:.2f})"
        print(
            f"ratio ours / TRL: step time x{results['time_ratio']:.2f}{cpu}, "
            f"{memory} x{results['memory_ratio']:.2f}"
        )
    return results


def two_sides(args, argv: list[str], script: str, prepare_once, run_side, shape: str) -> dict:
    """A benchmark against TRL: as a child (`--child ours|trl`), one side, `run_side(workdir)`,
    with its mean step time and peak memory; else `prepare_once(workdir)`, then each side in
    its own fresh process and the ratios ours / TRL (`compare_sides`) under a `shape` line."""
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        result = run_side(Path(args.workdir))
        result["s_per_step"] = sum(result["step_times"]) / len(result["step_times"])
        result["peak_mb"] = peak_memory_mb(args.device)
        print(json.dumps(result))
        return result
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        prepare_once(workdir)  # outside the measured processes
        sides = [args.only] if args.only else ["ours", "trl"]
        results = {side: run_child(args, side, argv, workdir, script) for side in sides}
    print(f"{shape}; {args.steps} timed steps after {args.warmup}")
    compare_sides(results, "max allocated" if args.device == "cuda" else "peak RSS")
    return results


# --- entry point ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)

    def run_side(workdir: Path) -> dict:
        run = child_ours if args.child == "ours" else child_trl
        return run(args, *prepare(args, workdir), workdir)

    shape = args.model or f"LLaMA hidden {args.hidden} x {args.layers} layers, vocab {args.vocab}"
    shape += (
        f", LoRA r {args.rank} on {','.join(args.targets)}"
        f"{', chat template' if args.chat_template else ''}"
        f", batch {args.batch} pairs, max_length {args.max_length}, {args.device}"
        f"{', precomputed reference' if args.precompute_reference else ''}"
        f"{', gradient checkpointing' if args.gradient_checkpointing else ''}"
    )
    return two_sides(args, argv, __file__, lambda w: prepare(args, w), run_side, shape)


if __name__ == "__main__":
    main()
