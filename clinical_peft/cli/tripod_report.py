"""report.md: a TRIPOD+AI-style summary (Collins et al., BMJ 2024) of an outcome model's
development or external validation, holding what the code knows (data files, outcome,
predictors, counts, model and tuning, discrimination, calibration, subgroups, decision curve,
seed and command) and marking each item only the researcher can give with **To fill in**.
Counts only, never ids or text; subgroups as subgroups.csv (no group under its threshold)."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.util.atomic import write_atomic

FILL = "**To fill in.**"
OUTCOMES = {
    "mor": "in-hospital mortality of the admission (binary; `hospital_expire_flag`)",
    "pmv": "prolonged mechanical ventilation (over 7 days), among ventilated admissions "
    "(binary; `label`)",
    "los": "length of stay in 4 classes: up to 3 days, 3-7 days, 1-2 weeks, over 2 weeks "
    "(`los_label`)",
    "diag": "ICD-9 diagnosis groups (3 digits) of the admission (multilabel; `short_codes`)",
    "proc": "ICD-9 procedure groups (3 digits) of the admission (multilabel; `short_codes`)",
}
BY_HAND = [
    "Title and abstract; background and objectives; intended use, users and setting.",
    "Source of data: database and version, and the dates of the admissions.",
    "Participants: eligibility criteria, setting and centres; how the task files were built.",
    "Outcome assessment: how and when it was recorded; blinding to the predictors.",
    "Missing data and its handling beyond what is counted here.",
    "Ethics approval, consent, data-use agreement; protocol and registration.",
    "Funding and conflicts of interest; patient and public involvement.",
    "Data and code availability; how to obtain the model.",
    "Interpretation, limitations (including the subgroups), and plans for updating the model.",
]


def _ci(metrics: dict, key: str) -> str:
    value = metrics.get(key, math.nan)
    low, high = metrics.get(f"{key}_ci_low", math.nan), metrics.get(f"{key}_ci_high", math.nan)
    if not math.isfinite(value):
        return "n/a"
    interval = f" ({low:.3f} to {high:.3f})" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{value:.3f}{interval}"


def events(kind: str, labels: np.ndarray) -> str:
    """The outcome counts of a split: positives, per class, or labels with a positive."""
    if kind == "binary":
        return f"{int(labels.sum())} positive ({labels.mean():.1%})"
    if kind == "multiclass":
        return ", ".join(f"class {c}: {n}" for c, n in enumerate(np.bincount(labels)))
    present = int((labels.sum(axis=0) > 0).sum())
    return f"{labels.sum(axis=1).mean():.2f} labels a note; {present} labels with a positive"


def _table(frame: pd.DataFrame) -> list[str]:
    if frame is None or frame.empty:
        return ["(none)"]
    head = "| " + " | ".join(frame.columns) + " |"
    lines = [head, "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _settings(run_dir: Path) -> str:
    """The run's model, data and trainer settings and seed (config.yaml: settings, no text)."""
    path = RunDir(run_dir).config
    config = yaml.safe_load(path.read_text()) if path.is_file() else {}
    keep = {k: config[k] for k in ("seed_everything", "model", "data", "trainer") if k in config}
    return yaml.safe_dump(keep, sort_keys=False).strip() or "(config.yaml not found)"


