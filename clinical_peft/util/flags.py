"""One spelling of every option: `--run_dir` (as the YAML keys and saved configs spell it);
`--run-dir` is read the same, for every command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def underscored(argv: Sequence[str]) -> list[str]:
    """`--run-dir x` and `--data.max-length=5` as `--run_dir x`, `--data.max_length=5`."""
    out = []
    for arg in argv:
        if isinstance(arg, str) and arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
        out.append(arg)
    return out


class CommandParser(argparse.ArgumentParser):
    """argparse for a helper command: options are declared `--run_dir`, and `--run-dir` works."""

    def parse_known_args(self, args=None, namespace=None):
        import sys

        return super().parse_known_args(
            underscored(sys.argv[1:] if args is None else args), namespace
        )
