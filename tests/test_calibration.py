"""Calibration (Brier, ECE, intercept, slope, bootstrap intervals) and decision curves, checked
against scikit-learn and an independent logistic fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, confusion_matrix

from clinical_peft.metrics.bootstrap import bootstrap_ci
from clinical_peft.metrics.calibration import (
    bootstrap_calibration,
    calibration,
    calibration_metrics,
)
from clinical_peft.metrics.decision_curve import decision_curve
from clinical_peft.metrics.reliability import reliability_points

N_BOOT = 100


def binary_data(n: int = 400, a: float = 0.4, b: float = 1.6, seed: int = 0):
    """Scores p and labels drawn from logit P(y) = a + b logit(p): the true slope is b."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.3, n)
    return expit(x), (rng.random(n) < expit(a + b * x)).astype(np.int64)


def sklearn_slope(p: np.ndarray, y: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)  # a run stores float32: its logit in float64, as ours
    model = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    return float(model.fit(logit(np.clip(p, 1e-7, 1 - 1e-7))[:, None], y).coef_[0, 0])


def scipy_intercept(p: np.ndarray, y: np.ndarray) -> float:
    """a maximising the likelihood of logit P(y) = a + logit(p) (the slope held at 1)."""
    p = np.asarray(p, dtype=np.float64)
    offset = logit(np.clip(p, 1e-7, 1 - 1e-7))
    nll = lambda a: -np.sum(y * (a + offset) - np.logaddexp(0, a + offset))  # noqa: E731
    return float(
        minimize_scalar(nll, bounds=(-20, 20), method="bounded", options={"xatol": 1e-10}).x
    )


def sklearn_ece(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """ECE from sklearn's quantile calibration curve, each bin weighted by its share."""
    true, pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    # sklearn's own binning (quantile edges, searchsorted on the inner ones), for the counts
    edges = np.percentile(p, np.linspace(0, 100, n_bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    counts = counts[counts > 0]
    assert counts.sum() == len(p) and len(counts) == len(true)
    return float(np.sum(counts / len(p) * np.abs(true - pred)))


def test_binary_figures_equal_sklearn_and_an_independent_fit():
    p, y = binary_data()
    got = calibration(p, y, "binary")
    assert got["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert got["ece"] == pytest.approx(sklearn_ece(p, y), abs=1e-12)
    true, pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    mean_p, share, _ = reliability_points(p, y, "binary")
    np.testing.assert_allclose(mean_p, pred, atol=1e-12)
    np.testing.assert_allclose(share, true, atol=1e-12)
    assert got["calibration_slope"] == pytest.approx(sklearn_slope(p, y), abs=1e-5)
    assert got["calibration_intercept"] == pytest.approx(scipy_intercept(p, y), abs=1e-6)
    # a two-parameter fit by a general optimiser: the slope again
    x = logit(p)
    nll = lambda t: -np.sum(y * (t[0] + t[1] * x) - np.logaddexp(0, t[0] + t[1] * x))  # noqa: E731
    assert got["calibration_slope"] == pytest.approx(
        minimize(nll, [0, 1], tol=1e-12).x[1], abs=1e-4
    )


def test_well_calibrated_scores_give_intervals_around_the_ideal_and_others_do_not():
    p, y = binary_data(n=3000, a=0.0, b=1.0, seed=1)
    good = calibration_metrics(p, y, "binary", n_boot=200)
    assert good["calibration_slope_ci_low"] < 1 < good["calibration_slope_ci_high"]
    assert good["calibration_intercept_ci_low"] < 0 < good["calibration_intercept_ci_high"]
    assert good["ece_bins"] == 10
    over = calibration_metrics(expit(2.5 * logit(p) + 1), y, "binary", n_boot=200)  # overconfident
    assert over["calibration_slope_ci_high"] < 0.5 and over["calibration_intercept_ci_high"] < 0
    assert over["brier"] > good["brier"] and over["ece_ci_low"] > good["ece_ci_high"]


def test_bootstrap_uses_the_auroc_resamples():
    p, y = binary_data(n=200)
    values = bootstrap_calibration(p, y, "binary", n_boot=N_BOOT, seed=3)["brier"]
    ours = np.quantile(values, [0.025, 0.975])
    reference = bootstrap_ci(lambda s, t: brier_score_loss(t, s), p, y, n_boot=N_BOOT, seed=3)
    np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_multiclass_top_label_ece_and_one_vs_rest_fits():
    rng = np.random.default_rng(2)
    n, c = 300, 4
    logits = rng.normal(0, 1.5, (n, c))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(c, p=row**0.7 / (row**0.7).sum()) for row in probs])
    got = calibration(probs, labels, "multiclass")
    assert got["brier"] == pytest.approx(
        brier_score_loss(labels, probs, labels=range(c)), abs=1e-12
    )
    confidence, correct = probs.max(1), (probs.argmax(1) == labels).astype(int)
    assert got["ece"] == pytest.approx(sklearn_ece(confidence, correct), abs=1e-12)
    slopes = [sklearn_slope(probs[:, k], (labels == k).astype(int)) for k in range(c)]
    assert got["calibration_slope"] == pytest.approx(np.mean(slopes), abs=1e-5)
    intercepts = [scipy_intercept(probs[:, k], (labels == k).astype(int)) for k in range(c)]
    assert got["calibration_intercept"] == pytest.approx(np.mean(intercepts), abs=1e-6)


def test_multilabel_summarises_labels_with_both_classes():
    rng = np.random.default_rng(4)
    probs = rng.random((250, 6))
    labels = (rng.random((250, 6)) < probs**1.5).astype(np.int64)
    labels[:, 2] = 0  # one class only: left out of every mean
    got = calibration(probs, labels, "multilabel")
    kept = [0, 1, 3, 4, 5]
    expected = {
        "brier": np.mean([brier_score_loss(labels[:, j], probs[:, j]) for j in kept]),
        "ece": np.mean([sklearn_ece(probs[:, j], labels[:, j]) for j in kept]),
        "calibration_slope": np.mean([sklearn_slope(probs[:, j], labels[:, j]) for j in kept]),
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-5), key
    ci = calibration_metrics(probs, labels, "multilabel", n_boot=50)
    assert ci["brier_ci_low"] < got["brier"] < ci["brier_ci_high"]


def test_undefined_fits_are_nan_not_errors():
    separated = calibration(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]), "binary")
    assert math.isnan(separated["calibration_slope"])  # no finite maximum-likelihood slope
    assert math.isfinite(separated["calibration_intercept"])
    one_class = calibration(np.array([0.1, 0.4, 0.3]), np.array([0, 0, 0]), "binary")
    assert math.isnan(one_class["calibration_slope"]) and math.isnan(
        one_class["calibration_intercept"]
    )
    assert one_class["brier"] == pytest.approx(brier_score_loss([0, 0, 0], [0.1, 0.4, 0.3]))
    with pytest.warns(RuntimeWarning, match="non-finite"):
        diverged = calibration(np.array([0.1, np.nan, 0.3]), np.array([0, 1, 0]), "binary")
    assert all(math.isnan(v) for v in diverged.values())


