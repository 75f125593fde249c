"""Post-hoc recalibration fitted on val: Platt equals an independent logistic fit (sklearn,
no penalty), temperature a brute-force likelihood scan; the test split's calibration improves
when val and test share the miscalibration; bad method names are one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit, logit, softmax
from sklearn.linear_model import LogisticRegression

from clinical_peft.metrics.clinical import recalibration_metrics
from clinical_peft.metrics.recalibration import apply_recalibration, check_method, fit_recalibration
from clinical_peft.util.errors import InputError


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels from P = sigmoid(x), scores sigmoid(3 x + 1): too sure and too high."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return expit(3 * x + 1), (rng.random(n) < expit(x)).astype(np.int64)


def test_platt_equals_an_unpenalised_logistic_fit():
    p, y = overconfident(4000, 0)
    params = fit_recalibration("platt", p, y, "binary")
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(logit(p)[:, None], y)
    assert params["a"][0] == pytest.approx(model.intercept_[0], abs=1e-4)
    assert params["b"][0] == pytest.approx(model.coef_[0, 0], abs=1e-4)
    assert params["b"][0] == pytest.approx(1 / 3, abs=0.08)  # undoes the planted factor 3
    np.testing.assert_allclose(apply_recalibration(params, p, "binary"),
                               model.predict_proba(logit(p)[:, None])[:, 1], atol=1e-4)  # fmt: skip


def test_platt_never_reverses_the_ranking():
    """Val scores ranked against the labels: an unconstrained fit's slope is negative (it would
    turn the test ranking upside down); ours stops at 0, val's prevalence for every example."""
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 2000)
    y = (rng.random(2000) < expit(-2 * x)).astype(np.int64)
    p = expit(x)
    unconstrained = LogisticRegression(C=np.inf, max_iter=10_000).fit(logit(p)[:, None], y)
    assert unconstrained.coef_[0, 0] < -1
    params = fit_recalibration("platt", p, y, "binary")
    assert params["b"][0] == 0
    np.testing.assert_allclose(apply_recalibration(params, p, "binary"), y.mean(), atol=1e-4)


def test_temperature_is_the_likelihood_optimum_multiclass():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1, (400, 3))
    labels = np.array([rng.choice(3, p=softmax(row)) for row in z])
    scores = softmax(2.5 * z, axis=1)  # overconfident by 2.5
    t = fit_recalibration("temperature", scores, labels, "multiclass")["temperature"]
    grid = np.exp(np.linspace(-2, 2, 4001))
    nll = [-np.log(softmax(np.log(scores) / g, axis=1)[np.arange(400), labels]).sum() for g in grid]
    assert t == pytest.approx(grid[int(np.argmin(nll))], rel=2e-3)
    assert 1.8 < t < 3.5


def test_recalibration_on_val_improves_test_calibration():
    val, test = overconfident(800, 2), overconfident(800, 3)
    for method in ("platt", "temperature"):
        got = recalibration_metrics(method, val, test, "binary", n_boot=50)
        from clinical_peft.metrics.calibration import calibration

        before = calibration(test[0], test[1], "binary")
        assert got["test_recalibrated/brier"] < before["brier"]
        assert abs(got["test_recalibrated/calibration_slope"] - 1) < abs(
            before["calibration_slope"] - 1
        )
        assert got["test_recalibrated/brier_ci_low"] <= got["test_recalibrated/brier"]
    assert "recalibration/temperature" in recalibration_metrics(
        "temperature", val, test, "binary", 20
    )
    assert recalibration_metrics("none", val, test, "binary") == {}


def test_multilabel_platt_per_label_and_a_one_class_label_left_alone():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (300, 3))
    labels = (rng.random((300, 3)) < expit(x)).astype(np.int64)
    labels[:, 1] = 0
    scores = expit(2 * x)
    params = fit_recalibration("platt", scores, labels, "multilabel")
    assert params["a"][1] == 0 and params["b"][1] == 1
    after = apply_recalibration(params, scores, "multilabel")
    np.testing.assert_allclose(after[:, 1], scores[:, 1], atol=1e-6)
    assert math.isclose(params["b"][0], 0.5, abs_tol=0.15)


def test_bad_methods_are_refused():
    with pytest.raises(InputError, match="unknown 'isotonic'"):
        check_method("isotonic", "binary", "data.recalibrate")
    with pytest.raises(InputError, match="use temperature"):
        check_method("platt", "multiclass", "data.recalibrate")
