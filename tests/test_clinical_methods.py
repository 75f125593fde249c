"""Each of the five pretraining methods as a downstream clinical adapter: it acts in the forward
pass (logits differ from head-only) or is refused in one line that says what works."""

from __future__ import annotations

import pytest
import torch
from methods import METHODS, adapter_config
from methods import lora as lora_config
from test_cli import assert_one_line_error, run_cli

from clinical_peft.models.backbone import add_adapter, load_causal_lm, load_tokenizer
from clinical_peft.models.classifier import load_sequence_classifier, stack_adapters
from clinical_peft.stages.downstream import pad_left
from clinical_peft.util.errors import InputError

TEXTS = [
    "chest pain resolved",
    "admitted with shortness of breath and fever, treated for pneumonia",
]
#: (method, downstream LoRA) -> acts; missing pairs are refused
ACTS = {("lora", False), ("lora", True), ("dora", False), ("dora", True), ("ia3", False),
        ("adaption_prompt", False), ("prompt", False), ("p_tuning", False)}  # fmt: skip


@pytest.fixture(scope="module")
def clinical_adapters(tiny_model, tmp_path_factory) -> dict:
    """A causal-LM adapter of every method, its trainable tensors moved off their initial values
    (a fresh LoRA or LLaMA-Adapter is a no-op)."""
    folders = {}
    for method in METHODS:
        torch.manual_seed(1)
        model = add_adapter(load_causal_lm(tiny_model), adapter_config(method))
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(torch.randn_like(param) * 0.3)
        folders[method] = tmp_path_factory.mktemp(method) / "adapter"
        model.save_pretrained(folders[method])
    return folders


def classifier(tiny_model, adapter=None, trainable=False, lora=False):
    torch.manual_seed(0)  # the same head every time
    model = load_sequence_classifier(tiny_model, num_labels=3)
    return stack_adapters(model, adapter, trainable, lora_config(r=4) if lora else None).eval()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("lora", [False, True])
def test_clinical_adapter_acts_or_is_refused(
    tiny_model, clinical_adapters, method, trainable, lora
):
    tokenizer = load_tokenizer(tiny_model)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        head_only = classifier(tiny_model)(**batch).logits
    if (method, lora) not in ACTS:
        with pytest.raises(InputError, match="lora") as err:
            classifier(tiny_model, clinical_adapters[method], trainable, lora)
        assert "\n" not in str(err.value)
        return
    model = classifier(tiny_model, clinical_adapters[method], trainable, lora)
    ids, mask = pad_left(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    assert (logits - head_only).abs().max() > 1e-3  # the clinical adapter changes the output
    clinical = [
        p
        for n, p in model.named_parameters()
        if (".clinical" in n or ".adaption_" in n)
        and "score" not in n
        and "prompt_encoder.clinical.mlp" not in n
    ]
    assert clinical and all(p.requires_grad == trainable for p in clinical)
    if trainable:  # gradients reach the clinical tensors
        model.train()
        model(input_ids=ids, attention_mask=mask).logits.sum().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in clinical)


@pytest.mark.parametrize("method", ["prompt", "p_tuning"])
def test_virtual_token_classifier_pools_the_last_real_token(tiny_model, clinical_adapters, method):
    """Prompt and P-tuning feed embeddings, so transformers pools the last position: rows are
    moved to the right end first, and a padded batch scores as each note alone."""
    tokenizer = load_tokenizer(tiny_model)
    model = classifier(tiny_model, clinical_adapters[method])
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        alone = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in TEXTS])
        right = model(**batch).logits
        left = model(*pad_left(batch["input_ids"], batch["attention_mask"])).logits
    assert (right - alone).abs().max() > 0.02  # right padding pools a pad position
    # left padding puts the pads between the virtual tokens and the note: close, not exact
    torch.testing.assert_close(left, alone, atol=5e-3, rtol=0)


@pytest.mark.slow
def test_cli_refuses_a_prefix_clinical_adapter_in_one_line(clinical_adapters, tiny_model, tmp_path):
    from clinical_peft.synthetic import write_outcome_tasks

    write_outcome_tasks(tmp_path / "data", n_admissions=60, seed=0, n_diag_codes=5, n_proc_codes=5)
    base = ["downstream", "-c", "experiments/downstream/base.yaml", "--data.task", "mor",
            "--model.base_model",
            str(tiny_model), "--data.data_dir", str(tmp_path / "data"),
            "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "r")]  # fmt: skip
    prefix = ["--model.clinical_adapter", str(clinical_adapters["prefix"])]
    result = run_cli(*base, *prefix, "--model.downstream_lora", "false")
    assert_one_line_error(result, "prefix-tuning clinical adapter cannot act", "adaption_prompt")
    p_tuning = ["--model.clinical_adapter", str(clinical_adapters["p_tuning"])]
    result = run_cli(*base, *p_tuning, "--model.downstream_lora", "true")
    assert_one_line_error(result, "model.downstream_lora", "DOWNSTREAM_LORA=0")


@pytest.mark.parametrize("method", [None, "prompt"])
def test_mean_pooling_is_padding_invariant_and_not_last_token(
    tiny_model, clinical_adapters, method
):
    from clinical_peft.stages.downstream import OutcomePrediction

    tokenizer = load_tokenizer(tiny_model)

    def batch(texts):
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        return {**enc, "doc_index": torch.arange(len(texts)), "labels": torch.zeros(len(texts))}

    torch.manual_seed(0)
    stage = OutcomePrediction(
        base_model=str(tiny_model), kind="multiclass", num_labels=3, pooling="mean",
        clinical="frozen" if method else "none",
        clinical_adapter=str(clinical_adapters[method]) if method else None,
        downstream_lora=method is None,
    ).eval()  # fmt: skip
    with torch.no_grad():
        pooled = stage(batch(TEXTS))
        alone = torch.cat([stage(batch([t])) for t in TEXTS])
        stage.pooling = "last"
        last = stage(batch(TEXTS))
    torch.testing.assert_close(pooled, alone, atol=5e-3 if method else 1e-5, rtol=0)
    assert (pooled - last).abs().max() > 1e-2
