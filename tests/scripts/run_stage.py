"""Run one command in its own process: `python tests/scripts/run_stage.py STAGE [args...]`.

Multi-process (DDP) tests call this as a subprocess: under pytest itself, Lightning's DDP
launcher would start the whole pytest session again as rank 1.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from clinical_peft.cli.commands import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
