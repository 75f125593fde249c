"""Grids: one command per paper table. `python -m clinical_peft grid SPEC [--seeds N]`.

A spec (experiments/grids/<name>.yaml) names rows, optionally crossed with tasks; each row x task
is a cell, each cell x seed an ordinary run directory, runs/grids/<grid>/<cell>/seed<k>/, made by
a subprocess `python -m clinical_peft <stage> -c ... --run_dir ... --seed_everything k
--data.seed k` (a seed varies the initialisation of adapter and head and the data order, not the
data split). So a crash in one run is recorded in status.json with its last error line and the
grid goes on. The runner is idempotent: a run with metrics.json is done and skipped; a killed one
resumes from its last checkpoint; a failed one (or one killed before its first checkpoint) is moved aside
(seed<k>.attempt<n>) and rerun from scratch.
Prerequisites (e.g. the clinical adapter) are built once, under a lock, by the first job that
needs them. `--index I` runs the I-th (cell, seed) job alone (SLURM_ARRAY_TASK_ID); each run
holds a lock, so several runners can share one grid. Strings in the spec may use `{task}`,
`{<var>}` (spec `vars`, overridable with `--var k=v`), `{prereq.<name>}` (its run dir), `{grid}`
(the grid's folder) and `{seed}` (the run's seed). A config path ending in `?` is used only where
that file exists: a task's overlay on the stage's base YAML ("experiments/sft/{task}.yaml?").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import time
from pathlib import Path

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.studies.child import exit_on_sigterm, run_to_end
from clinical_peft.studies.spec import (
    Cell,
    Run,
    Spec,
    load_spec,
    read_status,
    update_status,
)
from clinical_peft.util.atomic import lock_holder, locked
from clinical_peft.util.errors import InputError, quote_value
from clinical_peft.util.flags import CommandParser


def command(run: Run, run_dir: Path, seed: int | None, resume: Path | None = None) -> list[str]:
    """The command line of one run (seed None: no seed flags, e.g. a prerequisite's default)."""
    cmd = [sys.executable, "-m", "clinical_peft", run.stage]
    for config in run.configs:
        cmd += ["-c", config]
    for key, value in run.args.items():
        cmd += [f"--{key}", value.replace("{seed}", str(seed if seed is not None else 0))]
    cmd += ["--run_dir", str(run_dir)]
    if run.stage == "baseline":  # deterministic: no seed
        return cmd
    if seed is not None:
        cmd += ["--seed_everything", str(seed), "--data.seed", str(seed)]
    if resume is not None:
        cmd += ["--ckpt_path", str(resume)]
    return cmd


def last_error(log: Path) -> str:
    """The last `error: ...` line of a log, else its last non-empty line (a traceback's end)."""
    lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1][:500]


def execute(run: Run, run_dir: Path, seed: int | None, out: Path, key: str) -> str:
    """Run one job unless done: 'done' (skipped), 'ok', 'failed' or 'busy' (another holds it)."""
    with locked(run_dir.parent / f".{run_dir.name}.lock", wait=False) as mine:
        if not mine:
            return "busy"
        if RunDir(run_dir).finished():
            return "done"
        holder = lock_holder(RunDir(run_dir).lock)
        if holder is not None:  # a run outlived its runner, or was started by hand
            print(f"{run_dir}: in use by another run ({holder}); left to it", file=sys.stderr)
            return "busy"
        resume = None
        if run_dir.exists() and any(run_dir.iterdir()):
            last = RunDir(run_dir).last_ckpt
            if read_status(out).get(key, {}).get("state") != "failed" and last.is_file():
                resume = last  # killed midway: go on from its last checkpoint
            else:  # failed, or killed before any checkpoint: keep it for diagnosis, start afresh
                n = 1
                while run_dir.with_name(f"{run_dir.name}.attempt{n}").exists():
                    n += 1
                run_dir.rename(run_dir.with_name(f"{run_dir.name}.attempt{n}"))
        log = out / "logs" / f"{key.replace('/', '-')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        entry = {"state": "running", "host": socket.gethostname(), "pid": os.getpid()}
        update_status(out, key, {**entry, "started": time.time()})
        started = time.perf_counter()
        with log.open("w") as handle:
            code = run_to_end(command(run, run_dir, seed, resume), handle)
        entry = {"seconds": round(time.perf_counter() - started, 1), "returncode": code}
        if code == 0 and RunDir(run_dir).finished():
            update_status(out, key, {"state": "done", **entry})
            return "ok"
        update_status(out, key, {"state": "failed", "error": last_error(log), **entry})
        return "failed"


_TRIED: dict[Path, bool] = {}  # prerequisites this process built or saw fail: tried once


def prerequisite(spec: Spec, name: str, out: Path) -> bool:
    """Build a prerequisite once; concurrent jobs wait on its lock and then find it done."""
    run_dir = out / "_prereq" / name
    if run_dir not in _TRIED:
        with locked(out / "_prereq" / f".{name}.build.lock"):
            state = execute(spec.prereqs[name], run_dir, None, out, f"_prereq/{name}")
        _TRIED[run_dir] = state in ("ok", "done")
    return _TRIED[run_dir]


