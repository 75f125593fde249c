"""Generation stops on every id of `generation_config.eos_token_id`, not only the tokenizer's
EOS (issue 22, item 5: Llama-3-Instruct stops on `<|eot_id|>` and `<|end_of_text|>`)."""

from __future__ import annotations

import torch

from clinical_peft.models.backbone import load_causal_lm
from clinical_peft.models.files import load_tokenizer
from clinical_peft.stages.generation import cut_at_stop, generate, stop_ids


def test_generation_stops_on_every_listed_id(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    model = load_causal_lm(str(tiny_model), "float32")
    prompt = [tokenizer("chest pain", add_special_tokens=False)["input_ids"]]
    (free,) = generate(model, tokenizer, prompt, max_new_tokens=6)
    first = tokenizer(free, add_special_tokens=False)["input_ids"]
    assert len(first) > 1  # the random model runs on to the cap
    # the model's first generated token becomes a listed stop id (beside a second one)
    out = model.generate(
        input_ids=torch.tensor(prompt), max_new_tokens=1, do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, int(out[0, -1])]
    assert stop_ids(model, tokenizer) == [tokenizer.eos_token_id, int(out[0, -1])]
    (stopped,) = generate(model, tokenizer, prompt, max_new_tokens=6)
    assert stopped == ""


def test_cut_at_the_first_stop_id():
    assert cut_at_stop([5, 6, 9, 7, 8], [8, 9]) == [5, 6]
    assert cut_at_stop([5, 6], [8]) == [5, 6]
