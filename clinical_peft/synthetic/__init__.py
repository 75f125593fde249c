"""MIMIC-shaped synthetic files with learnable signal, for the default run and the tests.

Three families, each in the exact format the real sources use (see shared/PAPERS.md):
- `write_notes`: MIMIC-IV-Note `discharge.csv.gz` / `radiology.csv.gz` (pretraining corpus);
- `write_outcome_tasks`: the five van Aken et al. admission-note tasks (mor, los, diag, proc, pmv);
- `write_demographics`: MIMIC-III `ADMISSIONS.csv.gz` / `PATIENTS.csv.gz` of those admissions,
  with a planted subgroup difference (see `demographics.py`);
- `write_instruction_tasks`: SFT and DPO JSONL for the five Savage et al. task kinds.

Every value comes from a `random.Random` seeded with (family, seed), so the same seed gives
byte-identical files. Files are written to a temporary name and renamed, so an interrupted run
never leaves a half file. Templates live in `text.py`, vocabularies in
`vocab/`.

    python -m clinical_peft synthetic --out data/synthetic --what all

All files land flat in `--out` (the instruction tasks in one subfolder per task). `all` is
notes, outcomes and instructions; `--what demographics` writes the two MIMIC-III tables of the
admissions that `--what outcomes` writes with the same options.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from clinical_peft.data.notes import NOTE_COLUMNS, NOTE_FILES
from clinical_peft.synthetic import text as T
from clinical_peft.synthetic import vocab as V
from clinical_peft.synthetic.demographics import write_demographics
from clinical_peft.synthetic.files import csv_bytes, jsonl_bytes, rng_for, write_file
from clinical_peft.synthetic.outcomes import code_space, write_outcome_tasks
from clinical_peft.util.errors import InputError, at_least_one
from clinical_peft.util.flags import CommandParser

__all__ = ["INSTRUCTION_TASKS", "code_space", "main", "write_demographics",
           "write_instruction_tasks", "write_notes", "write_outcome_tasks"]  # fmt: skip


# ------------------------------------------------------------------------------------ notes


def write_notes(
    out_dir: str | Path, n_discharge: int = 300, n_radiology: int = 2100, seed: int = 0
) -> dict[str, int]:
    """Write MIMIC-IV-Note style `discharge.csv.gz` and `radiology.csv.gz`; return row counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = rng_for("notes", seed)
    n_subjects = max(1, round((n_discharge + n_radiology) / 4.5))
    patients = []
    for sid in sorted(rng.sample(range(10_000_000, 20_000_000), n_subjects)):
        start = dt.datetime(rng.randint(2110, 2190), 1, 1) + dt.timedelta(days=rng.randint(0, 364))
        patients.append(
            dict(
                subject_id=sid,
                sex=rng.choice("MF"),
                start=start,
                admissions=[],
                dob=start.date() - dt.timedelta(days=rng.randint(25 * 365, 90 * 365)),
                comorb=sorted(rng.sample(range(len(V.COMORBIDITIES)), rng.randint(0, 5))),
                name=rng.randint(1000, 99999),
                unit=rng.randint(10000, 99999),
                attending=rng.randint(10, 999),
                allergy=rng.choice(V.ALLERGIES),
                contact=rng.choice(["wife", "husband", "daughter", "son"]),
                phone=f"[**Telephone/Fax (1) {rng.randint(1000, 9999)}**]",
                weight=rng.lognormvariate(0, 0.8),
                rows=[],
                stays=[],
            )
        )
    weights = [p["weight"] for p in patients]

    n_ad = n_discharge // 30 if n_discharge >= 10 else 0  # about 3 % addenda
    hadm_ids = rng.sample(range(20_000_000, 30_000_000), n_discharge - n_ad)
    for hadm_id, p in zip(hadm_ids, rng.choices(patients, weights, k=len(hadm_ids)), strict=True):
        p["admissions"].append(hadm_id)
    admissions = []
    for p in patients:  # admissions of one patient follow each other in time
        when = p["start"]
        for i, hadm_id in enumerate(p["admissions"]):
            when += dt.timedelta(days=rng.randint(20, 400) if i else 0, hours=rng.randint(0, 23))
            cond = rng.randrange(len(V.CONDITIONS))
            disch = when + dt.timedelta(days=rng.randint(1, 12))
            adm = dict(
                patient=p,
                hadm_id=hadm_id,
                cond=cond,
                admit=when,
                disch=disch,
                age=(when.date() - p["dob"]).days // 365,
                dispo=rng.choice(V.DISPOSITIONS),
                procedure=rng.choice(
                    ["None", "None", "PICC line placement", "EGD", "Paracentesis"]
                ),
            )
            p["service"] = V.SERVICES.get(V.CONDITIONS[cond]["short"], V.SERVICES["default"])
            text = T.discharge_text(rng, p, adm)
            store = disch + dt.timedelta(hours=rng.randint(10, 40))
            p["rows"].append(["DS", hadm_id, disch, store, text])
            admissions.append(adm)
            p["stays"].append(adm)
            when = disch
    for adm in rng.sample(admissions, min(n_ad, len(admissions))):
        p, store = adm["patient"], adm["disch"] + dt.timedelta(days=rng.randint(2, 20))
        text = T.pronouns(
            f"Discharge Addendum:\nOf note, {rng.choice(V.CONDITIONS[adm['cond']]['meds'])} was "
            f"sent to the pharmacy on {T.deid_date(store)}. Please follow up on pending "
            f"{rng.choice(['blood cultures', 'pathology', 'urine studies'])} at the visit with "
            f"[**First Name8 (NamePattern2) {rng.randint(10, 999)}**]. He was informed.",
            p["sex"],
        )
        p["rows"].append(["AD", adm["hadm_id"], adm["disch"], store, text])

    n_ar = n_radiology // 50  # about 2 % addenda
    for i, p in enumerate(rng.choices(patients, weights, k=n_radiology)):
        if p["stays"] and rng.random() < 0.7:  # during a stay, and about that stay's problem
            adm = rng.choice(p["stays"])
            span = max(1, int((adm["disch"] - adm["admit"]).total_seconds() // 60))
            when = adm["admit"] + dt.timedelta(minutes=rng.randrange(span))
            hadm, cond, age = adm["hadm_id"], adm["cond"], adm["age"]
        else:
            when = p["start"] + dt.timedelta(
                days=rng.randint(-300, 900), minutes=rng.randint(0, 1439)
            )
            hadm, cond, age = "", None, (when.date() - p["dob"]).days // 365
        text = T.radiology_text(rng, p, age, cond, when)
        kind = "AR" if i < n_ar else "RR"
        if kind == "AR":
            review = rng.choice(["no change to the impression", "the prior study was reviewed"])
            doctor = f"[**Last Name (STitle) {rng.randint(100, 9999)}**]"
            text = f"ADDENDUM:  On review, {review}. Discussed with Dr. {doctor}.\n\n{text}"
        p["rows"].append(
            [kind, hadm, when, when + dt.timedelta(minutes=rng.randint(20, 600)), text]
        )

    fmt = "%Y-%m-%d %H:%M:%S"
    tables: dict[str, list[list]] = {"radiology": [], "discharge": []}  # discharge written last
    for p in patients:  # note_seq counts up in time, per patient and per file, as in MIMIC-IV
        seq = {"discharge": rng.randint(10, 25), "radiology": rng.randint(1, 20)}
        for kind, hadm, chart, store, text in sorted(p["rows"], key=lambda r: (r[2], r[3], r[0])):
            family = "discharge" if kind in ("DS", "AD") else "radiology"
            chart_s = chart.strftime("%Y-%m-%d 00:00:00" if family == "discharge" else fmt)
            tables[family].append(
                [
                    f"{p['subject_id']}-{kind}-{seq[family]}",
                    p["subject_id"],
                    hadm,
                    kind,
                    seq[family],
                    chart_s,
                    store.strftime(fmt),
                    text,
                ]
            )
            seq[family] += 1
    for family, rows in tables.items():
        data = gzip.compress(csv_bytes(NOTE_COLUMNS, rows), compresslevel=6, mtime=0)
        write_file(out / NOTE_FILES[family], data)
    return {"discharge": len(tables["discharge"]), "radiology": len(tables["radiology"])}


# ------------------------------------------------------------------------ instruction tasks


def write_instruction_tasks(
    out_dir: str | Path, n_per_task: int = 400, seed: int = 0
) -> dict[str, int]:
    """Write `<task>/sft_{split}.jsonl`, `<task>/dpo_{split}.jsonl` and `<task>/kto_{split}.jsonl`
    (80/10/10) per task of the `instruct_tasks.TASKS` registry, from each spec's item maker;
    every prompt is distinct, so no val or test prompt repeats a train one. KTO's unpaired rows
    are each pair split in two, the chosen answer labelled true and the rejected one false
    (TRL's `unpair_preference_dataset`), in a seeded shuffled order.

    Completions start with a space (" Yes"), so prompt + completion reads as one text.
    """
    from clinical_peft.synthetic.items import ITEM_MAKERS
    from clinical_peft.tasks.instructions import TASKS

    counts: dict[str, int] = {}
    for task in TASKS:
        if task not in ITEM_MAKERS:
            raise InputError(
                "synthetic", f"task {task!r} has no item maker in synthetic/items.py ITEM_MAKERS"
            )
        make_item = ITEM_MAKERS[task]
        rng = rng_for(f"instructions/{task}", seed)
        items, prompts = [], set()  # distinct prompts: a repeated one would leak across splits
        for _ in range(50 * n_per_task):
            if len(items) == n_per_task:
                break
            item = make_item(rng)
            if item[0] not in prompts:
                prompts.add(item[0])
                items.append(item)
        n_train, n_val = round(0.8 * n_per_task), round(0.1 * n_per_task)
        parts = {
            "train": items[:n_train],
            "val": items[n_train : n_train + n_val],
            "test": items[n_train + n_val :],
        }
        folder = Path(out_dir) / task
        folder.mkdir(parents=True, exist_ok=True)
        for split, rows in parts.items():
            sft = [{"prompt": p, "completion": " " + a} for p, a, _ in rows]
            dpo = [{"prompt": p, "chosen": " " + a, "rejected": " " + r} for p, a, r in rows]
            kto = [{"prompt": p, "completion": " " + c, "label": good}
                   for p, a, r in rows for c, good in ((a, True), (r, False))]  # fmt: skip
            rng_for(f"kto/{task}/{split}", seed).shuffle(kto)
            files = [(f"sft_{split}.jsonl", sft), (f"dpo_{split}.jsonl", dpo),
                     (f"kto_{split}.jsonl", kto)]  # fmt: skip
            for name, data in files:
                write_file(folder / name, jsonl_bytes(data))
                counts[f"{task}/{name}"] = len(data)
    return counts


def __getattr__(name: str):
    """`INSTRUCTION_TASKS`: the instruction-task registry, imported when first asked for (the
    registry itself imports this package's item makers)."""
    if name == "INSTRUCTION_TASKS":
        from clinical_peft.tasks.instructions import TASKS

        return TASKS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(
        prog="python -m clinical_peft synthetic", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--what",
        default="all",
        choices=["notes", "outcomes", "demographics", "instructions", "all"],
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_discharge", type=int, default=300)
    parser.add_argument("--n_radiology", type=int, default=2100)
    parser.add_argument("--n_admissions", type=int, default=1200)
    parser.add_argument("--n_per_task", type=int, default=400)
    parser.add_argument("--n_diag_codes", type=int, default=50)
    parser.add_argument("--n_proc_codes", type=int, default=30)
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        if name.startswith("n_"):
            at_least_one(value, f"--{name.replace('_', '-')}")
    out = Path(args.out)
    written: dict[str, int] = {}
    # Notes last (and discharge.csv.gz last of all): the Makefile takes that file as "done".
    if args.what in ("outcomes", "all"):
        written.update(
            write_outcome_tasks(
                out, args.n_admissions, args.seed, args.n_diag_codes, args.n_proc_codes
            )
        )
    if args.what == "demographics":  # the admissions of `outcomes` with the same options
        written.update(
            write_demographics(
                out, args.n_admissions, args.seed, args.n_diag_codes, args.n_proc_codes
            )
        )
    if args.what in ("instructions", "all"):
        written.update(write_instruction_tasks(out, args.n_per_task, args.seed))
    if args.what in ("notes", "all"):
        counts = write_notes(out, args.n_discharge, args.n_radiology, args.seed)
        written.update({NOTE_FILES[k]: n for k, n in counts.items()})
    for name, n in written.items():
        print(f"{out / name}\t{n} rows")


if __name__ == "__main__":
    main()
