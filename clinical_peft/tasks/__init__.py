"""The task registries: outcome tasks (outcomes.TASKS) and instruction tasks
(instructions.TASKS). `python -m clinical_peft tasks outcomes|instructions` prints one's names,
one line, in registry order: the Makefile reads its task lists so, not from the source."""

from __future__ import annotations

from clinical_peft.util.flags import CommandParser


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(prog="python -m clinical_peft tasks", description=__doc__)
    parser.add_argument("registry", choices=("outcomes", "instructions"))
    args = parser.parse_args(argv)
    if args.registry == "outcomes":
        from clinical_peft.tasks.outcomes import TASKS
    else:
        from clinical_peft.tasks.instructions import TASKS
    print(" ".join(TASKS))
