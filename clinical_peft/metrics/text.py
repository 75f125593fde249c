"""Text metrics of the instruction tasks (study B): accuracy, F1 over string labels, ROUGE-L."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache


def _normalise(text: str) -> str:
    return text.strip().lower()


def _check_pairs(preds: Sequence[str], refs: Sequence[str]) -> None:
    if len(preds) != len(refs) or not preds:
        raise ValueError(
            f"need equally many predictions and references, got {len(preds)}, {len(refs)}"
        )


def accuracy(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Exact-match accuracy after strip + lowercase."""
    _check_pairs(preds, refs)
    return sum(_normalise(p) == _normalise(r) for p, r in zip(preds, refs, strict=True)) / len(refs)


def f1_score(
    preds: Sequence[str],
    refs: Sequence[str],
    average: str = "macro",
    labels: Sequence[str] | None = None,
) -> float:
    """F1 over string labels (strip + lowercase), as sklearn's ``f1_score`` on those strings.

    Classes are the union of references and predictions unless ``labels`` restricts them (then,
    as in sklearn, an off-list prediction still counts as a miss for the true class). average:
    "macro", "micro" or "weighted" (by reference support).
    """
    _check_pairs(preds, refs)
    if average not in ("macro", "micro", "weighted"):
        raise ValueError(f"average must be macro, micro or weighted, got {average!r}")
    p = [_normalise(x) for x in preds]
    r = [_normalise(x) for x in refs]
    classes = sorted(set(p) | set(r)) if labels is None else [_normalise(x) for x in labels]
    tp = {c: sum(a == b == c for a, b in zip(p, r, strict=True)) for c in classes}
    fp = {c: sum(a == c != b for a, b in zip(p, r, strict=True)) for c in classes}
    fn = {c: sum(b == c != a for a, b in zip(p, r, strict=True)) for c in classes}
    support = {c: r.count(c) for c in classes}

    def f1(t: int, f_p: int, f_n: int) -> float:
        # 2TP / (2TP + FP + FN) equals 2PR / (P + R), and is 0 (sklearn's default) when undefined.
        denom = 2 * t + f_p + f_n
        return 2 * t / denom if denom else 0.0

    if average == "micro":
        return f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    per_class = {c: f1(tp[c], fp[c], fn[c]) for c in classes}
    if average == "macro":
        return sum(per_class.values()) / len(classes)
    total = sum(support.values())
    return sum(per_class[c] * support[c] for c in classes) / total if total else 0.0


def reference_f1(preds: Sequence[str | None], refs: Sequence[str | None]) -> float:
    """Macro F1 over the classes the references hold; an unparsable (None) answer is a miss.

    As sklearn's ``f1_score(refs, preds, labels=<reference classes>)``: a prediction outside
    those classes (unparsable, or a label no reference has) counts against the true class only,
    and never forms a class of its own that would drag the macro average down.
    """
    classes = sorted({r for r in refs if r is not None})
    if not classes:
        raise ValueError("no reference parses as an answer")
    return f1_score([p or "" for p in preds], [r or "" for r in refs], labels=classes)


@cache
def _rouge_scorer():
    from rouge_score import rouge_scorer  # imported on first use: it pulls in nltk (2 s)

    # default tokenizer (lowercase, anything but [a-z0-9] separates tokens), no stemming
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F-measure (rouge-score's ``rougeL``, no stemming); 0 if either is empty."""
    return _rouge_scorer().score(ref, pred)["rougeL"].fmeasure


def mean_rouge_l(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Mean of per-pair :func:`rouge_l`."""
    _check_pairs(preds, refs)
    return sum(rouge_l(p, r) for p, r in zip(preds, refs, strict=True)) / len(refs)
