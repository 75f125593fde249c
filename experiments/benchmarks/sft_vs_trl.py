# python experiments/benchmarks/sft_vs_trl.py [--model cache/smollm2-135m-instruct] [--steps 4 --batch 4]
"""Our SFT stage versus TRL's SFTTrainer with a peft LoRA config: step time and peak memory.

Both fine-tune the same model (default: SmolLM2-135M-Instruct, `make smollm2`) on the same
synthetic triage prompt -> completion pairs, prompts in the model's chat template (where it has
one: the tiny model has none), loss on the
completion tokens only, no packing (`make sft`'s defaults; TRL: conversational prompt-completion
rows, its `completion_only_loss`), with the same batch, max_length and LoRA (r 16 on q_proj /
v_proj, as MODEL=smollm2), AdamW at a constant rate, clipping at 1.0, gradient checkpointing
off on both sides (TRL's default is on) unless `--gradient-checkpointing`. Each side runs in
its own subprocess, so its peak memory is its own (RSS on CPU, max allocated on GPU); ours is
the LightningModule of `make sft` under a Lightning Trainer (no validation, no generation).
Prints seconds per step (warm-up steps excluded), peak memory, and the ratios ours / TRL.
Importable: ``main(argv) -> dict``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dpo_vs_trl import (  # noqa: E402
    TASK,
    TrlTimer,
    as_messages,
    fit_timed,
    two_sides,
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cache/smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=4, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--batch", type=int, default=4, help="examples per step")
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--rank", type=int, default=16, help="LoRA r (alpha = 2 r)")
    parser.add_argument("--targets", nargs="+", default=["q_proj", "v_proj"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="on both sides")
    parser.add_argument("--only", choices=["ours", "trl"], help="run one side only")
    parser.add_argument("--workdir", help="keep the data here (default: a temp folder)")
    parser.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def prepare(workdir: Path) -> Path:
    from clinical_peft.synthetic import write_instruction_tasks

    data_dir = workdir / "instructions"
    if not (data_dir / TASK / "sft_train.jsonl").is_file():
        write_instruction_tasks(data_dir, n_per_task=200, seed=0)
    return data_dir


def lora(args: argparse.Namespace, **extra):
    from peft import LoraConfig

    return LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                      target_modules=args.targets, **extra)  # fmt: skip


def child_ours(args: argparse.Namespace, data_dir: Path, workdir: Path) -> dict:
    from clinical_peft.data.instructions import InstructionDataModule
    from clinical_peft.stages.base import OptimSpec
    from clinical_peft.stages.sft import SupervisedFineTuning

    data = InstructionDataModule(
        str(data_dir), TASK, args.model, max_length=args.max_length, batch_size=args.batch,
        use_chat_template=True, cache_dir=str(workdir / "cache"),
    )  # fmt: skip
    stage = SupervisedFineTuning(
        args.model, adapter=lora(args), gradient_checkpointing=args.gradient_checkpointing,
        optim=OptimSpec(lr=2e-4, warmup_steps=0, schedule="constant"), evaluate_base=False,
    )  # fmt: skip
    return fit_timed(stage, data, args)


def child_trl(args: argparse.Namespace, data_dir: Path, workdir: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    timer = TrlTimer()

    class CountingSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, *rest, **kwargs):
            timer.result["padded_tokens"].append(inputs["input_ids"].numel())
            return super().compute_loss(model, inputs, *rest, **kwargs)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rows = [json.loads(line) for line in (data_dir / TASK / "sft_train.jsonl").open()]
    rows = [{k: row[k] for k in ("prompt", "completion")} for row in rows]
    if tokenizer.chat_template:  # as ours: the template where the tokenizer has one
        rows = [as_messages(row) for row in rows]
    config = SFTConfig(
        output_dir=str(workdir / "trl"), max_length=args.max_length, packing=False,
        completion_only_loss=True, per_device_train_batch_size=args.batch,
        max_steps=args.warmup + args.steps, gradient_checkpointing=args.gradient_checkpointing,
        learning_rate=2e-4, lr_scheduler_type="constant", max_grad_norm=1.0, report_to=[],
        save_strategy="no", logging_strategy="no", use_cpu=args.device == "cpu", bf16=False,
        dataloader_num_workers=0,
    )  # fmt: skip
    trainer = CountingSFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32),
        args=config, train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora(args, task_type="CAUSAL_LM"), callbacks=[timer.callback()],
    )  # fmt: skip
    trainer.train()
    return timer.figures(args.warmup)


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)

    def run_side(workdir: Path) -> dict:
        run = child_ours if args.child == "ours" else child_trl
        return run(args, prepare(workdir), workdir)

    shape = (
        f"{args.model}, LoRA r {args.rank} on {','.join(args.targets)}, chat template, batch "
        f"{args.batch}, max_length {args.max_length}, {args.device}"
        f"{', gradient checkpointing' if args.gradient_checkpointing else ''}"
    )
    return two_sides(args, argv, __file__, prepare, run_side, shape)


if __name__ == "__main__":
    main()
