"""A grid report's numbers, recomputed from its run directories: per cell and per comparison.

Per cell: each seed's metric, their mean with a 95 % t-interval over seeds (bounds of a metric
in [0, 1] clipped to it, flagged). Where the metric is the headline test AUROC and a run wrote
predictions/test.npz: the AUROC recomputed from them, with a bootstrap 95 % interval over test
examples (the model fixed; BCa unless ``ci="percentile"``). A run whose scores hold a NaN gets
NaN, and so does its cell's mean, with a note; nothing raises.

Per comparison (a row against the reference row, one task): seeds are paired by seed number (a
row that runs once, like a deterministic floor, against every seed of the other), so a failed
seed drops its pair instead of shifting the others, and each pair weighs the same. The paired
difference is the mean over pairs, with a bootstrap interval over test examples on shared
resamples (the models fixed), a two-sided p (binary: DeLong on the mean difference; otherwise
normal with the bootstrap standard error) Holm-adjusted over the table, and DeLong's p per seed
pair (binary). A comparison that cannot be made says why.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.metrics.bootstrap import Interval, bootstrap_draws, draws_of, interval
from clinical_peft.metrics.delong import SmallSampleWarning, delong_test
from clinical_peft.metrics.jackknife import leave_one_out_auroc
from clinical_peft.metrics.outcomes import outcome_metrics, weighted_auroc
from clinical_peft.metrics.predictions import read_ids
from clinical_peft.studies.spec import Cell, Spec, read_status

AUROC = "test/auroc"
#: metrics that live in [0, 1] (by the name after the split, "_before" and the like allowed)
UNIT_METRICS = ("auroc", "auprc", "accuracy", "f1", "rouge", "brier", "ece", "precision", "recall")


def kind_of(scores: np.ndarray, labels: np.ndarray) -> str:
    if labels.ndim == 2:
        return "multilabel"
    return "multiclass" if scores.ndim == 2 else "binary"


def load_predictions(run_dir: Path) -> dict | None:
    """predictions/test.npz sorted by example id (so runs pair example by example)."""
    path = RunDir(run_dir).prediction_file("test")
    if not path.is_file():
        return None
    data = np.load(path)
    ids = read_ids(data["ids"])  # int64, or the ids' text; older files: floats
    order = np.argsort(ids, kind="stable")
    scores, labels = data["scores"][order], data["labels"][order]
    return {"ids": ids[order], "scores": scores, "labels": labels,
            "kind": kind_of(scores, labels), "finite": bool(np.isfinite(scores).all())}  # fmt: skip


def headline_auroc(pred: dict) -> float:
    num = pred["scores"].shape[1] if pred["scores"].ndim == 2 else 1
    return outcome_metrics(pred["scores"], pred["labels"], pred["kind"], num)["auroc"]


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over seeds (NaN bounds with fewer than two seeds)."""
    x = np.asarray(values, dtype=np.float64)
    if not len(x):
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def in_unit_interval(metric: str | None) -> bool:
    return (metric or "").rsplit("/", 1)[-1].startswith(UNIT_METRICS)


def cell_runs(spec: Spec, cell: Cell, out: Path) -> tuple[list[int], list[tuple[int, Path]]]:
    """The seeds the spec gives the cell, and (seed, run dir) of its finished runs (a `source`
    row reads its source's runs)."""
    owner = cell
    if cell.source is not None:
        owner = next(c for c in spec.cells if c.row == cell.source and c.task == cell.task)
    runs = [(s, out / owner.name / f"seed{s}") for s in owner.seeds]
    return owner.seeds, [(s, d) for s, d in runs if RunDir(d).finished()]


