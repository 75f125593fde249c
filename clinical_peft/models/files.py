"""What a local model folder holds, read without building a network: its config, its files and
its tokenizer. Data modules load their tokenizer from here, so they never import the backbone
factory (backbone.py builds networks and adapters and re-exports these for its callers)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from clinical_peft.util.errors import InputError, path_problem, quote_value, require_file

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def check_model_dir(path: str | Path) -> Path:
    # A missing local folder would otherwise be taken for a hub id, with a misleading error.
    path = Path(path)
    problem = path_problem(path, "folder")
    if problem and problem != "not found":
        raise InputError(path, f"base model folder {problem}")
    config = path / "config.json"
    if problem or path_problem(config, "file") == "not found":
        raise InputError(path, "base model folder not found (expected config.json inside)")
    try:
        fields = json.loads(require_file(config, "model config").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(config, f"not valid JSON ({err})") from None
    if not isinstance(fields, dict) or "model_type" not in fields:
        raise InputError(config, "field 'model_type' missing: not a transformers model config")
    model_type = fields["model_type"]
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
        # A model type of the folder's own code (auto_map): never run, trust_remote_code is off.
        own = ", and the folder's own code (auto_map) is never run" if "auto_map" in fields else ""
        raise InputError(
            config, f"field 'model_type': {quote_value(model_type)} is not a model type that "
            f"transformers knows{own}: use a model of a type it ships"
        )  # fmt: skip
    return path


def check_model_files(path: Path) -> None:
    """Refuse a model folder without a tokenizer, or without whole weights, before loading it
    (transformers would fail with a traceback, and only after the run had started writing)."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(path, f"no tokenizer found (expected one of {', '.join(TOKENIZER_FILES)})")
    files = []
    for name in WEIGHT_FILES:
        index = path / f"{name}.index.json"
        if index.is_file():  # sharded: every shard the index names
            try:
                shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError) as err:
                raise InputError(index, f"unreadable weight index ({type(err).__name__})") from None
            files += [path / shard for shard in sorted(shards)]
        elif path_problem(path / name) != "not found":
            files.append(path / name)
    if not files:
        raise InputError(path, f"no weights found (expected {' or '.join(WEIGHT_FILES)})")
    for file in files:
        require_file(file, "weights")
        if file.suffix == ".safetensors":
            check_safetensors(file, "weights")


def check_safetensors(file: Path, what: str) -> None:
    """Refuse a truncated or corrupt safetensors file (its header names every tensor's bytes)."""
    try:
        with safe_open(str(file), "pt"):  # reads the header: checks the file's length
            pass
    except SafetensorError as err:
        raise InputError(file, f"truncated or corrupt {what} file ({err})") from None


def check_adapter_dir(folder: str | Path) -> Path:
    """Refuse an adapter folder (peft's `save_pretrained`) whose config is not JSON or whose
    weights are cut short, before peft reads it (and fails with a traceback)."""
    folder = Path(folder)
    config = require_file(folder / "adapter_config.json", "adapter config")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(config, f"not valid JSON ({err})") from None
    for file in sorted(folder.glob("*.safetensors")):
        check_safetensors(file, "adapter")
    return folder


def read_tokenizer(path: str | Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """AutoTokenizer on a local folder, as saved. trust_remote_code is passed as False, never
    left unset: unset, transformers asks on a terminal whether to run a folder's own code."""
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot load the tokenizer ({first_error_line(err)})") from None


def load_tokenizer(path: str | Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside a local model; a decoder's gets a pad token distinct from EOS."""
    path = check_model_dir(path)
    tokenizer = read_tokenizer(path, trust_remote_code)
    tokenizer.padding_side = "right"
    if is_encoder(path):  # BERT family: [CLS] ... [SEP] and its own [PAD]; no EOS needed
        if tokenizer.pad_token_id is None:
            raise InputError(path, "encoder tokenizer has no pad token (field pad_token)")
        return tokenizer
    if tokenizer.eos_token_id is None:
        raise InputError(path, "tokenizer has no EOS token (field eos_token)")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # LLaMA tokenizers ship without a pad token. Reuse an existing non-EOS token rather than
        # add one: a new token would resize the embeddings and break adapter portability.
        spare = tokenizer.unk_token or next(
            (t for t in tokenizer.all_special_tokens if "reserved" in t), None
        )
        if spare is None or tokenizer.convert_tokens_to_ids(spare) == tokenizer.eos_token_id:
            raise InputError(path, "tokenizer has no pad token and no spare special token")
        tokenizer.pad_token = spare
    return tokenizer


def first_error_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
    lines = lines or str(err).strip().splitlines() or [type(err).__name__]
    return lines[0][:200]


def model_config(path: str | Path):
    return AutoConfig.from_pretrained(check_model_dir(path), trust_remote_code=False)


# --- encoders (BERT family) pool [CLS]; their classifiers live in clinical_peft/classifier.py ---
ENCODER_TYPES = ("bert", "roberta", "distilbert", "electra", "deberta", "deberta-v2", "albert",
                 "xlm-roberta", "mpnet")  # fmt: skip


def is_encoder(path: str | Path) -> bool:
    """A BERT-family encoder (pools [CLS]) rather than a decoder (pools the last token)."""
    return model_config(path).model_type in ENCODER_TYPES
