"""After a downstream run's fit (rank 0): calibration of val and test into metrics.json, the test
split's reliability diagram, decision curve and subgroups, and report.md (TRIPOD+AI style)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clinical_peft.cli.tripod_report import write_report
from clinical_peft.metrics.clinical import (
    recalibration_metrics,
    split_calibration,
    write_clinical_files,
)

N_BOOT = 1000  # bootstrap resamples of the calibration intervals (as AUROC's)


def split_labels(dataset, kind: str, num_labels: int) -> np.ndarray:
    """A cached split's labels (lists of class or code indices) as predictions store them."""
    labels = dataset["labels"]
    if kind != "multilabel":
        return np.array([y[0] for y in labels], dtype=np.int64)
    out = np.zeros((len(labels), num_labels), dtype=np.int64)
    for i, codes in enumerate(labels):
        out[i, codes] = 1
    return out


def clinical_after_fit(
    run_dir: Path, datamodule, parts: dict[str, dict], metrics: dict, device: torch.device
) -> dict:
    """`{val,test}/brier` etc. (computed on `device`) and subgroup counts; writes the files."""
    kind = datamodule.kind
    out: dict = {}
    for split, part in parts.items():
        scores = torch.from_numpy(part["scores"]).to(device)
        out.update(split_calibration(split, scores, torch.from_numpy(part["labels"]), kind, N_BOOT))
    val, test = parts["val"], parts["test"]
    # settings a data source of its own may lack (the OutcomeData contract does not ask them)
    folder = getattr(datamodule, "demographics", None)
    method = getattr(datamodule, "recalibrate", "none")
    out.update(recalibration_metrics(
        method, (val["scores"], val["labels"]), (test["scores"], test["labels"]), kind, N_BOOT
    ))  # fmt: skip
    demographics = None
    if folder is not None:
        from clinical_peft.data.demographics import read_demographics

        demographics = read_demographics(folder)
    clinical = write_clinical_files(
        run_dir, test["ids"], test["scores"], test["labels"], kind, datamodule.task.key,
        demographics, getattr(datamodule, "min_group", 10), N_BOOT,
    )  # fmt: skip
    out.update(clinical["metrics"])
    labels = {}
    if "train" in getattr(datamodule, "datasets", {}):
        train = datamodule.datasets["train"]
        labels["train"] = split_labels(train, kind, datamodule.num_labels)
    labels.update({split: part["labels"] for split, part in parts.items()})
    write_report(
        run_dir,
        task=datamodule.task.key,
        kind=kind,
        setting="Model development with internal validation (a downstream run)",
        run_dir=Path(run_dir),
        data_files={s: str(p) for s, p in getattr(datamodule, "paths", {}).items()},
        split_labels=labels,
        metrics={**metrics, **out},
        clinical=clinical,
        demographics=folder,
        window={k: getattr(datamodule, k) for k in ("max_length", "long_mode", "max_chunks")},
    )
    return out
