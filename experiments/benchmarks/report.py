# python experiments/benchmarks/report.py [--size full|toy] [--out runs/bench]   (make bench)
"""Every performance claim, measured in one run on this machine: runs/bench/report.{md,csv}.

One row per claim: the figure, a ratio against a baseline measured in the same run, the goal,
whether it is met, and the command that measures it alone. Each benchmark runs in its own
process (its `main(argv) -> dict`), so no benchmark's memory or threads colour another's, and
one that fails gives a row saying so instead of stopping the report. `--size toy` runs every
benchmark at a tiny size in this one process (a smoke test of the report: its figures mean
nothing).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COLUMNS = ["claim", "figure", "ratio", "goal", "met", "command"]
NAN = float("nan")


def call(script: str, args: list[str], s: dict) -> dict:
    """`main(args)` of experiments/benchmarks/<script> in a fresh process (else, `s["fresh"]`
    false, in this one: the toy size's figures mean nothing, and a Python start per benchmark is
    saved); its returned dict."""
    if not s["fresh"]:
        os.environ.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        os.environ.setdefault("DS_ACCELERATOR", "cpu" if not has_gpu() else "cuda")
        spec = importlib.util.spec_from_file_location(f"bench_{Path(script).stem}", HERE / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return json.loads(json.dumps(module.main(args), default=float))
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        code = (
            "import importlib.util, json, sys\n"
            f"spec = importlib.util.spec_from_file_location('bench', {str(HERE / script)!r})\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            f"result = module.main({args!r})\n"
            f"open({out.name!r}, 'w').write(json.dumps(result, default=float))\n"
        )
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.setdefault("DS_ACCELERATOR", "cpu" if not has_gpu() else "cuda")
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=s["timeout"],
        )  # fmt: skip
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
        return json.loads(Path(out.name).read_text())


def command(script: str, args: list[str]) -> str:
    return " ".join(["python", f"experiments/benchmarks/{script}", *args])


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def clocked(r: dict, s: dict) -> tuple[float, str]:
    """The wall-clock ratio, or on a loaded machine (more runnable threads than cores) the
    CPU-time one: other processes' load stretches wall time unevenly, not CPU time."""
    if s["loaded"]:
        return r["ratio_cpu"], f"CPU-time ratio (wall x{r['ratio']:.2f}: machine loaded)"
    return r["ratio"], f"wall-clock ratio (CPU time x{r['ratio_cpu']:.2f})"


def row(claim: str, figure: str, ratio: float, goal: str, command: str) -> dict:
    """`goal` is '>= x' or '<= x' (a ratio); `met` follows from it."""
    op, value = goal.split()[:2]
    bound = float(value.rstrip("x%"))
    met = ratio >= bound if op == ">=" else ratio <= bound
    return dict(zip(COLUMNS, [claim, figure, ratio, goal, "yes" if met else "no", command]))


def not_measured(claim: str, why: str, goal: str, command: str) -> dict:
    return dict(zip(COLUMNS, [claim, why, NAN, goal, "not measured", command]))


# --- one function per benchmark: (size settings) -> rows ---------------------------------------
def packing_row(claim: str, args: list[str], s: dict) -> dict:
    """packing.py's figures as a row: packed, document-masked against pad-per-note."""
    r = call("packing.py", args, s)
    pad, pack = r["pad_per_note"], r["pack"]
    ratio, clock = clocked(r, s)
    batch = args[args.index("--batch-size") + 1]
    figure = (
        f"{pack['real_tokens_per_s']:.0f} vs {pad['real_tokens_per_s']:.0f} non-pad tokens/s "
        f"(fill {100 * pack['fill']:.0f} % vs {100 * pad['fill']:.0f} %; batch {batch}); " + clock
    )
    return row(claim, figure, ratio, ">= 2.0x", command("packing.py", args))


def dapt(s: dict) -> list[dict]:
    rows = []
    # 256: the default pretraining block; 512: the paper's later max_seq_len (its recipe pads
    # every note to it, so its padding share, and packing's gain, grow with the block)
    for block in (256, 512):
        args = ["--notes", s["notes"], "--model", s["model"], "--block-size", str(block),
                "--batch-size", "8", *s["packing"]]  # fmt: skip
        claim = f"DAPT: packed, document-masked vs the paper's pad-per-note, block {block}"
        rows.append(packing_row(claim, args, s))
    return rows


