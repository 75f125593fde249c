"""MIMIC-shaped synthetic files with learnable signal, for the default run and the tests.

Three families, each in the exact format the real sources use (see shared/PAPERS.md):
- `write_notes`: MIMIC-IV-Note `discharge.csv.gz` / `radiology.csv.gz` (pretraining corpus);
- `write_outcome_tasks`: the five van Aken et al. admission-note tasks (mor, los, diag, proc, pmv);
- `write_instruction_tasks`: SFT and DPO JSONL for the five Savage et al. task kinds.

Every value comes from a `random.Random` seeded with (family, seed), so the same seed gives
byte-identical files. Files are written to a temporary name and renamed, so an interrupted run
never leaves a half file. Templates live in `text.py`, vocabularies in
`vocab/`.

    python -m clinical_peft synthetic --out data/synthetic --what all

All files land flat in `--out` (the instruction tasks in one subfolder per task).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
import math
import random
from pathlib import Path

from clinical_peft.atomic import write_atomic
from clinical_peft.data.notes import NOTE_COLUMNS, NOTE_FILES
from clinical_peft.data.tasks import TASKS as OUTCOME_TASKS
from clinical_peft.instruct_tasks import TASKS as INSTRUCTION_TASKS
from clinical_peft.synthetic import text as T
from clinical_peft.synthetic import vocab as V


# ---------------------------------------------------------------------------------- helpers
def _rng(family: str, seed: int) -> random.Random:
    # A string seed is hashed with sha512, so streams do not depend on PYTHONHASHSEED.
    return random.Random(f"clinical-peft/{family}/{seed}")


def _write_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def _csv_bytes(header: list[str], rows: list[list], quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=quoting, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


# ------------------------------------------------------------------------------------ notes


def write_notes(
    out_dir: str | Path, n_discharge: int = 300, n_radiology: int = 2100, seed: int = 0
) -> dict[str, int]:
    """Write MIMIC-IV-Note style `discharge.csv.gz` and `radiology.csv.gz`; return row counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = _rng("notes", seed)
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
        data = gzip.compress(_csv_bytes(NOTE_COLUMNS, rows), compresslevel=6, mtime=0)
        _write_atomic(out / NOTE_FILES[family], data)
    return {"discharge": len(tables["discharge"]), "radiology": len(tables["radiology"])}


# ---------------------------------------------------------------------------- outcome tasks
def code_space(kind: str, n: int) -> list[tuple[str, list[str], bool]]:
    """The `n` codes of a space, most frequent first: (code, terms, severe).

    Curated common ICD-9 groups come first, then a fixed long tail (the same for every seed).
    """
    curated = V.DIAG_CODES if kind == "diag" else V.PROC_CODES
    if n <= len(curated):
        return curated[:n]
    rng = random.Random(f"clinical-peft/codes/{kind}")
    if kind == "diag":
        pool = (
            [f"{i:03d}" for i in range(1, 1000)]
            + [f"V{i:02d}" for i in range(1, 92)]
            + [f"E{i}" for i in range(800, 1000)]
        )
        terms = [
            f"{a} {b} of the {c}" for a in V.TAIL_ADJ for b in V.TAIL_LESION for c in V.TAIL_SITE
        ]
    else:  # "038" is written "38" in the task files: leading zeros were lost
        pool = [str(i) for i in range(10, 1000)]
        terms = [f"{a} of the {c}" for a in V.TAIL_PROC for c in V.TAIL_SITE]
    taken = {code for code, _, _ in curated}
    pool = [code for code in pool if code not in taken]
    need = n - len(curated)
    if need > min(len(pool), len(terms)):
        raise ValueError(
            f"at most {len(curated) + min(len(pool), len(terms))} {kind} codes, asked {n}"
        )
    return curated + [
        (c, [t], False)
        for c, t in zip(rng.sample(pool, need), rng.sample(terms, need), strict=True)
    ]


