"""The instruction tasks of study B, one `InstructTask` spec each, in the `TASKS` registry.

A spec holds everything the code needs to know about a task: the new-token cap of generation,
how to score generated answers (parse + metric, `score`), and the metric keys with their names
in the study table (the synthetic item maker registers itself by task name in
clinical_peft/synthetic/items.py). The data module (valid task names), generation
evaluation, `report_instruct`, the synthetic generator, the tests and the Makefile (its task list
is read from this file's `"name": InstructTask(` lines) all read the registry. A new task is one
spec here and its item maker; `experiments/{sft,dpo}/<name>.yaml` overlays only if the task
needs other settings than the stage's base.yaml.

Scoring (as the study): F1 for note classification (Yes/No) and for each triage field (provider,
urgency), accuracy for numeric classification and multiple choice (letter A-D), ROUGE-L for
summaries (the study's Likert ratings need human raters). F1 is the macro average over the
classes the references hold; an answer the parser cannot read counts as wrong (never as a class
of its own) and the share of those is reported as `unparsable`. Unparsable means: no "Yes"/"No"
as the first word (classification); not starting with one of the reference answers (numeric);
no letter standing as the answer (reasoning, see `parse_letter`); no "Provider: X ... Urgency: Y"
(triage); an empty text (summarisation).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from clinical_peft.metrics.text import accuracy, mean_rouge_l, reference_f1
from clinical_peft.util.errors import InputError

#: (metrics without the split prefix, number of unparsable predictions)
Scored = tuple[dict[str, float], int]


@dataclass(frozen=True)
class InstructTask:
    name: str
    max_new_tokens: int
    """Cap on generated tokens at evaluation: short labels, or a one-to-two sentence summary."""
    metrics: dict[str, str]
    """Metric key (`test/<key>` in metrics.json) -> its name in the study table, in table order."""
    scorer: Callable[[list[str], list[str]], Scored]
    """(generated texts, reference completions) -> (metrics, count of unparsable predictions)."""


# --- answer parsers: the answer, or None when the text holds no readable answer ----------------
_TRIAGE = re.compile(r"provider:\s*([a-z]+)\W+urgency:\s*([a-z]+)", re.IGNORECASE)
# A multiple-choice letter counts only where it stands as the answer (capital A-D):
# - at the start, alone on the first line or followed by ".", ")", "]", ":" or "*":
#   "B", "B.", "B. Sepsis", "B)", "(B)", "[B]", "B: sepsis", "**B**";
# - right after "answer" (any case), with "is" and/or ":" between: "Answer: B",
#   "The answer is B", "the correct answer is (B)".
# "A patient ...", "A 45-year-old ..." or "Options A and B ..." hold no answer.
_LEADING_LETTER = re.compile(r"[\s*(\[]*([A-D])(?:[.):\]*]|[ \t]*(?:\n|$))")
_ANSWER_LETTER = re.compile(r"(?i:answer)\s*(?:(?i:is)\s*)?:?\s*[(\[*]*([A-D])\b")


def parse_yes_no(text: str) -> str | None:
    """ "Yes" or "No" from the first word ("yes." -> "Yes"), else None."""
    words = re.findall(r"[A-Za-z]+", text)
    word = words[0].capitalize() if words else ""
    return word if word in ("Yes", "No") else None


def parse_triage(text: str) -> tuple[str, str] | None:
    """("Nurse", "Routine") from "Provider: Nurse; Urgency: Routine", else None."""
    match = _TRIAGE.search(text)
    return (match.group(1).capitalize(), match.group(2).capitalize()) if match else None


def parse_choice(text: str, choices: list[str]) -> str | None:
    """The choice the text starts with (case-insensitive, longest first), else None."""
    text = text.strip().lower()
    for choice in sorted(choices, key=len, reverse=True):
        if text.startswith(choice.lower()):
            return choice
    return None


def parse_letter(text: str) -> str | None:
    """The multiple-choice letter A-D standing as the answer (see `_LEADING_LETTER`), else None."""
    match = _LEADING_LETTER.match(text.strip()) or _ANSWER_LETTER.search(text)
    return match.group(1) if match else None


# --- scorers ----------------------------------------------------------------------------------
def _unparsable(preds: list) -> int:
    return sum(p is None for p in preds)


def score_classification(predictions: list[str], references: list[str]) -> Scored:
    preds, refs = [parse_yes_no(p) for p in predictions], [parse_yes_no(r) for r in references]
    return {"f1": reference_f1(preds, refs)}, _unparsable(preds)


def score_numeric(predictions: list[str], references: list[str]) -> Scored:
    refs = [r.strip() for r in references]
    preds = [parse_choice(p, sorted(set(refs))) for p in predictions]  # choices: the references'
    return {"accuracy": accuracy([p or "" for p in preds], refs)}, _unparsable(preds)


def score_reasoning(predictions: list[str], references: list[str]) -> Scored:
    preds = [parse_letter(p) for p in predictions]
    refs = [r.strip()[:1] for r in references]
    return {"accuracy": accuracy([p or "" for p in preds], refs)}, _unparsable(preds)


def score_summarisation(predictions: list[str], references: list[str]) -> Scored:
    preds = [p.strip() for p in predictions]
    refs = [r.strip() for r in references]
    return {"rouge_l": mean_rouge_l(preds, refs)}, sum(not p for p in preds)


def score_triage(predictions: list[str], references: list[str]) -> Scored:
    preds, refs = [parse_triage(p) for p in predictions], [parse_triage(r) for r in references]
    metrics = {
        f"f1_{field}": reference_f1(
            [p[i] if p else None for p in preds], [r[i] if r else None for r in refs]
        )
        for i, field in enumerate(("provider", "urgency"))
    }
    return metrics, _unparsable(preds)


TASKS: dict[str, InstructTask] = {
    "classification": InstructTask(
        "classification", 8, {"f1": "F1"}, score_classification
    ),
    "numeric": InstructTask(
        "numeric", 16, {"accuracy": "accuracy"}, score_numeric
    ),
    "reasoning": InstructTask(
        "reasoning", 8, {"accuracy": "accuracy"}, score_reasoning
    ),
    "summarisation": InstructTask(
        "summarisation", 96, {"rouge_l": "ROUGE-L"}, score_summarisation
    ),
    "triage": InstructTask(
        "triage", 24, {"f1_provider": "F1 provider", "f1_urgency": "F1 urgency"},
        score_triage,
    ),
}  # fmt: skip


def get_task(name: str) -> InstructTask:
    if name not in TASKS:
        raise InputError("data.task", f"unknown task '{name}' (valid: {', '.join(TASKS)})")
    return TASKS[name]


def score(task: str, predictions: list[str], references: list[str]) -> dict[str, float]:
    """The task's metrics for generated texts against reference completions, and `unparsable`:
    the share of generated texts the task's parser could not read (each scored as wrong)."""
    spec = get_task(task)
    metrics, n_unparsable = spec.scorer(predictions, references)
    if list(metrics) != list(spec.metrics):
        raise ValueError(f"{task}: scorer gave {list(metrics)}, spec lists {list(spec.metrics)}")
    return {**metrics, "unparsable": n_unparsable / len(predictions)}
