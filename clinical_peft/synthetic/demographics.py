"""MIMIC-III `ADMISSIONS.csv.gz` and `PATIENTS.csv.gz` of the synthetic outcome admissions (the
same `HADM_ID`s as the task files' `id`s, for the same seed and sizes), for subgroup analyses.

Gender and age come from the admission facts the notes were written from (age: the patient's
first stay; later stays are older by the time since; over 89 the date of birth is shifted 300
years back, as MIMIC-III does). Ethnicity (per patient) and insurance (per admission) are drawn
with roughly MIMIC-III's shares, from their own seeded stream: the task files do not change.

Planted difference (PLANTED): insurance `Medicaid` holds most of the admissions whose
in-hospital death goes against their latent severity (died although the severity gave it less
than a 25 % chance, or survived although it gave more than 35 %), besides a few others. A model
that reads severity from the note therefore ranks Medicaid admissions worse: its mortality
AUROC there is far below the other groups' (`tests/test_subgroups.py` finds it).
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
from pathlib import Path

from clinical_peft.synthetic.files import csv_bytes, rng_for, write_file
from clinical_peft.synthetic.outcomes import admissions

PLANTED = ("insurance", "Medicaid")
ADMISSION_COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "ADMISSION_TYPE", "INSURANCE",
                     "ETHNICITY"]  # fmt: skip
PATIENT_COLUMNS = ["ROW_ID", "SUBJECT_ID", "GENDER", "DOB"]
INSURANCE = {"Medicare": 0.52, "Private": 0.38, "Government": 0.06, "Self Pay": 0.04}
ETHNICITY = {"WHITE": 0.70, "BLACK/AFRICAN AMERICAN": 0.10, "HISPANIC OR LATINO": 0.04,
             "ASIAN": 0.03, "ASIAN - CHINESE": 0.01, "WHITE - RUSSIAN": 0.01, "OTHER": 0.03,
             "UNKNOWN/NOT SPECIFIED": 0.06, "UNABLE TO OBTAIN": 0.02}  # fmt: skip
FORMAT = "%Y-%m-%d %H:%M:%S"


def _death_against_severity(a: dict) -> bool:
    chance = 1 / (1 + math.exp(-(-4.2 + 2.6 * a["s"] + 0.3 * a["vent"])))  # as outcomes.py draws
    return chance < 0.25 if a["died"] else chance > 0.35


def _draw(rng, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def write_demographics(
    out_dir: str | Path,
    n_admissions: int = 1200,
    seed: int = 0,
    n_diag_codes: int = 50,
    n_proc_codes: int = 30,
) -> dict[str, int]:
    """Write ADMISSIONS.csv.gz and PATIENTS.csv.gz for `write_outcome_tasks` with the same
    arguments; return rows per file."""
    splits, _, _ = admissions(n_admissions, seed, n_diag_codes, n_proc_codes)
    patients = [p for split in splits.values() for p in split]
    rng = rng_for("demographics", seed)
    subjects = rng.sample(range(100, 100_000), len(patients))
    admission_rows, patient_rows = [], []
    for subject, stays in sorted(zip(subjects, patients, strict=True), key=lambda sp: sp[0]):
        when = dt.datetime(rng.randint(2100, 2200), 1, 1) + dt.timedelta(
            days=rng.randint(0, 364), minutes=rng.randint(0, 1439)
        )
        first = stays[0]
        years_back = first["age"] if first["age"] < 90 else 300  # MIMIC-III's shift over 89
        born = dt.date(when.year - years_back, when.month, min(when.day, 28))  # no 29 February
        dob = born - dt.timedelta(days=rng.randint(1, 360))
        patient_rows.append([subject, first["sex"], f"{dob} 00:00:00"])
        ethnicity = _draw(rng, ETHNICITY)
        for i, a in enumerate(stays):
            if i:
                when += dt.timedelta(days=rng.randint(20, 400), minutes=rng.randint(0, 1439))
            planted = rng.random() < (0.9 if _death_against_severity(a) else 0.04)
            insurance = PLANTED[1] if planted else _draw(rng, INSURANCE)
            kind = rng.choice(["EMERGENCY", "EMERGENCY", "EMERGENCY", "ELECTIVE", "URGENT"])
            admission_rows.append(
                [subject, a["id"], when.strftime(FORMAT), kind, insurance, ethnicity]
            )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "ADMISSIONS.csv.gz": (ADMISSION_COLUMNS, admission_rows),
        "PATIENTS.csv.gz": (PATIENT_COLUMNS, patient_rows),
    }
    for name, (header, rows) in tables.items():
        numbered = [[row_id, *row] for row_id, row in enumerate(rows, start=1)]
        write_file(out / name, gzip.compress(csv_bytes(header, numbered), mtime=0))
    return {name: len(rows) for name, (_, rows) in tables.items()}
