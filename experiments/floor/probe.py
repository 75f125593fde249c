# python experiments/floor/probe.py --model PATH --task proc [--max-length 512] [--pooling mean]
"""The ceiling of a head-only run: a converged linear probe on a frozen base's features.

Features of every split are computed once (frozen base, no gradients); a class-weighted logistic
regression per C is fit on train and scored with the project's own `outcome_metrics` (val and
test). Measures how far a frozen base can go before any fine-tuning.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from transformers import AutoModel, AutoTokenizer

from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.studies.tfidf_lr import read_task


def features(model, tokenizer, texts: list[str], max_length: int, pooling: str) -> np.ndarray:
    out, started = [], time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(texts), 16):
            enc = tokenizer(texts[i : i + 16], truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")  # fmt: skip
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            if pooling == "first":
                out.append(hidden[:, 0])
            elif pooling == "mean":
                out.append((hidden * mask).sum(1) / mask.sum(1))
            else:  # last real token (right padding)
                last = enc["attention_mask"].sum(1) - 1
                out.append(hidden[torch.arange(len(hidden)), last])
    print(f"{len(texts)} notes in {time.perf_counter() - started:.0f} s", flush=True)
    return torch.cat(out).numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", default="data/synthetic/outcomes")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--pooling", choices=("first", "mean", "last"), default="mean")
    args = parser.parse_args(argv)
    data = read_task(args.task, args.data)
    kind, names = data["task"].kind, data["label_names"]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModel.from_pretrained(args.model).eval()
    x = {s: features(model, tokenizer, data[s]["text"], args.max_length, args.pooling)
         for s in ("train", "val", "test")}  # fmt: skip
    y = data["train"]["labels"]
    scorable = (y.sum(0) > 0) & (y.sum(0) < len(y)) if kind == "multilabel" else None
    for c in (0.1, 1.0, 10.0, 100.0):
        head = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        clf = OneVsRestClassifier(head) if kind == "multilabel" else head
        clf.fit(x["train"], y[:, scorable] if kind == "multilabel" else y)
        row = {}
        for split in ("val", "test"):
            p = clf.predict_proba(x[split])
            if kind == "multilabel":
                full = np.zeros((len(p), len(names)), dtype=np.float32)
                full[:, scorable] = p
                p = full
            elif kind == "binary":
                p = p[:, 1]
            labels = torch.tensor(data[split]["labels"])
            row[split] = outcome_metrics(torch.tensor(p), labels, kind, len(names))["auroc"]
        print(f"C {c:g}: val AUROC {row['val']:.3f}, test AUROC {row['test']:.3f}", flush=True)


if __name__ == "__main__":
    main()
