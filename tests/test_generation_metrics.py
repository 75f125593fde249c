"""Generation metrics of study B: F1 against sklearn, ROUGE-L against hand-computed values."""

from __future__ import annotations

import pytest
from sklearn import metrics as skm

from clinical_peft.metrics.text import (
    accuracy,
    f1_score,
    mean_rouge_l,
    reference_f1,
    rouge_l,
)


def test_rouge_l_hand_examples() -> None:
    # LCS "the cat on the mat" = 5 of 6 tokens on both sides.
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS "the gunman" = 2 of 4: P = R = 0.5.
    assert rouge_l("the gunman kill police", "police killed the gunman") == pytest.approx(0.5)
    # LCS 2, P = 2/4, R = 2/2: F = 2 * 0.5 * 1 / 1.5.
    assert rouge_l("a b c d", "a c") == pytest.approx(2 / 3)
    assert rouge_l("The Cat!", "the cat") == 1.0  # lowercase, punctuation separates
    assert rouge_l("", "the cat") == 0.0 and rouge_l("dog", "cat") == 0.0
    assert mean_rouge_l(["a b c d", "dog"], ["a c", "dog"]) == pytest.approx((2 / 3 + 1) / 2)


PREDS = ["Yes", "no ", "yes", "maybe", "NO", "yes", "no", "unsure", "yes", "no"]
REFS = ["yes", "no", "no", "maybe", "no", "yes", "yes", "no", "maybe", "no"]


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_f1_matches_sklearn(average: str) -> None:
    p = [x.strip().lower() for x in PREDS]
    r = [x.strip().lower() for x in REFS]
    expected = skm.f1_score(r, p, average=average, zero_division=0)
    assert f1_score(PREDS, REFS, average=average) == pytest.approx(expected)
    labels = ["yes", "no", "maybe"]
    expected = skm.f1_score(r, p, average=average, labels=labels, zero_division=0)
    assert f1_score(PREDS, REFS, average=average, labels=labels) == pytest.approx(expected)


def test_accuracy() -> None:
    assert accuracy(PREDS, REFS) == pytest.approx(6 / 10)
    with pytest.raises(ValueError):
        accuracy(["yes"], ["yes", "no"])


def test_reference_f1_matches_sklearn_over_the_reference_classes() -> None:
    refs = ["Nurse", "Physician", "Nurse", "Pharmacist", "Physician", "Nurse", "Pharmacist"]
    # None: unparsable; "Scheduling": a class no reference has
    preds = ["Nurse", None, "Physician", "Pharmacist", "Scheduling", "Nurse", None]
    expected = skm.f1_score(
        refs, [p or "" for p in preds], labels=sorted(set(refs)), average="macro", zero_division=0
    )
    assert reference_f1(preds, refs) == pytest.approx(expected)
    # every answer unparsable: 0, not an error
    assert reference_f1([None] * len(refs), refs) == 0.0
    with pytest.raises(ValueError, match="no reference"):
        reference_f1(["Nurse"], [None])
