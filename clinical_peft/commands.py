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
    """Run a grid spec's (cell, seed) runs, idempotently, then write its report."""
    import os
    from pathlib import Path

    from clinical_peft.grid import load_spec, run_grid
    from clinical_peft.grid_report import write_report

    parser = argparse.ArgumentParser(
        prog="python -m clinical_peft grid",
        description="Run every cell x seed of a grid (experiments/grids/<GRID>.yaml) and report.",
    )
    parser.add_argument("grid", help="grid name (experiments/grids/<name>.yaml) or spec path")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (spec default)")
    parser.add_argument("--out", default="runs/grids", help="grids root (runs/grids)")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                        help="set a spec variable, e.g. --var model=/models/llama-7b")  # fmt: skip
    parser.add_argument("--index", type=int, default=None,
                        help="run only the INDEX-th (cell, seed) job (no report)")  # fmt: skip
    parser.add_argument("--array", action="store_true",
                        help="--index from $SLURM_ARRAY_TASK_ID")  # fmt: skip
    parser.add_argument("--count", action="store_true", help="print the number of jobs, run none")
    parser.add_argument("--report-only", action="store_true", help="write the report, run none")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (1000)")
    args = parser.parse_args(argv)
    path = Path(args.grid)
    if not path.suffix:
        path = Path("experiments/grids") / f"{args.grid}.yaml"
    variables = dict(v.split("=", 1) for v in args.var if "=" in v)
    spec = load_spec(path, args.out, args.seeds, variables)
    out = Path(args.out) / spec.name
    if args.count:
        print(len(spec.jobs()))
        return
    index = int(os.environ["SLURM_ARRAY_TASK_ID"]) if args.array else args.index
    if not args.report_only:
        counts = run_grid(spec, out, index)
        print(f"grid {spec.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        if index is not None:
            raise SystemExit(1 if counts.get("failed") else 0)
    write_report(spec, out, args.n_boot)
    print(f"report: {out / 'report.md'}")
    if not args.report_only and counts.get("failed"):
        raise SystemExit(1)


def sweep(argv: list[str]) -> None:
    """Optuna search over a sweep spec's space; resumable, shareable by many workers."""
    from pathlib import Path

    from clinical_peft.sweep import Sweep

    parser = argparse.ArgumentParser(
        prog="python -m clinical_peft sweep",
        description="Optuna TPE search (experiments/sweeps/<SWEEP>.yaml); writes best.yaml.",
    )
    parser.add_argument("sweep", help="sweep name (experiments/sweeps/<name>.yaml) or spec path")
    parser.add_argument("--task", default=None, help="fills {task} in the spec (e.g. mor)")
    parser.add_argument("--trials", type=int, default=20, help="finished trials in all (20)")
    parser.add_argument("--out", default="runs/sweeps", help="sweeps root (runs/sweeps)")
    parser.add_argument("--storage", default=None,
                        help="shared storage: RDB URL or journal *.log path "
                        "(default: SQLite in the sweep directory)")  # fmt: skip
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--report-only", action="store_true", help="run no trial")
    args = parser.parse_args(argv)
    path = Path(args.sweep)
    if not path.suffix:
        path = Path("experiments/sweeps") / f"{args.sweep}.yaml"
    variables = dict(v.split("=", 1) for v in args.var if "=" in v)
    search = Sweep(path, args.task, args.out, args.storage, variables)
    if not args.report_only:
        search.optimize(args.trials)
    best = search.write_best()
    search.write_report()
    print(f"sweep {search.name}: {search.finished()} finished trials; best: {best}")
