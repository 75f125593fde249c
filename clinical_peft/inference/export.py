"""`python -m clinical_peft export --run RUN --out DIR`: a standalone Hugging Face model folder.

The run's LoRA-type adapters are merged into the base weights (`merge_and_unload`; a stacked
downstream run merges the clinical adapter, then the downstream one, whose saved head replaces
the base's), so tools that do not know peft can serve the model. Virtual-token adapters (prefix,
prompt, P-tuning) and the LLaMA-Adapter add inputs rather than weight updates: they cannot be
merged and are refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml
from peft import PeftConfig, PeftModel

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.models.backbone import load_causal_lm
from clinical_peft.models.classifier import load_sequence_classifier
from clinical_peft.util.errors import InputError
from clinical_peft.util.flags import CommandParser

MERGEABLE = ("LORA", "IA3", "LOHA", "LOKR")  # adapters that are weight updates


def merge(model: torch.nn.Module, adapter_dir: Path) -> torch.nn.Module:
    """`model` with the adapter in `adapter_dir` merged into its weights."""
    peft_type = PeftConfig.from_pretrained(str(adapter_dir)).peft_type.value
    if peft_type not in MERGEABLE:
        raise InputError(
            adapter_dir,
            f"a {peft_type.lower()} adapter cannot be merged into the weights (it adds inputs, not "
            "weight updates): serve it with peft",
        )
    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


def merged_model(run: Path) -> torch.nn.Module:
    """The run's base model with its adapters merged, from the run directory alone."""
    hparams_path, adapter = RunDir(run).hparams, RunDir(run).adapter
    if not hparams_path.is_file():
        raise InputError(hparams_path, "not a finished run directory (hparams.yaml missing)")
    hparams = yaml.safe_load(hparams_path.read_text())  # the model's arguments, links resolved
    base = hparams["base_model"]
    quantization = hparams.get("quantization", "none")
    if quantization != "none":
        raise InputError(
            hparams_path,
            f"field 'quantization': the adapter was trained on a {quantization} base; merged into "
            "the full-precision weights its outputs would differ from the run's by the "
            "quantization error (not checked here): serve the adapter with peft on the base "
            "loaded as in training",
        )
    if (adapter / "adapter_config.json").is_file():  # pretrain, SFT, DPO: one causal-LM adapter
        return merge(load_causal_lm(base), adapter)
    if (
        not any((adapter / name).is_dir() for name in ("clinical", "downstream"))
        and not (adapter / "head.safetensors").is_file()
    ):
        raise InputError(adapter, "no adapter found (run not finished?)")
    model = load_sequence_classifier(base, hparams["num_labels"])
    for name in ("clinical", "downstream"):  # in the order they were stacked
        if (adapter / name / "adapter_config.json").is_file():
            model = merge(model, adapter / name)
    head = adapter / "head.safetensors"
    if head.is_file():  # a head that no adapter held (clinical adapter + head)
        from safetensors.torch import load_file

        weights = {k.removeprefix("base_model.model."): v for k, v in load_file(head).items()}
        missing = set(weights) - set(model.state_dict())
        if missing:
            raise InputError(head, f"tensors that fit no module of the base: {sorted(missing)[:3]}")
        model.load_state_dict(weights, strict=False)
    return model


def export(run: str | Path, out: str | Path) -> Path:
    run, out = Path(run), Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(out, "output folder is not empty")
    model = merged_model(run)
    model.requires_grad_(True)  # saved as an ordinary, trainable model
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if RunDir(run).tokenizer.is_dir():
        shutil.copytree(RunDir(run).tokenizer, out, dirs_exist_ok=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(
        prog="python -m clinical_peft export",
        description="Write RUN's model with its LoRA adapters merged, as a plain HF folder.",
    )
    parser.add_argument("--run", required=True, help="run directory (runs/<stage>/<name>)")
    parser.add_argument("--out", help="model folder to write (default: RUN/merged)")
    args = parser.parse_args(argv)
    out = export(args.run, args.out or RunDir(args.run).merged)
    print(f"wrote {out}")
