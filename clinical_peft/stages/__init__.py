"""The training stages: stage name -> (its LightningModule, the data module it reads when the
config names none), as import paths. The one list of stages: the dispatcher, the stage CLI and
the grid read it; the YAML's `data: class_path:` picks any DataModuleBase subclass instead
(README, Extending), so a new data source needs no edit here."""

STAGES: dict[str, tuple[str, str]] = {
    "pretrain": ("clinical_peft.stages.pretrain:DomainAdaptation", "clinical_peft.data.notes:NotesDataModule"),
    "sft": ("clinical_peft.stages.sft:SupervisedFineTuning", "clinical_peft.data.instructions:InstructionDataModule"),
    "dpo": ("clinical_peft.stages.dpo:PreferenceOptimization", "clinical_peft.data.instructions:PreferenceDataModule"),
    "kto": ("clinical_peft.stages.dpo:PreferenceOptimization", "clinical_peft.data.unpaired:UnpairedPreferenceDataModule"),
    "downstream": ("clinical_peft.stages.downstream:OutcomePrediction", "clinical_peft.data.outcomes:OutcomeDataModule"),
}  # fmt: skip
