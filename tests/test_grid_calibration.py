"""The grid report's calibration section: each seed's figures equal scikit-learn's on its
predictions, the mean over seeds, and a run without predictions read from its metrics.json."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from test_grid_report import binary_run, fake_grid, report


def test_grid_report_has_calibration_per_seed_and_mean(tmp_path):
    ref = {s: binary_run(s, 1.0) for s in range(3)}
    runs = {("ref", s): p for s, p in ref.items()} | {("floor", 0): None}
    spec = fake_grid(tmp_path, {"ref": 3, "floor": 1}, runs)
    floor_metrics = tmp_path / "grids" / "fake" / "floor-t" / "seed0" / "metrics.json"
    floor_metrics.write_text(json.dumps({"test/auroc": 0.7, "test/brier": 0.21}))
    rows, md = report(spec)
    briers = [brier_score_loss(p["labels"], p["scores"]) for p in ref.values()]
    values = [float(v) for v in rows["ref"]["brier_values"].split(";")]
    np.testing.assert_allclose(values, briers, atol=1e-12)
    assert float(rows["ref"]["brier_mean"]) == pytest.approx(np.mean(briers))
    lows = [float(v) for v in rows["ref"]["brier_boot_low"].split(";")]
    highs = [float(v) for v in rows["ref"]["brier_boot_high"].split(";")]
    assert all(lo < v < hi for lo, v, hi in zip(lows, values, highs, strict=True))
    assert float(rows["floor"]["brier_mean"]) == pytest.approx(0.21)  # from metrics.json
    assert "## Calibration (test split)" in md
    line = [x for x in md.splitlines() if x.startswith("| ref | t |")][-1]  # the calibration table
    assert f"{np.mean(briers):.3f} (" in line
    with (tmp_path / "grids" / "fake" / "report.csv").open() as f:
        assert "calibration_slope_mean" in next(csv.reader(f))
