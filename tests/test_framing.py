"""Document framing by the model's own convention (issue 22, item 1), on small offline
tokenizers of each convention: SmolLM2 (no BOS, `<|endoftext|>`), LLaMA-2 (`<s>` ... `</s>`),
Llama-3 (`<|begin_of_text|>` ... `<|end_of_text|>`); the tiny model keeps `<s>` ... `</s>`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from clinical_peft.data.framing import document_frame
from clinical_peft.data.notes import NotesDataModule
from clinical_peft.data.outcomes import encode_notes
from clinical_peft.models.files import load_tokenizer
from clinical_peft.util.errors import InputError

TEXTS = ["patient admitted with chest pain", "discharged home stable", "no acute findings"] * 20
# convention -> (special tokens, bos, eos): as the real tokenizers set them
KINDS = {
    "smollm2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "<|im_start|>", "<|im_end|>"),
    "llama2": (["<unk>", "<s>", "</s>"], "<s>", "</s>"),
    "llama3": (["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|reserved_special_token_0|>"],
               "<|begin_of_text|>", "<|eot_id|>"),
}  # fmt: skip


def make_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    specials, bos, eos = KINDS[kind]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials)
    tok.train_from_iterator(TEXTS, trainer=trainer)
    unk = "<unk>" if "<unk>" in specials else ("<|endoftext|>" if kind == "smollm2" else None)
    pad = "<|reserved_special_token_0|>" if kind == "llama3" else None  # as Llama-3 users set it
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=unk, pad_token=pad
    )


def make_model(kind: str, folder: Path) -> Path:
    """A 1-layer LLaMA folder with this convention's tokenizer (what `MODEL=` is given)."""
    tokenizer = make_tokenizer(kind)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def ids(tokenizer, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


@pytest.mark.parametrize(
    ("kind", "begin", "end"),
    [("smollm2", [], ["<|endoftext|>"]), ("llama2", ["<s>"], ["</s>"]),
     ("llama3", ["<|begin_of_text|>"], ["<|end_of_text|>"])],
)  # fmt: skip
def test_auto_framing_follows_the_convention(kind, begin, end):
    tokenizer = make_tokenizer(kind)
    assert document_frame(tokenizer) == (ids(tokenizer, *begin), ids(tokenizer, *end))


def test_override_and_bad_names():
    tokenizer = make_tokenizer("smollm2")
    # `tokenizer`: the old behaviour, BOS + EOS whatever they are (here chat markers)
    assert document_frame(tokenizer, "tokenizer") == (
        ids(tokenizer, "<|im_start|>"), ids(tokenizer, "<|im_end|>")
    )  # fmt: skip
    with pytest.raises(InputError, match="data.framing.*no <\\|begin_of_text\\|>"):
        document_frame(tokenizer, "llama3")
    with pytest.raises(InputError, match="data.framing.*unknown 'chat'"):
        document_frame(tokenizer, "chat")


def test_tiny_model_keeps_bos_and_eos(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    assert document_frame(tokenizer) == ([tokenizer.bos_token_id], [tokenizer.eos_token_id])


@pytest.mark.parametrize("kind", ["smollm2", "llama3"])
def test_pretraining_and_downstream_notes_are_framed_as_documents(kind, notes_dir, tmp_path):
    folder = make_model(kind, tmp_path / kind)
    module = NotesDataModule(
        data_dir=str(notes_dir), tokenizer=str(folder), mode="pad_per_note", block_size=4096,
        max_notes=20, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    module.setup()
    tokenizer = module.tokenizer
    begin, end = document_frame(tokenizer)
    chat = set(ids(tokenizer, *KINDS[kind][1:])) - set(begin + end)
    rows = [row.tolist() for row in module.datasets["train"]["input_ids"]]
    whole = [row for row in rows if len(row) < 4096]  # longer notes were cut at the block
    assert whole
    for row in rows:
        assert row[: len(begin)] == begin and (len(row) == 4096 or row[-1:] == end)
        assert not chat & set(row)  # no chat marker (SmolLM2's <|im_start|>, Llama-3's <|eot_id|>)
    (windows,), _, _ = encode_notes(tokenizer, ["patient admitted"], 64, "truncate", 1)
    assert windows[0][: len(begin)] == begin and windows[0][-1:] == end
    assert not chat & set(windows[0])


def test_packed_separator_equal_to_pad_counts_as_a_real_token(notes_dir, tmp_path):
    """SmolLM2 pads with its document separator: packed blocks still count it as real."""
    folder = make_model("smollm2", tmp_path / "smol")
    module = NotesDataModule(
        data_dir=str(notes_dir), tokenizer=str(folder), block_size=64, max_notes=20,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert module.tokenizer.pad_token_id == document_frame(module.tokenizer)[1][0]
    module.setup()
    train, sep = module.datasets["train"], module.tokenizer.pad_token_id
    ends = [i for i in range(len(train)) if (train[i]["labels"] == sep).any()]
    batch = module.collate([train[ends[0]], train[len(train) - 1]])  # the last block is padded
    assert int(batch["attention_mask"][0].sum()) == 64
    assert int(batch["attention_mask"][1].sum()) == int((batch["position_ids"][1] > 0).sum()) + 1
    separators = (batch["input_ids"] == module.tokenizer.pad_token_id) & (batch["labels"] != -100)
    assert bool(separators.any())
    assert torch.equal(batch["attention_mask"].bool() | ~separators, torch.ones_like(separators))
