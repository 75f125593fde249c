"""Study-B scoring: F1 over the reference classes, unparsable answers wrong and counted."""

from __future__ import annotations

import pytest
from sklearn import metrics as skm

from clinical_peft.tasks.instructions import score

TRIAGE_REFS = [
    f" Provider: {p}; Urgency: {u}"
    for p, u in [
        ("Nurse", "Routine"), ("Nurse", "Urgent"), ("Physician", "Urgent"),
        ("Physician", "Routine"), ("Pharmacist", "Routine"), ("Pharmacist", "Urgent"),
        ("Scheduling", "Routine"), ("Nurse", "Routine"), ("Physician", "Urgent"),
        ("Scheduling", "Routine"),
    ]
]  # fmt: skip


def sk_f1(refs: list[str], preds: list[str]) -> float:
    """sklearn's macro F1 over the classes the references hold."""
    return skm.f1_score(refs, preds, labels=sorted(set(refs)), average="macro", zero_division=0)


def test_one_unparsable_triage_answer_is_one_wrong_answer():
    preds = [r.strip() for r in TRIAGE_REFS]
    preds[1] = "I am not sure who should answer this."
    got = score("triage", preds, TRIAGE_REFS)
    providers = [r.split(";")[0].split()[-1] for r in TRIAGE_REFS]
    urgencies = [r.split()[-1] for r in TRIAGE_REFS]
    # the unparsable answer is a miss for its true class, not a class of its own
    assert got["f1_provider"] == pytest.approx(sk_f1(providers, [providers[0], ""] + providers[2:]))
    assert got["f1_urgency"] == pytest.approx(sk_f1(urgencies, [urgencies[0], ""] + urgencies[2:]))
    assert (
        got["f1_provider"] > 0.9
    )  # 0.95; was 0.76 with the unparsable answer as a class of its own
    assert got["unparsable"] == pytest.approx(0.1)


def test_classification_f1_over_the_reference_classes():
    refs = [" Yes", " No", " No", " Yes", " No", " Yes"]
    preds = [" Yes.", " no", "The note", " Maybe", " Yes", ""]
    expected = sk_f1(["Yes", "No", "No", "Yes", "No", "Yes"], ["Yes", "No", "", "", "Yes", ""])
    assert score("classification", preds, refs)["f1"] == pytest.approx(expected)
    assert score("classification", preds, refs)["unparsable"] == pytest.approx(3 / 6)


@pytest.mark.parametrize(
    "text",
    [" B", "B", "B.", " B. Sepsis", "B)", "(B)", "[B]", "B: sepsis", "**B**", "B\nbecause ...",
     "Answer: B", "answer: (B)", "The answer is B", "The correct answer is B. Sepsis",
     "I think the answer is B, sepsis"],
)  # fmt: skip
def test_multiple_choice_accepted_forms(text):
    got = score("reasoning", [text], [" B"])
    assert got == {"accuracy": 1.0, "unparsable": 0.0}


@pytest.mark.parametrize(
    "text",
    ["A patient with sepsis", "A 45-year-old man", "Sepsis", "", "Acute cholecystitis",
     "Options A and B are both wrong", "b"],
)  # fmt: skip
def test_multiple_choice_rejected_forms(text):
    # "A patient" starts with the article, not answer A: unparsable, and wrong (ref A)
    assert score("reasoning", [text], [" A"]) == {"accuracy": 0.0, "unparsable": 1.0}


def test_unparsable_shares_of_the_other_tasks():
    got = score(
        "numeric", [" SIADH due to", " Hypo", "unsure"], [" SIADH", " Hypovolemia", " SIADH"]
    )
    assert got == {"accuracy": pytest.approx(1 / 3), "unparsable": pytest.approx(2 / 3)}
    got = score("summarisation", [" ", " a b c"], [" a b", " a b c"])
    assert got == {"rouge_l": pytest.approx(0.5), "unparsable": pytest.approx(0.5)}
