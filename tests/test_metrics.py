"""Tests for clinical_peft.metrics.outcomes against sklearn (reference only) and hand examples."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchmetrics.functional.classification import multiclass_auroc as tm_multiclass_auroc
from torchmetrics.functional.classification import multilabel_auroc as tm_multilabel_auroc

from clinical_peft.metrics.bootstrap import (
    bootstrap_auroc,
    bootstrap_ci,
    paired_bootstrap_diff,
    percentile_ci,
    resample_indices,
)
from clinical_peft.metrics.outcomes import (
    OutcomeScores,
    binary_auprc,
    binary_auroc,
    multiclass_auroc_ovo,
    multiclass_auroc_ovr,
    multilabel_auroc,
    outcome_metrics,
)

RNG = np.random.default_rng(1234)
N = 300
# Binary: scores rounded to 2 decimals so that ties occur; weakly informative.
BIN_Y = RNG.integers(0, 2, N)
BIN_S = np.clip(0.3 * BIN_Y + RNG.random(N) * 0.7, 0, 1).round(2).astype(np.float32)
# Multiclass: 4 classes (LOS), softmax-like probabilities.
MC_Y = RNG.integers(0, 4, N)
MC_P = RNG.dirichlet(np.ones(4), N) + 0.5 * np.eye(4)[MC_Y]
MC_P = (MC_P / MC_P.sum(1, keepdims=True)).astype(np.float64)
# Multilabel: 6 labels; label 2 never positive, label 4 always positive.
ML_Y = (RNG.random((N, 6)) < [0.3, 0.1, 0.0, 0.5, 1.0, 0.02]).astype(np.int64)
ML_P = np.clip(0.2 * ML_Y + RNG.random((N, 6)) * 0.8, 0, 1).astype(np.float32)


def test_binary_auroc_and_auprc_match_sklearn() -> None:
    got = outcome_metrics(torch.tensor(BIN_S), torch.tensor(BIN_Y), "binary", 2)
    assert got["auroc"] == pytest.approx(skm.roc_auc_score(BIN_Y, BIN_S), abs=1e-6)
    assert got["auprc"] == pytest.approx(skm.average_precision_score(BIN_Y, BIN_S), abs=1e-6)
    assert 0.6 < got["auroc"] < 0.95  # the fixture carries signal, so a wrong sign would show
    assert math.isnan(binary_auroc([0.1, 0.9], [1, 1]))


def test_multiclass_ovo_and_ovr_match_sklearn() -> None:
    ovo = multiclass_auroc_ovo(MC_P, MC_Y, 4)
    ovr = multiclass_auroc_ovr(MC_P, MC_Y, 4)
    assert ovo == pytest.approx(skm.roc_auc_score(MC_Y, MC_P, multi_class="ovo"), abs=1e-6)
    assert ovr == pytest.approx(skm.roc_auc_score(MC_Y, MC_P, multi_class="ovr"), abs=1e-6)
    # torchmetrics' MulticlassAUROC is one-vs-rest, not the paper's one-vs-one figure.
    tm = float(tm_multiclass_auroc(torch.tensor(MC_P), torch.tensor(MC_Y), num_classes=4))
    assert tm == pytest.approx(ovr, abs=1e-6) and abs(tm - ovo) > 1e-4


def test_multiclass_with_absent_class() -> None:
    keep = MC_Y != 2
    y, p = MC_Y[keep], MC_P[keep]
    # sklearn's OvO with labels= averages only pairs of classes present: so do we.
    sk_ovo = skm.roc_auc_score(y, p, multi_class="ovo", labels=[0, 1, 2, 3])
    assert multiclass_auroc_ovo(p, y, 4) == pytest.approx(sk_ovo, abs=1e-6)
    # sklearn's OvR gives NaN; we average the classes that can be scored.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(skm.roc_auc_score(y, p, multi_class="ovr", labels=[0, 1, 2, 3]))
    per_class = [skm.roc_auc_score(y == c, p[:, c]) for c in (0, 1, 3)]
    assert multiclass_auroc_ovr(p, y, 4) == pytest.approx(np.mean(per_class), abs=1e-6)
    assert math.isnan(multiclass_auroc_ovo(p[y == 0], y[y == 0], 4))


def test_multiclass_accuracy() -> None:
    got = outcome_metrics(MC_P, MC_Y, "multiclass", 4)
    assert got["accuracy"] == pytest.approx(float((MC_P.argmax(1) == MC_Y).mean()))
    assert set(got) == {"auroc", "auroc_ovr", "accuracy"}


def test_multilabel_masks_single_class_labels() -> None:
    got = multilabel_auroc(torch.tensor(ML_P), torch.tensor(ML_Y))
    scorable = [0, 1, 3, 5]
    sk_auc = [skm.roc_auc_score(ML_Y[:, j], ML_P[:, j]) for j in scorable]
    sk_ap = [skm.average_precision_score(ML_Y[:, j], ML_P[:, j]) for j in scorable]
    assert got["n_labels_scored"] == 4
    assert got["auroc"] == pytest.approx(np.mean(sk_auc), abs=1e-6)
    assert got["auprc_macro"] == pytest.approx(np.mean(sk_ap), abs=1e-6)
    sk_micro = skm.roc_auc_score(ML_Y, ML_P, average="micro")
    assert got["auroc_micro"] == pytest.approx(sk_micro, abs=1e-6)
    # torchmetrics' plain macro averages a 0 in for labels 2 and 4, so it differs.
    plain = float(
        tm_multilabel_auroc(torch.tensor(ML_P), torch.tensor(ML_Y), num_labels=6, average="macro")
    )
    assert plain == pytest.approx(np.mean(sk_auc) * 4 / 6, abs=1e-6)
    assert abs(plain - got["auroc"]) > 0.1


def test_multilabel_nothing_scorable() -> None:
    got = multilabel_auroc(torch.rand(5, 3), torch.zeros(5, 3, dtype=torch.long))
    assert got["n_labels_scored"] == 0 and math.isnan(got["auroc"])


def test_outcome_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="binary, multiclass, multilabel"):
        outcome_metrics(BIN_S, BIN_Y, "regression", 1)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        outcome_metrics(MC_P, MC_Y, "multiclass", 5)


@pytest.mark.parametrize(
    ("kind", "scores", "labels", "num_labels"),
    [
        ("binary", BIN_S, BIN_Y, 2),
        ("multiclass", MC_P, MC_Y, 4),
        ("multilabel", ML_P, ML_Y, 6),
    ],
)
def test_outcome_scores_accumulates_batches(kind, scores, labels, num_labels) -> None:
    metric = OutcomeScores(kind, num_labels)
    for start in range(0, N, 64):  # uneven last batch
        metric.update(
            torch.tensor(scores[start : start + 64]), torch.tensor(labels[start : start + 64])
        )
    got = metric.compute()
    expected = outcome_metrics(torch.tensor(scores), torch.tensor(labels), kind, num_labels)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert isinstance(got[key], float)
        assert got[key] == pytest.approx(value, abs=1e-9), key
    metric.reset()
    metric.update(torch.tensor(scores[:64]), torch.tensor(labels[:64]))
    assert metric.compute()["auroc"] != pytest.approx(expected["auroc"], abs=1e-6)


def test_outcome_scores_gathers_by_concatenation() -> None:
    metric = OutcomeScores("binary", 2)
    for name in ("scores", "labels"):
        assert metric._reductions[name].__name__ == "dim_zero_cat"


def test_bootstrap_ci() -> None:
    fn = binary_auroc
    point = fn(BIN_S, BIN_Y)
    low, high = bootstrap_ci(fn, BIN_S, BIN_Y, n_boot=200, seed=0)
    assert low < point < high and high - low < 0.2
    assert bootstrap_ci(fn, BIN_S, BIN_Y, n_boot=200, seed=0) == (low, high)
    assert bootstrap_ci(fn, BIN_S, BIN_Y, n_boot=200, seed=1) != (low, high)
    narrow = bootstrap_ci(fn, BIN_S, BIN_Y, n_boot=200, alpha=0.5, seed=0)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_skips_single_class_resamples() -> None:
    labels = np.zeros(12, dtype=np.int64)
    labels[0] = 1  # about 1/e of resamples hold no positive
    scores = np.linspace(1, 0, 12)
    low, high = bootstrap_ci(binary_auroc, scores, labels, n_boot=100)
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)

    def strict_auroc(s, y):  # a metric that refuses one-class input is never handed one
        if len(np.unique(y)) < 2:
            raise AssertionError("single-class resample reached metric_fn")
        return binary_auroc(s, y)

    assert bootstrap_ci(strict_auroc, scores, labels, n_boot=100) == (low, high)
    with pytest.raises(ValueError, match="no bootstrap"):
        bootstrap_ci(binary_auroc, scores, np.zeros(12, dtype=np.int64), n_boot=10)


def test_multilabel_with_one_scorable_label() -> None:
    # torchmetrics refuses num_labels=1; label 1 is all positive, so only label 0 is scored.
    got = multilabel_auroc([[0.1, 0.2], [0.5, 0.3], [0.9, 0.4]], [[0, 1], [1, 1], [1, 1]])
    assert got["n_labels_scored"] == 1
    assert got["auroc"] == pytest.approx(skm.roc_auc_score([0, 1, 1], [0.1, 0.5, 0.9]))
    assert got["auprc_macro"] == pytest.approx(
        skm.average_precision_score([0, 1, 1], [0.1, 0.5, 0.9])
    )


@pytest.mark.parametrize(
    ("kind", "scores", "labels", "num_labels"),
    [
        ("binary", BIN_S, BIN_Y, 2),
        ("multiclass", MC_P, MC_Y, 4),
        ("multilabel", ML_P, ML_Y, 6),
    ],
)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_scores_give_nan_and_a_warning(kind, scores, labels, num_labels, bad) -> None:
    scores = scores.copy()
    scores[:3] = bad
    with pytest.warns(RuntimeWarning, match=r"^val: \d+ non-finite scores; AUROC is NaN"):
        got = outcome_metrics(scores, labels, kind, num_labels, split="val")
    assert math.isnan(got["auroc"])
    assert all(math.isnan(v) for k, v in got.items() if k != "n_labels_scored")


def _multilabel_fixture(seed: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    """200 x 12 with signal; column 0 all tied, label 1 a single positive, label 2 none."""
    rng = np.random.default_rng(seed)
    y = (rng.random((200, 12)) < rng.uniform(0.03, 0.6, 12)).astype(np.int64)
    s = (0.3 * y + rng.random((200, 12))).astype(np.float32)
    if decimals is not None:
        s = s.round(decimals)
    s[:, 0] = 0.5
    y[:, 1], y[7, 1], y[:, 2] = 0, 1, 0
    return s, y


@pytest.mark.parametrize("decimals", [None, 2, 1])  # continuous, some ties, heavy ties
@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_matches_sklearn_with_and_without_ties(seed: int, decimals) -> None:
    s, y = _multilabel_fixture(seed, decimals)
    got = outcome_metrics(torch.tensor(s), torch.tensor(y), "multilabel", 12)
    scorable = [j for j in range(12) if 0 < y[:, j].sum() < len(y)]
    sk_auc = [skm.roc_auc_score(y[:, j], s[:, j]) for j in scorable]
    sk_ap = [skm.average_precision_score(y[:, j], s[:, j]) for j in scorable]
    for j, auc, ap in zip(scorable, sk_auc, sk_ap, strict=True):
        assert binary_auroc(s[:, j], y[:, j]) == pytest.approx(auc, abs=1e-9), j
        assert binary_auprc(s[:, j], y[:, j]) == pytest.approx(ap, abs=1e-9), j
    assert sk_auc[0] == 0.5 and sk_ap[0] == pytest.approx(y[:, 0].mean())  # the tied column
    assert got["n_labels_scored"] == len(scorable) == 11
    assert got["auroc"] == pytest.approx(np.mean(sk_auc), abs=1e-9)
    assert got["auprc_macro"] == pytest.approx(np.mean(sk_ap), abs=1e-9)
    sk_micro = skm.roc_auc_score(y, s, average="micro")
    assert got["auroc_micro"] == pytest.approx(sk_micro, abs=1e-9)


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_matches_sklearn_on_logits(decimals, dtype) -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    s = (rng.normal(size=500) + y).astype(dtype)  # logits: negative scores too
    if decimals is not None:
        s = s.round(decimals)
    got = outcome_metrics(s, y, "binary", 1)
    assert got["auroc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-9)
    assert got["auprc"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-9)


@pytest.mark.parametrize("decimals", [None, 1])
def test_multiclass_matches_sklearn_with_ties_and_an_absent_class(decimals) -> None:
    rng = np.random.default_rng(3)
    y = rng.choice([0, 1, 3, 4], 400)  # class 2 absent
    p = rng.dirichlet(np.ones(5), 400) + 0.4 * np.eye(5)[y]
    p = p / p.sum(1, keepdims=True)
    if decimals is not None:  # multiples of 10**-decimals that still sum to 1: many ties
        p = np.array([rng.multinomial(10**decimals, row) for row in p]) / 10**decimals
    sk_ovo = skm.roc_auc_score(y, p, multi_class="ovo", labels=range(5))
    sk_ovr = np.mean([skm.roc_auc_score(y == c, p[:, c]) for c in (0, 1, 3, 4)])
    got = outcome_metrics(p, y, "multiclass", 5)
    assert got["auroc"] == pytest.approx(sk_ovo, abs=1e-9)
    assert got["auroc_ovr"] == pytest.approx(sk_ovr, abs=1e-9)


def test_outcome_scores_warning_names_its_split() -> None:
    metric = OutcomeScores("multilabel", 6, split="test")
    metric.update(
        torch.tensor(ML_P).masked_fill(torch.tensor(ML_Y) == 1, math.nan), torch.tensor(ML_Y)
    )
    with pytest.warns(RuntimeWarning, match=rf"^test: {int(ML_Y.sum())} non-finite scores"):
        got = metric.compute()
    assert math.isnan(got["auroc"]) and got["n_labels_scored"] == 4


BOOT_CASES = [
    ("binary", BIN_S, BIN_Y, 2),
    ("multiclass", MC_P.round(1), MC_Y, 4),
    ("multilabel", ML_P.round(1), ML_Y, 6),
    ("binary", np.linspace(1, 0, 12), np.eye(12, dtype=np.int64)[2], 2),  # undefined resamples
]


@pytest.mark.parametrize(("kind", "scores", "labels", "num_labels"), BOOT_CASES)
@pytest.mark.parametrize("seed", [0, 5])
def test_bootstrap_auroc_equals_recomputing_each_resample(
    kind, scores, labels, num_labels, seed
) -> None:
    fast = bootstrap_auroc(scores, labels, kind, n_boot=40, seed=seed)
    naive = np.array(
        [
            outcome_metrics(scores[idx], labels[idx], kind, num_labels)["auroc"]
            for batch in resample_indices(len(labels), 40, seed)
            for idx in batch.numpy()
        ]
    )
    np.testing.assert_allclose(fast, naive[np.isfinite(naive)], rtol=0, atol=1e-9)
    assert len(np.unique(fast)) > 1 and (len(fast) < 40) == (len(labels) == 12)


def test_paired_bootstrap_diff_uses_the_same_resamples() -> None:
    other = np.clip(BIN_S + RNG.normal(0, 0.2, N), 0, 1).astype(np.float32)
    diff = paired_bootstrap_diff(BIN_S, other, BIN_Y, "binary", n_boot=50, seed=2)
    expected = bootstrap_auroc(BIN_S, BIN_Y, "binary", 50, 2) - bootstrap_auroc(
        other, BIN_Y, "binary", 50, 2
    )
    np.testing.assert_allclose(diff, expected, atol=1e-12)
    assert np.all(paired_bootstrap_diff(BIN_S, BIN_S, BIN_Y, "binary", n_boot=20) == 0)
    # The fast interval and the generic one agree: same resamples for the same seed.
    fast = percentile_ci(bootstrap_auroc(BIN_S, BIN_Y, "binary", n_boot=100, seed=4))
    assert fast == pytest.approx(bootstrap_ci(binary_auroc, BIN_S, BIN_Y, n_boot=100, seed=4))
