"""Demographics of admissions, from MIMIC's own tables, for performance in subgroups.

A folder holding MIMIC-III `ADMISSIONS.csv.gz` + `PATIENTS.csv.gz` (the outcome tasks' ids are
MIMIC-III `HADM_ID`s), or MIMIC-IV `hosp/admissions.csv.gz` + `hosp/patients.csv.gz` (the
folder itself may be `hosp/`); uncompressed `.csv` files are read too. Per admission:
- gender: PATIENTS.GENDER / patients.gender;
- age: at admission, in bands (MIMIC-III: ADMITTIME - DOB, whose ages over 89 were shifted to
  about 300 years: they land in the top band; MIMIC-IV: anchor_age + the years from anchor_year
  to admittime);
- ethnicity: ADMISSIONS.ETHNICITY / admissions.race, grouped by its first word (White, Black,
  Hispanic, Asian, Other, Unknown);
- insurance: INSURANCE / insurance as written.
The table stays in memory: ids and per-admission values are never written anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clinical_peft.data.files import read_csv_chunks
from clinical_peft.util.errors import InputError, quote_value, require_dir

ATTRIBUTES = ("gender", "age", "ethnicity", "insurance")
AGE_BANDS = ((0, "0-17"), (18, "18-39"), (40, "40-59"), (60, "60-79"), (80, "80+"))
UNKNOWN = "Unknown"
LAYOUTS = {  # layout: (admissions, patients, columns of each, renamed to one vocabulary)
    "MIMIC-III": (
        "ADMISSIONS", "PATIENTS",
        {"SUBJECT_ID": "subject", "HADM_ID": "hadm", "ADMITTIME": "admit",
         "ETHNICITY": "ethnicity", "INSURANCE": "insurance"},
        {"SUBJECT_ID": "subject", "GENDER": "gender", "DOB": "dob"},
    ),
    "MIMIC-IV": (
        "admissions", "patients",
        {"subject_id": "subject", "hadm_id": "hadm", "admittime": "admit", "race": "ethnicity",
         "insurance": "insurance"},
        {"subject_id": "subject", "gender": "gender", "anchor_age": "anchor_age",
         "anchor_year": "anchor_year"},
    ),
}  # fmt: skip
ETHNICITY_WORDS = {"WHITE": "White", "BLACK": "Black", "HISPANIC": "Hispanic",
                   "SOUTH AMERICAN": "Hispanic", "ASIAN": "Asian", "UNKNOWN": UNKNOWN,
                   "UNABLE TO OBTAIN": UNKNOWN, "PATIENT DECLINED": UNKNOWN}  # fmt: skip


def _table(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_tables(folder: str | Path) -> tuple[str, Path, Path]:
    """(layout, admissions file, patients file) in `folder`; InputError naming what is missing."""
    folder = require_dir(folder, "demographics")
    for layout, (admissions, patients, _, _) in LAYOUTS.items():
        for where in (folder, folder / "hosp") if layout == "MIMIC-IV" else (folder,):
            found = _table(where, admissions), _table(where, patients)
            if all(found):
                return layout, found[0], found[1]
            if any(found):
                missing = patients if found[0] else admissions
                raise InputError(
                    where / f"{missing}.csv.gz", f"not found (beside {found[0] or found[1]})"
                )
    raise InputError(
        folder,
        "no MIMIC-III ADMISSIONS.csv.gz + PATIENTS.csv.gz, nor MIMIC-IV hosp/admissions.csv.gz + "
        "hosp/patients.csv.gz",
    )


def _read(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    chunks = list(read_csv_chunks(path, list(columns), chunksize=100_000))
    return pd.concat(chunks, ignore_index=True).rename(columns=columns)


def _number(frame: pd.DataFrame, column: str, path: Path, source: str, part=None) -> pd.Series:
    """`column` (or a slice of it) as numbers; InputError naming the field at the first bad one."""
    text = frame[column] if part is None else frame[column].str.slice(*part)
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & frame[column].str.strip().ne("")
    if bad.any():
        value = quote_value(frame[column][bad].iloc[0])
        raise InputError(path, f"field '{source}': {value} is not a date or number")
    return values


def _ids(values: pd.Series) -> pd.Series:
    """Admission ids as the outcome files write them (digits without leading zeros)."""
    text = values.str.strip()
    return text.where(~text.str.isdigit(), text.str.lstrip("0").replace("", "0"))


def age_band(age: float) -> str:
    if np.isnan(age):
        return UNKNOWN
    return [name for low, name in AGE_BANDS if age >= low][-1] if age >= 0 else UNKNOWN


def ethnicity_group(value: str) -> str:
    text = value.strip().upper()
    if not text:
        return UNKNOWN
    return next((g for word, g in ETHNICITY_WORDS.items() if text.startswith(word)), "Other")


def _ages(joined: pd.DataFrame, layout: str, paths: tuple[Path, Path]) -> pd.Series:
    names = {v: k for k, v in {**LAYOUTS[layout][2], **LAYOUTS[layout][3]}.items()}
    admissions, patients = paths
    year = _number(joined, "admit", admissions, names["admit"], (0, 4))
    if layout == "MIMIC-IV":
        anchor_age = _number(joined, "anchor_age", patients, names["anchor_age"])
        return anchor_age + year - _number(joined, "anchor_year", patients, names["anchor_year"])
    month_day = _number(joined, "admit", admissions, names["admit"], (5, 7)) * 100 + _number(
        joined, "admit", admissions, names["admit"], (8, 10)
    )
    born = _number(joined, "dob", patients, names["dob"], (0, 4))
    born_md = _number(joined, "dob", patients, names["dob"], (5, 7)) * 100 + _number(
        joined, "dob", patients, names["dob"], (8, 10)
    )
    return year - born - (month_day < born_md)  # birthdays not yet reached that year


def read_demographics(folder: str | Path) -> pd.DataFrame:
    """One row per admission, indexed by its id (a string), columns ATTRIBUTES (group names)."""
    layout, admissions_path, patients_path = find_tables(folder)
    _, _, admission_columns, patient_columns = LAYOUTS[layout]
    admissions = _read(admissions_path, admission_columns)
    patients = _read(patients_path, patient_columns)
    hadm_column = next(k for k, v in admission_columns.items() if v == "hadm")
    admissions["hadm"] = _ids(admissions["hadm"])
    if admissions["hadm"].duplicated().any():
        n = int(admissions["hadm"].duplicated().sum())
        raise InputError(admissions_path, f"field '{hadm_column}': {n} admission ids repeat")
    patients = patients.drop_duplicates("subject")
    joined = admissions.merge(patients, on="subject", how="left").fillna("")
    out = pd.DataFrame(index=pd.Index(joined["hadm"], name="hadm"))
    gender = joined["gender"].str.strip().str.upper()
    out["gender"] = gender.where(gender.ne(""), UNKNOWN).to_numpy()
    out["age"] = [age_band(a) for a in _ages(joined, layout, (admissions_path, patients_path))]
    out["ethnicity"] = [ethnicity_group(v) for v in joined["ethnicity"]]
    insurance = joined["insurance"].str.strip()
    out["insurance"] = insurance.where(insurance.ne(""), UNKNOWN).to_numpy()
    return out
