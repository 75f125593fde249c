"""The instruction-task registry: a task registered there alone is written, loaded, scored and
reported; the Makefile's task list and the experiment YAML files agree with the registry."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from clinical_peft.data.instructions import InstructionDataModule
from clinical_peft.stages import generation
from clinical_peft.synthetic import write_instruction_tasks
from clinical_peft.synthetic.items import ITEM_MAKERS
from clinical_peft.tasks import instructions as instruct_tasks
from clinical_peft.tasks.instructions import TASKS, InstructTask, score

ROOT = Path(__file__).parent.parent


def _colour_item(rng: random.Random) -> tuple[str, str, str]:
    colour, other = rng.sample(["Red", "Green", "Blue"], 2)
    case = rng.randint(0, 10**6)  # prompts must be distinct across splits
    return f"Case {case}: name the colour {colour.lower()} with a capital.\nAnswer:", colour, other


def _score_colour(predictions: list[str], references: list[str]):
    preds = [p.strip() if p.strip() in ("Red", "Green", "Blue") else None for p in predictions]
    hits = sum(p == r.strip() for p, r in zip(preds, references, strict=True))
    return {"exact": hits / len(references)}, sum(p is None for p in preds)


TOY = InstructTask("colour", 5, {"exact": "exact match"}, _score_colour)


@pytest.fixture
def toy_task(monkeypatch):
    monkeypatch.setitem(instruct_tasks.TASKS, "colour", TOY)
    monkeypatch.setitem(ITEM_MAKERS, "colour", _colour_item)
    return TOY


def test_a_registered_task_is_written_loaded_scored_and_reported(
    toy_task, tiny_model, tmp_path, monkeypatch
):
    counts = write_instruction_tasks(tmp_path / "data", n_per_task=20, seed=0)
    assert counts["colour/sft_test.jsonl"] == 2
    data = InstructionDataModule(
        str(tmp_path / "data"), "colour", str(tiny_model), cache_dir=str(tmp_path / "cache")
    )
    examples = data.generation_examples("test")
    assert len(examples) == 2

    asked = {}

    def fake_generate(model, tokenizer, prompts, max_new_tokens, *args):
        asked["max_new_tokens"] = max_new_tokens
        return ["no idea"] + [ex["reference"] for ex in examples[1:]]

    monkeypatch.setattr(generation, "generate", fake_generate)
    metrics = generation.evaluate_generation(None, data.tokenizer, examples, "colour", "test")
    assert asked["max_new_tokens"] == 5  # the spec's cap
    assert metrics == {"test/exact": 0.5, "test/unparsable": 0.5, "data/test/scored": 2}

    from clinical_peft.studies.tables_instruct import main

    run = tmp_path / "sft" / "colour"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({**metrics, "test/exact_before": 0.25}))
    out = tmp_path / "table"
    main(["--tasks", "colour", "--sft", str(tmp_path / "sft"), "--dpo", str(tmp_path / "dpo"),
          "--out", str(out)])  # fmt: skip
    assert out.with_suffix(".csv").read_text().splitlines() == [
        "task,metric,base,SFT,DPO",
        "colour,exact match,0.250,0.500,",
    ]


def test_scorer_keys_must_match_the_spec(monkeypatch):
    wrong = InstructTask("colour", 5, {"accuracy": "accuracy"}, _score_colour)
    monkeypatch.setitem(instruct_tasks.TASKS, "colour", wrong)
    with pytest.raises(ValueError, match="colour: scorer gave"):
        score("colour", ["Red"], [" Red"])


def make_variable(name: str) -> list[str]:
    """The words of a Makefile variable, as make evaluates it."""
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", "print-%: ; @echo $($*)",
         f"print-{name}"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    return result.stdout.split()


def test_makefile_and_experiment_files_list_the_registered_tasks():
    assert make_variable("INSTRUCT_TASKS") == sorted(TASKS)
    for stage in ("sft", "dpo", "kto"):  # one base YAML; overlays only for tasks that differ
        overlays = {p.stem for p in (ROOT / "experiments" / stage).glob("*.yaml")} - {"base"}
        assert (ROOT / "experiments" / stage / "base.yaml").is_file() and overlays <= set(TASKS)
