"""Optional post-hoc recalibration, fitted on the validation split and applied to the test
split, whose calibration is then reported before and after (the headline scores never change).

- `platt` (binary; multi-label: one fit per label): P = sigmoid(a + b logit(p)), (a, b) by
  maximum likelihood (Platt 1999 on the model's logit) with b >= 0, so recalibration never
  reverses the model's ranking: where val's scores rank against the labels (an unconstrained
  b < 0), b is 0 and every test example gets val's prevalence. A label with one class in val
  is left as it is.
- `temperature` (every kind; Guo et al. 2017): binary and multi-label sigmoid(logit(p) / T),
  multi-class softmax(log(p) / T), one T > 0 by maximum likelihood.
Fits are scipy's (L-BFGS for Platt, bounded scalar search for log T); a split the logit
separates gives a steep but finite Platt fit (L-BFGS stops at its tolerance).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, logit

from clinical_peft.util.errors import InputError

METHODS = ("none", "platt", "temperature")
CLIP = 1e-7


def check_method(method: str, kind: str | None, where: str) -> None:
    """InputError naming `where` for an unknown method or Platt on a multi-class task."""
    if method not in METHODS:
        raise InputError(where, f"unknown '{method}' (valid: {', '.join(METHODS)})")
    if method == "platt" and kind == "multiclass":
        raise InputError(where, "platt is for binary and multi-label tasks; use temperature")


def _x(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=np.float64), CLIP, 1 - CLIP))


def _bernoulli_nll(eta: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.logaddexp(0, eta) - y * eta))


def _platt(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if y.min() == y.max():
        return 0.0, 1.0  # one class: nothing to fit, the scores stay

    def nll(t: np.ndarray) -> float:  # noqa: E306
        return _bernoulli_nll(t[0] + t[1] * x, y)

    def grad(t: np.ndarray) -> np.ndarray:
        r = expit(t[0] + t[1] * x) - y
        return np.array([r.sum(), (r * x).sum()])

    bounds = [(None, None), (0.0, None)]  # monotone: a recalibration keeps the ranking
    fit = minimize(nll, np.array([0.0, 1.0]), jac=grad, method="L-BFGS-B", bounds=bounds)
    return float(fit.x[0]), float(fit.x[1])


def _log_probs(scores: np.ndarray, kind: str, temperature: float) -> Any:
    if kind == "multiclass":
        return log_softmax(np.log(np.clip(scores, CLIP, 1.0)) / temperature, axis=1)
    return _x(scores) / temperature


def _temperature(scores: np.ndarray, labels: np.ndarray, kind: str) -> float:
    def nll(log_t: float) -> float:
        z = _log_probs(scores, kind, math.exp(log_t))
        if kind == "multiclass":
            return float(-z[np.arange(len(labels)), labels].sum())
        return _bernoulli_nll(z, labels)

    return math.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded").x)


def fit_recalibration(method: str, scores: Any, labels: Any, kind: str) -> dict[str, Any]:
    """The parameters of `method` fitted on (val) scores and labels."""
    check_method(method, kind, "recalibrate")
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if method == "temperature":
        return {"method": method, "temperature": _temperature(scores, labels, kind)}
    if kind == "binary":
        a, b = _platt(_x(scores), labels.astype(np.float64))
        return {"method": method, "a": np.array([a]), "b": np.array([b])}
    fits = [
        _platt(_x(scores[:, j]), labels[:, j].astype(np.float64)) for j in range(labels.shape[1])
    ]
    return {"method": method, "a": np.array([f[0] for f in fits]),
            "b": np.array([f[1] for f in fits])}  # fmt: skip


def apply_recalibration(params: dict[str, Any], scores: Any, kind: str) -> np.ndarray:
    """Recalibrated probabilities, shaped as `scores`."""
    scores = np.asarray(scores, dtype=np.float64)
    if params["method"] == "temperature":
        z = _log_probs(scores, kind, params["temperature"])
        return np.exp(z) if kind == "multiclass" else expit(z)
    a, b = params["a"], params["b"]
    if kind == "binary":
        return expit(a[0] + b[0] * _x(scores))
    return expit(a[None, :] + b[None, :] * _x(scores))


def parameter_metrics(params: dict[str, Any]) -> dict[str, float]:
    """`recalibration/...` numbers for metrics.json (Platt: means over labels)."""
    if params["method"] == "temperature":
        return {"recalibration/temperature": float(params["temperature"])}
    return {"recalibration/platt_a": float(np.mean(params["a"])),
            "recalibration/platt_b": float(np.mean(params["b"]))}  # fmt: skip
