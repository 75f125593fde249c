"""The five outcome-prediction tasks of van Aken et al. (2021): files, label column, kind, labels.

File names and columns are those the public clinical-outcome-prediction scripts write (every
file `id,text,<label column>`, all fields quoted); see shared/PAPERS.md, stage 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clinical_peft.util.errors import InputError, quote_value, row_name

if TYPE_CHECKING:
    from torch import Tensor

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TaskSpec:
    key: str
    """Short name: pmv, mor, los, diag or proc."""
    prefix: str
    """File name stem before the split suffix."""
    label_column: str
    kind: str
    """binary, multiclass or multilabel."""
    num_classes: int = 0
    """Classes of a binary or multiclass task (0 for multilabel: the label space decides)."""
    codes_file: str = ""
    """List of all codes (multilabel), one per line; optional, else the train split decides."""
    split_names: tuple[str, str, str] = SPLITS
    """File suffixes of train, val and test (PMV calls val `dev`)."""

    def path(self, data_dir: str | Path, split: str) -> Path:
        suffix = self.split_names[SPLITS.index(split)]
        return Path(data_dir) / f"{self.prefix}_{suffix}.csv"


TASKS: dict[str, TaskSpec] = {
    "pmv": TaskSpec("pmv", "pmv", "label", "binary", 2, split_names=("train", "dev", "test")),
    "mor": TaskSpec("mor", "MP_IN_adm", "hospital_expire_flag", "binary", 2),
    "los": TaskSpec("los", "LOS_WEEKS_adm", "los_label", "multiclass", 4),
    "diag": TaskSpec(
        "diag", "DIA_GROUPS_3_DIGITS_adm", "short_codes", "multilabel",
        codes_file="ALL_3_DIGIT_DIA_CODES.txt",
    ),
    "proc": TaskSpec(
        "proc", "PRO_GROUPS_3_DIGITS_adm", "short_codes", "multilabel",
        codes_file="ALL_3_DIGIT_PRO_CODES.txt",
    ),
}  # fmt: skip


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise InputError("data.task", f"unknown task '{name}' (valid: {', '.join(TASKS)})")
    return TASKS[name]


def split_codes(value: str) -> list[str]:
    """`"401,428, 38"` -> `["401", "428", "38"]` (empty string: no codes)."""
    return [code.strip() for code in value.split(",") if code.strip()]


def label_space(task: TaskSpec, data_dir: str | Path, train_values: list[str]) -> list[str]:
    """The label names: classes 0..C-1, or the codes (codes file if present, else train codes)."""
    if task.kind != "multilabel":
        return [str(c) for c in range(task.num_classes)]
    codes_path = Path(data_dir) / task.codes_file
    if codes_path.is_file():
        codes = [line.strip() for line in codes_path.read_text().splitlines() if line.strip()]
        if not codes:
            raise InputError(codes_path, "no codes listed")
        return list(dict.fromkeys(codes))  # keep file order, drop duplicates
    return sorted({code for value in train_values for code in split_codes(value)})


def parse_labels(
    task: TaskSpec, values: list[str], ids: list[str], path: str | Path, space: list[str]
) -> tuple[list[list[int]], int]:
    """Labels as lists of class or code indices, and the number of codes not in `space`.

    binary / multiclass: `[class]`, an integer in 0..C-1 (else InputError naming file, column
    and row id); multilabel: the indices of the row's codes. Codes outside the label space
    cannot be predicted; they are counted (and reported by the caller), not silently dropped.
    """
    column = task.label_column
    if task.kind != "multilabel":
        labels = []
        for row, (row_id, value) in enumerate(zip(ids, values, strict=True), start=1):
            text = value.strip()
            number = int(float(text)) if _is_number(text) else None
            if number is None or number != float(text) or not 0 <= number < task.num_classes:
                raise InputError(
                    path,
                    f"field '{column}': value {quote_value(value)} out of range "
                    f"0..{task.num_classes - 1} ({row_name(row, row_id)})",
                )
            labels.append([number])
        return labels, 0
    index = {code: i for i, code in enumerate(space)}
    labels, unknown = [], 0
    for row, (row_id, value) in enumerate(zip(ids, values, strict=True), start=1):
        if ";" in value or "|" in value:  # one bogus "code" otherwise
            raise InputError(
                path,
                f"field '{column}': codes separated by '{';' if ';' in value else '|'}', "
                f"expected ',' ({row_name(row, row_id)})",
            )
        codes = split_codes(value)
        unknown += sum(code not in index for code in codes)
        labels.append(sorted({index[code] for code in codes if code in index}))
    return labels, unknown


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """The paper's class weights ``N / (C * count_c)`` from the training labels, float32 (C,).

    A class that never appears in the training labels cannot be weighted (its weight would be
    infinite), so that raises ValueError naming the class rather than silently using 0 or inf.
    """
    import torch  # here: the registry itself loads without torch (`python -m clinical_peft tasks`)

    labels = torch.as_tensor(labels).long().flatten()
    if labels.numel() == 0:
        raise ValueError("class_weights needs at least one label")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    counts = torch.bincount(labels, minlength=num_classes)
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"class(es) {missing} never appear in the training labels; cannot weight")
    return (labels.numel() / (num_classes * counts.double())).float()
