"""The command line: the one dispatcher (commands), the stage CLI (stage: Lightning's), its
callbacks and strategies, the run directory (run_dir) and the model cards.

`clinical_peft.cli.main(argv)` is the dispatcher, as before the package had folders; the stage
CLI's names load Lightning only when asked for."""

from clinical_peft.cli.commands import main


def __getattr__(name: str):
    if name in ("StageCLI", "run_stage", "STAGES"):
        from clinical_peft.cli import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main"]