def run_job(spec: Spec, out: Path, cell: Cell, seed: int) -> str:
    key = f"{cell.name}/seed{seed}"
    for need in cell.requires:
        if not prerequisite(spec, need, out):
            update_status(out, key, {"state": "failed", "error": f"prerequisite {need} failed"})
            return "failed"
    return execute(cell, out / cell.name / f"seed{seed}", seed, out, key)


def run_grid(spec: Spec, out: Path, index: int | None = None) -> dict[str, int]:
    """Every job (or the `index`-th alone); returns the count of each outcome."""
    jobs = spec.jobs()
    if index is not None:
        if not 0 <= index < len(jobs):
            raise InputError(spec.path, f"job index {index} out of range (0-{len(jobs) - 1})")
        jobs = [jobs[index]]
    counts: dict[str, int] = {}
    for cell, seed in jobs:
        state = run_job(spec, out, cell, seed)
        counts[state] = counts.get(state, 0) + 1
        print(f"{cell.name}/seed{seed}: {state}", flush=True)
    return counts


def select(spec: Spec, rows: str | None = None, tasks: str | None = None) -> Spec:
    """The spec with only the cells of `rows` x `tasks` (comma-separated names; None: all), for
    running part of a table (say, without the encoder rows); reports still cover every cell."""
    cells = spec.cells
    for flag, value, key in (("--rows", rows, "row"), ("--tasks", tasks, "task")):
        if value is None:
            continue
        known = list(dict.fromkeys(getattr(c, key) for c in spec.cells if getattr(c, key)))
        wanted = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [v for v in wanted if v not in known]
        if unknown or not wanted:
            listed = ", ".join(unknown) or "empty list"
            raise InputError(flag, f"unknown {listed} (valid: {', '.join(known) or 'none'})")
        cells = [c for c in cells if getattr(c, key) in wanted]
    return dataclasses.replace(spec, cells=cells)


def spec_parser(kind: str, description: str) -> argparse.ArgumentParser:
    """The arguments `grid` and `sweep` share: the spec (a name under experiments/<kind>s/ or
    a path) and `--var KEY=VALUE` spec variables."""
    parser = CommandParser(prog=f"python -m clinical_peft {kind}", description=description)
    parser.add_argument("spec", metavar=kind,
                        help=f"{kind} name (experiments/{kind}s/<name>.yaml) or spec path")  # fmt: skip
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                        help="set a spec variable, e.g. --var model=/models/llama-7b")  # fmt: skip
    return parser


def spec_arguments(kind: str, args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """The spec's path and the `--var` variables."""
    path = Path(args.spec)
    if not path.suffix:
        path = Path(f"experiments/{kind}s") / f"{args.spec}.yaml"
    for v in args.var:
        if "=" not in v:
            raise InputError("--var", f"expected KEY=VALUE, got {v!r}")
    return path, dict(v.split("=", 1) for v in args.var)


def array_index() -> int:
    """`--array`: the job index from Slurm's SLURM_ARRAY_TASK_ID."""
    value = os.environ.get("SLURM_ARRAY_TASK_ID")
    if value is None:
        raise InputError("--array", "SLURM_ARRAY_TASK_ID is not set: --array runs as a task of a "
                                    "Slurm job array (sbatch --array); elsewhere use --index I")  # fmt: skip
    if not value.strip().isdigit():
        raise InputError("SLURM_ARRAY_TASK_ID", f"not a job index: {quote_value(value)}")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    """Run a grid spec's (cell, seed) runs, idempotently, then write its report."""
    parser = spec_parser(
        "grid", "Run every cell x seed of a grid (experiments/grids/<GRID>.yaml) and report."
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (spec default)")
    parser.add_argument("--out", default="runs/grids", help="grids root (runs/grids)")
    parser.add_argument("--index", type=int, default=None,
                        help="run only the INDEX-th (cell, seed) job (no report)")  # fmt: skip
    parser.add_argument("--array", action="store_true",
                        help="--index from $SLURM_ARRAY_TASK_ID")  # fmt: skip
    parser.add_argument("--rows", metavar="ROW[,ROW]", help="run only these rows (report: all)")
    parser.add_argument("--tasks", metavar="TASK[,TASK]", help="run only these tasks (report: all)")
    parser.add_argument("--count", action="store_true", help="print the number of jobs, run none")
    parser.add_argument("--report_only", action="store_true", help="write the report, run none")
    parser.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples (1000)")
    parser.add_argument("--ci", choices=("bca", "percentile"), default="bca",
                        help="bootstrap interval over test examples (bca)")  # fmt: skip
    args = parser.parse_args(argv)
    path, variables = spec_arguments("grid", args)
    spec = load_spec(path, args.out, args.seeds, variables)
    todo = select(spec, args.rows, args.tasks)
    out = Path(args.out) / spec.name
    if args.count:
        print(len(todo.jobs()))
        return
    index = array_index() if args.array else args.index
    if not args.report_only:
        exit_on_sigterm()
        counts = run_grid(todo, out, index)
        print(f"grid {spec.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        if index is not None:
            raise SystemExit(1 if counts.get("failed") else 0)
    from clinical_peft.studies.grid_report import write_report  # torch and plotting load only here

    write_report(spec, out, args.n_boot, args.ci)
    print(f"report: {out / 'report.md'}")
    if not args.report_only and counts.get("failed"):
        raise SystemExit(1)
