"""Helper commands of `python -m clinical_peft`: command name -> the `main(argv)` that runs it.

A new command is one line here (its module is imported only when the command runs).
"""

from __future__ import annotations

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
