"""Performance in subgroups of admissions (gender, age band, ethnicity, insurance): AUROC and
calibration per group with bootstrap intervals, and each attribute's largest AUROC gap.

Groups of fewer than `min_group` admissions are never written nor printed (small cells can
identify patients): they are left out of the table, the figure and the gaps, and only their
number is reported; where the ones left out of an attribute add up to fewer than `min_group`,
the next smallest group is left out too (else the split's size minus the others gives it). Admission ids are used for the join in memory and written nowhere.
Plain pandas grouping (fairlearn is not a dependency).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from clinical_peft.data.demographics import ATTRIBUTES
from clinical_peft.metrics.bootstrap import bootstrap_auroc, percentile_ci
from clinical_peft.metrics.calibration import calibration_metrics
from clinical_peft.metrics.outcomes import outcome_metrics

MIN_GROUP = 10
CALIBRATION = ("brier", "calibration_intercept", "calibration_slope")
COLUMNS = ["attribute", "group", "n", "auroc", "auroc_ci_low", "auroc_ci_high"] + [
    f"{k}{s}" for k in CALIBRATION for s in ("", "_ci_low", "_ci_high")
]
GAP_COLUMNS = ["attribute", "higher", "lower", "auroc_gap", "auroc_gap_ci_low", "auroc_gap_ci_high"]


def _ci(values: np.ndarray) -> tuple[float, float]:
    try:
        return percentile_ci(values)
    except ValueError:  # no resample with both classes
        return math.nan, math.nan


def _auroc_draws(scores: np.ndarray, labels: np.ndarray, kind: str, n_boot: int, seed: int):
    return bootstrap_auroc(torch.from_numpy(scores), torch.from_numpy(labels), kind, n_boot, seed)


def group_keys(ids: list, demographics: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The demographics row of each admission (in `ids` order; unmatched ones dropped: their
    positions are the index) and how many admissions had none."""
    keys = pd.Index([str(i).strip() for i in ids])
    found = keys.isin(demographics.index)
    table = demographics.reindex(keys[found])
    table.index = np.flatnonzero(found)
    return table, int((~found).sum())


def shown_groups(sizes: dict, min_group: int) -> set:
    """The groups that may be written: at least `min_group` admissions each, and so many left
    out together (0 or at least `min_group`) that the test split's size minus the groups
    written cannot give a small group's size either (the next smallest is left out too)."""
    shown = {g for g, n in sizes.items() if n >= min_group}
    while shown:
        hidden = sum(n for g, n in sizes.items() if g not in shown)
        if hidden == 0 or hidden >= min_group:
            break
        shown.remove(min(shown, key=lambda g: (sizes[g], str(g))))
    return shown


def subgroup_tables(
    ids: list,
    scores: np.ndarray,
    labels: np.ndarray,
    kind: str,
    demographics: pd.DataFrame,
    min_group: int = MIN_GROUP,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """(groups table, gaps table, counts): one row per group of at least `min_group`
    admissions; per attribute the gap between its best and worst group's AUROC, with a
    bootstrap interval (the two groups resampled independently)."""
    table, unmatched = group_keys(ids, demographics)
    n_labels = 1 if kind == "binary" else scores.shape[1]
    rows, gaps, suppressed = [], [], 0
    for attribute in ATTRIBUTES:
        kept = []
        members_of = table.groupby(attribute, sort=True).groups
        shown = shown_groups({g: len(m) for g, m in members_of.items()}, min_group)
        suppressed += len(members_of) - len(shown)
        for group, members in members_of.items():
            index = np.asarray(members, dtype=np.int64)
            if group not in shown:
                continue
            s, y = scores[index], labels[index]
            auroc = outcome_metrics(s, y, kind, n_labels)["auroc"]
            draws = _auroc_draws(s, y, kind, n_boot, seed)
            cal = calibration_metrics(s, y, kind, n_boot, seed)
            row = {"attribute": attribute, "group": str(group), "n": len(index), "auroc": auroc}
            row["auroc_ci_low"], row["auroc_ci_high"] = _ci(draws)
            row.update({k: cal[k] for k in COLUMNS[6:]})
            rows.append(row)
            kept.append((auroc, str(group), s, y))
        defined = sorted((k for k in kept if math.isfinite(k[0])), key=lambda k: k[0])
        if len(defined) >= 2:
            (low, low_name, s_lo, y_lo), (high, high_name, s_hi, y_hi) = defined[0], defined[-1]
            a = _auroc_draws(s_hi, y_hi, kind, n_boot, seed)
            b = _auroc_draws(s_lo, y_lo, kind, n_boot, seed + 1)  # independent of a's draws
            n = min(len(a), len(b))
            ci = _ci(a[:n] - b[:n])
            gaps.append(dict(zip(GAP_COLUMNS, [attribute, high_name, low_name, high - low, *ci])))
    counts = {"subgroups/unmatched_admissions": float(unmatched),
              "subgroups/groups_suppressed": float(suppressed), "subgroups/min_group": float(min_group)}  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(gaps, columns=GAP_COLUMNS), counts


def plot_subgroups(groups: pd.DataFrame, path: Path, title: str) -> None:
    """Per attribute: each group's AUROC and Brier score with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attributes = list(dict.fromkeys(groups["attribute"])) or ["(no group large enough)"]
    fig, axes = plt.subplots(len(attributes), 2, figsize=(8, 1.2 + 0.35 * len(groups) + len(attributes)),
                             squeeze=False)  # fmt: skip
    for row, attribute in zip(axes, attributes, strict=True):
        part = groups[groups["attribute"] == attribute]
        for ax, metric in zip(row, ("auroc", "brier"), strict=True):
            value = part[metric].to_numpy(dtype=float)
            low = value - part[f"{metric}_ci_low"].to_numpy(dtype=float)
            high = part[f"{metric}_ci_high"].to_numpy(dtype=float) - value
            where = np.arange(len(part))
            ax.errorbar(value, where, xerr=np.nan_to_num([low, high]), fmt="o", capsize=3)
            ax.set_yticks(
                where, [f"{g} (n={n})" for g, n in zip(part["group"], part["n"], strict=True)]
            )
            ax.set_title(f"{attribute}: {metric}", fontsize=9)
            ax.invert_yaxis()
    fig.suptitle(f"{title}: subgroups (95 % bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
