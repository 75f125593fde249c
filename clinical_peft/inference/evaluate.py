"""`evaluate`: a finished downstream run's metrics on a labelled test file (its own, or an
external site's): discrimination with a bootstrap interval, calibration, the reliability
diagram, the decision curve (binary), subgroups (`--demographics`), optional recalibration
(`--recalibrate`, fitted on the run's own val predictions) and report.md; scored as `predict`
scores (inference/predict.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.cli.tripod_report import write_report
from clinical_peft.data.demographics import read_demographics
from clinical_peft.data.outcomes import read_split
from clinical_peft.inference.predict import (
    _options,
    _parser,
    notes_file,
    output_folder,
    refuse_earlier_outputs,
    run_info,
    score_notes,
    write_predictions_csv,
)
from clinical_peft.metrics.bootstrap import bootstrap_auroc, percentile_ci
from clinical_peft.metrics.clinical import (
    recalibration_metrics,
    split_calibration,
    write_clinical_files,
)
from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.metrics.recalibration import METHODS, check_method
from clinical_peft.tasks.outcomes import get_task, parse_labels
from clinical_peft.util.atomic import write_atomic, write_json
from clinical_peft.util.errors import at_least_one, require_dir, require_file


def evaluate(
    run: str | Path, data: str | Path, out: str | Path | None = None, n_boot: int = 1000,
    demographics: str | Path | None = None, min_group: int = 10, recalibrate: str = "none",
    overwrite: bool = False, **kw,
) -> dict:  # fmt: skip
    """Score the task's labelled test file in DATA; write OUT/metrics.json (test/auroc as the
    run's, with a bootstrap interval; calibration), OUT/predictions.npz, OUT/predictions.csv,
    the reliability diagram, the decision curve (binary), subgroups (with `demographics`) and
    report.md; `recalibrate`: also the calibration after Platt / temperature scaling fitted on
    the run's own predictions/val.npz."""
    run, data = require_dir(run, "run"), Path(data)
    table = read_demographics(demographics) if demographics is not None else None
    info = run_info(run)
    task = get_task(info["task"])
    check_method(recalibrate, task.kind, "--recalibrate")
    val = None
    if recalibrate != "none":  # fitted on the run's own val split, refused before scoring
        val = np.load(require_file(RunDir(run).prediction_file("val"), "val predictions"))
    path = notes_file(data, run)
    out = output_folder(run, data, out)
    outputs = [RunDir(out).metrics, out / "predictions.npz", out / "predictions.csv"]
    refuse_earlier_outputs([*outputs, RunDir(out).report], overwrite)
    rows = read_split(path, task.label_column, None)
    parsed, unknown = parse_labels(task, rows["label"], rows["id"], path, info["label_names"])
    ids, scores, labels, stats, _ = score_notes(run, rows, parsed, **kw)
    n_labels = 1 if task.kind == "binary" else len(info["label_names"])
    metrics = {
        f"test/{k}": v for k, v in outcome_metrics(scores, labels, task.kind, n_labels).items()
    }
    values = bootstrap_auroc(torch.from_numpy(scores), torch.from_numpy(labels), task.kind, n_boot)
    try:
        metrics["test/auroc_ci_low"], metrics["test/auroc_ci_high"] = percentile_ci(values)
    except ValueError:
        metrics["test/auroc_ci_low"] = metrics["test/auroc_ci_high"] = float("nan")
    metrics.update({"bootstrap/resamples": float(len(values)), **stats})
    metrics.update(split_calibration("test", scores, labels, task.kind, n_boot))
    if val is not None:
        fitted = (val["scores"], val["labels"]), (scores, labels)
        metrics.update(recalibration_metrics(recalibrate, *fitted, task.kind, n_boot))
    # as the stages count them: every note is scored, the count says how many share an id
    metrics["data/duplicate_ids"] = float(len(ids) - len(set(ids)))
    if metrics["data/duplicate_ids"]:
        print(f"{path}: {metrics['data/duplicate_ids']:.0f} duplicate ids", file=sys.stderr)
    if task.kind == "multilabel":
        metrics["data/unknown_codes"] = float(unknown)
    clinical = write_clinical_files(
        out, ids, scores, labels, task.kind, task.key, table, min_group, n_boot
    )
    metrics.update(clinical["metrics"])

    def save_npz(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file, not a name: np.savez would append ".npz" to one
            np.savez(f, ids=np.array(ids), scores=scores, labels=labels)

    write_atomic(outputs[1], save_npz)
    write_predictions_csv(outputs[2], ids, scores, info)
    write_json(outputs[0], {**metrics, "data_file": str(path), "run": str(run)})
    write_report(
        out, task=task.key, kind=task.kind, setting=f"External validation of the run `{run}`",
        run_dir=run, data_files={"test": str(path)}, split_labels={"test": labels},
        metrics=metrics, clinical=clinical, demographics=demographics and str(demographics),
        window={k: info[k] for k in ("max_length", "long_mode", "max_chunks")},
    )  # fmt: skip
    return metrics


def evaluate_main(argv: list[str]) -> None:
    parser = _parser("evaluate", "A downstream run's metrics on an external labelled test set.")
    parser.add_argument("--data", required=True, help="folder with the task's test file")
    parser.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples of AUROC")
    parser.add_argument("--demographics", help="MIMIC ADMISSIONS/PATIENTS folder: subgroups")
    parser.add_argument("--min_group", type=int, default=10, help="smallest subgroup written")
    parser.add_argument("--recalibrate", default="none", choices=METHODS,
                        help="also report calibration after scaling fitted on RUN's val split")  # fmt: skip
    args = parser.parse_args(argv)
    at_least_one(args.min_group, "--min-group")
    metrics = evaluate(
        args.run, args.data, args.out, args.n_boot, args.demographics, args.min_group,
        args.recalibrate, **_options(args),
    )  # fmt: skip
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
    print(f"evaluate done: {shown}")
