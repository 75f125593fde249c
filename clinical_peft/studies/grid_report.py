"""A grid's report, recomputed from its run directories: runs/grids/<grid>/report.{md,csv} + figures.

The numbers are :mod:`clinical_peft.studies.grid_stats`' (what each interval covers is written
next to the table, see :func:`legend`). Figures: forest.png (AUROC with CIs per task and row),
roc_<task>.png (overlaid ROC curves, first seed), bars.png (mean and t-interval of the metric
per task and row: PPL for Table 2, base / SFT / DPO for study B). Numbers only: no patient text
is read. A column is one entry of ``COLUMNS`` (csv) or ``TABLE`` (markdown): a header and a
function of the row dict.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clinical_peft.metrics.delong import FEW_PER_CLASS, MIN_PER_CLASS  # noqa: E402
from clinical_peft.studies.grid_stats import summarize, t_interval  # noqa: E402, F401
from clinical_peft.studies.spec import Spec, read_status  # noqa: E402


def _join(values, fmt: Callable = repr) -> str:
    return ";".join(map(fmt, values))


def _get(key: str) -> Callable[[dict], object]:
    return lambda row: row.get(key, "")


#: report.csv: (column, value of a row); a new metric is one more entry
COLUMNS: list[tuple[str, Callable[[dict], object]]] = [
    ("row", _get("row")), ("task", _get("task")), ("metric", _get("metric")),
    ("n_seeds", _get("n_seeds")), ("mean", _get("mean")), ("t_low", _get("t_low")),
    ("t_high", _get("t_high")), ("t_clipped", lambda r: int(r["t_clipped"])),
    ("seeds", lambda r: _join(r["seeds"], str)), ("values", lambda r: _join(r["values"])),
    ("boot_low", lambda r: _join(b.low for b in r["boot"])),
    ("boot_high", lambda r: _join(b.high for b in r["boot"])),
    ("boot_method", lambda r: _join((b.method for b in r["boot"]), str)),
    ("reference", _get("reference")),
    ("pairs", lambda r: _join((f"{a}-{b}" for a, b in r.get("pairs", [])), str)),
    ("diff", _get("diff")), ("diff_low", _get("diff_low")), ("diff_high", _get("diff_high")),
    ("diff_method", _get("diff_method")), ("p", _get("p")), ("p_method", _get("p_method")),
    ("p_holm", _get("p_holm")), ("delong_p", lambda r: _join(r.get("delong_p", []))),
    ("comparison_note", _get("comparison_note")), ("notes", lambda r: " | ".join(r["notes"])),
    ("failed", lambda r: _join(r["failed"], str)),
]  # fmt: skip


def _num(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN" if isinstance(value, float) else "-"
    return f"{value:.{digits}f}"


def _interval(low, high, signed: bool = False) -> str:
    if low is None or math.isnan(low):
        return "-"
    return f"[{low:+.4f}, {high:+.4f}]" if signed else f"[{low:.4f}, {high:.4f}]"


def _mean(row: dict) -> str:
    if not row["n_seeds"]:
        return "-"
    return f"{_num(row['mean'])} {_interval(row['t_low'], row['t_high'])}" + (" †" if row["t_clipped"] else "")  # fmt: skip


def _per_seed(row: dict) -> str:
    boots = row["boot"] or [None] * len(row["values"])
    return ", ".join(_num(v) + (f" {_interval(b.low, b.high)}" if b else "")
                     for v, b in zip(row["values"], boots)) or "-"  # fmt: skip


def _diff(row: dict) -> str:
    if "diff" not in row:
        return f"- ({row['comparison_note']})" if row.get("comparison_note") else "-"
    text = f"{row['diff']:+.4f} {_interval(row['diff_low'], row['diff_high'], True)}"
    pairs = ", ".join(f"{a}-{b}" for a, b in row["pairs"])
    bold = row.get("p_holm", math.nan) < 0.05
    return (f"**{text}**" if bold else text) + f" (seeds {pairs})"


def _p(row: dict) -> str:
    if "p" not in row:
        return "-"
    return f"{row['p']:.3g} ({row['p_holm']:.3g})" if not math.isnan(row["p"]) else "NaN"


#: report.md's table: (header, text of a row); {ref} is the reference row
TABLE: list[tuple[str, Callable[[dict], str]]] = [
    ("row", lambda r: r["row"]), ("task", lambda r: r["task"]), ("metric", lambda r: r["metric"]),
    ("seeds", lambda r: str(r["n_seeds"])), ("mean [95% t-CI over seeds]", _mean),
    ("per seed [95% CI over test examples]", _per_seed),
    ("vs {ref} [95% CI] (seed pairs)", _diff), ("p (Holm)", _p),
    ("DeLong p per seed pair", lambda r: "/".join(f"{p:.3g}" for p in r.get("delong_p", [])) or "-"),
]  # fmt: skip


def legend(spec: Spec, rows: list[dict], n_boot: int, ci: str) -> list[str]:
    """What the table's intervals and marks mean, next to the table."""
    n_tests = sum(1 for r in rows if not math.isnan(r.get("p", math.nan)))
    method = "BCa" if ci == "bca" else "percentile"
    return [
        f"**Intervals.** *mean [95% t-CI]*: Student-t over seeds; it covers seed-to-seed "
        f"variation of training on this test set, not test-set sampling (a metric in [0, 1] "
        f"has its bounds clipped to it, marked †). *Per seed* and *vs {spec.reference}*: "
        f"{method} bootstrap over test examples ({n_boot} resamples), the models fixed; they "
        f"cover test-set sampling only. Where BCa is undefined the percentile interval is "
        f"used (noted below). Multi-label/-class resamples where a label or class of the "
        f"point estimate loses a class are dropped and counted (the set averaged never changes).",
        "",
        f"**Comparisons.** Each row minus {spec.reference} on the same test examples, seeds "
        f"paired by number (a row run once against every seed), the mean over the pairs listed, "
        f"each weighing the same (with a seed missing on one side it is not mean minus mean). *p*: two-sided, H0 equal AUROC with the models fixed: DeLong on the "
        f"mean difference (binary), normal with the bootstrap standard error (multi-class, "
        f"multi-label); in brackets Holm-adjusted over the {n_tests} comparisons in this table. "
        f"**Bold**: Holm-adjusted p < 0.05. DeLong p per seed pair: unadjusted; none with fewer "
        f"than {MIN_PER_CLASS} positives or negatives, loose below {FEW_PER_CLASS}.",
    ]