def downstream(s: dict) -> list[dict]:
    args = ["--model", s["model"], "--max-length", "512", "2048", *s["downstream"]]
    figures, rows = call("length_batches.py", args, s), []
    for window, r in figures.items():
        ratio, clock = clocked(r, s)
        figure = (
            f"{r['grouped']['samples_per_s']:.1f} vs {r['random']['samples_per_s']:.1f} samples/s"
            f" (padding {100 * r['grouped']['padding_share']:.0f} % vs "
            f"{100 * r['random']['padding_share']:.0f} %); {clock}"
        )
        claim = f"Downstream: length-grouped vs random batches, MIMIC-like lengths, window {window}"
        rows.append(row(claim, figure, ratio, ">= 1.5x", command("length_batches.py", args)))
    return rows


#: the TRL trainer each side-by-side benchmark measures ours against
TRL_TRAINERS = {"sft_vs_trl.py": "SFTTrainer", "dpo_vs_trl.py": "DPOTrainer"}


def versus_trl(what: str, script: str, args: list[str], s: dict) -> list[dict]:
    """Step time and peak memory of ours against TRL's trainer (`script`: dpo_vs_trl.py or
    sft_vs_trl.py), two rows."""
    r = call(script, args, s)
    ours, trl = r["ours"], r["trl"]
    time_fig = f"{ours['s_per_step']:.3f} vs {trl['s_per_step']:.3f} s/step"
    if "cpu_time_ratio" in r:
        time_fig += f" (CPU time x{r['cpu_time_ratio']:.2f})"
    memory_fig = f"{ours['peak_mb']:.0f} vs {trl['peak_mb']:.0f} MB peak"
    cmd, trainer = command(script, args), TRL_TRAINERS[script]
    return [
        row(f"{what}: step time, ours / TRL {trainer}", time_fig, r["time_ratio"], "<= 1.0x", cmd),
        row(f"{what}: peak memory, ours / TRL {trainer}", memory_fig, r["memory_ratio"],
            "<= 1.0x", cmd),
    ]  # fmt: skip


def dpo(s: dict) -> list[dict]:
    return versus_trl("DPO (make dpo)", "dpo_vs_trl.py", list(s["dpo"]), s)


def reference_free(s: dict) -> list[dict]:
    """SimPO, CPO and ORPO run no reference pass: step time and memory against DPO's, same run."""
    args = list(s["dpo"])
    r = call("reference_free.py", args, s)
    cmd, dpo, rows = command("reference_free.py", args), r.pop("sigmoid"), []
    for loss, x in r.items():
        ratio, clock = clocked({"ratio": x["time_ratio"], "ratio_cpu": x["cpu_time_ratio"]}, s)
        time_fig = f"{x['s_per_step']:.3f} vs {dpo['s_per_step']:.3f} s/step; {clock}"
        memory_fig = f"{x['peak_mb']:.0f} vs {dpo['peak_mb']:.0f} MB peak"
        rows += [
            row(f"Reference-free {loss}: step time / DPO's (same run)", time_fig, ratio,
                "<= 0.9x", cmd),
            row(f"Reference-free {loss}: peak memory / DPO's (same run)", memory_fig,
                x["memory_ratio"], "<= 1.0x", cmd),
        ]  # fmt: skip
    return rows


def checkpoint(s: dict) -> list[dict]:
    args = ["--notes", s["notes"], "--model", s["model"]]
    r = call("checkpoint_size.py", args, s)
    bench, llama = r["bench"], r["llama7b"]
    cmd = command("checkpoint_size.py", args)
    return [
        row(
            "Checkpoint: adapter-only last.ckpt / full-model checkpoint, bench model (measured)",
            f"{bench['ours_bytes']:,} vs {bench['full_bytes']:,} bytes "
            f"({bench['trainable']:,} of {bench['total']:,} parameters trainable; "
            f"from shapes {100 * bench['predicted']['ratio']:.2f} %)",
            100 * bench["ratio"], "<= 1 %", cmd,
        ),
        row(
            "Checkpoint: adapter-only / full-model checkpoint, LLaMA-7B (from shapes)",
            f"{llama['ours_bytes'] / 2**20:.0f} MiB vs {llama['full_bytes'] / 2**30:.2f} GiB "
            "(LoRA r 16 q,v + AdamW in fp32; base in bf16)",
            100 * llama["ratio"], "<= 1 %", cmd,
        ),
    ]  # fmt: skip


