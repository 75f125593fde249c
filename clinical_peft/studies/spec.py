"""A grid or sweep spec (experiments/grids/*.yaml, experiments/sweeps/*.yaml) read into runs,
and the grid's status.json: what the runner, the sweep and the grid report share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from clinical_peft.stages import STAGES
from clinical_peft.studies.schema import check_grid
from clinical_peft.util.atomic import locked
from clinical_peft.util.errors import InputError, at_least_one

GRID_STAGES = (*STAGES, "baseline")  # the floor runs as a grid row too


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
    if stage not in GRID_STAGES:
        raise InputError(
            where, f"field 'stage': unknown {stage!r} (valid: {', '.join(GRID_STAGES)})"
        )
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
    check_grid(raw, str(path))
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
        for task in merged.get("tasks") or tasks:
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
