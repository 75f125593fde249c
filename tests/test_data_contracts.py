"""What each stage reads from its data module is a Protocol (clinical_peft/data/contracts.py):
the built-in data modules meet their stage's, and a data source that lacks a member is refused
before fitting, in one line naming what is missing."""

from __future__ import annotations

import pytest

from clinical_peft.cli.commands import main
from clinical_peft.data.base import DataModuleBase
from clinical_peft.data.contracts import members, require_data
from clinical_peft.data.instructions import InstructionDataModule, PreferenceDataModule
from clinical_peft.data.notes import NotesDataModule
from clinical_peft.data.outcomes import OutcomeDataModule
from clinical_peft.stages import STAGES
from clinical_peft.stages.downstream import OutcomePrediction
from clinical_peft.stages.dpo import PreferenceOptimization
from clinical_peft.stages.pretrain import DomainAdaptation
from clinical_peft.stages.sft import SupervisedFineTuning
from clinical_peft.util.errors import InputError


def test_each_builtin_data_module_meets_its_stages_protocol_before_prepare_data(
    notes_dir, instructions_dir, mortality, tiny_model, tmp_path
):
    cache, tok = str(tmp_path / "cache"), str(tiny_model)
    pairs = [
        (DomainAdaptation, NotesDataModule(str(notes_dir), tokenizer=tok, cache_dir=cache)),
        (SupervisedFineTuning, InstructionDataModule(str(instructions_dir), tokenizer=tok, cache_dir=cache)),
        (PreferenceOptimization, PreferenceDataModule(str(instructions_dir), tokenizer=tok, cache_dir=cache)),
        (OutcomePrediction, OutcomeDataModule("mor", str(mortality), tokenizer=tok, cache_dir=cache)),
    ]  # fmt: skip
    assert {stage.__name__ for stage, _ in pairs} == {
        path.split(":")[1] for path, _ in STAGES.values()
    }
    for stage, data in pairs:
        require_data(data, stage.data_protocol, stage.__name__)  # raises if a member is missing
    # the protocols differ: a notes module cannot feed the downstream stage
    with pytest.raises(InputError, match="NotesDataModule lacks kind, num_labels"):
        require_data(pairs[0][1], OutcomePrediction.data_protocol, "downstream")


def test_the_downstream_protocol_lists_what_the_stage_reads():
    assert members(OutcomePrediction.data_protocol)[:4] == [
        "tokenizer", "data_fingerprint", "train_dataloader", "val_dataloader",
    ]  # fmt: skip
    assert {"kind", "num_labels", "class_weights", "label_names", "task"} <= set(
        members(OutcomePrediction.data_protocol)
    )


class LinkedOnly(DataModuleBase):
    """A data source with what the CLI links to the model, but nothing the stage reads later."""

    def __init__(self, tokenizer: str | None = None) -> None:
        super().__init__()
        self.tokenizer_path = tokenizer
        self.kind, self.num_labels, self.class_weights = "binary", 2, None


def test_a_downstream_source_lacking_members_is_refused_before_fitting(
    tiny_model, tmp_path, capsys
):
    run = tmp_path / "run"
    code = main([
        "downstream", "-c", "experiments/downstream/base.yaml", "--data",
        f"{LinkedOnly.__module__}.LinkedOnly", "--model.base_model", str(tiny_model),
        "--model.clinical", "none", "--trainer", "experiments/trainer/cpu.yaml", "--run_dir", str(run),
    ])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: data.class_path: LinkedOnly lacks task, label_names")
    assert "OutcomeData" in err[0] and "Traceback" not in err[0]
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_takes_the_shared_settings_under_the_keys_users_type(stage, tmp_path, capsys):
    """The stages hand base_model, optim, dtype and gradient checkpointing on to AdapterStage
    (one signature); the CLI still reads them as `--model.<key>`."""
    import yaml

    from clinical_peft.cli.stage import run_stage

    config = "lora" if stage == "pretrain" else "base"
    with pytest.raises(SystemExit) as exit_info:
        run_stage(stage, [
            "-c", f"experiments/{stage}/{config}.yaml", "--model.base_model", "some/model",
            "--model.optim.lr", "0.5", "--model.dtype", "bfloat16",
            "--model.gradient_checkpointing", "true", "--run_dir", str(tmp_path), "--print_config",
        ])  # fmt: skip
    assert exit_info.value.code == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["base_model"] == "some/model" and model["optim"]["lr"] == 0.5
    assert model["dtype"] == "bfloat16" and model["gradient_checkpointing"] is True
