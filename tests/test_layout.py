"""The package's shape: role folders (the root holds only the entry points and the table of
moved modules), no import cycle, and task lists that come from the registries at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from clinical_peft.tasks.instructions import TASKS as INSTRUCTION_TASKS
from clinical_peft.tasks.outcomes import TASKS as OUTCOME_TASKS

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "clinical_peft"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports anywhere (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the module `sub`; `from mod import name`, `mod`
            subs = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [s for s in subs if s in known] or [node.module]
        found |= {name for name in names if name in known}
    return found


def test_no_import_cycle_in_the_package():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(files)) - {name} for name, path in files.items()}
    state: dict[str, str] = {}
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycles.append(trail[trail.index(dep) :] + [dep] if dep in trail else [name, dep])
            elif dep not in state:
                visit(dep, trail + [dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_the_package_root_holds_only_entry_points():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == [
        "__init__.py",
        "__main__.py",
        "moved.py",
    ]


def test_the_tasks_command_and_the_makefile_read_the_registries():
    for registry, tasks in (("outcomes", OUTCOME_TASKS), ("instructions", INSTRUCTION_TASKS)):
        result = subprocess.run(
            [sys.executable, "-m", "clinical_peft", "tasks", registry],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )  # fmt: skip
        assert result.stdout.split() == list(tasks)
    from test_instruct_registry import make_variable

    assert make_variable("DOWNSTREAM_TASKS") == list(OUTCOME_TASKS)
    assert (
        "sed" not in (ROOT / "Makefile").read_text().split("DOWNSTREAM_TASKS :=")[1].split("\n")[0]
    )
