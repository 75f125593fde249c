"""The grid report on a fake grid (run directories written here, no training): seeds paired by
number, a NaN run, skipped comparisons with their reason, Holm over the table, what the
intervals cover, clipped t-intervals. Every number is recomputed here with sklearn / scipy."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from clinical_peft.metrics.bootstrap import percentile_ci
from clinical_peft.studies.grid_report import t_interval, write_report
from clinical_peft.studies.spec import load_spec

N_BOOT = 100
N = 120


def binary_run(seed: int, strength: float, n: int = N, n_pos: int = 30) -> dict:
    """A model's test predictions: the same examples for every seed, scores vary with the seed."""
    y = np.zeros(n, dtype=np.int64)
    y[:n_pos] = 1
    rng = np.random.default_rng(seed * 7919 + int(strength * 100))
    scores = 1 / (1 + np.exp(-(strength * y + rng.normal(0, 1, n))))
    return {"ids": np.arange(n)[::-1].copy(), "scores": scores[::-1].copy(), "labels": y[::-1].copy()}  # fmt: skip


def fake_grid(tmp_path: Path, rows: dict[str, int], runs: dict, failed: tuple = ()) -> Path:
    """A spec (reference 'ref', one task 't', 3 seeds; rows[name] = the row's seed count) and
    run directories: runs[(row, seed)] = predictions (None: metrics.json only)."""
    lines = ["seeds: 3", "reference: ref", "tasks: [t]", "rows:"]
    lines += [
        f"  {r}: {{stage: baseline, seeds: {k}, args: {{task: mor}}}}" for r, k in rows.items()
    ]
    spec = tmp_path / "fake.yaml"
    spec.write_text("\n".join(lines) + "\n")
    out = tmp_path / "grids" / "fake"
    for (row, seed), pred in runs.items():
        run = out / f"{row}-t" / f"seed{seed}"
        (run / "predictions").mkdir(parents=True)
        finite = pred is not None and np.isfinite(pred["scores"]).all()
        value = float(roc_auc_score(pred["labels"], pred["scores"])) if finite else math.nan
        (run / "metrics.json").write_text(json.dumps({"test/auroc": value}))
        if pred is not None:
            np.savez(run / "predictions" / "test.npz", **pred)
    status = {f"{row}-t/seed{s}": {"state": "failed", "error": "boom"} for row, s in failed}
    (out / "status.json").write_text(json.dumps(status))
    return spec


def report(spec: Path, **kw) -> tuple[dict, str]:
    loaded = load_spec(spec, spec.parent / "grids")
    out = spec.parent / "grids" / "fake"
    write_report(loaded, out, N_BOOT, **kw)
    with (out / "report.csv").open() as f:
        rows = {r["row"]: r for r in csv.DictReader(f)}
    return rows, (out / "report.md").read_text()


def auroc(pred: dict) -> float:
    return roc_auc_score(pred["labels"], pred["scores"])


def test_seeds_pair_by_number_and_weigh_the_same(tmp_path):
    """Row `a` lost seed 1 (failed): before, its seeds 0, 2 met the reference's 0, 1 and seed 0
    met seed 2 again (k mod n). Now 0-0 and 2-2; a row run once meets every seed."""
    ref = {s: binary_run(s, 1.0) for s in range(3)}
    a = {0: binary_run(0, 2.0), 2: binary_run(2, 0.5)}
    floor = binary_run(9, 1.5)
    runs = {("ref", s): p for s, p in ref.items()} | {("a", s): p for s, p in a.items()}
    spec = fake_grid(tmp_path, {"ref": 3, "a": 3, "floor": 1}, runs | {("floor", 0): floor},
                     failed=[("a", 1)])  # fmt: skip
    rows, md = report(spec)
    expected = np.mean([auroc(a[s]) - auroc(ref[s]) for s in (0, 2)])
    assert float(rows["a"]["diff"]) == pytest.approx(expected)
    assert rows["a"]["pairs"] == "0-0;2-2"
    assert rows["floor"]["pairs"] == "0-0;0-1;0-2"
    assert float(rows["floor"]["diff"]) == pytest.approx(auroc(floor) - np.mean([auroc(p) for p in ref.values()]))  # fmt: skip
    assert "(seeds 0-0, 2-2)" in md
    assert len(rows["a"]["delong_p"].split(";")) == 2