def pipeline(s: dict) -> list[dict]:
    args = ["--sizes", *map(str, s["pipeline"]), "--model", s["model"],
            "--workdir", str(s["workdir"] / "pipeline")]  # fmt: skip
    r = call("pipeline.py", args, s)
    rows, cmd = r["rows"], command("pipeline.py", args)
    sizes = " / ".join(f"{x['notes'] // 1000}k" if x["notes"] >= 1000 else str(x["notes"])
                       for x in rows)  # fmt: skip

    def series(key: str, fmt: str) -> str:
        return " / ".join(format(x[key], fmt) for x in rows)

    ratio, clock = clocked(
        {"ratio": r["throughput_ratio"], "ratio_cpu": r["throughput_ratio_cpu"]}, s
    )
    growth = (
        f"growth per note: anon {r['anon_kb_per_note']:.2f} kB, file-backed "
        f"{r['file_kb_per_note']:.2f} kB"
    )
    return [
        row(
            "Data pipeline: notes/s, largest / smallest corpus (read+clean+tokenize+pack)",
            f"{series('notes_per_s', '.0f')} notes/s at {sizes} notes; MIMIC-IV-Note "
            f"(2.65 M notes) in about {r['mimic_hours']:.1f} h on one core; {clock}",
            ratio, ">= 0.8x", cmd,
        ),
        row(
            "Data pipeline: peak anonymous memory (RssAnon), largest / smallest corpus",
            f"{series('peak_anon_mb', '.0f')} MB at {sizes} notes; {growth}; "
            f"projected {r['mimic_anon_gb']:.1f} GB at 2.65 M notes",
            r["peak_anon_ratio"], "<= 1.2x", cmd,
        ),
        row(
            "Data pipeline: peak RSS incl. file-backed Arrow pages, largest / smallest corpus",
            f"{series('peak_rss_mb', '.0f')} MB (file-backed {series('peak_file_mb', '.0f')} MB:"
            " clean page cache of the memory-mapped cache files, dropped under memory pressure)",
            r["peak_rss_ratio"], "<= 1.2x", cmd,
        ),
    ]  # fmt: skip


def metrics(s: dict) -> list[dict]:
    args = list(s["auroc"])
    r = call("auroc.py", args, s)
    ratio, clock = clocked({"ratio": r["speedup"], "ratio_cpu": r["speedup_cpu"]}, s)
    figure = (
        f"{r['ours_s']:.3f} vs {r['sklearn_s']:.3f} s for macro+micro AUROC and AP on "
        f"{r['rows']} x {r['labels']} (max abs diff {r['max_abs_diff']:.1e}); bootstrap x1000 "
        f"{r['bootstrap_1000_s']:.1f} s; {clock}"
    )
    claim = "Metrics: outcome AUROC/AP, ours vs sklearn's per-label loop (no goal given: >= 1x)"
    return [row(claim, figure, ratio, ">= 1.0x", command("auroc.py", args))]


def real_model_path(s: dict) -> str | None:
    """SmolLM2 (`make smollm2`), or at toy size the bench model; None when it is not built."""
    model = s["model"] if s["real_on_bench_model"] else s["smollm2"]
    found = (ROOT / model / "config.json").is_file() or (Path(model) / "config.json").is_file()
    return model if found else None


def not_built(claims: Sequence[str], goals: Sequence[str], cmd: str, s: dict) -> list[dict]:
    why = f"not measured: no {s['smollm2']} (make smollm2)"
    return [not_measured(c, why, g, cmd) for c, g in zip(claims, goals)]