def write_report(spec: Spec, out: Path, n_boot: int = 1000, ci: str = "bca") -> list[dict]:
    rows = summarize(spec, out, n_boot, ci)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "report.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([name for name, _ in COLUMNS])
        writer.writerows([[value(row) for _, value in COLUMNS] for row in rows])
    header = [h.format(ref=spec.reference or "-") for h, _ in TABLE] + ["notes"]
    lines = [f"# Grid {spec.name}", "", f"Spec: `{spec.path}`. Reference row: {spec.reference}.",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    notes: list[str] = []  # numbered below the table; a skipped comparison says why in its cell
    for row in rows:
        marks = []
        for note in row["notes"] + ([row["comparison_note"]] if "diff" in row else []):
            if note:
                notes.append(f"{row['row']} / {row['task'] or '-'}: {note}")
                marks.append(str(len(notes)))
        lines.append(
            "| " + " | ".join([text(row) for _, text in TABLE] + [", ".join(marks)]) + " |"
        )
    lines += ["", *legend(spec, rows, n_boot, ci)]
    if notes:
        lines += ["", "## Notes", "", *[f"{k}. {n}" for k, n in enumerate(notes, 1)]]
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
            for i, boot in enumerate(row["boot"]):
                ax.plot([boot.low, boot.high], [y + 0.12 * (i + 1)] * 2, color="0.6", linewidth=1)
            if not math.isnan(row["t_low"]):
                ax.plot([row["t_low"], row["t_high"]], [y, y], color="C0", linewidth=3)
            ax.plot(row["mean"], y, "D", color="C0")
        ax.set(title=task or "AUROC", xlabel="test AUROC")
    axes[0][0].set_yticks(range(len(names)), names)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _first_finite(row: dict) -> tuple[int, dict] | None:
    return next(((s, p) for s, p in row["preds"].items() if p["finite"]), None)


def plot_rocs(rows: list[dict], out: Path) -> None:
    """roc_<task>.png: each row's ROC curve (first seed; micro-average for multi-class/label)."""
    from sklearn.metrics import roc_curve

    for task in _tasks(rows):
        shown = [r for r in rows if r["task"] == task and _first_finite(r)]
        if not shown:
            continue
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for row in shown:
            seed, pred = _first_finite(row)
            labels = pred["labels"]
            if pred["kind"] == "multiclass":
                labels = np.eye(pred["scores"].shape[1], dtype=np.int64)[labels]
            y, s = labels.reshape(-1), pred["scores"].reshape(-1)
            if 0 < y.sum() < len(y):
                fpr, tpr, _ = roc_curve(y, s)
                value = row["values"][row["seeds"].index(seed)]
                ax.plot(fpr, tpr, label=f"{row['row']} ({value:.3f})")
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