def seed_auroc(pred: dict, n_boot: int, ci: str) -> tuple[float, Interval]:
    """A run's headline AUROC and its bootstrap interval over test examples (NaN, not raise)."""
    if not pred["finite"]:
        n_bad = int((~np.isfinite(pred["scores"])).sum())
        return math.nan, Interval(math.nan, math.nan, "", f"{n_bad} non-finite scores: NaN")
    value = headline_auroc(pred)
    draws = bootstrap_draws(pred["scores"], pred["labels"], pred["kind"], n_boot=n_boot)
    loo = leave_one_out_auroc(pred["scores"], pred["labels"], pred["kind"]) if ci == "bca" else None
    return value, interval(draws, value, loo, ci)


def partial_note(metrics: dict, metric: str) -> str | None:
    """What a metric read from part of its split says of it (`data/<split>/partial`, with
    `_before` for the untrained model's score), or None for a whole evaluation."""
    split, suffix = metric.split("/", 1)[0], "_before" if metric.endswith("_before") else ""
    flag = metrics.get(f"data/{split}/partial{suffix}", metrics.get(f"data/{split}/partial"))
    if not flag:
        return None
    scored = metrics.get(f"data/{split}/scored{suffix}", metrics.get(f"data/{split}/scored"))
    if scored is None:
        return "partial evaluation"
    return f"partial evaluation, {int(scored)} {split} examples scored"


def summarize_cell(spec: Spec, cell: Cell, out: Path, n_boot: int, ci: str = "bca") -> dict:
    spec_seeds, runs = cell_runs(spec, cell, out)
    row: dict = {"row": cell.row, "task": cell.task or "", "metric": cell.metric,
                 "spec_seeds": spec_seeds, "seeds": [s for s, _ in runs], "values": [],
                 "boot": [], "preds": {}, "notes": []}  # fmt: skip
    for seed, run_dir in runs:
        metrics = json.loads(RunDir(run_dir).metrics.read_text())
        if note := partial_note(metrics, cell.metric):
            row["notes"].append(f"seed {seed}: {note}")
        pred = load_predictions(run_dir) if cell.metric == AUROC else None
        if pred is None:
            row["values"].append(float(metrics.get(cell.metric, math.nan)))
            row["boot"].append(Interval(math.nan, math.nan, ""))
            continue
        value, boot = seed_auroc(pred, n_boot, ci)
        row["values"].append(value)
        row["boot"].append(boot)
        row["preds"][seed] = pred
        if boot.note:
            row["notes"].append(f"seed {seed}: {boot.note}")
    if not row["preds"]:
        row["boot"] = []
    row["n_seeds"] = len(row["values"])
    row["mean"], low, high = t_interval(row["values"])
    clip = in_unit_interval(cell.metric) and (low < 0 or high > 1)
    row["t_low"], row["t_high"] = (max(low, 0.0), min(high, 1.0)) if clip else (low, high)
    row["t_clipped"] = clip
    return row


def seed_pairs(row: dict, ref: dict) -> list[tuple[int, int]]:
    """(row seed, reference seed) by seed number; a row the spec runs once meets every seed."""
    if len(row["spec_seeds"]) == 1 and len(ref["spec_seeds"]) > 1:
        return [(s, r) for s in row["seeds"] for r in ref["seeds"]]
    if len(ref["spec_seeds"]) == 1 and len(row["spec_seeds"]) > 1:
        return [(s, r) for r in ref["seeds"] for s in row["seeds"]]
    return [(s, s) for s in row["seeds"] if s in ref["seeds"]]


