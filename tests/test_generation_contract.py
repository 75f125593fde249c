"""The generation mixin's requirements are explicit: a stage without them fails when its class is
created; a data module without them is refused with a one-line error naming what is missing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clinical_peft.stages.generation import GenerationEvaluation, check_generation_data
from clinical_peft.util.errors import InputError


def test_a_stage_without_validate_best_fails_at_class_creation():
    with pytest.raises(TypeError, match="Lonely uses GenerationEvaluation without validate_best"):

        class Lonely(GenerationEvaluation):
            pass


def test_the_instruction_stages_meet_the_mixin_requirements():
    from clinical_peft.stages.dpo import PreferenceOptimization
    from clinical_peft.stages.sft import SupervisedFineTuning

    for stage in (SupervisedFineTuning, PreferenceOptimization):
        assert issubclass(stage, GenerationEvaluation) and callable(stage.validate_best)


def test_a_data_module_lacking_generation_members_is_named():
    complete = SimpleNamespace(
        tokenizer=object(), task="triage", eval_batch_size=2,
        generation_examples=lambda split: [], count_metrics=dict,
    )  # fmt: skip
    check_generation_data(complete)
    partial = SimpleNamespace(tokenizer=object(), task="triage", eval_batch_size=2)
    with pytest.raises(InputError, match="data.class_path.*generation_examples, count_metrics"):
        check_generation_data(partial)