def tripod_report(
    *,
    task: str,
    kind: str,
    setting: str,
    run_dir: Path,
    data_files: dict[str, str],
    split_labels: dict[str, np.ndarray],
    metrics: dict,
    clinical: dict,
    demographics: str | None = None,
    window: dict | None = None,
) -> str:
    """The report's markdown. `split_labels`: labels per split (counts only are written);
    `metrics`: the `{split}/...` figures; `clinical`: write_clinical_files' result."""
    splits = [s for s in ("train", "val", "test") if s in split_labels]
    out = [f"# TRIPOD+AI-style report: {task} ({kind})", "",
           f"{setting}. Written by clinical-peft; each {FILL} item is the researcher's.", ""]  # fmt: skip
    out += ["## Source of data and participants", ""]
    out += [f"- {split} file: `{path}`" for split, path in data_files.items()]
    out += [f"- Database, version and dates of the admissions: {FILL}",
            f"- Eligibility, setting and centres: {FILL}", ""]  # fmt: skip
    out += [
        "## Outcome",
        "",
        f"- {OUTCOMES.get(task, task)}.",
        f"- How it was assessed: {FILL}",
        "",
    ]
    out += ["## Predictors", "", "- The admission note's text, tokenized as the run was trained."]
    out += [f"- {k}: {v}" for k, v in (window or {}).items()]
    out += ["", "## Sample size", "", "| split | notes | outcome |", "|---|---|---|"]
    for split in splits:
        out.append(
            f"| {split} | {len(split_labels[split])} | {events(kind, split_labels[split])} |"
        )
    unknown = {k: v for k, v in metrics.items() if "unknown_codes" in k}
    out += [""] + [
        f"- {k}: {int(v)} (codes outside the label space: not scorable)" for k, v in unknown.items()
    ]
    out += [f"- Missing data: empty notes are refused; the rest: {FILL}", ""]
    out += ["## Model and tuning", "", "```yaml", _settings(run_dir), "```",
            f"- Command: `{shlex.join(sys.argv)}`", ""]  # fmt: skip
    bins = int(metrics.get("test/ece_bins", 10))
    out += ["## Performance measures", "",
            "- Discrimination: AUROC (binary; LOS one-vs-one macro; multilabel macro over labels "
            "with both classes), 95 % percentile bootstrap intervals over admissions.",
            f"- Calibration: Brier score; ECE over {bins} equal-mass bins; calibration intercept "
            "(slope fixed at 1; ideal 0) and slope (ideal 1) of a logistic recalibration of the "
            "logit; multilabel: means over labels with both classes.",
            "- Clinical usefulness (binary): net benefit over threshold probabilities.", ""]  # fmt: skip
    out += ["## Results", "", "| split | AUROC | Brier | ECE | intercept | slope |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    keys = ("auroc", "brier", "ece", "calibration_intercept", "calibration_slope")
    method = "temperature" if "recalibration/temperature" in metrics else "Platt"
    shown = [(s, s) for s in splits if f"{s}/auroc" in metrics]
    if "test_recalibrated/brier" in metrics:  # AUROC: the ranking is (all but) unchanged
        shown.append(("test_recalibrated", f"test after {method} scaling fitted on val"))
    for prefix, name in shown:
        cells = " | ".join(_ci(metrics, f"{prefix}/{k}") for k in keys)
        out.append(f"| {name} | {cells} |")
    out += ["", f"Reliability diagram: `{RunDir('.').reliability.name}`.", ""]
    out += ["### Subgroups", ""]
    if clinical.get("subgroups") is None:
        out += ["Not analysed: pass the MIMIC demographics folder (`--demographics`).", ""]
    else:
        shown = clinical["subgroups"][["attribute", "group", "n", "auroc", "auroc_ci_low",
                                       "auroc_ci_high", "brier"]]  # fmt: skip
        min_group = int(clinical["metrics"].get("subgroups/min_group", 10))
        out += [f"Demographics: `{demographics}`. Groups under {min_group} admissions are left "
                f"out ({int(clinical['metrics'].get('subgroups/groups_suppressed', 0))} groups).", ""]  # fmt: skip
        out += (
            _table(shown) + ["", "Largest AUROC gap per attribute:", ""] + _table(clinical["gaps"])
        )
        out += ["", f"Figure: `{RunDir('.').subgroups_plot.name}`.", ""]
    out += ["### Decision curve", ""]
    curve = clinical.get("decision_curve")
    if curve is None:
        out += ["Not made: decision curves are for binary outcomes.", ""]
    else:
        better = curve[(curve.net_benefit_model > curve.net_benefit_treat_all)
                       & (curve.net_benefit_model > 0)]["threshold"]  # fmt: skip
        span = f"{better.min():.2f} to {better.max():.2f}" if len(better) else "no threshold"
        out += [f"Net benefit above treat-all and treat-none at thresholds: {span}.", ""]
        out += _table(curve[curve.threshold.isin([0.05, 0.1, 0.2, 0.3, 0.5])])
        out += ["", f"Table: `{RunDir('.').decision_curve.name}`; figure: "
                f"`{RunDir('.').decision_curve_plot.name}`.", ""]  # fmt: skip
    out += ["## To fill in by hand", ""] + [f"- {item}" for item in BY_HAND]
    return "\n".join(out) + "\n"


def write_report(folder: str | Path, **facts) -> Path:
    path = RunDir(folder).report
    text = tripod_report(**facts)
    write_atomic(path, lambda tmp: tmp.write_text(text))
    return path
