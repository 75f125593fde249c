"""Calibration in a grid's report: per row and task, each seed's Brier score, ECE, calibration
intercept and slope on its test predictions (with percentile bootstrap intervals over test
examples, as downstream runs write them) and their mean over seeds. A run without
predictions/test.npz contributes its metrics.json figures, without an interval."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.metrics.calibration import FIGURES, calibration_metrics

NAMES = {"brier": "Brier", "ece": "ECE", "calibration_intercept": "intercept",
         "calibration_slope": "slope"}  # fmt: skip


def _from_metrics(run_dir) -> dict[str, float]:
    path = RunDir(run_dir).metrics
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    return {k: float(metrics.get(f"test/{k}", math.nan)) for k in FIGURES}


def add_calibration(rows: list[dict], runs: dict[tuple[str, str], list], n_boot: int) -> None:
    """row["calibration"][figure] = [(seed, value, low, high), ...] and row[f"{figure}_mean"].
    `runs[(row, task)]`: the row's (seed, run directory) pairs."""
    for row in rows:
        seeds: dict[str, list] = {k: [] for k in FIGURES}
        for seed, run_dir in runs.get((row["row"], row["task"]), []):
            pred = row["preds"].get(seed)
            if pred is None:
                figures = {k: (v, math.nan, math.nan) for k, v in _from_metrics(run_dir).items()}
            else:
                m = calibration_metrics(pred["scores"], pred["labels"], pred["kind"], n_boot)
                figures = {k: (m[k], m[f"{k}_ci_low"], m[f"{k}_ci_high"]) for k in FIGURES}
            if not any(math.isfinite(v[0]) for v in figures.values()):
                continue  # not an outcome run (e.g. perplexity): no calibration
            for key, value in figures.items():
                seeds[key].append((seed, *value))
        row["calibration"] = seeds
        for key, values in seeds.items():
            finite = [v for _, v, _, _ in values if math.isfinite(v)]
            row[f"{key}_mean"] = float(np.mean(finite)) if finite else math.nan


def _values(key: str, part: int) -> Callable[[dict], str]:
    return lambda r: ";".join(repr(v[part]) for v in r.get("calibration", {}).get(key, []))


#: report.csv's calibration columns: the mean over seeds, then per seed value and interval
COLUMNS: list[tuple[str, Callable[[dict], object]]] = [
    (name, fn)
    for key in FIGURES
    for name, fn in [
        (f"{key}_mean", lambda r, key=key: r.get(f"{key}_mean", "")),
        (f"{key}_values", _values(key, 1)),
        (f"{key}_boot_low", _values(key, 2)),
        (f"{key}_boot_high", _values(key, 3)),
    ]
]


def _cell(row: dict, key: str) -> str:
    values = row.get("calibration", {}).get(key, [])
    if not values:
        return "-"
    mean = row[f"{key}_mean"]
    seeds = ", ".join(
        f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) else "")
        for _, v, lo, hi in values
    )
    return f"{mean:.3f} ({seeds})" if len(values) > 1 else seeds


def table(rows: list[dict], n_boot: int) -> list[str]:
    """report.md's calibration section."""
    header = ["row", "task", *NAMES.values()]
    lines = ["## Calibration (test split)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    for row in rows:
        if any(row["calibration"].values()):
            cells = [row["row"], row["task"] or "-", *(_cell(row, k) for k in FIGURES)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Mean over seeds (each seed: value [95 % percentile bootstrap interval over "
              f"test examples, {n_boot} resamples]). Brier: lower is better; ECE over 10 "
              "equal-mass bins; intercept (ideal 0, slope held at 1) and slope (ideal 1) of a "
              "logistic recalibration of the logit; multi-class / multi-label: means over "
              "classes / labels (see metrics/calibration.py)."]  # fmt: skip
    return lines
