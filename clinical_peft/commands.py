"""Helper commands of `python -m clinical_peft`: every public function here is one (`tiny_model`
is `tiny-model`); each takes the rest of the command line."""

from __future__ import annotations

import argparse


def tiny_model(argv: list[str]) -> None:
    from clinical_peft.tiny_model import build_tiny_llama

    parser = argparse.ArgumentParser(
        prog="python -m clinical_peft tiny-model",
        description="Write the built-in tiny LLaMA (BPE tokenizer trained on DATA's notes).",
    )
    parser.add_argument("--data", required=True, help="folder with discharge/radiology.csv.gz")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = build_tiny_llama(
        args.data,
        args.out,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        seed=args.seed,
    )
    print(f"wrote {out}")


def synthetic(argv: list[str]) -> None:
    from clinical_peft.synthetic import main

    main(argv)


def report(argv: list[str]) -> None:
    from clinical_peft.report import main

    main(argv)


def export(argv: list[str]) -> None:
    from clinical_peft.export import main

    main(argv)


def baseline(argv: list[str]) -> None:
    from clinical_peft.baseline import main

    main(argv)


def predict(argv: list[str]) -> None:
    from clinical_peft.predict import predict_main

    predict_main(argv)


def evaluate(argv: list[str]) -> None:
    from clinical_peft.predict import evaluate_main

    evaluate_main(argv)


def grid(argv: list[str]) -> None:
    from clinical_peft.grid import main

    main(argv)


def sweep(argv: list[str]) -> None:
    from clinical_peft.sweep import main

    main(argv)
