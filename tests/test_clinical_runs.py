"""Calibration, decision curve, subgroups and report.md in the runs: the floor, a downstream run
(`--data.demographics`) and `evaluate --demographics`; figures equal scikit-learn's on the
run's own predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss
from test_cli import assert_one_line_error, run_cli

from clinical_peft.cli.stage import run_stage
from clinical_peft.studies.floor import run_baseline
from clinical_peft.synthetic import write_demographics, write_outcome_tasks

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
CALIBRATION = ("brier", "ece", "calibration_intercept", "calibration_slope")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    write_outcome_tasks(root / "outcomes", n_admissions=240, seed=0, n_diag_codes=5, n_proc_codes=5)
    write_demographics(
        root / "demographics", n_admissions=240, seed=0, n_diag_codes=5, n_proc_codes=5
    )
    return root


def check_calibration(run, metrics: dict, splits=("val", "test")) -> None:
    for split in splits:
        saved = np.load(run / "predictions" / f"{split}.npz")
        brier = brier_score_loss(saved["labels"], saved["scores"])
        assert metrics[f"{split}/brier"] == pytest.approx(brier, abs=1e-6)
        for key in CALIBRATION:
            low, high = metrics[f"{split}/{key}_ci_low"], metrics[f"{split}/{key}_ci_high"]
            assert low <= metrics[f"{split}/{key}"] <= high, (split, key)
        assert metrics[f"{split}/ece_bins"] == 10


def test_the_floor_writes_calibration_a_decision_curve_and_a_report(world, tmp_path):
    run = tmp_path / "floor"
    metrics = run_baseline("mor", world / "outcomes", run, (1.0,))
    check_calibration(run, json.loads((run / "metrics.json").read_text()))
    assert metrics["test/brier"] > 0
    curve = pd.read_csv(run / "decision_curve.csv")
    assert len(curve) == 99 and curve["net_benefit_treat_none"].eq(0).all()
    report = (run / "report.md").read_text()
    for part in ("## Outcome", "in-hospital mortality", "| test |", "To fill in", "Decision curve"):
        assert part in report, part


@pytest.mark.slow
def test_downstream_run_and_evaluate_write_the_clinical_evaluation(world, tiny_model, tmp_path):
    run = tmp_path / "mor"
    metrics = run_stage("downstream", [
        "-c", "experiments/downstream/base.yaml", "--data.task", "mor",
        "--trainer", "experiments/trainer/cpu.yaml",
        "--model.base_model", str(tiny_model), "--model.clinical", "none",
        "--data.data_dir", str(world / "outcomes"), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.demographics", str(world / "demographics"),
        "--data.max_length", "64", "--trainer.max_steps", "3", "--run_dir", str(run), *QUIET,
    ])  # fmt: skip
    saved = json.loads((run / "metrics.json").read_text())
    check_calibration(run, saved)
    assert saved["test/brier"] == pytest.approx(metrics["test/brier"])
    groups = pd.read_csv(run / "subgroups.csv")
    assert {"attribute", "group", "n", "auroc", "auroc_ci_low", "auroc_ci_high", "brier"} <= set(
        groups
    )
    assert (groups["n"] >= 10).all() and "gender" in set(groups["attribute"])
    for name in ("reliability.png", "decision_curve.png", "subgroups.png", "report.md"):
        assert (run / name).is_file(), name
    assert "Subgroups" in (run / "report.md").read_text()

    out = tmp_path / "external"
    result = run_cli("evaluate", "--run", str(run), "--data", str(world / "outcomes"),
                     "--out", str(out), "--n-boot", "50", "--demographics", str(world / "demographics"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    external = json.loads((out / "metrics.json").read_text())
    assert external["test/brier"] == pytest.approx(saved["test/brier"], abs=1e-6)
    assert external["test/calibration_slope"] == pytest.approx(
        saved["test/calibration_slope"], abs=1e-3
    )
    assert pd.read_csv(out / "subgroups.csv")[["attribute", "group", "n"]].equals(
        groups[["attribute", "group", "n"]]
    )
    report = (out / "report.md").read_text()
    assert "External validation" in report and "Largest AUROC gap" in report

    result = run_cli("evaluate", "--run", str(run), "--data", str(world / "outcomes"),
                     "--out", str(tmp_path / "x"), "--demographics", str(tmp_path))  # fmt: skip
    assert_one_line_error(result, "no MIMIC-III ADMISSIONS.csv.gz")
    assert not (tmp_path / "x").exists()  # refused before anything is written
