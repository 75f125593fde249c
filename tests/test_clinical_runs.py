"""Calibration, decision curve, subgroups and report.md in the runs: the floor, `make downstream
TASK=mor DEMOGRAPHICS=...` and `make evaluate ... DEMOGRAPHICS=...`; the figures in
metrics.json equal scikit-learn's and an independent logistic fit on the run's own
predictions; no small group, admission id or note text in what is written or printed."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss
from test_calibration import scipy_intercept, sklearn_ece, sklearn_slope
from test_cli import assert_one_line_error, run_cli
from test_predict import run_make

from clinical_peft.data.demographics import ATTRIBUTES, read_demographics
from clinical_peft.studies.floor import run_baseline
from clinical_peft.synthetic import write_demographics, write_outcome_tasks

CALIBRATION = ("brier", "ece", "calibration_intercept", "calibration_slope")
SIZES = {"n_admissions": 400, "seed": 0, "n_diag_codes": 5, "n_proc_codes": 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    write_outcome_tasks(root / "outcomes", **SIZES)
    write_demographics(root / "demographics", **SIZES)
    return root


@pytest.fixture(scope="module")
def mor_run(world, tiny_model):
    """`make downstream TASK=mor DEMOGRAPHICS=...` on the tiny model (3 steps, Platt on val)."""
    run = world / "runs" / "mor"
    args = ("--data.max_length 64 --trainer.max_steps 3 --data.recalibrate platt "
            "--trainer.enable_progress_bar false --trainer.enable_model_summary false")  # fmt: skip
    result = run_make("downstream", TASK="mor", MODEL=tiny_model, DATA=world / "outcomes",
                      OUT=run, CACHE=world / "cache", CLINICAL="none",
                      DEMOGRAPHICS=world / "demographics", ARGS=args)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result


def check_calibration(run, metrics: dict, splits=("val", "test")) -> None:
    """metrics.json's figures against sklearn / an independent fit on predictions/{split}.npz
    (stored as float32: the figures were computed on the float64 scores)."""
    for split in splits:
        saved = np.load(run / "predictions" / f"{split}.npz")
        p, y = saved["scores"], saved["labels"]
        assert metrics[f"{split}/brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-6)
        assert metrics[f"{split}/ece"] == pytest.approx(sklearn_ece(p, y), abs=1e-6)
        assert metrics[f"{split}/calibration_slope"] == pytest.approx(sklearn_slope(p, y), abs=1e-4)
        assert metrics[f"{split}/calibration_intercept"] == pytest.approx(
            scipy_intercept(p, y), abs=1e-5
        )
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


def small_groups(world, ids, min_group: int = 10) -> set[tuple[str, str]]:
    table = read_demographics(world / "demographics").reindex([str(i) for i in ids])
    return {(a, g) for a in ATTRIBUTES for g, n in table[a].value_counts().items() if n < min_group}


def assert_private(world, folder, printed: str, split: str = "test") -> None:
    """No admission id, note text or group under 10 in report.md / the csvs / the output."""
    rows = pd.read_csv(world / "outcomes" / f"MP_IN_adm_{split}.csv", dtype=str)
    small = small_groups(world, rows["id"])
    assert small, "the fixture should hold a group under 10 admissions"
    groups = pd.read_csv(folder / "subgroups.csv")
    assert not small & set(zip(groups["attribute"], groups["group"], strict=True))
    written = {p.name: p.read_text() for p in [folder / "report.md", *folder.glob("sub*.csv"),
                                                folder / "decision_curve.csv"]}  # fmt: skip
    report = written["report.md"]
    for attribute, group in small:
        assert f"| {attribute} | {group} |" not in report
        assert f"{attribute},{group}," not in written["subgroups.csv"]
    for name, text in {**written, "printed": printed}.items():
        for i in rows["id"]:
            assert not re.search(rf"(?<![\d.]){re.escape(i)}(?![\d])", text), (name, "id")
        for note in rows["text"]:
            words = note.split()
            for start in range(0, max(1, len(words) - 6), 25):
                assert " ".join(words[start : start + 6]) not in text, (name, "note text")


@pytest.mark.slow
def test_make_downstream_writes_calibration_equal_to_sklearn_and_subgroups(world, mor_run):
    run, result = mor_run
    saved = json.loads((run / "metrics.json").read_text())
    check_calibration(run, saved)
    assert saved["test_recalibrated/brier"] > 0 and "recalibration/platt_b" in saved
    groups = pd.read_csv(run / "subgroups.csv")
    assert {"attribute", "group", "n", "auroc", "auroc_ci_low", "auroc_ci_high", "brier"} <= set(
        groups
    )
    assert (groups["n"] >= 10).all() and "gender" in set(groups["attribute"])
    for name in ("reliability.png", "decision_curve.png", "subgroups.png", "report.md"):
        assert (run / name).stat().st_size > 0, name
    report = (run / "report.md").read_text()
    assert "### Subgroups" in report and "test after Platt scaling fitted on val" in report
    assert_private(world, run, result.stdout + result.stderr)


@pytest.mark.slow
def test_make_evaluate_with_demographics_writes_subgroups_figures_and_report(
    world, mor_run, tmp_path
):
    run, _ = mor_run
    out = tmp_path / "external"
    result = run_make("evaluate", RUN=run, DATA=world / "outcomes", OUT=out,
                      DEMOGRAPHICS=world / "demographics", ARGS="--n-boot 50 --recalibrate temperature")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((run / "metrics.json").read_text())
    external = json.loads((out / "metrics.json").read_text())
    for key in CALIBRATION:
        assert external[f"test/{key}"] == pytest.approx(saved[f"test/{key}"], abs=1e-4), key
    assert "recalibration/temperature" in external
    groups = pd.read_csv(out / "subgroups.csv")
    assert groups[["attribute", "group", "n"]].equals(
        pd.read_csv(run / "subgroups.csv")[["attribute", "group", "n"]]
    )
    for name in ("reliability.png", "decision_curve.png", "decision_curve.csv", "subgroups.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "External validation" in report and "Largest AUROC gap" in report
    assert "test after temperature scaling" in report
    assert_private(world, out, result.stdout + result.stderr)

    result = run_cli("evaluate", "--run", str(run), "--data", str(world / "outcomes"),
                     "--out", str(tmp_path / "x"), "--demographics", str(tmp_path))  # fmt: skip
    assert_one_line_error(result, "no MIMIC-III ADMISSIONS.csv.gz")
    assert not (tmp_path / "x").exists()  # refused before anything is written
