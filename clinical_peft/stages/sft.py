"""SupervisedFineTuning: a LoRA policy on prompt -> completion pairs, loss on completions only
(study B, step 1). Evaluated by greedy generation on the test split, before and after."""

from __future__ import annotations

from peft import PeftConfig

from clinical_peft.models.backbone import (
    check_packing,
)
from clinical_peft.stages.base import OptimSpec
from clinical_peft.stages.causal_lm import CausalLMStage
from clinical_peft.stages.generation import GenerationEvaluation


class SupervisedFineTuning(GenerationEvaluation, CausalLMStage):
    def __init__(
        self,
        base_model: str,
        adapter: PeftConfig | None = None,
        optim: OptimSpec | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        max_new_tokens: int | None = None,
        evaluate_base: bool = True,
        quantization: str = "none",
    ) -> None:
        """
        Args:
            base_model: folder of a local Hugging Face causal LM (e.g. Llama-3-8B-Instruct, or
                the built-in tiny LLaMA).
            adapter: the PEFT method of the policy (the study trained all weights; LoRA here).
            optim: optimizer and learning-rate schedule.
            dtype: weights of the frozen base: float32, bfloat16 or float16.
            gradient_checkpointing: recompute activations in backward to save memory.
            max_new_tokens: cap on generated tokens at evaluation (default: per task).
            evaluate_base: also score the untrained model by generation (the table's "base").
            quantization: the frozen base in 4-bit NF4 or 8-bit (QLoRA; needs bitsandbytes),
                or none.
        """
        super().__init__(base_model, adapter, optim, dtype, gradient_checkpointing, quantization)
        self.max_new_tokens, self.evaluate_base = max_new_tokens, evaluate_base

    def setup(self, stage: str) -> None:
        if getattr(self.trainer.datamodule, "packing", False):
            check_packing(self.model, "data.packing", "set it to false")
