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
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from clinical_peft.errors import InputError, at_least_one

LIGHTNING_STAGES = ("pretrain", "sft", "dpo", "downstream")
STAGES = (*LIGHTNING_STAGES, "baseline")


@dataclass
class Run:
    """One process to start: a stage, its config files and `--key value` overrides."""

    name: str
    stage: str
    configs: list[str]
    args: dict[str, str]
    requires: list[str] = field(default_factory=list)


@dataclass
class Cell(Run):
    row: str = ""
    task: str | None = None
    seeds: list[int] = field(default_factory=list)
    metric: str | None = None
    source: str | None = None  # a row without runs of its own reads this row's runs


@dataclass
class Spec:
    name: str
    path: Path
    reference: str | None
    metric: str
    prereqs: dict[str, Run]
    cells: list[Cell]

    def jobs(self) -> list[tuple[Cell, int]]:
        """(cell, seed) pairs in a fixed order: the index of `--index` / SLURM_ARRAY_TASK_ID."""
        return [(c, s) for c in self.cells if c.source is None for s in c.seeds]


_FIELD = re.compile(r"\{([A-Za-z_][\w.]*)\}")


def _fill(value, mapping: dict[str, str], where: str):
    """`{key}` substitution in strings (recursively in lists and dicts)."""
    if isinstance(value, list):
        return [_fill(v, mapping, where) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, mapping, where) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match) -> str:
        if match.group(1) not in mapping:
            raise InputError(where, f"unknown placeholder {{{match.group(1)}}}")
        return mapping[match.group(1)]

    return _FIELD.sub(lookup, value)


def _cli_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def config_files(raw: list, mapping: dict, where: str) -> list[str]:
    """The `-c` files of a run, placeholders filled; `path?` only if that file exists (overlays
    are written only for the tasks that differ from the base YAML)."""
    configs = [str(c) for c in _fill(list(raw), mapping, where)]
    return [c.removesuffix("?") for c in configs if not c.endswith("?") or Path(c[:-1]).is_file()]


def _run(name: str, raw: dict, mapping: dict, where: str) -> Run:
    if not isinstance(raw, dict):
        raise InputError(where, "expected a mapping with 'stage', 'configs', 'args'")
    stage = raw.get("stage", "downstream")
    if stage not in STAGES:
        raise InputError(where, f"field 'stage': unknown {stage!r} (valid: {', '.join(STAGES)})")
    configs = config_files(raw.get("configs") or [], mapping, where)
    filled = _fill(dict(raw.get("args") or {}), mapping, where)
    args = {k: _cli_value(v) for k, v in filled.items() if v is not None}  # null: drop a default
    return Run(name, stage, configs, args, list(raw.get("requires") or []))


