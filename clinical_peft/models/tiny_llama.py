"""The built-in tiny LLaMA: a byte-level BPE tokenizer trained on the notes, random weights.

It is written as an ordinary local Hugging Face model folder, so every stage loads it the same
way it loads a real LLaMA checkpoint, and plain `PeftModel.from_pretrained` works on its adapters.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from clinical_peft.data.notes import iter_clean_notes, note_paths

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def train_tokenizer(texts, vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=5,  # rare strings (names a de-identification missed) stay out of the vocab
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=max_length,
    )


def build_tiny_llama(
    data_dir: str | Path,
    out_dir: str | Path,
    vocab_size: int = 4096,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 344,
    max_length: int = 4096,
    tokenizer_notes: int = 3000,
    seed: int = 0,
) -> Path:
    """Write a tiny LLaMA (tokenizer from the first `tokenizer_notes` notes) to `out_dir`."""
    out_dir = Path(out_dir)
    counts = {"notes": 0, "skipped_empty": 0}
    notes = iter_clean_notes(note_paths(data_dir, "both"), counts, max_notes=None)
    texts = (note["text"] for note in itertools.islice(notes, tokenizer_notes))
    tokenizer = train_tokenizer(texts, vocab_size, max_length)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "tiny_model.json").write_text(json.dumps({"data_dir": str(data_dir), "seed": seed}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """`python -m clinical_peft tiny-model NOTES_DIR OUT_DIR [--hidden_size ...]`:
    the options are `build_tiny_llama`'s arguments (jsonargparse reads its signature)."""
    from jsonargparse import auto_cli

    out = auto_cli(build_tiny_llama, args=argv, prog="python -m clinical_peft tiny-model")
    print(f"wrote {out}")