def _why_not(row: dict, ref: dict, pairs: list[tuple[int, int]]) -> str:
    """'' if the comparison can be made, else why not."""
    if row["metric"] != AUROC or ref["metric"] != AUROC:
        return f"paired only on {AUROC} predictions, not {row['metric']}"
    for side in (row, ref):
        if not side["seeds"]:
            return f"no finished run of {side['row']}"
        missing = [s for s in side["seeds"] if s not in side["preds"]]
        if missing:
            return f"no predictions/test.npz: {side['row']} seed {', '.join(map(str, missing))}"
    if not pairs:
        return f"no seed in common ({row['row']}: {row['seeds']}, {ref['row']}: {ref['seeds']})"
    runs = [(side, s) for pair in pairs for side, s in zip((row, ref), pair)]
    first_side, first = runs[0]
    for side, seed in runs:
        pred, base = side["preds"][seed], first_side["preds"][first]
        if not pred["finite"]:
            return f"non-finite scores: {side['row']} seed {seed}"
        for key in ("ids", "labels"):
            if not np.array_equal(pred[key], base[key]):
                return f"test examples differ ({key}): {side['row']} seed {seed} vs {first_side['row']} seed {first}"  # fmt: skip
    return ""


def compare(row: dict, ref: dict, n_boot: int, ci: str = "bca") -> dict:
    """Row minus reference on the same test examples over seed pairs; else a reason."""
    pairs = seed_pairs(row, ref)
    reason = _why_not(row, ref, pairs)
    if reason:
        return {"comparison_note": reason}
    a = [row["preds"][s] for s, _ in pairs]
    r = [ref["preds"][s] for _, s in pairs]
    labels, kind = a[0]["labels"], a[0]["kind"]
    diff = float(np.mean([headline_auroc(pa) - headline_auroc(pr) for pa, pr in zip(a, r)]))
    fns = [weighted_auroc(p["scores"], labels, kind) for pair in zip(a, r) for p in pair]

    def mean_diff(values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values[0::2]).mean(0) - torch.stack(values[1::2]).mean(0)

    draws = draws_of(fns, labels, kind, n_boot, 0, torch.device("cpu"), mean_diff)
    loo = None
    if ci == "bca":
        loo = np.mean([leave_one_out_auroc(pa["scores"], labels, kind)
                       - leave_one_out_auroc(pr["scores"], labels, kind) for pa, pr in zip(a, r)], axis=0)  # fmt: skip
    boot = interval(draws, diff, loo, ci)
    result = {"pairs": pairs, "diff": diff, "diff_low": boot.low, "diff_high": boot.high,
              "diff_method": boot.method, "comparison_note": boot.note}  # fmt: skip
    if kind != "binary":
        se = float(np.std(draws.values, ddof=1)) if len(draws.values) > 1 else math.nan
        p = 2 * stats.norm.sf(abs(diff) / se) if se > 0 else (1.0 if diff == 0 else math.nan)
        return result | {"p": float(p), "p_method": "bootstrap normal"}
    with warnings.catch_warnings():  # the notes say it
        warnings.simplefilter("ignore", SmallSampleWarning)
        test = delong_test([p["scores"] for p in a], [p["scores"] for p in r], labels)
        result["delong_p"] = [delong_test(pa["scores"], pr["scores"], labels)["p"] for pa, pr in zip(a, r)]  # fmt: skip
    notes = "; ".join(filter(None, [boot.note, test["note"]]))
    return result | {"p": test["p"], "p_method": "DeLong", "comparison_note": notes}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p), math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):  # the k-th smallest times (m - k + 1), kept monotone
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def summarize(spec: Spec, out: Path, n_boot: int = 1000, ci: str = "bca") -> list[dict]:
    rows = [summarize_cell(spec, cell, out, n_boot, ci) for cell in spec.cells]
    status = read_status(out)
    for cell, row in zip(spec.cells, rows):
        row["failed"] = sorted(k for k, v in status.items()
                               if k.startswith(f"{cell.name}/") and v.get("state") == "failed")  # fmt: skip
        row["reference"] = spec.reference or ""
        ref = next((r for r in rows if r["row"] == spec.reference and r["task"] == row["task"]), None)  # fmt: skip
        if ref is not None and ref is not row:
            row.update(compare(row, ref, n_boot, ci))
    adjusted = holm([r.get("p", math.nan) for r in rows])
    for row, p in zip(rows, adjusted):
        if "p" in row:
            row["p_holm"] = p
    return rows
