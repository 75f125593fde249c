"""Hostile input and run lifecycle through the CLI: finished runs are kept, signals leave a
resumable checkpoint and a non-zero exit, errors are one line and never echo patient text."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from clinical_peft.cli.commands import main
from clinical_peft.synthetic import write_instruction_tasks

ROOT = Path(__file__).parent.parent
SCRIPTS = ROOT / "tests" / "scripts"
CONSTANT_LR = ["--model.optim.schedule", "constant", "--model.optim.warmup_steps", "0"]
NOTE = "ZEBRA-NOTE Mrs Jane Roe, 71, admitted with chest pain radiating to the left arm."


def pretrain(notes_dir, model, run, *extra: str) -> list[str]:
    return [
        "pretrain", "-c", str(ROOT / "experiments/pretrain/lora.yaml"),
        "--model.base_model", str(model), "--data.data_dir", str(notes_dir),
        "--data.cache_dir", str(Path(run).parent / "cache"), "--run_dir", str(run),
        "--data.block_size", "32", "--data.max_notes", "30", "--trainer.max_steps", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        *extra,
    ]  # fmt: skip


def cli(capfd, args: list[str]) -> tuple[int, str]:
    """main() in this process (a traceback fails the test); exit code and all that it printed."""
    code = main(args)
    out, err = capfd.readouterr()
    return code, out + err


def assert_one_line_error(code: int, output: str, *words: str) -> str:
    assert code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(notes_dir, tiny_model, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(pretrain(notes_dir, tiny_model, run)) == 0
    assert (run / "metrics.json").is_file()
    return run


@pytest.fixture(scope="module")
def sft_checkpoint(tiny_model, tmp_path_factory) -> Path:
    """last.ckpt of a one-step SFT run: a checkpoint of another stage than pretraining."""
    folder = tmp_path_factory.mktemp("sft")
    write_instruction_tasks(folder / "data", n_per_task=20, seed=0)
    run = folder / "run"
    args = [
        "sft", "-c", str(ROOT / "experiments/sft/base.yaml"), "--data.task", "triage",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(folder / "data"),
        "--data.cache_dir", str(folder / "cache"), "--run_dir", str(run),
        "--trainer.max_steps", "1", "--model.evaluate_base", "false",
        "--data.max_eval_examples", "2", "--model.max_new_tokens", "2",
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    assert main(args) == 0
    return run / "checkpoints" / "last.ckpt"


# --- 1. finished output is kept ------------------------------------------------------------
@pytest.mark.slow
def test_a_finished_run_is_refused_unless_overwrite(finished_run, notes_dir, tiny_model, capfd):
    run = finished_run.parent / "copy"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    line = assert_one_line_error(
        *cli(capfd, pretrain(notes_dir, tiny_model, run)), str(run), "--overwrite"
    )
    assert "OVERWRITE=1" in line
    assert snapshot(run) == before

    stale = run / "predictions" / "old.txt"  # a run's own output folder: cleared
    stale.parent.mkdir()
    stale.write_text("x")
    mine = run / "notes.txt"  # not a run's output: left alone
    mine.write_text("keep")
    code, output = cli(capfd, pretrain(notes_dir, tiny_model, run, "--overwrite"))
    assert code == 0, output[-3000:]
    assert (run / "metrics.json").read_bytes() != before[run / "metrics.json"]
    assert not stale.exists() and mine.read_text() == "keep"


@pytest.mark.slow
def test_bad_checkpoints_are_refused_before_a_byte_is_written(
    finished_run, sft_checkpoint, notes_dir, tiny_model, tmp_path, capfd
):
    run = shutil.copytree(finished_run, tmp_path / "run")
    foreign = run / "checkpoints" / "sft.ckpt"  # inside the run: the folder rule lets it pass
    shutil.copy(sft_checkpoint, foreign)
    untagged = run / "checkpoints" / "old-sft.ckpt"  # as written before checkpoints named a stage
    checkpoint = torch.load(sft_checkpoint, weights_only=True)
    checkpoint.pop("stage", None)
    torch.save(checkpoint, untagged)
    before = snapshot(run)
    cases = [
        (run / "checkpoints", ["is a folder"]),
        (foreign, ["sft.ckpt", "sft"]),
        (untagged, ["old-sft.ckpt", "state_dict"]),
        (run / "checkpoints" / "missing.ckpt", ["missing.ckpt", "not found"]),
    ]
    for ckpt, words in cases:
        for extra in ([], ["--overwrite"]):
            args = pretrain(notes_dir, tiny_model, run, "--ckpt_path", str(ckpt), *extra)
            assert_one_line_error(*cli(capfd, args), *words)
            assert snapshot(run) == before, (ckpt, extra)


@pytest.mark.slow
def test_a_run_directory_that_is_a_file_is_refused(notes_dir, tiny_model, tmp_path, capfd):
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert_one_line_error(*cli(capfd, pretrain(notes_dir, tiny_model, out)), str(out), "a file")
    assert out.read_text() == "not a folder"


def test_duplicate_note_ids_are_counted_on_the_console_and_in_metrics(
    notes_dir, tiny_model, tmp_path, capfd
):
    data = tmp_path / "notes"
    data.mkdir()
    shutil.copy(notes_dir / "radiology.csv.gz", data / "radiology.csv.gz")
    table = pd.read_csv(notes_dir / "discharge.csv.gz", dtype=str, keep_default_na=False)
    table = pd.concat([table.iloc[:3], table])  # the first three notes twice, first of all
    table.to_csv(data / "discharge.csv.gz", index=False)
    run = tmp_path / "run"
    code, output = cli(capfd, pretrain(data, tiny_model, run))
    assert code == 0, output[-3000:]
    assert "'data/duplicate_note_ids': 3.0" in output  # the summary line
    assert json.loads((run / "metrics.json").read_text())["data/duplicate_note_ids"] == 3


# --- 2. signals -----------------------------------------------------------------------------
def signal_at(step: int, signum: int) -> list[str]:
    callback = {
        "class_path": "test_only.SignalAtStep",
        "init_args": {"step": step, "signum": signum},
    }
    return ["--trainer.callbacks", json.dumps([callback])]


def metric_rows(run: Path) -> list[tuple]:
    """(step, metric) of every value in metrics.csv, timing columns aside."""
    table = pd.read_csv(run / "metrics.csv")
    return sorted(
        (int(row["step"]), key)
        for _, row in table.iterrows()
        for key in table.columns
        if key not in ("step", "epoch") and not pd.isna(row[key])
    )


@pytest.mark.slow
def test_sigterm_writes_a_resumable_checkpoint_and_exits_non_zero(
    notes_dir, tiny_model, tmp_path, capfd
):
    steps = ["--trainer.max_steps", "8", "--data.max_notes", "60", *CONSTANT_LR]
    straight = tmp_path / "straight"
    assert main(pretrain(notes_dir, tiny_model, straight, *steps)) == 0

    # a process of its own, as a scheduler sees it (a warm fork: test_cli imports this module)
    from test_cli import run_cli

    run = tmp_path / "preempted"
    env = {"PYTHONPATH": f"{SCRIPTS}{os.pathsep}{ROOT}"}
    args = pretrain(notes_dir, tiny_model, run, *steps, *signal_at(5, signal.SIGTERM))
    result = run_cli(*args, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = run / "checkpoints" / "last.ckpt"
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "SIGTERM" in line and f"--ckpt_path {last}" in line and f"CKPT={last}" in line
    assert torch.load(last, weights_only=True)["global_step"] == 5
    assert not (run / "metrics.json").exists()

    resumed = main(pretrain(notes_dir, tiny_model, run, *steps, "--ckpt_path", str(last)))
    assert resumed == 0
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(last, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6

    # 5. the history survives the interruption
    straight_metrics = json.loads((straight / "metrics.json").read_text())
    resumed_metrics = json.loads((run / "metrics.json").read_text())
    assert straight_metrics.keys() == resumed_metrics.keys()
    for key in ("val/ppl_before", "val/ppl", "train/tokens"):
        assert resumed_metrics[key] == pytest.approx(straight_metrics[key], rel=1e-5), key
    assert metric_rows(run) == metric_rows(straight)


@pytest.mark.slow
def test_ctrl_c_stops_at_a_step_with_a_checkpoint(
    notes_dir, tiny_model, tmp_path, capfd, monkeypatch
):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    run = tmp_path / "run"
    args = pretrain(notes_dir, tiny_model, run, "--trainer.max_steps", "6")
    handler = signal.getsignal(signal.SIGINT)  # Python's default; ignored in a pytest-xdist worker
    code, output = cli(capfd, args + signal_at(3, signal.SIGINT))
    assert code == 128 + signal.SIGINT, output[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    lines = [x for x in output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "SIGINT" in lines[0] and f"--ckpt_path {last}" in lines[0]
    assert torch.load(last, weights_only=True)["global_step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored
    assert main(args + ["--ckpt_path", str(last)]) == 0


# --- 3. patient text never appears in errors ------------------------------------------------
def downstream(tiny_model, data: Path, tmp_path: Path) -> list[str]:
    return [
        "downstream", "-c", str(ROOT / "experiments/downstream/base.yaml"), "--data.task", "mor",
        "--model.base_model", str(tiny_model), "--model.clinical", "none",
        "--data.data_dir", str(data), "--data.cache_dir", str(tmp_path / "cache"),
        "--run_dir", str(tmp_path / "run"),
    ]  # fmt: skip


def rewrite_train(folder: Path, header: list[str] | None, rows: list[list[str]], sep=",") -> None:
    with (folder / "MP_IN_adm_train.csv").open("w", newline="") as f:
        writer = csv.writer(f, delimiter=sep, quoting=csv.QUOTE_ALL)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


@pytest.mark.parametrize("case", ["no_header", "text_in_label", "semicolons"])
def test_errors_never_echo_a_note(tiny_model, mortality, tmp_path, capfd, case):
    header = ["id", "text", "hospital_expire_flag"]
    rows = [["1001", NOTE, "0"], ["1002", NOTE + " Second.", "1"]]
    if case == "no_header":
        rewrite_train(mortality, None, rows)
    elif case == "text_in_label":
        rewrite_train(mortality, header, [["1001", "short", "0"], ["1002", "1", NOTE]])
    else:
        rewrite_train(mortality, header, rows, sep=";")
    code, output = cli(capfd, downstream(tiny_model, mortality, tmp_path))
    line = assert_one_line_error(code, output, "MP_IN_adm_train.csv")
    assert "ZEBRA" not in output and "Jane" not in output
    if case == "text_in_label":
        assert "hospital_expire_flag" in line and "row id 1002" in line
    if case == "semicolons":
        assert "';'" in line and "','" in line
    assert not (tmp_path / "run").exists()


# --- 4. one line, not a traceback -----------------------------------------------------------
@pytest.mark.parametrize(
    "option, value",
    [("block_size", "0"), ("val_fraction", "0"), ("val_fraction", "1"), ("max_notes", "0")],
)
def test_unusable_data_options_name_the_option(
    notes_dir, tiny_model, tmp_path, capfd, option, value
):
    args = pretrain(notes_dir, tiny_model, tmp_path / "run", f"--data.{option}", value)
    line = assert_one_line_error(*cli(capfd, args), f"data.{option}")
    assert str(notes_dir) not in line


def test_a_kernel_that_cannot_train_on_cpu_is_refused_before_the_run(
    notes_dir, tiny_model, tmp_path, capfd
):
    """FlexAttention has no CPU backward: one line naming the option, before any evaluation
    or step (it was a NotImplementedError traceback from inside the first backward)."""
    run = tmp_path / "run"
    args = pretrain(notes_dir, tiny_model, run, "--model.attn_implementation", "flex_attention")
    assert_one_line_error(*cli(capfd, args), "model.attn_implementation", "flex_attention", "sdpa")
    assert not (run / "metrics.json").exists() and not (run / "checkpoints").exists()


def broken_model(tiny_model: Path, tmp_path: Path, how: str) -> Path:
    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    weights = model / "model.safetensors"
    if how == "config":
        (model / "config.json").write_text('{"model_type": "llama", ')
    elif how == "no_weights":
        weights.unlink()
    elif how == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "no_tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (model / name).unlink()
    return model


@pytest.mark.parametrize(
    "how, words",
    [
        ("config", ["config.json", "JSON"]),
        ("no_weights", ["weights"]),
        ("truncated_weights", ["model.safetensors", "truncated"]),
        ("no_tokenizer", ["tokenizer"]),
    ],
)
def test_broken_model_folders_give_one_line(notes_dir, tiny_model, tmp_path, capfd, how, words):
    model = broken_model(tiny_model, tmp_path, how)
    args = pretrain(notes_dir, model, tmp_path / "run")
    assert_one_line_error(*cli(capfd, args), *words)
    assert not (tmp_path / "run").exists()


def test_a_folder_or_a_symlink_loop_where_a_file_belongs(notes_dir, tiny_model, tmp_path, capfd):
    data = tmp_path / "notes"
    data.mkdir()
    (data / "discharge.csv.gz").mkdir()
    shutil.copy(notes_dir / "radiology.csv.gz", data / "radiology.csv.gz")
    args = pretrain(data, tiny_model, tmp_path / "run")
    assert_one_line_error(*cli(capfd, args), "discharge.csv.gz", "is a folder")

    (data / "discharge.csv.gz").rmdir()
    (data / "discharge.csv.gz").symlink_to(data / "loop.csv.gz")
    (data / "loop.csv.gz").symlink_to(data / "discharge.csv.gz")
    assert_one_line_error(*cli(capfd, args), "discharge.csv.gz", "symbolic link loop")


def test_a_checkpoint_folder_is_refused_without_deepspeed(notes_dir, tiny_model, tmp_path, capfd):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    args = pretrain(notes_dir, tiny_model, tmp_path / "run", "--ckpt_path", str(folder))
    assert_one_line_error(*cli(capfd, args), str(folder), "is a folder")
    assert not (tmp_path / "run").exists()


def test_jsonl_that_is_not_utf8_names_the_line(tiny_model, tmp_path, capfd):
    data = tmp_path / "data"
    write_instruction_tasks(data, n_per_task=20, seed=0)
    path = data / "triage" / "sft_train.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"prompt": "caf\xe9", "completion": " x"}\n'  # Latin-1, not UTF-8
    path.write_bytes(b"".join(lines))
    args = [
        "sft", "-c", str(ROOT / "experiments/sft/base.yaml"), "--data.task", "triage",
        "--model.base_model", str(tiny_model), "--data.data_dir", str(data),
        "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    assert_one_line_error(*cli(capfd, args), "sft_train.jsonl:3", "UTF-8")


@pytest.mark.parametrize("target", ["pretrain", "sft", "dpo", "downstream"])
def test_make_passes_overwrite_only_when_asked(target):
    def command(*variables: str) -> str:
        result = subprocess.run(
            ["make", "-n", target, *variables], capture_output=True, text=True, cwd=ROOT
        )
        commands = result.stdout.replace("\\\n", " ").splitlines()
        lines = [line for line in commands if f"clinical_peft {target} " in line]
        assert len(lines) == 1, result.stdout + result.stderr
        return lines[0]

    assert "--overwrite" in command("OVERWRITE=1")
    assert "--overwrite" not in command()