def real_model(s: dict) -> list[dict]:
    """DAPT on SmolLM2 (`make smollm2`): our step and our Lightning stage against a plain
    transformers + peft loop, and the model-FLOPs share of this machine's GEMM peak."""
    model = real_model_path(s)
    args = ["--model", model or s["smollm2"], "--notes", s["notes"], *s["real"]]
    cmd = command("dapt_real.py", args)
    claims = ("Real model: DAPT on SmolLM2-135M, our stage (Lightning) / plain transformers + peft loop",
              "Real model: DAPT on SmolLM2-135M, model FLOPs/s / float32 GEMM peak (MFU; goal set after measuring)")  # fmt: skip
    if model is None:
        return not_built(claims, (">= 1.0x", ">= 0 %"), cmd, s)
    r = call("dapt_real.py", args, s)
    rates = {k: v["tokens_per_s"] for k, v in r["rows"].items()}
    ours = rates["ours, Lightning stage"]
    top = ", ".join(f"{x['op']} {100 * x['share']:.0f} %" for x in r["profile"][:4])
    # where a shortfall lies: in our step (model, mask, loss) or in the loop around it
    split = f"our step x{rates['ours, sdpa'] / rates['plain, causal']:.2f} of the plain loop"
    split += f", the Lightning stage x{ours / rates['ours, sdpa']:.2f} of our step"
    figure = ("; ".join(f"{k} {v:.0f}" for k, v in rates.items()) + " non-pad tokens/s"
              f" (batch 2 x 256, LoRA r 16 q,v); {split}; profile of our step: {top}")  # fmt: skip
    mfu = r["mfu"]["ours, Lightning stage"]
    return [
        row(claims[0], figure, ours / rates["plain, causal"], ">= 1.0x", cmd),
        row(claims[1], f"{100 * mfu:.1f} % of {r['gemm_gflops']:.0f} GFLOP/s", 100 * mfu,
            ">= 0 %", cmd),
    ]  # fmt: skip


def real_packing(s: dict) -> list[dict]:
    """Packed, document-masked blocks against the paper's pad-per-note recipe on SmolLM2."""
    model = real_model_path(s)
    args = ["--notes", s["notes"], "--model", model or s["smollm2"], *s["real_packing"]]
    block = args[args.index("--block-size") + 1]
    claim = (
        f"Real model: DAPT on SmolLM2-135M, packed, document-masked vs pad-per-note, block {block}"
    )
    if model is None:
        return not_built([claim], [">= 2.0x"], command("packing.py", args), s)
    return [packing_row(claim, args, s)]


def real_trl(s: dict) -> list[dict]:
    """SFT and DPO on SmolLM2 against TRL's trainers, prompts in its chat template."""
    model, rows = real_model_path(s), []
    for what, script in (("SFT", "sft_vs_trl.py"), ("DPO", "dpo_vs_trl.py")):
        args = ["--model", model or s["smollm2"], *s[f"real_{what.lower()}"]]
        what = f"Real model: {what} on SmolLM2-135M, chat template"
        if model is None:
            claims = [f"{what}: {k}, ours / TRL {TRL_TRAINERS[script]}"
                      for k in ("step time", "peak memory")]  # fmt: skip
            rows += not_built(claims, ("<= 1.0x", "<= 1.0x"), command(script, args), s)
        else:
            rows += versus_trl(what, script, args, s)
    return rows


def real_memory(s: dict) -> list[dict]:
    """Peak RSS of DAPT on SmolLM2: gradient checkpointing against none, QLoRA against LoRA."""
    model = real_model_path(s)
    args = ["--model", model or s["smollm2"], "--notes", s["notes"], *s["real_memory"]]
    cmd = command("dapt_memory.py", args)
    claims = ("Real model: DAPT memory on SmolLM2-135M, gradient checkpointing / none (training peak RSS)",
              "Real model: DAPT memory on SmolLM2-135M, QLoRA nf4 / LoRA float32 (process peak RSS)")  # fmt: skip
    if model is None:
        return not_built(claims, ("<= 0.9x", "<= 0.8x"), cmd, s)
    r = call("dapt_memory.py", args, s)
    lora, gc, nf4 = r["lora"], r["lora-checkpointing"], r["qlora-nf4"]

    def peaks(x: dict) -> str:
        return (f"{x['training_peak_mb']:.0f} MB training / {x['peak_mb']:.0f} MB process peak,"
                f" {x['rss_before_training_mb']:.0f} MB before the first step,"
                f" {x['tokens_per_s']:.0f} tokens/s")  # fmt: skip

    return [
        row(claims[0], f"with: {peaks(gc)}; without: {peaks(lora)}",
            gc["training_peak_mb"] / lora["training_peak_mb"], "<= 0.9x", cmd),
        row(claims[1], f"nf4: {peaks(nf4)}; float32: {peaks(lora)}",
            nf4["peak_mb"] / lora["peak_mb"], "<= 0.8x", cmd),
    ]  # fmt: skip


