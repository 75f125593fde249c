"""Where the modules of the flat layout (before the role folders) live now.

YAMLs, saved `config.yaml` files and sweep trial overlays name classes by import path
(`clinical_peft.strategies.DeepSpeedStrategy`, `clinical_peft.sweep_pruning.OptunaPruning`);
each old path imports as the module that is there now (the same module object, not a copy).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module -> the module that is there now
MOVED = {
    "clinical_peft.atomic": "clinical_peft.util.atomic",
    "clinical_peft.backbone": "clinical_peft.models.backbone",
    "clinical_peft.baseline": "clinical_peft.studies.floor",
    "clinical_peft.bootstrap": "clinical_peft.metrics.bootstrap",
    "clinical_peft.callbacks": "clinical_peft.cli.callbacks",
    "clinical_peft.classifier": "clinical_peft.models.classifier",
    "clinical_peft.commands": "clinical_peft.cli.commands",
    "clinical_peft.data.tasks": "clinical_peft.tasks.outcomes",
    "clinical_peft.delong": "clinical_peft.metrics.delong",
    "clinical_peft.errors": "clinical_peft.util.errors",
    "clinical_peft.export": "clinical_peft.inference.export",
    "clinical_peft.generation": "clinical_peft.stages.generation",
    "clinical_peft.generation_metrics": "clinical_peft.metrics.text",
    "clinical_peft.grid": "clinical_peft.studies.grid",
    "clinical_peft.grid_report": "clinical_peft.studies.grid_report",
    "clinical_peft.instruct_tasks": "clinical_peft.tasks.instructions",
    "clinical_peft.losses": "clinical_peft.stages.losses",
    "clinical_peft.model_card": "clinical_peft.cli.model_card",
    "clinical_peft.model_files": "clinical_peft.models.files",
    "clinical_peft.predict": "clinical_peft.inference.predict",
    "clinical_peft.prediction_files": "clinical_peft.metrics.predictions",
    "clinical_peft.quiet": "clinical_peft.util.quiet",
    "clinical_peft.report": "clinical_peft.studies.tables",
    "clinical_peft.report_instruct": "clinical_peft.studies.tables_instruct",
    "clinical_peft.run_dir": "clinical_peft.cli.run_dir",
    "clinical_peft.strategies": "clinical_peft.cli.strategies",
    "clinical_peft.sweep": "clinical_peft.studies.sweep",
    "clinical_peft.sweep_pruning": "clinical_peft.studies.pruning",
    "clinical_peft.tiny_model": "clinical_peft.models.tiny_llama",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module path as the module now at its new one."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # the new module ran when it was imported


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
