"""Helper commands of `python -m clinical_peft`: command name -> the `main(argv)` that runs it.

A new command is one line here (its module is imported only when the command runs, and
Lightning not at all unless the command needs it: `grid --count` starts in a fraction of a second).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, str] = {
    "tiny-model": "clinical_peft.tiny_model:main",
    "synthetic": "clinical_peft.synthetic:main",
    "report": "clinical_peft.report:main",
    "export": "clinical_peft.export:main",
    "baseline": "clinical_peft.baseline:main",
    "predict": "clinical_peft.predict:predict_main",
    "evaluate": "clinical_peft.predict:evaluate_main",
    "grid": "clinical_peft.grid:main",
    "sweep": "clinical_peft.sweep:main",
}


def run_command(name: str, argv: list[str]) -> int:
    """Run helper command `name`: exit code 0, or 2 with a one-line error (`error_line`)."""
    from clinical_peft.errors import exit_code
    from clinical_peft.quiet import quiet_known_noise

    quiet_known_noise()
    module, function = COMMANDS[name].split(":")
    return exit_code(lambda: getattr(importlib.import_module(module), function)(argv))


def main(argv: list[str] | None = None) -> int:
    """`python -m clinical_peft` and the `clinical-peft` script: a helper command here, without
    Lightning; a stage (or no command) through clinical_peft.cli."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    from clinical_peft.cli import main as cli_main

    return cli_main(argv)
