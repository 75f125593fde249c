# python experiments/benchmarks/auroc.py [--rows 9829] [--labels 1266] [--n-boot 1000]
"""Outcome metrics on a DIAG-shaped test split: ours against sklearn's per-label loop.

Default shape: 9,829 admissions x 1,266 diagnosis labels (the DIAG test split), continuous
float32 sigmoid scores, label prevalence falling from 40 % to a few admissions (Zipf-like).
Both sides compute masked macro AUROC, masked macro AP and micro AUROC in the same run; the
script prints both times, the ratio, the largest difference between the figures, and the time
of the bootstrap resamples (``bootstrap_auroc``) on the same split. Wall and CPU time (all
threads of the process) are both printed: on a loaded machine the CPU-time ratio is the steadier.
Importable: ``main(argv) -> dict`` returns the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from sklearn import metrics as skm

from clinical_peft.metrics.bootstrap import bootstrap_auroc
from clinical_peft.metrics.outcomes import outcome_metrics


def make_problem(rows: int, labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores float32 (rows, labels), labels int64): informative, mostly rare labels."""
    rng = np.random.default_rng(seed)
    prevalence = 0.4 / (1 + np.arange(labels)) ** 0.8
    y = (rng.random((rows, labels), dtype=np.float32) < prevalence).astype(np.int64)
    logits = rng.standard_normal((rows, labels), dtype=np.float32) + 1.5 * y
    return (1 / (1 + np.exp(-logits))).astype(np.float32), y


def sklearn_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The same figures with sklearn: a loop over the labels with both classes, plus micro."""
    auc, ap = [], []
    for j in range(labels.shape[1]):
        if 0 < labels[:, j].sum() < len(labels):
            auc.append(skm.roc_auc_score(labels[:, j], scores[:, j]))
            ap.append(skm.average_precision_score(labels[:, j], scores[:, j]))
    return {
        "auroc": float(np.mean(auc)),
        "auprc_macro": float(np.mean(ap)),
        "auroc_micro": float(skm.roc_auc_score(labels, scores, average="micro")),
    }


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process: all its threads, robust to load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=9829)
    parser.add_argument("--labels", type=int, default=1266)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scores, labels = make_problem(args.rows, args.labels, args.seed)
    outcome_metrics(*make_problem(50, 5, 1), "multilabel", 5)  # one-off import/dispatch costs

    ours, ours_s, ours_cpu_s = timed(
        outcome_metrics,
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        "multilabel",
        args.labels,
    )
    reference, sklearn_s, sklearn_cpu_s = timed(sklearn_metrics, scores, labels)
    max_abs_diff = max(abs(ours[k] - v) for k, v in reference.items())

    values, bootstrap_s, bootstrap_cpu_s = timed(
        bootstrap_auroc, scores, labels, "multilabel", n_boot=args.n_boot, seed=args.seed
    )
    low, high = np.quantile(values, [0.025, 0.975])

    result = {
        "rows": args.rows,
        "labels": args.labels,
        "threads": torch.get_num_threads(),
        "ours_s": ours_s,
        "sklearn_s": sklearn_s,
        "speedup": sklearn_s / ours_s,
        "ours_cpu_s": ours_cpu_s,
        "sklearn_cpu_s": sklearn_cpu_s,
        "speedup_cpu": sklearn_cpu_s / ours_cpu_s,
        "max_abs_diff": max_abs_diff,
        "n_boot": args.n_boot,
        "bootstrap_s": bootstrap_s,
        "bootstrap_1000_s": bootstrap_s * 1000 / args.n_boot,
        "bootstrap_cpu_s": bootstrap_cpu_s,
    }
    print(
        f"problem: {args.rows} x {args.labels}, {int(ours['n_labels_scored'])} labels scored, "
        f"{labels.mean():.4f} positive, torch threads {result['threads']}"
    )
    print(
        f"ours     {ours_s:8.3f} s wall {ours_cpu_s:8.3f} s cpu  auroc {ours['auroc']:.6f}  "
        f"auprc_macro {ours['auprc_macro']:.6f}  auroc_micro {ours['auroc_micro']:.6f}"
    )
    print(
        f"sklearn  {sklearn_s:8.3f} s wall {sklearn_cpu_s:8.3f} s cpu  (roc_auc_score + "
        "average_precision_score per label, micro roc_auc_score)"
    )
    print(
        f"ratio sklearn / ours: x{result['speedup']:.2f} wall, x{result['speedup_cpu']:.2f} cpu  "
        f"max abs diff {max_abs_diff:.2e}"
    )
    print(
        f"bootstrap {args.n_boot} resamples {bootstrap_s:8.3f} s wall {bootstrap_cpu_s:8.3f} s cpu"
        f"  (x1000: {result['bootstrap_1000_s']:.1f} s wall)  95% CI [{low:.4f}, {high:.4f}]"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
