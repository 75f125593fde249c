"""Hostile use of `predict`, `evaluate` and `export` (issue 21): earlier scores are never replaced
unasked, two inputs never share an output, another base is refused unless allowed (and then
said), rows keep their order and ids stay unique, a killed export leaves no finished-looking
folder, every refusal is one line; a model folder's own code is never run."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_hardening import ROOT, assert_one_line_error, cli, pretrain, snapshot

from clinical_peft.synthetic import write_outcome_tasks

pytestmark = pytest.mark.slow  # the module's runs take about a minute
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def runs(notes_dir, tiny_model, tmp_path_factory) -> dict[str, Path]:
    """A pretraining run (its adapter: the clinical one) and a downstream run stacked on it."""
    from clinical_peft.cli.commands import main

    root = tmp_path_factory.mktemp("scoring")
    write_outcome_tasks(root / "outcomes", n_admissions=60, seed=0)
    pre, run = root / "pre", root / "mor"
    assert main(pretrain(notes_dir, tiny_model, pre)) == 0
    assert main([
        "downstream", "-c", str(ROOT / "experiments/downstream/base.yaml"), "--data.task", "mor",
        "--trainer", str(ROOT / "experiments/trainer/cpu.yaml"),
        "--model.base_model", str(tiny_model), "--model.clinical_adapter", str(pre / "adapter"),
        "--data.data_dir", str(root / "outcomes"), "--data.cache_dir", str(root / "cache"),
        "--data.max_length", "64", "--trainer.max_steps", "3", "--run_dir", str(run), *QUIET,
    ]) == 0  # fmt: skip
    return {"pre": pre, "mor": run, "notes": root / "outcomes" / "MP_IN_adm_test.csv"}


@pytest.fixture(scope="module")
def other_base(tiny_model, tmp_path_factory) -> Path:
    """The tiny model with the same shapes and other weights."""
    other = Path(shutil.copytree(tiny_model, tmp_path_factory.mktemp("other") / "model"))
    weights = other / "model.safetensors"
    torch.manual_seed(1)
    tensors = {k: v + 0.01 * torch.randn_like(v) for k, v in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    return other


def predict(capfd, run: Path, data: Path, *extra: str) -> tuple[int, str]:
    return cli(capfd, ["predict", "--run", str(run), "--data", str(data), *extra])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# --- 3. earlier predictions are kept; two inputs, two outputs --------------------------------
def test_predict_never_replaces_earlier_scores_unasked(runs, tmp_path, capfd):
    run, notes = runs["mor"], runs["notes"]
    table = pd.read_csv(notes, dtype=str)
    inputs = [tmp_path / "site1" / "notes.csv", tmp_path / "site2" / "notes.csv",
              tmp_path / "notes.v1.csv", tmp_path / "notes.v2.csv"]  # fmt: skip
    outputs = []
    for k, path in enumerate(inputs):
        path.parent.mkdir(exist_ok=True)
        table.iloc[k : k + 4].to_csv(path, index=False)  # four cohorts, each its own notes
        code, output = predict(capfd, run, path)
        assert code == 0, output[-3000:]
        outputs.append(Path(next(x for x in output.splitlines() if x.startswith("wrote "))[6:]))
    assert len(set(outputs)) == 4 and all(o.is_relative_to(run / "external") for o in outputs)
    for k, out in enumerate(outputs):  # each cohort's scores are still its own
        assert list(pd.read_csv(out, dtype=str)["id"]) == list(table["id"][k : k + 4])
    before = snapshot(run / "external")
    line = assert_one_line_error(*predict(capfd, run, inputs[0]), str(outputs[0]), "--overwrite")
    assert "exists" in line and snapshot(run / "external") == before
    code, output = predict(capfd, run, inputs[0], "--overwrite")
    assert code == 0, output[-3000:]


def test_evaluate_never_replaces_earlier_metrics_unasked(runs, tmp_path, capfd):
    """Two sites' folders of one name are scored into two outputs; a second evaluate of one
    is refused unless `--overwrite`."""
    run, notes = runs["mor"], runs["notes"]
    outputs = []
    for site in ("site1", "site2"):
        folder = tmp_path / site / "mimic"
        folder.mkdir(parents=True)
        shutil.copy(notes, folder / notes.name)
        code, output = cli(capfd, ["evaluate", "--run", str(run), "--data", str(folder),
                                   "--n_boot", "10"])  # fmt: skip
        assert code == 0, output[-3000:]
        new = set((run / "external").glob("mimic*")) - set(outputs)
        assert len(new) == 1, f"{site}'s metrics went into {outputs}"
        outputs.append(new.pop())
    before = snapshot(run / "external")
    args = ["evaluate", "--run", str(run), "--data", str(tmp_path / "site1" / "mimic")]
    line = assert_one_line_error(*cli(capfd, [*args, "--n_boot", "10"]), "--overwrite")
    assert str(outputs[0]) in line and snapshot(run / "external") == before


# --- 6. another base with the same shapes --------------------------------------------------------
def test_another_base_is_refused_unless_allowed_and_then_said(runs, other_base, tmp_path, capfd):
    run, notes = runs["mor"], runs["notes"]
    for command, data in (("predict", notes), ("evaluate", notes.parent)):
        out = tmp_path / command
        args = [command, "--run", str(run), "--data", str(data), "--out", str(out)]
        assert_one_line_error(*cli(capfd, [*args, "--base_model", str(other_base)]),
                              "field 'base_weights'", "--allow_other_base")  # fmt: skip
        assert not out.exists()
        extra = ["--n_boot", "10"] if command == "evaluate" else []
        args += ["--base_model", str(other_base), "--allow_other_base", "--overwrite", *extra]
        code, output = cli(capfd, args)
        assert code == 0, output[-3000:]
        assert "--allow_other_base" in output  # said on the console
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["base_model"] == str(other_base) and "other_base" in metrics
    export = ["export", "--run", str(run), "--out", str(tmp_path / "merged")]
    assert_one_line_error(*cli(capfd, [*export, "--base_model", str(other_base)]), "base_weights")
    assert not (tmp_path / "merged").exists()
    code, output = cli(capfd, [*export, "--base_model", str(other_base), "--allow_other_base"])
    assert code == 0 and "--allow_other_base" in output, output[-3000:]


# --- 7. order and ids ------------------------------------------------------------------------
def test_predict_keeps_the_files_order_and_refuses_duplicate_ids(runs, tmp_path, capfd):
    run, notes = runs["mor"], runs["notes"]
    table = pd.read_csv(notes, dtype=str).sample(frac=1, random_state=3)
    shuffled = tmp_path / "shuffled.csv"
    table.to_csv(shuffled, index=False)
    code, output = predict(capfd, run, shuffled, "--out", str(tmp_path / "a"))
    assert code == 0, output[-3000:]
    assert list(pd.read_csv(tmp_path / "a" / "predictions.csv", dtype=str)["id"]) == list(
        table["id"]
    )
    twice = tmp_path / "twice.csv"
    pd.concat([table, table.iloc[[2, 0]]]).to_csv(twice, index=False)
    first, third = table["id"].iloc[0], table["id"].iloc[2]
    line = assert_one_line_error(*predict(capfd, run, twice), str(twice), "field 'id'", "2 ids")
    assert f"'{first}'" in line and f"'{third}'" in line


# --- 9. what ended in a traceback ------------------------------------------------------------
def test_a_run_that_is_not_a_downstream_run_is_one_line(runs, capfd):
    for command in ("predict", "evaluate"):
        data = runs["notes"] if command == "predict" else runs["notes"].parent
        args = [command, "--run", str(runs["pre"]), "--data", str(data)]
        assert_one_line_error(*cli(capfd, args), str(runs["pre"]), "not a downstream run")
    assert not (runs["pre"] / "external").exists()


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.mark.parametrize(
    "device, words",
    [("foo", "unknown device 'foo'"), ("cuda:99", "cuda:99"),
     pytest.param("cuda", "no CUDA device", marks=NO_CUDA)],
)  # fmt: skip
def test_a_device_this_machine_lacks_is_one_line(runs, capfd, device, words):
    assert_one_line_error(*predict(capfd, runs["mor"], runs["notes"], "--device", device),
                          "--device", words)  # fmt: skip


@pytest.mark.parametrize(
    "damaged, words",
    [("checkpoints/best.ckpt", "corrupt or truncated checkpoint"),
     ("checkpoints/last.ckpt", "corrupt or truncated checkpoint"),  # a run without best.ckpt
     ("adapter/clinical/adapter_model.safetensors", "truncated or corrupt adapter file"),
     ("adapter/clinical/adapter_config.json", "not valid JSON")],
)  # fmt: skip
def test_truncated_run_files_are_one_line(runs, tmp_path, capfd, damaged, words):
    run = Path(shutil.copytree(runs["mor"], tmp_path / "run"))
    if damaged.endswith("last.ckpt"):
        (run / "checkpoints" / "best.ckpt").unlink()  # a run that scored its last weights
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "scored_checkpoint": "last"}))
    truncate(run / damaged)
    assert_one_line_error(*predict(capfd, run, runs["notes"]), damaged.split("/")[-1], words)
    export = ["export", "--run", str(run), "--out", str(tmp_path / "merged")]
    assert_one_line_error(*cli(capfd, export), damaged.split("/")[-1], words)
    assert not (tmp_path / "merged").exists()


# --- 4. a killed export ----------------------------------------------------------------------
def test_a_killed_export_leaves_no_finished_looking_folder_and_the_retry_works(
    runs, tmp_path, capfd, monkeypatch
):
    from clinical_peft.inference import export

    out = tmp_path / "merged"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the kill between the weights and the tokenizer

    monkeypatch.setattr(export.shutil, "copytree", killed)
    with pytest.raises(KeyboardInterrupt):
        export.main(["--run", str(runs["pre"]), "--out", str(out)])
    assert not out.exists()
    partial = tmp_path / ".merged.partial"
    assert (partial / "model.safetensors").is_file()  # the weights, where no one takes them
    monkeypatch.undo()
    code, output = cli(capfd, ["export", "--run", str(runs["pre"]), "--out", str(out)])
    assert code == 0, output[-3000:]
    assert "interrupted export" in output and not partial.exists()
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


# --- 10. a model folder's own code is never run ------------------------------------------------
def with_own_code(tiny_model: Path, folder: Path, model_type: str, marker: Path) -> Path:
    """The tiny model, its config.json naming a module of its own (auto_map) that would leave
    `marker` if it ever ran."""
    model = Path(shutil.copytree(tiny_model, folder))
    (model / "own.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((model / "config.json").read_text())
    classes = ("AutoConfig", "AutoModelForCausalLM", "AutoModelForSequenceClassification")
    config.update(model_type=model_type, auto_map={name: f"own.{name}" for name in classes})
    (model / "config.json").write_text(json.dumps(config))
    return model


def test_a_model_folders_own_code_is_never_run(runs, tiny_model, tmp_path, capfd):
    marker = tmp_path / "ran"
    known = with_own_code(tiny_model, tmp_path / "known", "llama", marker)  # transformers' own
    code, output = predict(capfd, runs["mor"], runs["notes"], "--base_model", str(known),
                           "--out", str(tmp_path / "a"))  # fmt: skip
    assert code == 0, output[-3000:]
    unknown = with_own_code(tiny_model, tmp_path / "unknown", "own_llama", marker)
    assert_one_line_error(*predict(capfd, runs["mor"], runs["notes"], "--base_model", str(unknown)),
                          "config.json", "field 'model_type'", "never run")  # fmt: skip
    assert not marker.exists()


def test_a_run_tokenizers_own_code_is_never_run(runs, tmp_path, capfd):
    """A run directory from elsewhere whose tokenizer/ names a class of its own (auto_map)."""
    marker = tmp_path / "ran"
    run = Path(shutil.copytree(runs["mor"], tmp_path / "run"))
    (run / "tokenizer" / "own.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config_file = run / "tokenizer" / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.update(tokenizer_class="OwnTokenizer", auto_map={"AutoTokenizer": ["own.Own", None]})
    config_file.write_text(json.dumps(config))
    line = assert_one_line_error(*predict(capfd, run, runs["notes"]), str(run / "tokenizer"))
    assert "tokenizer" in line and not marker.exists()


def test_a_stage_given_a_base_that_needs_its_own_code_is_one_line(
    runs, tiny_model, tmp_path, capfd
):
    marker = tmp_path / "ran"
    unknown = with_own_code(tiny_model, tmp_path / "unknown", "own_llama", marker)
    run = tmp_path / "run"
    args = ["downstream", "-c", str(ROOT / "experiments/downstream/base.yaml"), "--data.task", "mor",
            "--model.base_model", str(unknown), "--model.clinical", "none",
            "--data.data_dir", str(runs["notes"].parent), "--run_dir", str(run)]  # fmt: skip
    assert_one_line_error(*cli(capfd, args), "config.json", "field 'model_type'", "never run")
    assert not marker.exists() and not run.exists()


def test_no_code_turns_remote_code_or_pickles_on():
    sources = "\n".join(p.read_text() for p in (ROOT / "clinical_peft").rglob("*.py"))
    assert "trust_remote_code=True" not in sources and "weights_only=False" not in sources


def test_every_auto_class_is_told_trust_remote_code():
    """Left unset, transformers asks on a terminal whether to run a folder's own code (and a
    'y' runs it): every Auto*.from_pretrained says trust_remote_code (False unless asked)."""
    unset = []
    for path in (ROOT / "clinical_peft").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id.startswith("Auto")
                    and "trust_remote_code" not in {k.arg for k in node.keywords}):  # fmt: skip
                unset.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not unset
