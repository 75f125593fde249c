"""Tests for clinical_peft.metrics against sklearn (reference only) and hand examples."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchmetrics.functional.classification import multiclass_auroc as tm_multiclass_auroc
from torchmetrics.functional.classification import multilabel_auroc as tm_multilabel_auroc

from clinical_peft.metrics import (
    OutcomeScores,
    binary_auroc,
    bootstrap_ci,
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
