"""QLoRA (`--model.quantization nf4|int8|none`): a missing bitsandbytes or an unknown name is one
line before anything is written; checkpoints record the quantization and a resume under
another is refused unless allowed; model cards say how the base was loaded; export refuses a
quantized run. With bitsandbytes installed, the tiny model trains in 4-bit on CPU."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch
import yaml
from test_hardening import assert_one_line_error, cli, pretrain

from clinical_peft.cli.model_card import quantization_line
from clinical_peft.cli.run_dir import RunDir, check_checkpoint
from clinical_peft.inference.export import merged_model
from clinical_peft.models.backbone import fingerprint
from clinical_peft.models.quantization import original_shape
from clinical_peft.stages.pretrain import DomainAdaptation
from clinical_peft.util.errors import InputError

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
needs_bnb = pytest.mark.skipif(not HAS_BNB, reason="bitsandbytes is not installed")


def test_unknown_quantization_is_one_line(notes_dir, tiny_model, tmp_path, capfd):
    run = tmp_path / "run"
    output = cli(capfd, pretrain(notes_dir, tiny_model, run, "--model.quantization", "fp8"))
    assert_one_line_error(*output, "model.quantization", "unknown 'fp8' (valid: none, nf4, int8)")
    assert not run.exists() or not any(run.iterdir())


@pytest.mark.skipif(HAS_BNB, reason="bitsandbytes is installed")
@pytest.mark.parametrize("name", ["nf4", "int8"])
def test_missing_bitsandbytes_is_one_line(notes_dir, tiny_model, tmp_path, capfd, name):
    run = tmp_path / "run"
    output = cli(capfd, pretrain(notes_dir, tiny_model, run, "--model.quantization", name))
    assert_one_line_error(*output, "model.quantization", f"'{name}' needs the bitsandbytes package")
    assert not run.exists() or not any(run.iterdir())  # nothing written


def stage_checkpoint(stage: DomainAdaptation, quantization: str) -> dict:
    """What Lightning would save for `stage`, as trained under `quantization`."""
    checkpoint = {"state_dict": dict(stage.state_dict()), "loops": {}}
    stage.on_save_checkpoint(checkpoint)
    return {**checkpoint, "quantization": quantization}


def test_resume_refuses_another_quantization(tiny_model):
    stage = DomainAdaptation(str(tiny_model))
    saved = stage_checkpoint(stage, "none")
    assert (
        saved["quantization"] == "none"
        and check_checkpoint("x.ckpt", stage, "pretrain", saved) == {}
    )
    with pytest.raises(InputError, match=r"x.ckpt: field 'quantization': trained on a nf4 base, "
                                         r"this run loads it none; pass --model.quantization nf4, "
                                         r"or --allow_other_base"):  # fmt: skip
        check_checkpoint("x.ckpt", stage, "pretrain", stage_checkpoint(stage, "nf4"))
    check_checkpoint("x.ckpt", stage, "pretrain", stage_checkpoint(stage, "nf4"),
                     allow_other_base=True)  # fmt: skip
    older = {k: v for k, v in saved.items() if k != "quantization"}  # before QLoRA: none
    assert check_checkpoint("x.ckpt", stage, "pretrain", older) == {}


def test_fingerprint_reads_the_shape_before_quantization():
    packed = torch.nn.Parameter(torch.zeros(8, 1), requires_grad=False)  # a 4-bit 4x4, packed
    packed.quant_state = SimpleNamespace(shape=torch.Size([4, 4]))
    assert original_shape(packed) == (4, 4)
    assert original_shape(torch.zeros(3, 2)) == (3, 2)

    def model(weight):
        linear = torch.nn.Linear(4, 4, bias=False)
        linear.weight = weight
        linear.config = SimpleNamespace(model_type="toy")
        return linear

    assert fingerprint(model(packed)) == fingerprint(model(torch.nn.Parameter(torch.zeros(4, 4))))


def test_model_card_and_export_say_how_the_base_was_loaded(tmp_path):
    assert "4-bit NormalFloat" in quantization_line({"quantization": "nf4"})
    assert "LLM.int8()" in quantization_line({"quantization": "int8"})
    assert "as stored" in quantization_line({"dtype": "bfloat16"})
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.hparams.write_text(yaml.safe_dump({"base_model": "m", "quantization": "nf4"}))
    with pytest.raises(InputError, match="field 'quantization': the adapter was trained on a nf4"):
        merged_model(run.path)


@needs_bnb
@pytest.mark.slow
def test_nf4_pretraining_trains_an_adapter_only_checkpoint(notes_dir, tiny_model, tmp_path, capfd):
    import bitsandbytes as bnb

    run = tmp_path / "run"
    code, output = cli(capfd, pretrain(notes_dir, tiny_model, run, "--model.quantization", "nf4"))
    assert code == 0, output[-3000:]
    checkpoint = torch.load(RunDir(run).last_ckpt, weights_only=True)
    assert checkpoint["quantization"] == "nf4"
    assert checkpoint["state_dict"] and all("lora_" in k for k in checkpoint["state_dict"])
    stage = DomainAdaptation(str(tiny_model), quantization="nf4")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in stage.model.modules())
    assert stage.base_fingerprint() == DomainAdaptation(str(tiny_model)).base_fingerprint()
    card = (RunDir(run).adapter / "README.md").read_text()
    assert "`nf4`" in card and "4-bit NormalFloat" in card
    assert yaml.safe_load(RunDir(run).hparams.read_text())["quantization"] == "nf4"
    # resuming it on a full-precision base: refused in one line, the run left as it was
    before = RunDir(run).last_ckpt.read_bytes()
    resume = pretrain(notes_dir, tiny_model, run, "--ckpt_path", str(RunDir(run).last_ckpt))
    assert_one_line_error(*cli(capfd, resume), "field 'quantization'", "trained on a nf4 base")
    assert RunDir(run).last_ckpt.read_bytes() == before
    # export: refused in one line (a merge into full-precision weights is not the run's model)
    out = tmp_path / "merged"
    output = cli(capfd, ["export", "--run", str(run), "--out", str(out)])
    assert_one_line_error(*output, "field 'quantization'", "trained on a nf4 base")
    assert not out.exists()


def test_a_fresh_clone_installs_bitsandbytes():
    """pyproject.toml (pip, `make setup`) and environment.yml (conda) pin the version this suite
    runs against, so `--model.quantization nf4` works on a fresh clone."""
    from importlib.metadata import version
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).parent.parent
    pins = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((root / "environment.yml").read_text())["dependencies"]
    pip = next(item["pip"] for item in conda if isinstance(item, dict))
    assert "bitsandbytes==0.50.2" in pins and "bitsandbytes==0.50.2" in pip
    assert version("bitsandbytes") == "0.50.2"


def nf4_stage(folder) -> DomainAdaptation:
    torch.manual_seed(0)  # the same LoRA initialisation each time
    stage = DomainAdaptation(str(folder), quantization="nf4")
    for name, param in stage.model.named_parameters():
        if "lora_B" in name:  # non-zero B: gradients reach lora_A of the layers below
            param.data.normal_(0, 0.05)
    return stage


def lora_a_gradients(stage: DomainAdaptation, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    stage.train()
    stage.model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in stage.model.named_parameters() if "lora_A" in n}


@needs_bnb
@pytest.mark.parametrize("intermediate", [72, 128])  # 72: not a multiple of 32; 128: one
def test_nf4_layers_keep_their_input_gradients_after_a_validation_pass(
    tiny_model, tmp_path, intermediate
):
    """bitsandbytes' CPU inference kernel (on AVX512-BF16 machines) repacks a 4-bit weight in
    place at its first forward in eval mode: it refused a layer whose out_features is not a
    multiple of 32 (`make pretrain`'s tiny model, intermediate 344: AssertionError at the
    validation before training), and the repacked layers then compute without gradients to
    their input, so after any validation LoRA below them would stop learning."""
    import shutil

    from transformers import AutoConfig, LlamaForCausalLM

    config = AutoConfig.from_pretrained(tiny_model)
    config.intermediate_size = intermediate  # the gate / up projections' outputs
    torch.manual_seed(0)
    folder = tmp_path / "model"
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model / name).is_file():
            shutil.copy(tiny_model / name, folder / name)
    ids = torch.randint(4, 1000, (2, 16))
    straight = lora_a_gradients(nf4_stage(folder), ids)
    validated = nf4_stage(folder)
    validated.eval()
    with torch.no_grad():
        validated.model(input_ids=ids)
    after = lora_a_gradients(validated, ids)
    assert after.keys() == straight.keys() and any("layers.0." in n for n in after)
    for name, grad in after.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(grad, straight[name], rtol=1e-4, atol=1e-6)
