#!/usr/bin/env bash
# The FSDP check that needs a GPU (Lightning runs FSDP on CUDA only): pretraining and SFT of the
# tiny model under experiments/trainer/fsdp.yaml on every visible GPU, a few steps each, then
# the adapter-only checkpoint and the adapter folder checked. Usage: tests/scripts/fsdp_gpu_check.sh [OUT]
set -euo pipefail
OUT=${1:-/tmp/fsdp-check}
PY=${PY:-python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
$PY -m clinical_peft synthetic --out "$OUT/data" --what all --n_discharge 40 --n_radiology 280 --n_per_task 60 > /dev/null
$PY -m clinical_peft tiny-model "$OUT/data" "$OUT/tiny"
common=(--trainer experiments/trainer/fsdp.yaml --model.base_model "$OUT/tiny" --data.cache_dir "$OUT/cache"
        --trainer.max_steps 3 --trainer.enable_progress_bar false --overwrite)
$PY -m clinical_peft pretrain -c experiments/pretrain/lora.yaml --data.data_dir "$OUT/data" \
  --data.block_size 64 --data.max_notes 40 --run_dir "$OUT/pretrain" "${common[@]}"
$PY -m clinical_peft sft -c experiments/sft/base.yaml --data.data_dir "$OUT/data" --data.task triage \
  --data.max_eval_examples 4 --run_dir "$OUT/sft" "${common[@]}"
$PY - "$OUT" <<'PY'
import sys, torch
from pathlib import Path
out = Path(sys.argv[1])
for run in ("pretrain", "sft"):
    ckpt = torch.load(out / run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    keys = list(ckpt["state_dict"])
    assert keys and all("lora_" in k and "_fsdp_wrapped_module" not in k for k in keys), keys[:3]
    assert (out / run / "adapter" / "adapter_model.safetensors").is_file()
    print(run, "ok:", len(keys), "adapter tensors in the checkpoint")
PY
