"""The benchmark scripts run end to end (their figures are measured by hand, never asserted)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow


def run(script: str, *args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DS_ACCELERATOR": "cpu"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "benchmarks" / script), *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_llama7b_benchmark_runs_its_tiny_shape_with_and_without_deepspeed():
    out = run("llama7b_lora.py", "--tiny", "--deepspeed", "--steps", "2", "--warmup", "1")
    rows = re.findall(
        r"^(plain|DeepSpeed ZeRO-2).* (\d+) tokens/s .* x(\d+\.\d\d) vs plain", out, re.M
    )
    assert [name for name, *_ in rows] == ["plain", "DeepSpeed ZeRO-2"]
    assert rows[0][2] == "1.00" and all(int(tokens) > 0 for _, tokens, _ in rows)


def test_auroc_benchmark_runs_at_toy_size_and_agrees_with_sklearn():
    out = run("auroc.py", "--rows", "300", "--labels", "20", "--n-boot", "20")
    assert float(re.search(r"max abs diff (\S+)", out).group(1)) < 1e-6
    assert re.search(r"^ratio sklearn / ours: x\d+\.\d\d", out, re.M)
    assert re.search(r"^bootstrap 20 resamples .* 95% CI \[0\.\d+, 0\.\d+\]", out, re.M)


def test_auroc_benchmark_main_returns_its_figures():
    path = ROOT / "experiments" / "benchmarks" / "auroc.py"
    spec = importlib.util.spec_from_file_location("auroc_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--rows", "200", "--labels", "8", "--n-boot", "10"])
    assert result["max_abs_diff"] < 1e-6 and result["rows"] == 200
    for key in ("ours_s", "sklearn_s", "speedup", "bootstrap_s", "bootstrap_1000_s"):
        assert result[key] > 0, key


def test_make_bench_toy_writes_every_row_finite(notes_dir, tiny_model, tmp_path):
    """`make bench BENCH_SIZE=toy`: every claim has its row in report.md and report.csv, with a
    finite ratio and a verdict, or says why it was not measured (values are not checked)."""
    import csv
    import math

    out = tmp_path / "bench"
    result = subprocess.run(
        ["make", "--no-print-directory", "bench", "BENCH_SIZE=toy", f"BENCH_OUT={out}",
         f"NOTES={notes_dir}", f"MODEL={tiny_model}", f"PY={sys.executable}", "ENV_STAMP="],
        capture_output=True, text=True, cwd=ROOT, timeout=1200,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    claims = " ".join(r["claim"] for r in rows)
    for topic in ("DAPT", "Downstream", "DPO", "Reference-free", "Checkpoint", "LLaMA-7B",
                  "Data pipeline", "anonymous", "Metrics", "Real model: DAPT on",
                  "Real model: SFT", "Real model: DPO", "Real model: DAPT memory",
                  "Real model: downstream", "GPU"):  # fmt: skip
        assert topic in claims, topic
    markdown = (out / "report.md").read_text()
    for r in rows:
        assert r["claim"] in markdown and r["command"].startswith("python experiments/benchmarks/")
        if r["met"] == "not measured":
            assert r["figure"].startswith("not measured: "), r
        else:
            assert r["met"] in ("yes", "no") and math.isfinite(float(r["ratio"])), r
    # what each benchmark measured, at toy size: packed blocks are fuller than padded notes
    # (a corpus's last block is partial); both DPO sides (ours and TRL's) ran their steps
    for r in (r for r in rows if r["claim"].startswith("DAPT")):
        packed, padded = map(float, re.search(r"fill (\d+) % vs (\d+) %", r["figure"]).groups())
        assert packed > padded, r
    dpo = [r for r in rows if r["claim"].startswith("DPO")]
    assert len(dpo) >= 2 and all(float(r["ratio"]) > 0 for r in dpo), dpo
    free = [r for r in rows if r["claim"].startswith("Reference-free")]
    assert {r["claim"].split()[1].rstrip(":") for r in free} == {"simpo", "cpo", "orpo"}, free
    assert len(free) == 6 and all(float(r["ratio"]) > 0 for r in free), free
    # the real-model DAPT row says where a shortfall lies: in our step or in the loop around it
    real = next(r for r in rows if r["claim"].startswith("Real model: DAPT on"))
    assert re.search(r"our step x\d+\.\d\d of the plain loop", real["figure"]), real
    gpu = next(r for r in rows if r["claim"].startswith("GPU"))
    import torch

    assert (gpu["met"] == "not measured") == (not torch.cuda.is_available())


def test_sft_benchmark_runs_ours_and_trl_on_batches_of_the_same_size(tiny_model):
    """Both sides train on the same pairs at the same batch and max_length: their padded tokens
    per step agree to a factor well below what a missing truncation or template would give."""
    out = run("sft_vs_trl.py", "--model", str(tiny_model), "--steps", "1", "--warmup", "1",
              "--batch", "2", "--rank", "4", "--threads", "1")  # fmt: skip
    sides = dict(re.findall(r"^(ours|trl) .* (\d+) padded tokens/step$", out, re.M))
    assert set(sides) == {"ours", "trl"}, out
    ours, trl = int(sides["ours"]), int(sides["trl"])
    assert 0.67 < ours / trl < 1.5, out
    assert re.search(r"^ratio ours / TRL: step time x\d+\.\d\d .* peak RSS x\d+\.\d\d$", out, re.M)


def test_dapt_memory_benchmark_measures_each_variant_in_its_own_process(
    tiny_model, notes_dir, tmp_path
):
    path = ROOT / "experiments" / "benchmarks" / "dapt_memory.py"
    spec = importlib.util.spec_from_file_location("dapt_memory_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--model", str(tiny_model), "--notes", str(notes_dir), "--cache",
                          str(tmp_path), "--steps", "1", "--warmup", "1",
                          "--variants", "lora", "lora-checkpointing"])  # fmt: skip
    assert set(result) == {"lora", "lora-checkpointing"}
    for r in result.values():
        # the training peak is reset after loading: at least the weights, at most the process's
        assert r["rss_before_training_mb"] <= r["training_peak_mb"] <= r["peak_mb"], r
        assert r["load_peak_mb"] <= r["peak_mb"] and r["tokens_per_s"] > 0, r
