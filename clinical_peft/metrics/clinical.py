"""What a clinical journal asks of a test split beyond AUROC, in one call shared by a downstream
run, the floor and `evaluate`: calibration figures (for metrics.json), the reliability diagram,
the decision curve (binary tasks), and subgroups when demographics are given. The files take
their names from RunDir; none holds an admission id or a group of fewer than `min_group`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.metrics.calibration import calibration_metrics
from clinical_peft.metrics.decision_curve import decision_curve, plot_decision_curve
from clinical_peft.metrics.recalibration import (
    apply_recalibration,
    fit_recalibration,
    parameter_metrics,
)
from clinical_peft.metrics.reliability import plot_reliability
from clinical_peft.metrics.subgroups import MIN_GROUP, plot_subgroups, subgroup_tables
from clinical_peft.util.atomic import write_atomic


def split_calibration(
    split: str, scores: Any, labels: Any, kind: str, n_boot: int = 1000, seed: int = 0
) -> dict[str, float]:
    """`{split}/brier`, `{split}/ece`, `{split}/calibration_intercept`, `{split}/calibration_slope`,
    each with `_ci_low` / `_ci_high`, and `{split}/ece_bins`."""
    return {
        f"{split}/{k}": v
        for k, v in calibration_metrics(scores, labels, kind, n_boot, seed).items()
    }


def recalibration_metrics(
    method: str, val: tuple[Any, Any], test: tuple[Any, Any], kind: str, n_boot: int = 1000
) -> dict[str, float]:
    """`test_recalibrated/...` (as split_calibration's) after `method` fitted on val (scores,
    labels), and the fitted parameters; {} for `none`."""
    if method == "none":
        return {}
    params = fit_recalibration(method, np.asarray(val[0]), np.asarray(val[1]), kind)
    after = apply_recalibration(params, np.asarray(test[0]), kind)
    return {
        **split_calibration("test_recalibrated", after, np.asarray(test[1]), kind, n_boot),
        **parameter_metrics(params),
    }


def _csv(path: Path, table: pd.DataFrame) -> None:
    write_atomic(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))


def write_clinical_files(
    folder: str | Path,
    ids: list,
    scores: np.ndarray,
    labels: np.ndarray,
    kind: str,
    title: str,
    demographics: pd.DataFrame | None = None,
    min_group: int = MIN_GROUP,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Write the test split's files into `folder`; return {"metrics": counts for metrics.json,
    "decision_curve", "subgroups", "gaps": the tables (None where not made)} for the report."""
    paths = RunDir(folder)
    paths.path.mkdir(parents=True, exist_ok=True)
    result: dict = {"metrics": {}, "decision_curve": None, "subgroups": None, "gaps": None}
    plot_reliability(scores, labels, kind, paths.reliability, title)
    if kind == "binary":
        table = decision_curve(scores, labels)
        _csv(paths.decision_curve, table)
        plot_decision_curve(table, paths.decision_curve_plot, title)
        result["decision_curve"] = table
    if demographics is not None:
        groups, gaps, counts = subgroup_tables(
            ids, scores, labels, kind, demographics, min_group, n_boot, seed
        )
        _csv(paths.subgroups, groups)
        _csv(paths.subgroup_gaps, gaps)
        plot_subgroups(groups, paths.subgroups_plot, title)
        result.update(subgroups=groups, gaps=gaps, metrics=counts)
    return result
