"""The study-B table analogue from run directories: task, metric, base, SFT, DPO.

    python -m clinical_peft.studies.tables_instruct --sft runs/sft --dpo runs/dpo --out runs/instruct/table

One row per metric of each task's spec (`clinical_peft.tasks.instructions.TASKS`). "base" is the SFT
run's score of the untrained model (`test/<metric>_before`), "SFT" its score after training,
"DPO" the DPO run's score (DPO starts from the SFT adapter when it existed).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.tasks.instructions import TASKS, get_task
from clinical_peft.util.flags import CommandParser

COLUMNS = ["task", "metric", "base", "SFT", "DPO"]


def _metrics(run: Path) -> dict:
    path = RunDir(run).metrics
    return json.loads(path.read_text()) if path.is_file() else {}


def table_rows(tasks: list[str], sft_root: Path, dpo_root: Path) -> list[dict]:
    rows = []
    for task in tasks:
        sft, dpo = _metrics(sft_root / task), _metrics(dpo_root / task)
        for metric, name in get_task(task).metrics.items():  # one row per metric of the spec
            key = f"test/{metric}"
            rows.append(
                {
                    "task": task,
                    "metric": name,
                    "base": sft.get(f"{key}_before"),
                    "SFT": sft.get(key),
                    "DPO": dpo.get(key),
                }
            )
    return rows


def write_table(rows: list[dict], out: Path) -> None:
    """`out`.md (Markdown) and `out`.csv; missing runs leave empty cells."""
    out.parent.mkdir(parents=True, exist_ok=True)

    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({c: cell(row[c]) for c in COLUMNS} for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(
        prog="python -m clinical_peft report instruct", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--sft", default="runs/sft", help="folder of the SFT runs, one per task")
    parser.add_argument("--dpo", default="runs/dpo", help="folder of the DPO runs, one per task")
    parser.add_argument("--out", default="runs/instruct/table", help="writes OUT.md and OUT.csv")
    args = parser.parse_args(argv)
    rows = table_rows(args.tasks, Path(args.sft), Path(args.dpo))
    out = Path(args.out)
    write_table(rows, out)
    print(out.with_suffix(".md").read_text(), end="")


if __name__ == "__main__":
    main()
