"""`export`: the run's adapters merged into a plain Hugging Face folder give the run's logits."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from test_cli import assert_one_line_error, run_cli
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from clinical_peft.cli.stage import run_stage
from clinical_peft.data.outcomes import OutcomeDataModule
from clinical_peft.stages.downstream import OutcomePrediction
from clinical_peft.synthetic import write_outcome_tasks

pytestmark = pytest.mark.slow
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def pretrain_run(notes_dir, tiny_model, tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain") / "lora"
    run_stage("pretrain", [
        "-c", "experiments/pretrain/lora.yaml", "--trainer", "experiments/trainer/cpu.yaml",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(notes_dir),
        "--data.cache_dir", str(run.parent / "cache"), "--data.block_size", "64",
        "--data.max_notes", "60", "--trainer.max_steps", "3", "--model.optim.lr", "0.05",
        "--run_dir", str(run), *QUIET,
    ])  # fmt: skip
    return run


def test_merged_pretraining_run_gives_the_adapter_logits(pretrain_run, tiny_model, tmp_path):
    import subprocess

    out = tmp_path / "merged"
    result = subprocess.run(  # the README's command
        ["make", "--no-print-directory", "export", f"RUN={pretrain_run}", f"OUT={out}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), pretrain_run / "adapter"
    ).eval()
    ids = torch.randint(3, 1000, (2, 24))
    with torch.no_grad():
        expected = adapter(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out).eval()(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()(input_ids=ids).logits
    assert (expected - base).abs().max() > 1e-3  # the adapter moved: the test can fail
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)
    assert not any(p.name.startswith("adapter_") for p in out.iterdir())  # no peft needed
    assert (out / "tokenizer.json").is_file()
    # a second export into the same folder is refused, the first is kept
    again = run_cli("export", "--run", str(pretrain_run), "--out", str(out))
    assert_one_line_error(again, str(out), "not empty")


def test_merged_stacked_downstream_run_gives_the_run_logits(pretrain_run, tiny_model, tmp_path):
    data = tmp_path / "outcomes"
    write_outcome_tasks(data, n_admissions=80, seed=0, n_diag_codes=5, n_proc_codes=5)
    run, clinical = tmp_path / "mor", pretrain_run / "adapter"
    run_stage("downstream", [
        "-c", "experiments/downstream/base.yaml", "--data.task", "mor",
        "--trainer", "experiments/trainer/cpu.yaml",
        "--model.base_model", str(tiny_model), "--model.clinical_adapter", str(clinical),
        "--data.data_dir", str(data), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.max_length", "64", "--trainer.max_steps", "3", "--run_dir", str(run), *QUIET,
    ])  # fmt: skip
    result = run_cli("export", "--run", str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    module = OutcomeDataModule(task="mor", data_dir=str(data), tokenizer=str(tiny_model),
                               cache_dir=str(tmp_path / "cache"), max_length=64)  # fmt: skip
    module.setup()
    batch = next(iter(module.val_dataloader()))
    stage = OutcomePrediction(base_model=str(tiny_model), kind="binary", num_labels=2,
                              clinical_adapter=str(clinical)).eval()  # fmt: skip
    stage.load_trainable_from(run / "checkpoints" / "last.ckpt")  # 3 steps: no validation
    merged = AutoModelForSequenceClassification.from_pretrained(run / "merged").eval()
    with torch.no_grad():
        expected = stage(batch)
        got = merged(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_virtual_token_adapters_are_refused(notes_dir, tiny_model, tmp_path):
    run = tmp_path / "prompt"
    run_stage("pretrain", [
        "-c", "experiments/pretrain/prompt.yaml", "--trainer", "experiments/trainer/cpu.yaml",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(notes_dir),
        "--data.cache_dir", str(tmp_path / "cache"), "--data.block_size", "64",
        "--data.max_notes", "30", "--trainer.max_steps", "1", "--run_dir", str(run), *QUIET,
    ])  # fmt: skip
    result = run_cli("export", "--run", str(run))
    assert_one_line_error(result, "prompt_tuning adapter cannot be merged")
    assert not (run / "merged").exists()


def test_every_adapter_folder_has_a_model_card(pretrain_run):
    import yaml

    card = (pretrain_run / "adapter" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "peft" and front["base_model"]
    assert "lora" in front["tags"]
    metrics = __import__("json").loads((pretrain_run / "metrics.json").read_text())
    assert metrics["base_fingerprint"] in card
    assert f"{metrics['val/ppl']:.4g}" in card and "perplexity: exp of" in card
    assert "python -m clinical_peft pretrain -c" in card and "Data Use Agreement" in card


def test_merged_multilabel_classifier_reloads_with_the_runs_labels(tiny_model, tmp_path):
    """Plain transformers reloads a proc export with its labels, problem type and padding
    (issue 22, item 3: it loaded as a 2-label single-label model)."""
    import json

    data = tmp_path / "outcomes"
    write_outcome_tasks(data, n_admissions=80, seed=0, n_diag_codes=5, n_proc_codes=5)
    run = tmp_path / "proc"
    run_stage("downstream", [
        "-c", "experiments/downstream/base.yaml", "--data.task", "proc", "--model.clinical", "none",
        "--trainer", "experiments/trainer/cpu.yaml", "--model.base_model", str(tiny_model),
        "--data.data_dir", str(data), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.max_length", "64", "--trainer.max_steps", "2", "--run_dir", str(run), *QUIET,
    ])  # fmt: skip
    result = run_cli("export", "--run", str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    names = json.loads((run / "labels.json").read_text())["label_names"]
    merged = AutoModelForSequenceClassification.from_pretrained(run / "merged")
    assert merged.config.num_labels == len(names) > 2
    assert merged.config.problem_type == "multi_label_classification"
    assert [merged.config.id2label[i] for i in range(len(names))] == [str(n) for n in names]
    tokenizer = AutoTokenizer.from_pretrained(run / "merged")
    assert merged.config.pad_token_id == tokenizer.pad_token_id


def test_merged_config_pads_as_the_run_tokenizer(tmp_path, monkeypatch):
    """A base whose config names EOS as pad (SmolLM2: 2) while the run padded with another
    token (0): the export's config says the tokenizer's pad."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from clinical_peft.inference.export import align_config

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, pad_token_id=2, eos_token_id=2)  # fmt: skip
    model = LlamaForCausalLM(config)

    class RunTokenizer:
        pad_token_id = 0

    monkeypatch.setattr(
        "clinical_peft.inference.run_model.load_run_tokenizer", lambda run, base: RunTokenizer()
    )
    align_config(model, run, "base")
    assert model.config.pad_token_id == 0 and model.generation_config.pad_token_id == 0
