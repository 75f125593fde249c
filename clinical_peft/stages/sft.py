"""SupervisedFineTuning: a LoRA policy on prompt -> completion pairs, loss on completions only
(study B, step 1). Evaluated by greedy generation on the test split, before and after."""

from __future__ import annotations

from clinical_peft.data.contracts import InstructionData
from clinical_peft.models.backbone import (
    check_packing,
)
from clinical_peft.stages.causal_lm import CausalLMStage
from clinical_peft.stages.generation import GenerationEvaluation


class SupervisedFineTuning(GenerationEvaluation, CausalLMStage):
    data_protocol = InstructionData

    def __init__(
        self, *args, max_new_tokens: int | None = None, evaluate_base: bool = True, **kwargs
    ) -> None:
        """
        Args:
            max_new_tokens: cap on generated tokens at evaluation (default: per task).
            evaluate_base: also score the untrained model by generation (the table's "base").
            *args, **kwargs: the causal LM's (`CausalLMStage`: base_model, adapter, optim, ...;
                the study trained all weights, LoRA here).
        """
        super().__init__(*args, **kwargs)
        self.max_new_tokens, self.evaluate_base = max_new_tokens, evaluate_base

    def setup(self, stage: str) -> None:
        if getattr(self.trainer.datamodule, "packing", False):
            check_packing(self.model, "data.packing", "set it to false")
