"""`python -m clinical_peft export --run RUN --out DIR`: a standalone Hugging Face model folder.

The run's LoRA-type adapters are merged into the base weights (`merge_and_unload`; a stacked
downstream run merges the clinical adapter, then the downstream one, whose saved head replaces
the base's), so tools that do not know peft can serve the model. Virtual-token adapters (prefix,
prompt, P-tuning) and the LLaMA-Adapter add inputs rather than weight updates: they cannot be
merged and are refused. The base must be the one the run was trained on (its weights' hash, as
in its checkpoint), unless `--allow_other_base`. The folder is built beside OUT and renamed into
place once complete, so OUT is a whole export or absent; a kill leaves only `.<OUT>.partial`,
which the next export recognises and replaces.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
import yaml
from peft import PeftConfig, PeftModel

from clinical_peft.cli.run_dir import RunDir, note_other_base, read_checkpoint
from clinical_peft.models.backbone import (
    check_adapter_dir,
    check_model_dir,
    load_causal_lm,
    weights_fingerprint,
)
from clinical_peft.models.classifier import load_sequence_classifier
from clinical_peft.models.files import check_safetensors
from clinical_peft.util.errors import InputError
from clinical_peft.util.flags import CommandParser

MERGEABLE = ("LORA", "IA3", "LOHA", "LOKR")  # adapters that are weight updates


def merge(model: torch.nn.Module, adapter_dir: Path) -> torch.nn.Module:
    """`model` with the adapter in `adapter_dir` merged into its weights."""
    peft_type = PeftConfig.from_pretrained(str(check_adapter_dir(adapter_dir))).peft_type.value
    if peft_type not in MERGEABLE:
        raise InputError(
            adapter_dir,
            f"a {peft_type.lower()} adapter cannot be merged into the weights (it adds inputs, not "
            "weight updates): serve it with peft",
        )
    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


def check_base(run: Path, base: str, allow_other_base: bool) -> None:
    """Refuse a base with other weights than the run's checkpoint was trained on."""
    check_model_dir(base)  # a missing folder is named as such, not as other weights
    ckpt = RunDir(run).scored_ckpt
    if not ckpt.exists():
        return  # no checkpoint left to say which base (e.g. deleted to save space)
    trained = read_checkpoint(str(ckpt)).get("base_weights")
    this = weights_fingerprint(base)
    if trained is None or trained == this:
        return
    if not allow_other_base:
        raise InputError(
            ckpt, f"field 'base_weights': trained on a base with other weights ({trained}, "
            f"{base}'s are {this}); pass --base_model of the model it was trained on, or "
            "--allow_other_base to merge into this one anyway"
        )  # fmt: skip
    note_other_base(run, trained, base, this, "merging into")


def merged_model(
    run: Path, base_model: str | None = None, allow_other_base: bool = False
) -> torch.nn.Module:
    """The run's base model with its adapters merged, from the run directory alone."""
    hparams_path, adapter = RunDir(run).hparams, RunDir(run).adapter
    if not hparams_path.is_file():
        raise InputError(hparams_path, "not a finished run directory (hparams.yaml missing)")
    hparams = yaml.safe_load(hparams_path.read_text())  # the model's arguments, links resolved
    base = base_model or hparams["base_model"]
    check_base(run, base, allow_other_base)
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

        check_safetensors(head, "head")
        weights = {k.removeprefix("base_model.model."): v for k, v in load_file(head).items()}
        missing = set(weights) - set(model.state_dict())
        if missing:
            raise InputError(head, f"tensors that fit no module of the base: {sorted(missing)[:3]}")
        model.load_state_dict(weights, strict=False)
    return model


def export(
    run: str | Path, out: str | Path, base_model: str | None = None, allow_other_base: bool = False
) -> Path:
    run, out = Path(run), Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(out, "output folder is not empty")
    model = merged_model(run, base_model, allow_other_base)
    model.requires_grad_(True)  # saved as an ordinary, trainable model
    partial = out.with_name(f".{out.name}.partial")
    if partial.exists():
        print(
            f"note: {partial}: an interrupted export's unfinished folder, replaced", file=sys.stderr
        )
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    if RunDir(run).tokenizer.is_dir():
        shutil.copytree(RunDir(run).tokenizer, partial, dirs_exist_ok=True)
    partial.rename(out)  # whole, or not at all (an empty OUT folder is replaced)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(
        prog="python -m clinical_peft export",
        description="Write RUN's model with its LoRA adapters merged, as a plain HF folder.",
    )
    parser.add_argument("--run", required=True, help="run directory (runs/<stage>/<name>)")
    parser.add_argument("--out", help="model folder to write (default: RUN/merged)")
    parser.add_argument("--base_model", help="the base model folder, if it moved since training")
    parser.add_argument("--allow_other_base", action="store_true",
                        help="merge into a base with other weights than the run's (else refused)")  # fmt: skip
    args = parser.parse_args(argv)
    out = export(args.run, args.out or RunDir(args.run).merged, args.base_model,
                 args.allow_other_base)  # fmt: skip
    print(f"wrote {out}")