def real_downstream(s: dict) -> list[dict]:
    """Length-grouped against random batches on SmolLM2, window 512 (the paper's)."""
    model = real_model_path(s)
    args = ["--model", model or s["smollm2"], "--max-length", "512", *s["real_downstream"]]
    cmd = command("length_batches.py", args)
    claim = "Real model: downstream on SmolLM2-135M, length-grouped vs random batches, window 512"
    if model is None:
        return not_built([claim], [">= 1.2x"], cmd, s)
    r = call("length_batches.py", args, s)["512"]
    ratio, clock = clocked(r, s)
    figure = (
        f"{r['grouped']['samples_per_s']:.2f} vs {r['random']['samples_per_s']:.2f} samples/s"
        f" (padding {100 * r['grouped']['padding_share']:.0f} % vs "
        f"{100 * r['random']['padding_share']:.0f} %); {clock}"
    )
    return [row(claim, figure, ratio, ">= 1.2x", cmd)]


def gpu(s: dict) -> list[dict]:
    args = ["--deepspeed"]
    claim = "GPU: LLaMA-7B-shaped LoRA, bf16, one GPU: DeepSpeed ZeRO-2 / plain tokens/s"
    if not has_gpu():
        why = "not measured: no GPU on this machine (run make bench on a GPU node)"
        return [not_measured(claim, why, ">= 1.0x", command("llama7b_lora.py", args))]
    r = call("llama7b_lora.py", args, s)
    plain, zero2 = r["plain bf16 + LoRA"], r["DeepSpeed ZeRO-2 bf16 + LoRA"]
    figure = (
        f"{zero2['tokens_per_s']:.0f} vs {plain['tokens_per_s']:.0f} tokens/s on {r['device']} "
        f"(MFU {100 * zero2['mfu']:.1f} % vs {100 * plain['mfu']:.1f} %, peak "
        f"{zero2['peak_gib']:.1f} vs {plain['peak_gib']:.1f} GiB)"
    )
    ratio = zero2["tokens_per_s"] / plain["tokens_per_s"]
    return [row(claim, figure, ratio, ">= 1.0x", command("llama7b_lora.py", args))]


#: name (for --only), its script, its rows
BENCHMARKS: list[tuple[str, str, Callable[[dict], list[dict]]]] = [
    ("DAPT", "packing.py", dapt), ("Downstream", "length_batches.py", downstream),
    ("DPO", "dpo_vs_trl.py", dpo), ("Reference-free", "reference_free.py", reference_free),
    ("Checkpoint", "checkpoint_size.py", checkpoint),
    ("Data pipeline", "pipeline.py", pipeline), ("Metrics", "auroc.py", metrics),
    ("Real model", "dapt_real.py", real_model),
    ("Real model packing", "packing.py", real_packing),
    ("Real model TRL", "sft_vs_trl.py", real_trl),
    ("Real model memory", "dapt_memory.py", real_memory),
    ("Real model downstream", "length_batches.py", real_downstream),
    ("GPU", "llama7b_lora.py", gpu),
]  # fmt: skip