class _CodeSampler:
    """Codes per admission: long-tailed (Zipf) frequencies; "severe" codes rise with severity."""

    def __init__(self, space: list, mean_k: float, exclude: tuple[str, ...] = ()):
        self.space, self.mean_k = space, mean_k
        weights = [1.0 / (r + 2) ** 1.1 for r in range(len(space))]
        total = sum(weights)
        self.base = [min(0.6, mean_k * w / total) for w in weights]
        ok = [i for i, (code, _, _) in enumerate(space) if code not in exclude]
        self.severe = [i for i in ok if space[i][2]]
        self.common = [i for i in ok if not space[i][2]]
        self.cum, acc = [], 0.0
        for i in self.common:
            acc += weights[i]
            self.cum.append(acc)

    def draw(self, rng: random.Random, s: float, forced: list[int]) -> list[int]:
        k = min(10, max(1, round(rng.gauss(self.mean_k + 0.8 * s, 1.6))))
        chosen = list(forced)
        for i in self.severe:
            if rng.random() < min(0.9, self.base[i] * math.exp(s - 0.5)):
                chosen.append(i)
        chosen = chosen[:10]
        k = min(max(k, len(chosen)), len(chosen) + len(self.common))
        while len(chosen) < k:
            i = rng.choices(self.common, cum_weights=self.cum)[0]
            if i not in chosen:
                chosen.append(i)
        return chosen


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, rng.random(), math.exp(-lam)
    while p > limit:
        n, p = n + 1, p * rng.random()
    return n


def _mentions(rng: random.Random, space: list, present: list[int]) -> list[str]:
    """Terms of present codes (each with p 0.55), plus a few of absent codes as noise."""
    terms = [t for i in present for t in space[i][1] if rng.random() < 0.55]
    for _ in range(_poisson(rng, min(2.0, 0.01 * sum(len(x[1]) for x in space)))):
        i = rng.randrange(len(space))
        if i not in present:
            terms.append(rng.choice(space[i][1]))
    rng.shuffle(terms)
    return terms


