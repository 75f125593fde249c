"""Model cards: every `adapter/` folder describes itself (replacing peft's empty template).

Front matter the Hugging Face Hub reads (library_name, base_model, tags), then the base model
and its fingerprint, the PEFT config, the training data (folder, task and counts; never text),
the metrics with their definitions, the command that reproduces the run, and the MIMIC
data-use caveat.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clinical_peft.cli.run_dir import RunDir, data_settings
from clinical_peft.models.quantization import QUANTIZATIONS

#: what each metric in a card means (keys without their split prefix)
DEFINITIONS = {
    "ppl": "perplexity: exp of the token-weighted mean NLL over the whole held-out split",
    "loss": "mean loss over the whole split (class-weighted for single-label outcome tasks)",
    "auroc": "the paper's AUROC: binary; LOS one-vs-one macro; multilabel macro over labels "
    "with both classes present",
    "auprc": "average precision (area under the step PR curve)",
    "auroc_micro": "micro AUROC over every (admission, label) pair",
    "auprc_macro": "macro average precision over labels with both classes present",
    "auroc_ovr": "one-vs-rest macro AUROC",
    "accuracy": "share of exact answers",
    "f1": "macro F1 over the reference classes; an unparsable answer counts as wrong",
    "rouge_l": "ROUGE-L F-measure (rouge-score's rougeL)",
    "unparsable": "share of generations the task's parser could not read",
}
CAVEAT = (
    "Trained on MIMIC data (or synthetic files shaped like it). MIMIC is credentialed-access "
    "data under the PhysioNet Credentialed Health Data Use Agreement: do not share weights "
    "trained on it with people who have not signed it, and do not use them to identify "
    "patients. Generated text may reproduce training text: treat it as the data."
)


def _definition(key: str) -> str:
    name = key.split("/", 1)[-1].removesuffix("_before")
    for stem, text in DEFINITIONS.items():
        if name == stem or name.startswith(f"{stem}_"):
            return text
    return ""


def quantization_line(model: dict) -> str:
    """How the run loaded its frozen base: quantized for QLoRA, or as stored."""
    name = str(model.get("quantization", "none"))
    if name == "none":
        return f"`{model.get('dtype', 'float32')}` weights as stored (no quantization)"
    return (
        f"`{name}`, {QUANTIZATIONS.get(name, 'unknown')}: the adapter was trained on this "
        "quantized base; load the base the same way to use it"
    )


def model_card(run_dir: Path, stage: str, metrics: dict, adapter_config: dict) -> str:
    config = yaml.safe_load(RunDir(run_dir).config.read_text())
    model, data = config.get("model", {}), data_settings(config)
    base = str(model.get("base_model", ""))
    front = {
        "library_name": "peft",
        "base_model": base,
        "tags": ["clinical-peft", stage, str(adapter_config.get("peft_type", "")).lower()],
        "pipeline_tag": "text-classification" if stage == "downstream" else "text-generation",
    }
    counts = {k: v for k, v in metrics.items() if k.startswith("data/")}
    scores = {
        k: v
        for k, v in metrics.items()
        if k.split("/")[0] in ("val", "test", "train") and isinstance(v, float)
    }
    rows = "\n".join(f"| `{k}` | {v:.4g} | {_definition(k)} |" for k, v in sorted(scores.items()))
    data_source = {k: data[k] for k in ("data_dir", "task", "note_types") if k in data}
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {stage} adapter ({run_dir.name})

Trained with clinical-peft, stage `{stage}`.

- **Base model:** `{base}` (fingerprint `{metrics.get("base_fingerprint", "?")}`; a
  checkpoint of this run is refused on a base with another fingerprint)
- **Base loaded as:** {quantization_line(model)}
- **Parameters:** {metrics.get("params/trainable", 0):,.0f} trainable of
  {metrics.get("params/total", 0):,.0f} ({100 * metrics.get("params/share", 0):.4f} %)

## PEFT config

```json
{json.dumps(adapter_config, indent=1, sort_keys=True, default=str)}
```

## Training data

{json.dumps(data_source)} — counts: {json.dumps(counts) if counts else "see metrics.json"}.
No text of the data is stored in this folder.

## Metrics

| metric | value | definition |
|---|---|---|
{rows}

## Reproduce

```bash
python -m clinical_peft {stage} -c {RunDir(run_dir).config} --run_dir {run_dir}-again
```

(`config.yaml` is the resolved config of this run; the base model and data must be at the same
paths, or pass `--model.base_model` and `--data.data_dir`.)

## Data use

{CAVEAT}
"""


def write_model_cards(run_dir: Path, stage: str, metrics: dict) -> None:
    """A README.md in every folder of `run_dir/adapter` that holds an adapter_config.json."""
    adapter = RunDir(run_dir).adapter
    for config_path in sorted(adapter.glob("**/adapter_config.json")):
        adapter_config = json.loads(config_path.read_text())
        card = model_card(run_dir, stage, metrics, adapter_config)
        (config_path.parent / "README.md").write_text(card)