def brute_force_mean_delong(a: list[np.ndarray], b: list[np.ndarray], y: np.ndarray) -> float:
    """DeLong's p of mean(AUROC a) - mean(AUROC b), placements by an explicit double loop."""
    y = y.astype(bool)

    def placements(s):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(1), psi.mean(0), psi.mean()

    pa, pb = [placements(s) for s in a], [placements(s) for s in b]
    d10 = np.mean([p[0] for p in pa], 0) - np.mean([p[0] for p in pb], 0)
    d01 = np.mean([p[1] for p in pa], 0) - np.mean([p[1] for p in pb], 0)
    diff = np.mean([p[2] for p in pa]) - np.mean([p[2] for p in pb])
    se = math.sqrt(d10.var(ddof=1) / y.sum() + d01.var(ddof=1) / (~y).sum())
    return float(2 * stats.norm.sf(abs(diff) / se))


def test_holm_over_the_table_and_a_legend_next_to_it(tmp_path):
    ref = {s: binary_run(s, 1.0) for s in range(2)}
    runs = {("ref", s): p for s, p in ref.items()}
    strengths = {"a": 2.5, "b": 1.1, "c": 0.2}
    for row, k in strengths.items():
        runs |= {(row, s): binary_run(s, k) for s in range(2)}
    spec = fake_grid(tmp_path, {"ref": 2, "a": 2, "b": 2, "c": 2}, runs)
    rows, md = report(spec)
    y = ref[0]["labels"][np.argsort(ref[0]["ids"])]
    order = lambda p: p["scores"][np.argsort(p["ids"])]  # noqa: E731
    p = {r: brute_force_mean_delong([order(runs[(r, s)]) for s in range(2)],
                                    [order(ref[s]) for s in range(2)], y) for r in strengths}  # fmt: skip
    for r in strengths:
        assert float(rows[r]["p"]) == pytest.approx(p[r], rel=1e-9)
        assert rows[r]["p_method"] == "DeLong"
    # Holm by hand: the k-th smallest of m times (m - k + 1), then a running maximum.
    ranked = sorted(strengths, key=p.get)
    running = 0.0
    for k, r in enumerate(ranked):
        running = max(running, min(1.0, (3 - k) * p[r]))
        assert float(rows[r]["p_holm"]) == pytest.approx(running)
        assert (f"**{float(rows[r]['diff']):+.4f}" in md) == (running < 0.05)
    assert any(float(rows[r]["p_holm"]) < 0.05 for r in strengths)
    assert "Holm-adjusted over the 3 comparisons in this table" in md
    assert "Student-t over seeds" in md and "the models fixed" in md
    assert "BCa bootstrap over test examples (100 resamples)" in md
    assert rows["ref"]["p"] == "" and rows["ref"]["p_holm"] == ""


def test_holm_matches_known_values():
    from clinical_peft.studies.grid_stats import holm

    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.2, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.02)


def test_a_run_with_nan_scores_gives_nan_not_a_crash(tmp_path):
    ref = {s: binary_run(s, 1.0) for s in range(2)}
    a = {s: binary_run(s, 2.0) for s in range(2)}
    a[1]["scores"][5] = np.nan  # a diverged seed
    runs = {("ref", s): p for s, p in ref.items()} | {("a", s): p for s, p in a.items()}
    rows, md = report(fake_grid(tmp_path, {"ref": 2, "a": 2}, runs))
    values = rows["a"]["values"].split(";")
    assert float(values[0]) == pytest.approx(auroc(a[0])) and values[1] == "nan"
    assert rows["a"]["mean"] == "nan"
    assert "seed 1: 1 non-finite scores: NaN" in rows["a"]["notes"]
    assert rows["a"]["diff"] == "" and rows["a"]["comparison_note"] == "non-finite scores: a seed 1"
    assert "- (non-finite scores: a seed 1)" in md


def test_a_skipped_comparison_says_why(tmp_path):
    ref = {s: binary_run(s, 1.0) for s in range(2)}
    other = binary_run(0, 2.0)
    other["ids"] = other["ids"] + 1000  # another test set
    runs = {("ref", s): p for s, p in ref.items()} | {("a", 0): other, ("a", 1): binary_run(1, 2.0)}
    runs |= {("b", 0): binary_run(0, 2.0), ("b", 1): None}  # seed 1 wrote no predictions
    rows, md = report(fake_grid(tmp_path, {"ref": 2, "a": 2, "b": 2}, runs))
    assert rows["a"]["comparison_note"] == "test examples differ (ids): ref seed 0 vs a seed 0"
    assert rows["b"]["comparison_note"] == "no predictions/test.npz: b seed 1"
    assert "- (no predictions/test.npz: b seed 1)" in md