def write_outcome_tasks(
    out_dir: str | Path,
    n_admissions: int = 1200,
    seed: int = 0,
    n_diag_codes: int = 50,
    n_proc_codes: int = 30,
) -> dict[str, int]:
    """Write the five van Aken et al. task files and the two code lists; return rows per file."""
    if n_diag_codes < 1 or n_proc_codes < 1:
        raise ValueError("n_diag_codes and n_proc_codes must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = _rng("outcomes", seed)
    diag_space, proc_space = code_space("diag", n_diag_codes), code_space("proc", n_proc_codes)
    diag_sampler = _CodeSampler(diag_space, mean_k=4.5)
    vent_code = next((i for i, (c, _, _) in enumerate(proc_space) if c == "967"), None)
    proc_sampler = _CodeSampler(proc_space, mean_k=2.0, exclude=("967",))

    ids = rng.sample(range(100_000, 100_000 + max(100_000, 10 * n_admissions)), n_admissions)
    patients: list[list[dict]] = []
    long_ids = set(rng.sample(range(n_admissions), max(1, n_admissions // 200)))
    for j, hadm in enumerate(ids):
        if not patients or len(patients[-1]) >= patients[-1][0]["n_stays"]:
            patients.append([])
        first = patients[-1][0] if patients[-1] else None
        s = rng.gauss(0, 1)  # latent severity: drives codes, vitals, words and all three outcomes
        a = dict(
            id=hadm,
            s=s,
            long=j in long_ids,
            n_stays=first["n_stays"] if first else rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 2, 3]),
            sex=first["sex"] if first else rng.choice("MF"),
            age=min(99, max(18, round(rng.gauss(62 + 7 * s, 15)))),
        )
        a["vent"] = rng.random() < T.sigmoid(-2.1 + 1.4 * s)
        a["pmv"] = a["vent"] and rng.random() < T.sigmoid(-0.3 + 1.3 * (s - 1.0))
        a["died"] = rng.random() < T.sigmoid(-4.2 + 2.6 * s + 0.3 * a["vent"])
        days = math.exp(math.log(6.0) + 0.45 * s + 0.35 * a["vent"] + rng.gauss(0, 0.5))
        a["los"] = 0 if days <= 3 else 1 if days <= 7 else 2 if days <= 14 else 3
        a["diag"] = diag_sampler.draw(rng, s, [])
        forced = [vent_code] if a["vent"] and vent_code is not None else []
        has_proc = bool(forced) or rng.random() < 0.86
        a["proc"] = proc_sampler.draw(rng, s, forced) if has_proc else []
        diag_terms, proc_terms = _mentions(rng, diag_space, a["diag"]), []
        if a["proc"]:
            proc_terms = _mentions(rng, proc_space, a["proc"])
        a["text"] = T.admission_text(rng, a, diag_terms, proc_terms)
        patients[-1].append(a)

    rng.shuffle(patients)  # split by patient, 70 / 15 / 15
    cut1, cut2 = round(0.7 * len(patients)), round(0.85 * len(patients))
    splits = {"train": patients[:cut1], "val": patients[cut1:cut2], "test": patients[cut2:]}
    counts: dict[str, int] = {}
    for split, group in splits.items():
        adms = [a for p in group for a in p]
        tables = {  # file names and label columns are the loaders' own (data/tasks.py)
            "mor": [[a["id"], a["text"], int(a["died"])] for a in adms],
            "los": [[a["id"], a["text"], a["los"]] for a in adms if not a["died"]],
            "diag": [
                [a["id"], a["text"], ",".join(diag_space[i][0] for i in a["diag"])] for a in adms
            ],
            "proc": [
                [a["id"], a["text"], ",".join(proc_space[i][0] for i in a["proc"])]
                for a in adms
                if a["proc"]
            ],
            "pmv": [[a["id"], a["text"], int(a["pmv"])] for a in adms if a["vent"]],
        }
        for task, rows in tables.items():
            spec = OUTCOME_TASKS[task]
            path = spec.path(out, split)
            header = ["id", "text", spec.label_column]
            _write_atomic(path, _csv_bytes(header, rows, quoting=csv.QUOTE_ALL))
            counts[path.name] = len(rows)
    for task, space in [("diag", diag_space), ("proc", proc_space)]:
        name = OUTCOME_TASKS[task].codes_file
        codes = sorted(code for code, _, _ in space)
        _write_atomic(out / name, ("\n".join(codes) + "\n").encode())
        counts[name] = len(codes)
    return counts


# ------------------------------------------------------------------------ instruction tasks


def write_instruction_tasks(
    out_dir: str | Path, n_per_task: int = 400, seed: int = 0
) -> dict[str, int]:
    """Write `<task>/sft_{split}.jsonl` and `<task>/dpo_{split}.jsonl` (80/10/10) per task of
    the `instruct_tasks.TASKS` registry, from each spec's item maker.

    Completions start with a space (" Yes"), so prompt + completion reads as one text.
    """
    counts: dict[str, int] = {}
    for task, spec in INSTRUCTION_TASKS.items():
        rng = _rng(f"instructions/{task}", seed)
        items = [spec.make_item(rng) for _ in range(n_per_task)]
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
            for name, data in [(f"sft_{split}.jsonl", sft), (f"dpo_{split}.jsonl", dpo)]:
                _write_atomic(folder / name, _jsonl_bytes(data))
                counts[f"{task}/{name}"] = len(data)
    return counts


# ------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--what", default="all", choices=["notes", "outcomes", "instructions", "all"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-discharge", type=int, default=300)
    parser.add_argument("--n-radiology", type=int, default=2100)
    parser.add_argument("--n-admissions", type=int, default=1200)
    parser.add_argument("--n-per-task", type=int, default=400)
    parser.add_argument("--n-diag-codes", type=int, default=50)
    parser.add_argument("--n-proc-codes", type=int, default=30)
    args = parser.parse_args(argv)
    out = Path(args.out)
    written: dict[str, int] = {}
    # Notes last (and discharge.csv.gz last of all): the Makefile takes that file as "done".
    if args.what in ("outcomes", "all"):
        written.update(
            write_outcome_tasks(
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
