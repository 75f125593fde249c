"""The study-B table analogue from run directories: task, metric, base, SFT, DPO (and KTO).

    python -m clinical_peft.studies.tables_instruct --sft runs/sft --dpo runs/dpo --out runs/instruct/table

One row per metric of each task's spec (`clinical_peft.tasks.instructions.TASKS`). "base" is the SFT
run's score of the untrained model (`test/<metric>_before`), "SFT" its score after training,
"DPO" the DPO run's score (DPO starts from the SFT adapter when it existed); with `--kto`, a
"KTO" column of the KTO runs' scores (on the desirable rows' prompts: the DPO test prompts).
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


def table_rows(
    tasks: list[str], sft_root: Path, dpo_root: Path, kto_root: Path | None = None
) -> list[dict]:
    rows = []
    for task in tasks:
        sft, dpo = _metrics(sft_root / task), _metrics(dpo_root / task)
        kto = _metrics(kto_root / task) if kto_root else {}
        for metric, name in get_task(task).metrics.items():  # one row per metric of the spec
            key = f"test/{metric}"
            rows.append(
                {
                    "task": task,
                    "metric": name,
                    "base": sft.get(f"{key}_before"),
                    "SFT": sft.get(key),
                    "DPO": dpo.get(key),
                    **({"KTO": kto.get(key)} if kto_root else {}),
                }
            )
    return rows


def write_table(rows: list[dict], out: Path) -> None:
    """`out`.md (Markdown) and `out`.csv; missing runs leave empty cells."""
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = COLUMNS + (["KTO"] if rows and "KTO" in rows[0] else [])

    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: cell(row[c]) for c in columns} for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(
        prog="python -m clinical_peft report instruct", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--sft", default="runs/sft", help="folder of the SFT runs, one per task")
    parser.add_argument("--dpo", default="runs/dpo", help="folder of the DPO runs, one per task")
    parser.add_argument("--kto", default=None, help="folder of the KTO runs (adds a KTO column)")
    parser.add_argument("--out", default="runs/instruct/table", help="writes OUT.md and OUT.csv")
    args = parser.parse_args(argv)
    kto = Path(args.kto) if args.kto else None
    rows = table_rows(args.tasks, Path(args.sft), Path(args.dpo), kto)
    out = Path(args.out)
    write_table(rows, out)
    print(out.with_suffix(".md").read_text(), end="")


if __name__ == "__main__":
    main()