def test_t_interval_of_a_unit_metric_is_clipped_with_a_mark(tmp_path):
    """Three seeds at 0.99, 0.999, 0.90: the t upper bound is 1.12. Clipped to 1, marked."""
    y = np.r_[np.ones(20, dtype=np.int64), np.zeros(100, dtype=np.int64)]
    runs = {}
    for seed, auc in enumerate((0.99, 0.999, 0.90)):  # exact AUROCs: rank a share of negatives
        scores = np.r_[np.full(20, 0.5), np.linspace(0, 1, 100)]
        scores[20:] = np.where(np.arange(100) < round(auc * 100), 0.0, 1.0) * np.linspace(0.1, 1, 100)  # fmt: skip
        runs[("ref", seed)] = {"ids": np.arange(120), "scores": scores, "labels": y}
    rows, md = report(fake_grid(tmp_path, {"ref": 3}, runs))
    values = [float(v) for v in rows["ref"]["values"].split(";")]
    mean, low, high = t_interval(values)
    assert high > 1
    assert float(rows["ref"]["t_high"]) == 1.0 and float(rows["ref"]["t_low"]) == pytest.approx(low)  # fmt: skip
    assert rows["ref"]["t_clipped"] == "1" and "†" in md and "clipped" in md


def test_multilabel_cell_counts_dropped_resamples_and_the_interval_method(tmp_path):
    """Label 2 has one positive: the resamples that lose it are dropped (not averaged over
    labels 0, 1) and counted; its leave-one-out is undefined, so the interval is percentile."""
    rng = np.random.default_rng(0)
    y = (rng.random((N, 3)) < [0.3, 0.4, 0.0]).astype(np.int64)
    y[7, 2] = 1
    scores = np.clip(0.3 * y + rng.random((N, 3)) * 0.7, 0, 1)
    runs = {("ref", 0): {"ids": np.arange(N), "scores": scores, "labels": y}}
    rows, md = report(fake_grid(tmp_path, {"ref": 1}, runs))
    from clinical_peft.metrics.bootstrap import bootstrap_draws

    draws = bootstrap_draws(scores, y, "multilabel", n_boot=N_BOOT)
    assert 0 < draws.n_dropped == draws.lost[2] < N_BOOT
    assert rows["ref"]["boot_method"] == "percentile"
    low, high = percentile_ci(draws.values)
    assert (float(rows["ref"]["boot_low"]), float(rows["ref"]["boot_high"])) == pytest.approx((low, high))  # fmt: skip
    assert f"{draws.n_dropped} of {N_BOOT} resamples dropped (labels lost a class: label 2 in" in md
    assert "percentile, not BCa: a leave-one-out value is undefined" in md


def test_percentile_intervals_on_request_and_few_positives_noted(tmp_path):
    ref = {s: binary_run(s, 1.0, n_pos=4) for s in range(2)}
    a = {s: binary_run(s, 2.0, n_pos=4) for s in range(2)}
    runs = {("ref", s): p for s, p in ref.items()} | {("a", s): p for s, p in a.items()}
    rows, md = report(fake_grid(tmp_path, {"ref": 2, "a": 2}, runs), ci="percentile")
    assert rows["a"]["boot_method"] == "percentile;percentile"
    assert rows["a"]["diff_method"] == "percentile"
    assert "percentile bootstrap over test examples" in md
    assert (
        "4 examples in a class (< 10): normal approximation loose" in rows["a"]["comparison_note"]
    )


def test_a_partial_evaluation_is_noted_in_the_report(tmp_path):
    """A run whose metric came from part of its split (data/<split>/partial) is said so in the
    table's notes, with how many examples were scored; a whole evaluation gets no such note."""
    runs = {("ref", 0): binary_run(0, 1.0), ("cut", 0): None}
    spec = fake_grid(tmp_path, {"ref": 1, "cut": 1}, runs)
    cut = tmp_path / "grids" / "fake" / "cut-t" / "seed0" / "metrics.json"
    cut.write_text(json.dumps({"test/auroc": 0.6, "data/test/scored": 24.0,
                               "data/test/partial": 1.0}))  # fmt: skip
    ref = tmp_path / "grids" / "fake" / "ref-t" / "seed0" / "metrics.json"
    ref.write_text(json.dumps({**json.loads(ref.read_text()), "data/test/partial": 0.0}))
    rows, md = report(spec)
    assert "seed 0: partial evaluation, 24 test examples scored" in rows["cut"]["notes"]
    assert "partial" not in rows["ref"]["notes"]
    assert "cut / t: seed 0: partial evaluation, 24 test examples scored" in md