SIZES = {
    "full": {
        "packing": ["--max-notes", "0", "--steps", "20", "--warmup", "2"],
        "downstream": ["--notes", "480"],
        # ~95 M parameters, LLaMA-shaped: large enough that weights dominate memory (issue 10)
        "dpo": "--hidden 768 --layers 10 --vocab 16000 --batch 2 --steps 4 --warmup 1".split(),
        "pipeline": [10_000, 100_000, 300_000],
        "auroc": [],
        "real": ["--steps", "8", "--warmup", "2"],
        "real_packing": "--block-size 512 --batch-size 2 --max-notes 200 --steps 3 --warmup 1".split(),
        "real_sft": "--steps 4 --warmup 1 --batch 4".split(),
        "real_dpo": "--rank 16 --targets q_proj v_proj --chat-template --threads 0 --batch 2 "
        "--steps 3 --warmup 1".split(),
        "real_memory": ["--steps", "3", "--warmup", "1"],
        "real_downstream": ["--notes", "48", "--batch-size", "8"],
        "real_on_bench_model": False,
        "timeout": 3600,
        "fresh": True,
    },
    "toy": {
        "packing": ["--max-notes", "60", "--steps", "2", "--warmup", "1"],
        "downstream": ["--notes", "32", "--batch-size", "8"],
        "dpo": "--hidden 64 --layers 1 --vocab 512 --rank 4 --batch 2 --max-length 256 "
        "--steps 2 --warmup 1".split(),
        "pipeline": [300, 600],
        "auroc": ["--rows", "300", "--labels", "20", "--n-boot", "20"],
        "real": ["--steps", "1", "--warmup", "1", "--attention", "sdpa", "--no-cli"],
        "real_packing": "--block-size 256 --batch-size 2 --max-notes 60 --steps 1 --warmup 1".split(),
        "real_sft": "--steps 1 --warmup 1 --batch 2 --rank 4".split(),
        "real_dpo": "--rank 4 --targets q_proj v_proj --chat-template --batch 2 --max-length 256 "
        "--steps 1 --warmup 1".split(),
        "real_memory": "--steps 1 --warmup 1 --variants lora lora-checkpointing qlora-nf4".split(),
        "real_downstream": ["--notes", "16", "--batch-size", "4"],
        "real_on_bench_model": True,
        "timeout": 600,
        "fresh": False,
    },
}


def machine() -> str:
    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    gpu_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu_name}; torch {torch.__version__}"


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    return result.stdout.strip() or "unknown"


def cell(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.2f}"
    return str(value).replace("|", "/")


def write(rows: list[dict], out: Path, header: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "benchmark"])
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# Benchmark report", "", *header, "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]  # fmt: skip
    for r in rows:
        values = [cell(r[c]) for c in COLUMNS]
        values[-1] = f"`{values[-1]}`"
        lines.append("| " + " | ".join(values) + " |")
    missed = [r["claim"] for r in rows if r["met"] == "no"]
    lines += ["", "Ratios are ours / baseline (for checkpoints: % of the full checkpoint)."]
    lines += [f"Missed goals: {len(missed)}" + "".join(f"\n- {c}" for c in missed)]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--notes", default="data/synthetic/notes", help="pretraining notes")
    parser.add_argument("--model", default="cache/tiny-llama", help="the bench model")
    parser.add_argument(
        "--smollm2",
        default="cache/smollm2-135m-instruct",
        help="the real model of the real-model rows (make smollm2)",
    )
    parser.add_argument("--only", nargs="+", help="run only these benchmarks (names as rows)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    settings = {**SIZES[args.size], "notes": args.notes, "model": args.model,
                "smollm2": args.smollm2, "workdir": out / "work"}  # fmt: skip
    load_before, started = os.getloadavg()[0], time.perf_counter()
    settings["loaded"] = load_before > (os.cpu_count() or 1)
    # --only re-measures some benchmarks and keeps the other rows of the report already there
    kept = []
    if args.only and (out / "report.csv").is_file():
        with open(out / "report.csv") as f:
            kept = [{**r, "ratio": float(r["ratio"])} for r in csv.DictReader(f)]
    rows: list[dict] = []
    for name, script, bench in BENCHMARKS:
        if args.only and name not in args.only:
            rows += [r for r in kept if r.get("benchmark") == name]
            continue
        print(f"--- {name}", flush=True)
        try:
            measured = bench(settings)
        except Exception as err:  # one benchmark's failure is a row, not a lost report
            reason = f"failed: {str(err).splitlines()[-1] if str(err) else type(err).__name__}"
            measured = [{**not_measured(name, reason, "-", command(script, [])), "met": "error"}]
        rows += [{**r, "benchmark": name} for r in measured]
    minutes = (time.perf_counter() - started) / 60
    header = [
        f"{dt.datetime.now():%Y-%m-%d %H:%M}, commit {git_commit()}, size `{args.size}`, "
        f"{minutes:.1f} min.",
        f"Machine: {machine()}. Load average (1 min) {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
        + (" (the machine was loaded: wall-clock ratios are noisy)."
           if max(load_before, os.getloadavg()[0]) > (os.cpu_count() or 1) else "."),
        "Each ratio compares two figures measured in one run, on this machine"
        + (f" (this run re-measured: {', '.join(args.only)})." if args.only else "."),
        f"Threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
    ]  # fmt: skip
    write(rows, out, header)
    print((out / "report.md").read_text())
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
