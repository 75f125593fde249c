"""A grid's report, recomputed from its run directories: runs/grids/<grid>/report.{md,csv} + figures.

Per cell (row x task): the metric of each seed and its mean over seeds with a 95 % t-interval
(seed level). Where the metric is the headline test AUROC and the runs wrote
predictions/test.npz, the AUROC is recomputed from the predictions, each seed gets a percentile
bootstrap 95 % CI over test examples (1,000 resamples), and each row is compared with the grid's
reference row on the same test examples: the paired difference (seed k against reference seed k,
averaged over seed pairs on the same resamples) with its bootstrap CI and, for binary tasks,
DeLong's p per seed pair. Figures: forest.png (AUROC with CIs per task and row), roc_<task>.png
(overlaid ROC curves, first seed), bars.png (mean and t-interval of the metric per task and row:
PPL for Table 2, base / SFT / DPO for study B). Numbers only: no patient text is read.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.metrics.bootstrap import bootstrap_auroc, paired_bootstrap_diff, percentile_ci  # noqa: E402
from clinical_peft.metrics.delong import delong_test  # noqa: E402
from clinical_peft.metrics.outcomes import outcome_metrics  # noqa: E402
from clinical_peft.metrics.predictions import read_ids  # noqa: E402
from clinical_peft.studies.spec import Cell, Spec, read_status  # noqa: E402

AUROC = "test/auroc"
COLUMNS = [
    "row", "task", "metric", "n_seeds", "mean", "t_low", "t_high", "seeds", "values",
    "boot_low", "boot_high", "reference", "diff", "diff_low", "diff_high", "delong_p", "failed",
]  # fmt: skip


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
            "kind": kind_of(scores, labels)}  # fmt: skip


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


def cell_runs(spec: Spec, cell: Cell, out: Path) -> list[tuple[int, Path]]:
    """(seed, run dir) of the cell's finished runs (a `source` row reads its source's runs)."""
    owner = cell
    if cell.source is not None:
        owner = next(c for c in spec.cells if c.row == cell.source and c.task == cell.task)
    runs = [(s, out / owner.name / f"seed{s}") for s in owner.seeds]
    return [(s, d) for s, d in runs if RunDir(d).finished()]


def summarize_cell(spec: Spec, cell: Cell, out: Path, n_boot: int) -> dict:
    runs = cell_runs(spec, cell, out)
    row: dict = {"row": cell.row, "task": cell.task or "", "metric": cell.metric,
                 "seeds": [s for s, _ in runs], "values": [], "boot": [], "preds": []}  # fmt: skip
    for _, run_dir in runs:
        pred = load_predictions(run_dir) if cell.metric == AUROC else None
        if pred is not None:
            row["values"].append(headline_auroc(pred))
            boot = bootstrap_auroc(pred["scores"], pred["labels"], pred["kind"], n_boot=n_boot)
            row["boot"].append(percentile_ci(boot) if len(boot) else (math.nan, math.nan))
            row["preds"].append(pred)
        else:
            metrics = json.loads(RunDir(run_dir).metrics.read_text())
            row["values"].append(float(metrics.get(cell.metric, math.nan)))
    row["n_seeds"] = len(row["values"])
    row["mean"], row["t_low"], row["t_high"] = t_interval(row["values"])
    return row


def paired(row: dict, ref: dict, n_boot: int) -> dict:
    """Row minus reference on the same test examples, seed pairs (k mod n_row, k mod n_ref)."""
    a, r = row["preds"], ref["preds"]
    if not a or not r or len(a) != len(row["values"]) or len(r) != len(ref["values"]):
        return {}
    pairs = [(a[k % len(a)], r[k % len(r)]) for k in range(max(len(a), len(r)))]
    for pa, pr in pairs:
        if not (np.array_equal(pa["ids"], pr["ids"]) and np.array_equal(pa["labels"], pr["labels"])):  # fmt: skip
            return {}  # not the same test examples: no paired comparison
    point = [headline_auroc(pa) - headline_auroc(pr) for pa, pr in pairs]
    draws = [paired_bootstrap_diff(pa["scores"], pr["scores"], pa["labels"], pa["kind"], n_boot)
             for pa, pr in pairs]  # fmt: skip
    # The resamples left out depend on the labels alone, so every pair keeps the same ones.
    mean_draws = np.vstack(draws).mean(axis=0)
    low, high = percentile_ci(mean_draws) if len(mean_draws) else (math.nan, math.nan)
    result = {"diff": float(np.mean(point)), "diff_low": low, "diff_high": high}
    if pairs[0][0]["kind"] == "binary":
        result["delong_p"] = [delong_test(pa["scores"], pr["scores"], pa["labels"])["p"]
                              for pa, pr in pairs]  # fmt: skip
    return result


def summarize(spec: Spec, out: Path, n_boot: int = 1000) -> list[dict]:
    rows = [summarize_cell(spec, cell, out, n_boot) for cell in spec.cells]
    status = read_status(out)
    for cell, row in zip(spec.cells, rows):
        row["failed"] = sorted(k for k, v in status.items()
                               if k.startswith(f"{cell.name}/") and v.get("state") == "failed")  # fmt: skip
        row["reference"] = spec.reference or ""
        ref = next((r for r in rows if r["row"] == spec.reference and r["task"] == row["task"]), None)  # fmt: skip
        if ref is not None and ref is not row:
            row.update(paired(row, ref, n_boot))
    return rows


def _num(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _interval(low, high) -> str:
    return "-" if low is None or math.isnan(low) else f"[{low:.4f}, {high:.4f}]"


def write_report(spec: Spec, out: Path, n_boot: int = 1000) -> list[dict]:
    rows = summarize(spec, out, n_boot)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "report.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            boot = row["boot"]
            writer.writerow([
                row["row"], row["task"], row["metric"], row["n_seeds"], row["mean"], row["t_low"],
                row["t_high"], ";".join(map(str, row["seeds"])), ";".join(map(repr, row["values"])),
                ";".join(repr(b[0]) for b in boot), ";".join(repr(b[1]) for b in boot),
                row["reference"], row.get("diff", ""), row.get("diff_low", ""),
                row.get("diff_high", ""), ";".join(map(repr, row.get("delong_p", []))),
                ";".join(row["failed"]),
            ])  # fmt: skip
    header = ["row", "task", "metric", "seeds", "mean [95% t-CI]", "per seed [bootstrap 95% CI]",
              f"vs {spec.reference or '-'} [95% CI]", "DeLong p"]  # fmt: skip
    lines = [f"# Grid {spec.name}", "", f"Spec: `{spec.path}`. Reference row: {spec.reference}.",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    for row in rows:
        seeds = ", ".join(
            _num(v) + (f" {_interval(*row['boot'][i])}" if row["boot"] else "")
            for i, v in enumerate(row["values"])
        )
        diff = "" if "diff" not in row else f"{row['diff']:+.4f} {_interval(row['diff_low'], row['diff_high'])}"  # fmt: skip
        delong = "/".join(f"{p:.3g}" for p in row.get("delong_p", []))
        mean = f"{_num(row['mean'])} {_interval(row['t_low'], row['t_high'])}"
        lines.append(f"| {row['row']} | {row['task']} | {row['metric']} | {row['n_seeds']} | "
                     f"{mean} | {seeds or '-'} | {diff or '-'} | {delong or '-'} |")  # fmt: skip
    failed = {k: v for k, v in read_status(out).items() if v.get("state") == "failed"}
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- `{k}`: {v.get('error', '')}" for k, v in sorted(failed.items())]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot_forest(rows, out / "forest.png")
    plot_rocs(rows, out)
    plot_bars(rows, out / "bars.png")
    return rows


def _tasks(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["task"] for r in rows))


def plot_forest(rows: list[dict], path: Path) -> None:
    """Per task: each row's per-seed bootstrap CIs (thin) and its mean with t-interval (thick)."""
    tasks = [t for t in _tasks(rows) if any(r["boot"] for r in rows if r["task"] == t)]
    if not tasks:
        return
    names = list(dict.fromkeys(r["row"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 2, 0.5 * len(names) + 1.5),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, task in zip(axes[0], tasks):
        for row in (r for r in rows if r["task"] == task and r["boot"]):
            y = names.index(row["row"])
            for i, (low, high) in enumerate(row["boot"]):
                ax.plot([low, high], [y + 0.12 * (i + 1)] * 2, color="0.6", linewidth=1)
            if not math.isnan(row["t_low"]):
                ax.plot([row["t_low"], row["t_high"]], [y, y], color="C0", linewidth=3)
            ax.plot(row["mean"], y, "D", color="C0")
        ax.set(title=task or "AUROC", xlabel="test AUROC")
    axes[0][0].set_yticks(range(len(names)), names)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rocs(rows: list[dict], out: Path) -> None:
    """roc_<task>.png: each row's ROC curve (first seed; micro-average for multi-class/label)."""
    from sklearn.metrics import roc_curve

    for task in _tasks(rows):
        shown = [r for r in rows if r["task"] == task and r["preds"]]
        if not shown:
            continue
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for row in shown:
            pred = row["preds"][0]
            labels = pred["labels"]
            if pred["kind"] == "multiclass":
                labels = np.eye(pred["scores"].shape[1], dtype=np.int64)[labels]
            y, s = labels.reshape(-1), pred["scores"].reshape(-1)
            if 0 < y.sum() < len(y):
                fpr, tpr, _ = roc_curve(y, s)
                ax.plot(fpr, tpr, label=f"{row['row']} ({row['values'][0]:.3f})")
        ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=task or "ROC")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"roc_{task or 'all'}.png", dpi=110)
        plt.close(fig)


def plot_bars(rows: list[dict], path: Path) -> None:
    """Mean over seeds with its t-interval, grouped by task, one bar per row."""
    tasks, names = _tasks(rows), list(dict.fromkeys(r["row"] for r in rows))
    width, labelled = 0.8 / len(names), set()
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(tasks) * max(1, len(names) / 3)), 4))
    for j, name in enumerate(names):
        for i, task in enumerate(tasks):
            row = next((r for r in rows if r["row"] == name and r["task"] == task), None)
            if row is None or math.isnan(row["mean"]):
                continue
            err = None if math.isnan(row["t_low"]) else [[row["mean"] - row["t_low"]], [row["t_high"] - row["mean"]]]  # fmt: skip
            ax.bar(i + j * width, row["mean"], width, yerr=err, capsize=3, color=f"C{j % 10}",
                   label=None if name in labelled else name)  # fmt: skip
            labelled.add(name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], [t or "" for t in tasks])
    ax.set_ylabel(rows[0]["metric"] if len({r["metric"] for r in rows}) == 1 else "metric")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