def test_net_benefit_equals_the_confusion_matrix():
    p, y = binary_data(n=300, seed=5)
    table = decision_curve(p, y)
    assert list(table.columns) == ["threshold", "net_benefit_model", "net_benefit_treat_all",
                                   "net_benefit_treat_none"]  # fmt: skip
    for t in (0.05, 0.2, 0.5, 0.8):
        tn, fp, fn, tp = confusion_matrix(y, p >= t, labels=[0, 1]).ravel()
        row = table[np.isclose(table.threshold, t)].iloc[0]
        assert row.net_benefit_model == pytest.approx(tp / len(y) - fp / len(y) * t / (1 - t))
        prevalence = y.mean()
        assert row.net_benefit_treat_all == pytest.approx(
            prevalence - (1 - prevalence) * t / (1 - t)
        )
        assert row.net_benefit_treat_none == 0
    perfect = decision_curve(y.astype(float), y)
    np.testing.assert_allclose(perfect.net_benefit_model, y.mean())  # every event, no false alarm


def test_bootstrap_keeps_the_point_estimates_label_set():
    """A label with 2 positives of 60: a resample that loses them is dropped (counted), not
    averaged over the other labels (issue 27's fixed label set, as AUROC's)."""
    from clinical_peft.metrics.bootstrap import resample_indices

    rng = np.random.default_rng(6)
    probs = rng.random((60, 3))
    labels = (rng.random((60, 3)) < probs).astype(np.int64)
    labels[:, 2] = 0
    labels[[5, 17], 2] = 1
    got = calibration_metrics(probs, labels, "multilabel", n_boot=N_BOOT, seed=1)
    kept = 0
    for batch in resample_indices(60, N_BOOT, seed=1):
        for idx in batch.numpy():
            n_pos = labels[idx].sum(0)
            kept += bool(((n_pos > 0) & (n_pos < 60)).all())
    assert got["brier_resamples"] == kept < N_BOOT
    assert got["calibration_slope_resamples"] <= kept
