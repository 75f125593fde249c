"""How a decoder's pretraining framed one document, so notes are framed the same way.

A chat model's BOS/EOS are often chat markers (SmolLM2: `<|im_start|>` / `<|im_end|>`); wrapping
notes in them would teach DAPT chat tokens around notes and make downstream pool a chat marker.
Each convention is named by its tokens; `auto` takes the first whose tokens the vocabulary has.
"""

from __future__ import annotations

from clinical_peft.util.errors import InputError

# name -> (token before a document or None, token after it)
CONVENTIONS: dict[str, tuple[str | None, str]] = {
    "llama3": ("<|begin_of_text|>", "<|end_of_text|>"),
    "endoftext": (None, "<|endoftext|>"),  # SmolLM2, GPT-2, Qwen: one separator, no BOS
    "llama2": ("<s>", "</s>"),
}
FRAMINGS = ("auto", "tokenizer", *CONVENTIONS)


def convention(tokenizer, framing: str = "auto") -> str:
    """The convention `framing` names for this tokenizer (`auto`: the first one it has;
    `tokenizer`: its own BOS (if any) and EOS, when it has none of them)."""
    if framing not in FRAMINGS:
        raise InputError("data.framing", f"unknown '{framing}' (valid: {', '.join(FRAMINGS)})")
    if framing != "auto":
        return framing
    vocab = tokenizer.get_vocab()
    for name, tokens in CONVENTIONS.items():
        if all(t is None or t in vocab for t in tokens):
            return name
    return "tokenizer"


def document_frame(tokenizer, framing: str = "auto") -> tuple[list[int], list[int]]:
    """Token ids before and after one document under `framing` (see `convention`)."""
    name = convention(tokenizer, framing)
    if name == "tokenizer":
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        return bos, [tokenizer.eos_token_id]
    vocab = tokenizer.get_vocab()
    missing = [t for t in CONVENTIONS[name] if t is not None and t not in vocab]
    if missing:
        raise InputError(
            "data.framing", f"'{name}': the tokenizer has no {', '.join(missing)} (try auto)"
        )
    begin, end = CONVENTIONS[name]
    return ([vocab[begin]] if begin else []), [vocab[end]]


def framing_record(tokenizer, framing: str) -> str:
    """The framing a run's labels.json records (`auto` resolved; `cls`: an encoder's [CLS] ...
    [SEP]), so `predict` frames new notes as training did."""
    return "cls" if tokenizer.cls_token_id is not None else convention(tokenizer, framing)
