"""`predict` / `evaluate`: a downstream run, rebuilt from its directory alone, reproduces its own
test scores and metrics when pointed at its own test file."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from test_cli import assert_one_line_error, run_cli

from clinical_peft.cli.stage import run_stage
from clinical_peft.synthetic import write_outcome_tasks

pytestmark = pytest.mark.slow
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def run_make(target: str, **variables) -> subprocess.CompletedProcess:
    args = [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(["make", "--no-print-directory", target, *args], capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def run_and_data(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data, run = root / "outcomes", root / "diag"
    write_outcome_tasks(data, n_admissions=80, seed=0, n_diag_codes=5, n_proc_codes=5)
    run_stage("downstream", [
        "-c", "experiments/downstream/base.yaml", "--data.task", "diag",
        "--trainer", "experiments/trainer/cpu.yaml",
        "--model.base_model", str(tiny_model), "--model.clinical", "none",
        "--data.data_dir", str(data), "--data.cache_dir", str(root / "cache"),
        "--data.max_length", "64", "--data.eval_batch_size", "8", "--trainer.max_steps", "3",
        "--model.optim.lr", "0.05", "--run_dir", str(run), *QUIET,
    ])  # fmt: skip
    return run, data


def test_evaluate_on_the_runs_own_test_file_gives_its_metrics(run_and_data, tmp_path):
    run, data = run_and_data
    out = tmp_path / "external"
    result = run_make("evaluate", RUN=run, DATA=data, OUT=out, ARGS="--n-boot 50")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = json.loads((run / "metrics.json").read_text())
    got = json.loads((out / "metrics.json").read_text())
    for key in ("test/auroc", "test/auroc_micro", "test/auprc_macro"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    assert got["test/auroc_ci_low"] <= got["test/auroc"] <= got["test/auroc_ci_high"]
    own, new = np.load(run / "predictions" / "test.npz"), np.load(out / "predictions.npz")
    np.testing.assert_array_equal(new["labels"], own["labels"])
    np.testing.assert_allclose(new["scores"], own["scores"], atol=1e-6)


def test_predict_writes_the_runs_test_scores_by_id_and_label(run_and_data, tmp_path):
    run, data = run_and_data
    test_csv = data / "DIA_GROUPS_3_DIGITS_adm_test.csv"  # id, text and a label column (ignored)
    shuffled = tmp_path / "notes.csv"
    pd.read_csv(test_csv, dtype=str).sample(frac=1, random_state=0).to_csv(shuffled, index=False)
    result = run_make("predict", RUN=run, DATA=shuffled, OUT=tmp_path)  # the README's command
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in ("Loading weights", "Warning"):  # the stages' known noise is quiet here too
        assert noise not in result.stderr, result.stderr[-2000:]
    got = pd.read_csv(tmp_path / "predictions.csv", dtype={"id": str}).set_index("id")
    labels = json.loads((run / "labels.json").read_text())["label_names"]
    assert list(got.columns) == labels
    own = np.load(run / "predictions" / "test.npz")
    expected = pd.DataFrame(own["scores"], index=own["ids"].astype(str), columns=labels)
    assert sorted(got.index) == sorted(expected.index)
    np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy(), atol=1e-5)


def test_notes_without_a_text_column_are_refused_in_one_line(run_and_data, tmp_path):
    run, _ = run_and_data
    bad = tmp_path / "notes.csv"
    bad.write_text("id,note\n1,chest pain\n")
    result = run_cli("predict", "--run", str(run), "--data", str(bad))
    assert_one_line_error(result, str(bad), "missing column 'text'")
    assert not (run / "external").exists()


def test_counts_below_one_are_refused_in_one_line(run_and_data, capfd):
    """`--n-boot 0` ended in torch's traceback; `--batch-size 0` silently meant the default."""
    from test_hardening import assert_one_line_error as one_line_error
    from test_hardening import cli

    run, data = run_and_data
    for command, flag in [("evaluate", "--n-boot"), ("predict", "--batch-size")]:
        source = data if command == "evaluate" else data / "MP_IN_adm_test.csv"
        args = [command, "--run", str(run), "--data", str(source), flag, "0"]
        one_line_error(*cli(capfd, args), f"{flag}: at least 1 (got 0)")
    assert not (run / "external").exists()