def read_spec(path: Path, kind: str, fields: str) -> dict:
    """A grid or sweep spec file as a mapping; a missing file or bad YAML is one line."""
    if not path.is_file():
        raise InputError(path, f"{kind} spec not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(path, f"not valid YAML (line {mark.line + 1 if mark else '?'})") from None
    if not isinstance(raw, dict):
        raise InputError(path, f"a {kind} spec is a mapping ({fields})")
    return raw


def load_spec(
    path: str | Path, out_root: str | Path = "runs/grids", seeds: int | None = None,
    variables: dict[str, str] | None = None,
) -> Spec:  # fmt: skip
    """Read a grid spec; `seeds` (SEEDS=) overrides its seed count (rows with `seeds: 1` stay)."""
    path = Path(path)
    raw = read_spec(path, "grid", "rows, seeds, reference, ...")
    name = raw.get("name", path.stem)
    out = Path(out_root) / name
    mapping = {k: str(v) for k, v in (raw.get("vars") or {}).items()}
    mapping.update(variables or {})
    mapping.update(grid=str(out), seed="{seed}")  # {seed} is filled per run, in command()
    prereqs = {}
    for key, value in (raw.get("prerequisites") or {}).items():
        mapping[f"prereq.{key}"] = str(out / "_prereq" / key)
        prereqs[key] = _run(key, value, mapping, f"{path}: prerequisites.{key}")
    n_seeds = int(seeds if seeds is not None else raw.get("seeds", 1))
    at_least_one(n_seeds, "--seeds" if seeds is not None else f"{path}: field 'seeds'")
    tasks = raw.get("tasks") or [None]
    defaults = raw.get("defaults") or {}
    cells = []
    for row, value in (raw.get("rows") or {}).items():
        where = f"{path}: rows.{row}"
        merged = {**defaults, **(value or {})}
        merged["args"] = {**(defaults.get("args") or {}), **((value or {}).get("args") or {})}
        for task in merged.get("tasks", tasks):
            run = _run(row if task is None else f"{row}-{task}", merged, {**mapping, "task": task or ""}, where)  # fmt: skip
            metric = merged.get("metric", raw.get("metric", "test/auroc"))
            metric = metric.get(task) if isinstance(metric, dict) else metric
            row_seeds = int(merged.get("seeds", n_seeds))
            at_least_one(row_seeds, f"{where}: field 'seeds'")
            count = min(n_seeds, row_seeds)
            for need in run.requires:
                if need not in prereqs:
                    raise InputError(where, f"field 'requires': no prerequisite {need!r}")
            cells.append(Cell(**vars(run), row=row, task=task, seeds=list(range(count)),
                              metric=metric, source=merged.get("source")))  # fmt: skip
    if not cells:
        raise InputError(path, "field 'rows': the grid has no cells")
    reference = raw.get("reference")
    if reference is not None and reference not in {c.row for c in cells}:
        raise InputError(path, f"field 'reference': no row {reference!r}")
    return Spec(name, path, reference, raw.get("metric", "test/auroc"), prereqs, cells)


def command(run: Run, run_dir: Path, seed: int | None, resume: Path | None = None) -> list[str]:
    """The command line of one run (seed None: no seed flags, e.g. a prerequisite's default)."""
    cmd = [sys.executable, "-m", "clinical_peft", run.stage]
    for config in run.configs:
        cmd += ["-c", config]
    for key, value in run.args.items():
        cmd += [f"--{key}", value.replace("{seed}", str(seed if seed is not None else 0))]
    if run.stage == "baseline":  # argparse spelling; deterministic, no seed
        return cmd + ["--run-dir", str(run_dir)]
    cmd += ["--run_dir", str(run_dir)]
    if seed is not None:
        cmd += ["--seed_everything", str(seed), "--data.seed", str(seed)]
    if resume is not None:
        cmd += ["--ckpt_path", str(resume)]
    return cmd


@contextmanager
def locked(path: Path, wait: bool = True):
    """An exclusive flock on `path`; yields False at once if `wait` is off and it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_status(out: Path, key: str, entry: dict) -> None:
    """Merge one job's entry into out/status.json (locked: array tasks write concurrently)."""
    with locked(out / ".status.lock"):
        path = out / "status.json"
        status = json.loads(path.read_text()) if path.is_file() else {}
        status[key] = entry
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1, sort_keys=True))
        tmp.replace(path)


def read_status(out: Path) -> dict:
    path = out / "status.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def last_error(log: Path) -> str:
    """The last `error: ...` line of a log, else its last non-empty line (a traceback's end)."""
    lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1][:500]


def exit_on_sigterm() -> None:
    """SIGTERM ends a runner as an exception does, so `run_to_end` stops the run it started."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def run_to_end(cmd: list[str], log) -> int:
    """The run's exit code. A runner that is stopped (SIGTERM, Ctrl-C) stops its run first:
    an orphaned run would go on writing a run directory whose lock is already released."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def execute(run: Run, run_dir: Path, seed: int | None, out: Path, key: str) -> str:
    """Run one job unless done: 'done' (skipped), 'ok', 'failed' or 'busy' (another holds it)."""
    with locked(run_dir.parent / f".{run_dir.name}.lock", wait=False) as mine:
        if not mine:
            return "busy"
        if (run_dir / "metrics.json").is_file():
            return "done"
        resume = None
        if run_dir.exists() and any(run_dir.iterdir()):
            last = run_dir / "checkpoints" / "last.ckpt"
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
        if code == 0 and (run_dir / "metrics.json").is_file():
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
    parser = argparse.ArgumentParser(
        prog=f"python -m clinical_peft {kind}", description=description
    )
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
    parser.add_argument("--report-only", action="store_true", help="write the report, run none")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (1000)")
    args = parser.parse_args(argv)
    path, variables = spec_arguments("grid", args)
    spec = load_spec(path, args.out, args.seeds, variables)
    todo = select(spec, args.rows, args.tasks)
    out = Path(args.out) / spec.name
    if args.count:
        print(len(todo.jobs()))
        return
    index = int(os.environ["SLURM_ARRAY_TASK_ID"]) if args.array else args.index
    if not args.report_only:
        exit_on_sigterm()
        counts = run_grid(todo, out, index)
        print(f"grid {spec.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        if index is not None:
            raise SystemExit(1 if counts.get("failed") else 0)
    from clinical_peft.grid_report import write_report  # torch and plotting load only here

    write_report(spec, out, args.n_boot)
    print(f"report: {out / 'report.md'}")
    if not args.report_only and counts.get("failed"):
        raise SystemExit(1)
