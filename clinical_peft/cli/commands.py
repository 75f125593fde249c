"""`python -m clinical_peft COMMAND ...` and the `clinical-peft` script: the one dispatcher.

A stage (clinical_peft.stages.STAGES) runs through the Lightning CLI (clinical_peft.cli.stage);
a helper command (COMMANDS: command name -> the `main(argv)` that runs it) is imported only when
it runs, without Lightning unless it needs it (`grid --count` starts in a fraction of a second).
A new command is one line in COMMANDS; a new stage one line in STAGES.
"""

from __future__ import annotations

import importlib
import sys

from clinical_peft.stages import STAGES
from clinical_peft.util.flags import underscored

COMMANDS: dict[str, str] = {
    "tiny-model": "clinical_peft.models.tiny_llama:main",
    "smollm2": "clinical_peft.models.smollm2:main",
    "synthetic": "clinical_peft.synthetic:main",
    "tasks": "clinical_peft.tasks:main",
    "report": "clinical_peft.studies.tables:main",
    "export": "clinical_peft.inference.export:main",
    "baseline": "clinical_peft.studies.floor:main",
    "predict": "clinical_peft.inference.predict:predict_main",
    "evaluate": "clinical_peft.inference.evaluate:evaluate_main",
    "grid": "clinical_peft.studies.grid:main",
    "sweep": "clinical_peft.studies.sweep:main",
}


def run_command(name: str, argv: list[str]) -> int:
    """Run helper command `name`: exit code 0, or 2 with a one-line error (`error_line`)."""
    from clinical_peft.util.errors import exit_code
    from clinical_peft.util.quiet import quiet_known_noise

    quiet_known_noise()
    module, function = COMMANDS[name].split(":")
    return exit_code(lambda: getattr(importlib.import_module(module), function)(argv))


def main(argv: list[str] | None = None) -> int:
    argv = underscored(sys.argv[1:] if argv is None else argv)
    names = [*STAGES, *COMMANDS]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print(f"usage: python -m clinical_peft {{{','.join(names)}}} [options]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    from clinical_peft.cli.stage import main as stage_main

    return stage_main(argv[0], argv[1:])
