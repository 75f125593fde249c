"""Intervals over test examples against independent references: sklearn per resample, an
O(n^2) DeLong written here, scipy's own BCa, and small seeded coverage simulations."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from clinical_peft.metrics.bootstrap import (
    bca_ci,
    bootstrap_auroc,
    bootstrap_draws,
    interval,
    percentile_ci,
    resample_indices,
)
from clinical_peft.metrics.delong import SmallSampleWarning, delong_ci, delong_test
from clinical_peft.metrics.jackknife import leave_one_out_auroc
from clinical_peft.metrics.outcomes import binary_auroc


def fixed_set_auroc(scores: np.ndarray, labels: np.ndarray, kind: str, keep: list) -> float:
    """sklearn's macro AUROC over exactly ``keep`` (labels, or classes for one-vs-one); NaN if
    one of them lacks a class here."""
    if kind == "multilabel":
        per = [roc_auc_score(labels[:, k], scores[:, k]) if 0 < labels[:, k].sum() < len(labels) else math.nan for k in keep]  # fmt: skip
        return float(np.mean(per))
    if not set(keep) <= set(labels.tolist()):
        return math.nan
    pairs = []
    for i, a in enumerate(keep):
        for b in keep[i + 1 :]:
            m = (labels == a) | (labels == b)
            pairs.append((roc_auc_score(labels[m] == a, scores[m, a]) + roc_auc_score(labels[m] == b, scores[m, b])) / 2)  # fmt: skip
    return float(np.mean(pairs))


RNG = np.random.default_rng(7)
N = 40
ML_Y = (RNG.random((N, 4)) < [0.4, 0.3, 0.0, 0.0]).astype(np.int64)
ML_Y[3, 2] = 1  # label 2: one positive, lost in ~37 % of resamples; label 3 never positive
ML_S = np.clip(0.3 * ML_Y + RNG.random((N, 4)) * 0.7, 0, 1).round(2)
MC_Y = RNG.integers(0, 3, N)
MC_Y[5] = 3  # class 3: one example
MC_S = RNG.dirichlet(np.ones(4), N) + 0.4 * np.eye(4)[MC_Y]


@pytest.mark.parametrize(
    ("kind", "scores", "labels", "keep"),
    [("multilabel", ML_S, ML_Y, [0, 1, 2]), ("multiclass", MC_S, MC_Y, [0, 1, 2, 3])],
)
def test_bootstrap_keeps_the_point_estimates_label_set(kind, scores, labels, keep):
    """Before: a resample that lost label 2 (or class 3) averaged the others, e.g. a point
    estimate over three labels and draws over two. Now such resamples are dropped, counted."""
    naive = np.array([fixed_set_auroc(scores[i], labels[i], kind, keep)
                      for b in resample_indices(N, 40, seed=3) for i in b.numpy()])  # fmt: skip
    fast = bootstrap_auroc(scores, labels, kind, 40, 3)
    np.testing.assert_allclose(fast, naive[np.isfinite(naive)], atol=1e-12)
    draws = bootstrap_draws(scores, labels, kind, n_boot=40, seed=3)
    np.testing.assert_allclose(draws.values, fast)
    assert 0 < draws.n_dropped == int(np.isnan(naive).sum()) < 40
    assert draws.lost == {keep[-1]: draws.n_dropped}
    unit = "label" if kind == "multilabel" else "class"
    assert draws.note() == f"{draws.n_dropped} of 40 resamples dropped ({unit}s lost a class: {unit} {keep[-1]} in {draws.n_dropped})"  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "scores", "labels", "keep"),
    [
        ("binary", ML_S[:, 0], ML_Y[:, 0], None),
        ("multilabel", ML_S, ML_Y, [0, 1, 2]),
        ("multiclass", MC_S, MC_Y, [0, 1, 2, 3]),
    ],
)
def test_leave_one_out_auroc_recomputes_each_removal(kind, scores, labels, keep):
    loo = leave_one_out_auroc(scores, labels, kind)
    for i in range(N):
        rest = np.arange(N) != i
        if kind == "binary":
            expected = roc_auc_score(labels[rest], scores[rest])
        else:
            expected = fixed_set_auroc(scores[rest], labels[rest], kind, keep)
        assert loo[i] == pytest.approx(expected, abs=1e-12, nan_ok=True), i
    # the one positive of label 2 / the one example of class 3
    assert np.isnan(loo).sum() == (kind != "binary")


def test_bca_equals_scipys_own_on_the_same_draws():
    """scipy computes the acceleration itself here, recomputing the AUROC on each of the N
    leave-one-out samples with sklearn; ours looks the exact values up."""
    y, s = ML_Y[:, 0], ML_S[:, 0]
    draws = bootstrap_draws(s, y, "binary", n_boot=300, seed=1)
    point = roc_auc_score(y, s)

    def sklearn_auroc(idx, axis=-1):
        idx = np.atleast_2d(idx)
        values = np.array([roc_auc_score(y[i], s[i]) for i in idx])
        return values if len(idx) > 1 else values[0]

    ref = stats.bootstrap((np.arange(N),), sklearn_auroc, n_resamples=0, method="BCa",
                          bootstrap_result=SimpleNamespace(bootstrap_distribution=draws.values))  # fmt: skip
    got = bca_ci(draws.values, point, leave_one_out_auroc(s, y, "binary"))
    assert got == pytest.approx(tuple(ref.confidence_interval), abs=1e-12)
    assert got != pytest.approx(percentile_ci(draws.values))
    assert interval(draws, point, leave_one_out_auroc(s, y, "binary")).method == "bca"


def brute_force_variance(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(), psi.mean(1).var(ddof=1) / len(pos) + psi.mean(0).var(ddof=1) / len(neg)


def test_delong_interval_wald_and_logit_against_the_definition():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(15, bool), np.zeros(60, bool)]
    s = np.round(1.2 * y + rng.normal(0, 1, 75), 1)
    auc, var = brute_force_variance(s, y)
    z = stats.norm.ppf(0.975)
    wald = delong_ci(s, y, scale="wald")
    assert (wald["auroc"], wald["low"], wald["high"]) == pytest.approx(
        (auc, auc - z * math.sqrt(var), auc + z * math.sqrt(var))
    )
    logit = delong_ci(s, y)
    half = z * math.sqrt(var) / (auc * (1 - auc))
    expected = [1 / (1 + math.exp(-(math.log(auc / (1 - auc)) + k * half))) for k in (-1, 1)]
    assert [logit["low"], logit["high"]] == pytest.approx(expected)
    assert 0 < logit["low"] < auc < logit["high"] < 1
    perfect = delong_ci(np.r_[np.ones(15), np.zeros(60)], y)
    assert math.isnan(perfect["low"]) and "0 or 1" in perfect["note"]


def test_delong_refuses_tiny_classes_and_warns_on_small_ones():
    """One positive: a variance term was 0 and p < 0.05 in ~half of null trials."""
    rng = np.random.default_rng(1)
    for n_pos in (1, 2):
        y = np.r_[np.ones(n_pos), np.zeros(35 - n_pos)]
        with pytest.warns(SmallSampleWarning, match=f"{n_pos} example.s. in a class .< 3.: not computed"):  # fmt: skip
            result = delong_test(rng.normal(size=35), rng.normal(size=35), y)
        assert math.isnan(result["p"]) and math.isnan(result["se"])
        with pytest.warns(SmallSampleWarning):
            assert math.isnan(delong_ci(rng.normal(size=35), y)["low"])
    y = np.r_[np.ones(5), np.zeros(30)]
    with pytest.warns(SmallSampleWarning, match="5 examples in a class .< 10.: normal approximation loose"):  # fmt: skip
        assert 0 < delong_test(rng.normal(size=35), rng.normal(size=35), y)["p"] < 1
    y = np.r_[np.ones(12), np.zeros(30)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleWarning)
        assert delong_test(rng.normal(size=42), rng.normal(size=42), y)["note"] == ""


def test_delong_of_averaged_models_is_the_mean_difference():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(20, bool), np.zeros(50, bool)]
    a = [y + rng.normal(0, 1, 70) for _ in range(3)]
    b = [0.5 * y + rng.normal(0, 1, 70) for _ in range(3)]
    one = delong_test(a[0], b[0], y)
    assert delong_test([a[0]], [b[0]], y)["p"] == pytest.approx(one["p"])
    mean = delong_test(a, b, y)
    assert mean["diff"] == pytest.approx(np.mean([roc_auc_score(y, x) for x in a])
                                         - np.mean([roc_auc_score(y, x) for x in b]))  # fmt: skip
    # The variance of the mean difference from averaged placements, by a double loop.
    psi = lambda s: (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])  # noqa: E731
    d = np.mean([psi(x) for x in a], 0) - np.mean([psi(x) for x in b], 0)
    se = math.sqrt(d.mean(1).var(ddof=1) / 20 + d.mean(0).var(ddof=1) / 50)
    assert mean["se"] == pytest.approx(se)


def test_coverage_with_few_positives_and_a_high_auroc():
    """Known true AUROC 0.85 (binormal), 5 positives of 50, the model fixed, 150 test sets:
    BCa covers more often than the percentile interval and logit-DeLong more than Wald."""
    true_auc = 0.85
    mu = math.sqrt(2) * stats.norm.ppf(true_auc)
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(5, np.int64), np.zeros(45, np.int64)]
    hits = dict.fromkeys(("percentile", "bca", "wald", "logit"), 0)
    for trial in range(150):
        s = np.r_[rng.normal(mu, 1, 5), rng.normal(0, 1, 45)]
        draws = bootstrap_draws(s, y, "binary", n_boot=400, seed=trial)
        point, loo = binary_auroc(s, y), leave_one_out_auroc(s, y, "binary")
        for method in ("percentile", "bca"):
            box = interval(draws, point, loo, method)
            hits[method] += box.low <= true_auc <= box.high
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallSampleWarning)
            for scale in ("wald", "logit"):
                ci = delong_ci(s, y, scale=scale)
                hits[scale] += ci["low"] <= true_auc <= ci["high"]
    coverage = {k: v / 150 for k, v in hits.items()}
    assert coverage["bca"] > coverage["percentile"] + 0.02, coverage
    assert coverage["logit"] > coverage["wald"] + 0.02, coverage
    assert min(coverage["bca"], coverage["logit"]) > 0.85, coverage


def test_delong_rejects_a_true_null_at_about_its_level():
    """Two equally good correlated models, 12 positives of 60: p < 0.05 in about 5 %."""
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(12, bool), np.zeros(48, bool)]
    rejected = 0
    for _ in range(400):
        shared = rng.normal(size=60)
        a, b = y + shared + rng.normal(size=60), y + shared + rng.normal(size=60)
        rejected += delong_test(a, b, y)["p"] < 0.05
    assert 0.02 < rejected / 400 < 0.09
