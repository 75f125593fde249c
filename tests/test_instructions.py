"""Instruction data: exact prompt masking, packing, bad JSONL lines, counted drops, task metrics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_cli import run_cli

from clinical_peft.data.instructions import (
    InstructionDataModule,
    PreferenceDataModule,
    pack_examples,
)
from clinical_peft.synthetic import write_instruction_tasks
from clinical_peft.tasks.instructions import parse_triage, score
from clinical_peft.util.errors import InputError

ROOT = Path(__file__).parent.parent


def write_jsonl(folder: Path, name: str, rows: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / name).write_text("\n".join(lines) + "\n")


def test_labels_mask_exactly_the_prompt_tokens(instructions_dir, tiny_model, tmp_path):
    data = InstructionDataModule(
        str(instructions_dir), "triage", str(tiny_model), cache_dir=str(tmp_path)
    )
    data.setup()
    tokenizer = data.tokenizer
    rows = [json.loads(x) for x in (instructions_dir / "triage" / "sft_train.jsonl").open()]
    examples = list(data.datasets["train"])[:4]
    for ex, row in zip(examples, rows, strict=False):
        prompt = tokenizer(row["prompt"])["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        assert ex["input_ids"] == prompt + completion + [tokenizer.eos_token_id]
        assert ex["labels"] == [-100] * len(prompt) + completion + [tokenizer.eos_token_id]
        # prompt + completion reads back as one text
        assert tokenizer.decode(ex["input_ids"][:-1]) == row["prompt"] + row["completion"]
    batch = data.collate(examples)
    for i, ex in enumerate(examples):
        n = len(ex["input_ids"])
        assert (batch["labels"][i, n:] == -100).all() and (
            batch["attention_mask"][i, n:] == 0
        ).all()
        assert batch["attention_mask"][i, :n].all()


def test_preference_batches_hold_chosen_then_rejected(instructions_dir, tiny_model, tmp_path):
    data = PreferenceDataModule(
        str(instructions_dir), "reasoning", str(tiny_model), cache_dir=str(tmp_path)
    )
    data.setup()
    examples = list(data.datasets["val"])[:3]
    batch = data.collate(examples)
    assert batch["input_ids"].shape[0] == 6 and batch["index"].tolist() == [0, 1, 2]
    for i, ex in enumerate(examples):
        n_prompt = len(ex["prompt_ids"])
        for row, completion in ((i, ex["chosen_ids"]), (i + 3, ex["rejected_ids"])):
            labels = batch["labels"][row]
            assert (labels[:n_prompt] == -100).all()
            assert labels[n_prompt : n_prompt + len(completion)].tolist() == completion
            assert (labels[n_prompt + len(completion) :] == -100).all()


def test_packing_keeps_every_token_and_never_splits_an_example():
    examples = [{"input_ids": [i] * n, "labels": [-100] + [i] * (n - 1)} for i, n in
                enumerate([3, 4, 2, 5, 1, 6], start=1)]  # fmt: skip
    blocks = pack_examples(examples, block_size=7)
    assert [b["input_ids"] for b in blocks] == [
        [1, 1, 1, 2, 2, 2, 2], [3, 3, 4, 4, 4, 4, 4], [5, 6, 6, 6, 6, 6, 6]
    ]  # fmt: skip
    assert sum(len(b["labels"]) for b in blocks) == sum(len(e["labels"]) for e in examples)
    # positions restart with every example: they delimit the examples for the attention mask
    assert blocks[0]["position_ids"] == [0, 1, 2, 0, 1, 2, 3]
    assert blocks[2]["position_ids"] == [0, 0, 1, 2, 3, 4, 5]


def test_bad_lines_name_the_file_and_line(tiny_model, tmp_path):
    good = {"prompt": "Q:", "chosen": " A", "rejected": " B"}
    for bad, words in [
        ("{not json", [":2", "invalid JSON"]),
        (json.dumps({"prompt": "Q:", "chosen": " A"}), [":2", "missing key 'rejected'"]),
        (json.dumps({"prompt": 3, "chosen": " A", "rejected": " B"}), [":2", "'prompt'"]),
    ]:
        folder = tmp_path / f"d{len(words[1])}"
        write_jsonl(folder / "triage", "dpo_train.jsonl", [good, bad])
        write_jsonl(folder / "triage", "dpo_val.jsonl", [good])
        data = PreferenceDataModule(str(folder), "triage", str(tiny_model), cache_dir=str(tmp_path))
        with pytest.raises(InputError) as err:
            data.setup()
        assert "dpo_train.jsonl" in str(err.value)
        for word in words:
            assert word in str(err.value)


def test_identical_pairs_and_long_prompts_are_counted(tiny_model, tmp_path):
    folder = tmp_path / "data" / "triage"
    long_prompt = "pain " * 200 + "Answer:"
    write_jsonl(folder, "dpo_train.jsonl", [
        {"prompt": "Q:", "chosen": " A", "rejected": " B"},
        {"prompt": "Q:", "chosen": " A", "rejected": " A"},
        {"prompt": long_prompt, "chosen": " A", "rejected": " B"},
    ])  # fmt: skip
    write_jsonl(folder, "dpo_val.jsonl", [{"prompt": "R:", "chosen": " A", "rejected": " B"}])
    data = PreferenceDataModule(
        str(tmp_path / "data"), "triage", str(tiny_model), max_length=64, cache_dir=str(tmp_path)
    )
    data.setup()
    assert data.stats["train"] == {
        "read": 3, "dropped_long_prompt": 1, "skipped_identical": 1, "skipped_empty_chosen": 0,
        "examples": 1,
    }  # fmt: skip
    assert len(data.datasets["train"]) == 1 and "test" not in data.datasets
    assert data.count_metrics()["data/train/skipped_identical"] == 1.0

    # nothing usable left: a clear error naming the file and what was dropped
    write_jsonl(
        folder, "dpo_train.jsonl", [{"prompt": long_prompt, "chosen": " A", "rejected": " B"}]
    )
    data = PreferenceDataModule(
        str(tmp_path / "data"), "triage", str(tiny_model), max_length=64, cache_dir=str(tmp_path)
    )
    with pytest.raises(InputError, match=r"dpo_train.jsonl: no usable examples .*1 prompts"):
        data.setup()


def test_unknown_task_lists_the_valid_ones(tmp_path):
    with pytest.raises(InputError, match="unknown task 'icd'.*classification.*triage"):
        InstructionDataModule(str(tmp_path), "icd")


@pytest.mark.slow
def test_cli_exits_2_with_one_line_when_no_data_is_usable(tiny_model, tmp_path):
    folder = tmp_path / "data" / "numeric"
    rows = [{"prompt": "Q:", "chosen": " A", "rejected": " A"}] * 3
    write_jsonl(folder, "dpo_train.jsonl", rows)
    write_jsonl(folder, "dpo_val.jsonl", rows)
    result = run_cli("dpo", "-c", "experiments/dpo/base.yaml", "--data.task", "numeric",
                     "--model.base_model", str(tiny_model), "--data.data_dir", str(tmp_path / "data"),
                     "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"),
                     cwd=ROOT)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "3 with chosen == rejected" in errors[0], errors


def test_make_refuses_an_unknown_task():
    result = subprocess.run(
        ["make", "-n", "sft", "TASK=icd"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode != 0
    assert "unknown task 'icd'" in result.stderr and "summarisation" in result.stderr


def test_task_metrics_from_generated_text():
    assert parse_triage(" Provider: Nurse; Urgency: Urgent") == ("Nurse", "Urgent")
    assert parse_triage("nurse") is None  # unparsable (was ("", ""))
    got = score("triage", ["Provider: Nurse; Urgency: Urgent", "Provider: Nurse; Urgency: Routine"],
                [" Provider: Nurse; Urgency: Urgent", " Provider: Physician; Urgency: Routine"])  # fmt: skip
    # provider: nurse f1 = 2/3, physician f1 = 0 -> macro 1/3; urgency all right -> 1
    assert got == pytest.approx({"f1_provider": 1 / 3, "f1_urgency": 1.0, "unparsable": 0.0})
    assert score("reasoning", [" B. Sepsis", "The answer is C", ""], [" B", " D", " A"]) == {
        "accuracy": pytest.approx(1 / 3),
        "unparsable": pytest.approx(1 / 3),
    }
    assert score("classification", [" Yes.", " no", "maybe"], [" Yes", " No", " No"]) == {
        "f1": pytest.approx((1.0 + 2 / 3) / 2),
        "unparsable": pytest.approx(1 / 3),
    }
    assert score("numeric", [" SIADH due to", " Hypo"], [" SIADH", " Hypovolemia"]) == {
        "accuracy": 0.5,
        "unparsable": 0.5,
    }
    assert score("summarisation", [" a b c"], [" a b c"]) == {"rouge_l": 1.0, "unparsable": 0.0}


def test_study_table_from_run_directories(tmp_path):
    from clinical_peft.studies.tables_instruct import main

    (tmp_path / "sft" / "triage").mkdir(parents=True)
    (tmp_path / "dpo" / "triage").mkdir(parents=True)
    (tmp_path / "sft" / "triage" / "metrics.json").write_text(json.dumps(
        {"test/f1_provider_before": 0.1, "test/f1_provider": 0.5, "test/f1_urgency": 0.8}))  # fmt: skip
    (tmp_path / "dpo" / "triage" / "metrics.json").write_text(json.dumps({"test/f1_provider": 0.6}))
    out = tmp_path / "table"
    main(["--tasks", "triage", "reasoning", "--sft", str(tmp_path / "sft"),
          "--dpo", str(tmp_path / "dpo"), "--out", str(out)])  # fmt: skip
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert lines == [
        "task,metric,base,SFT,DPO",
        "triage,F1 provider,0.100,0.500,0.600",
        "triage,F1 urgency,,0.800,",
        "reasoning,accuracy,,,",
    ]
    assert "| triage | F1 provider | 0.100 | 0.500 | 0.600 |" in (tmp_path / "table.md").read_text()


def test_leaked_test_prompts_are_refused_and_empty_answers_counted(tiny_model, tmp_path):
    from clinical_peft.util.errors import InputError

    folder = tmp_path / "data"
    write_instruction_tasks(folder, n_per_task=40, seed=0)
    task = folder / "triage"
    train = (task / "sft_train.jsonl").read_text().splitlines()
    test = (task / "sft_test.jsonl").read_text().splitlines()
    (task / "sft_test.jsonl").write_text("\n".join(test + train[:3]) + "\n")  # 3 copied lines
    empty = json.loads(train[3]) | {"completion": "  "}
    (task / "sft_train.jsonl").write_text("\n".join([*train, json.dumps(empty)]) + "\n")

    def prepare(**kwargs):
        data = InstructionDataModule(str(folder), "triage", str(tiny_model),
                                     cache_dir=str(tmp_path / "cache"), **kwargs)  # fmt: skip
        data.prepare_data()
        return data

    with pytest.raises(InputError, match="field 'prompt': 3 lines repeat .*allow_overlap"):
        prepare()
    data = prepare(allow_overlap=True)
    metrics = data.count_metrics()
    assert metrics["data/test/prompts_in_train"] == 3.0
    assert metrics["data/train/skipped_empty_completion"] == 1.0
