"""The synthetic MIMIC-shaped files: exact formats, determinism, realistic mix, learnable signal."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from clinical_peft.data.notes import NOTE_COLUMNS
from clinical_peft.synthetic import (
    INSTRUCTION_TASKS,
    code_space,
    main,
    write_instruction_tasks,
    write_notes,
    write_outcome_tasks,
)
from clinical_peft.synthetic import vocab as V
from clinical_peft.synthetic.items import hyponatremia_cause

#: words that would give an admission note's outcome away
LEAKAGE_WORDS = ["expired", "died", "death", "deceased", "passed away", "discharged", "hospice"]

DS_HEADERS = [
    "Name:",
    "Unit No:",
    "Admission Date:",
    "Discharge Date:",
    "Date of Birth:",
    "Sex:",
    "Service:",
    "Chief Complaint:",
    "History of Present Illness:",
    "Past Medical History:",
    "Physical Exam:",
    "Pertinent Results:",
    "Brief Hospital Course:",
    "Discharge Medications:",
    "Discharge Disposition:",
    "Discharge Diagnosis:",
    "Discharge Instructions:",
    "Followup Instructions:",
]
RR_HEADERS = [
    "EXAMINATION:",
    "INDICATION:",
    "TECHNIQUE:",
    "COMPARISON:",
    "FINDINGS:",
    "IMPRESSION:",
]
SPLITS = ["train", "val", "test"]


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def words(texts: pd.Series) -> pd.Series:
    return texts.str.split().str.len()


def bow_model(train_texts, y, C: float = 0.3):
    vec = CountVectorizer(binary=True, min_df=2)
    model = LogisticRegression(C=C, max_iter=2000).fit(vec.fit_transform(train_texts), y)
    return vec, model


# ----------------------------------------------------------------------------------- notes
@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> tuple[Path, dict, float]:
    folder = tmp_path_factory.mktemp("notes")
    start = time.perf_counter()
    counts = write_notes(folder)  # the defaults: fast enough to test at full size
    return folder, counts, time.perf_counter() - start


def test_notes_columns_types_and_ids(notes):
    folder, counts, seconds = notes
    assert counts == {"discharge": 300, "radiology": 2100}
    assert seconds < 10
    ds, rr = read(folder / "discharge.csv.gz"), read(folder / "radiology.csv.gz")
    assert list(ds.columns) == NOTE_COLUMNS and list(rr.columns) == NOTE_COLUMNS
    assert (len(ds), len(rr)) == (300, 2100)
    assert set(ds.note_type) == {"DS", "AD"} and (ds.note_type == "AD").mean() < 0.1
    assert set(rr.note_type) == {"RR", "AR"} and (rr.note_type == "AR").mean() < 0.1
    for df in (ds, rr):
        assert df.note_id.is_unique
        assert (df.note_id == df.subject_id + "-" + df.note_type + "-" + df.note_seq).all()
        assert df.note_id.str.fullmatch(r"1\d{7}-(DS|AD|RR|AR)-\d+").all()
        assert df.charttime.str.fullmatch(r"2\d{3}-\d\d-\d\d \d\d:\d\d:\d\d").all()
        assert (df.storetime >= df.charttime).all()
    assert (ds.hadm_id != "").all() and (rr.hadm_id == "").any()  # outpatient imaging has none


def test_notes_structure_and_mix(notes):
    folder, _, _ = notes
    ds, rr = read(folder / "discharge.csv.gz"), read(folder / "radiology.csv.gz")
    for text in ds.text[ds.note_type == "DS"]:
        positions = [text.find(h) for h in DS_HEADERS]
        assert -1 not in positions and positions == sorted(positions), text[:300]
        assert re.search(r"\[\*\*\d{4}-\d{1,2}-\d{1,2}\*\*\]", text)  # a de-identified date
        assert "[**Hospital1 18**]" in text
        assert "\n \n" in text and re.search(r"\S {3,}\S", text)  # line breaks and runs of spaces
    for text in rr.text:
        positions = [text.find(h) for h in RR_HEADERS]
        assert -1 not in positions and positions == sorted(positions)
    assert len(rr) == 7 * len(ds)
    ds_words, rr_words = words(ds.text[ds.note_type == "DS"]), words(rr.text)
    assert 900 < ds_words.mean() < 2000 and 70 < rr_words.mean() < 300
    assert ds_words.mean() > 6 * rr_words.mean()
    # learnable: the primary diagnosis named in the course comes back as the discharge diagnosis
    for text in ds.text[ds.note_type == "DS"][:50]:
        found = re.search(r"was found to have (.+?)\.\n", text).group(1)
        assert found in text.split("Discharge Diagnosis:")[1]


def test_notes_subjects_have_several_notes(notes):
    folder, _, _ = notes
    ds, rr = read(folder / "discharge.csv.gz"), read(folder / "radiology.csv.gz")
    per_subject = pd.concat([ds, rr]).groupby("subject_id").size()
    assert 3 <= per_subject.mean() <= 6
    assert (per_subject > 1).mean() > 0.6
    assert (ds[ds.note_type == "DS"].groupby("subject_id").size() > 1).any()  # readmissions
    # radiology during a stay points at an admission of the same subject
    stays = set(zip(ds.subject_id, ds.hadm_id, strict=True))
    inpatient = rr[rr.hadm_id != ""]
    assert all(pair in stays for pair in zip(inpatient.subject_id, inpatient.hadm_id, strict=True))


def test_notes_deterministic(tmp_path):
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        write_notes(tmp_path / name, n_discharge=20, n_radiology=140, seed=seed)
    for file in ["discharge.csv.gz", "radiology.csv.gz"]:
        a, b, c = ((tmp_path / x / file).read_bytes() for x in "abc")
        assert a == b and a != c
    assert not list(tmp_path.glob("*/.*tmp"))  # no temporary files left behind


# -------------------------------------------------------------------------------- outcomes
OUTCOME_HEADERS = {
    "MP_IN_adm": ["id", "text", "hospital_expire_flag"],
    "LOS_WEEKS_adm": ["id", "text", "los_label"],
    "DIA_GROUPS_3_DIGITS_adm": ["id", "text", "short_codes"],
    "PRO_GROUPS_3_DIGITS_adm": ["id", "text", "short_codes"],
    "pmv": ["id", "text", "label"],
}


def outcome_file(folder: Path, prefix: str, split: str) -> Path:
    return folder / f"{prefix}_{'dev' if prefix == 'pmv' and split == 'val' else split}.csv"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("outcomes")
    return folder, write_outcome_tasks(folder, n_admissions=3000, seed=0)


def test_outcome_files_format(outcomes):
    folder, counts = outcomes
    tables = {}
    for prefix, header in OUTCOME_HEADERS.items():
        for split in SPLITS:
            path = outcome_file(folder, prefix, split)
            assert counts[path.name] > 0
            with path.open(newline="") as f:
                first = f.readline()
            assert first.strip() == ",".join(f'"{h}"' for h in header)  # csv.QUOTE_ALL
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            assert len(rows) - 1 == counts[path.name]
            df = read(path)
            assert list(df.columns) == header and df.id.is_unique
            assert path.read_text().count('"') >= 6 * len(df)  # every field quoted
            tables[prefix, split] = df
    ids = {s: set(tables["MP_IN_adm", s].id) for s in SPLITS}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    n = sum(len(x) for x in ids.values())
    assert 0.62 < len(ids["train"]) / n < 0.78 and 0.08 < len(ids["test"]) / n < 0.22
    for split in SPLITS:  # the other tasks are subsets of the same admissions
        for prefix in OUTCOME_HEADERS:
            assert set(tables[prefix, split].id) <= ids[split]
        assert len(tables["DIA_GROUPS_3_DIGITS_adm", split]) == len(ids[split])

    mor = pd.concat(tables["MP_IN_adm", s] for s in SPLITS).hospital_expire_flag.astype(int)
    assert set(mor) == {0, 1} and 0.07 < mor.mean() < 0.13
    los = pd.concat(tables["LOS_WEEKS_adm", s] for s in SPLITS).los_label.astype(int)
    shares = los.value_counts(normalize=True).sort_index()
    assert list(shares.index) == [0, 1, 2, 3] and shares.idxmax() == 1 and shares.min() > 0.05
    pmv = pd.concat(tables["pmv", s] for s in SPLITS).label.astype(int)
    assert set(pmv) == {0, 1} and 0.1 < len(pmv) / n < 0.3

    dia_space = (folder / "ALL_3_DIGIT_DIA_CODES.txt").read_text().split()
    pro_space = (folder / "ALL_3_DIGIT_PRO_CODES.txt").read_text().split()
    assert len(dia_space) == counts["ALL_3_DIGIT_DIA_CODES.txt"] == 50 and len(pro_space) == 30
    for prefix, space in [
        ("DIA_GROUPS_3_DIGITS_adm", dia_space),
        ("PRO_GROUPS_3_DIGITS_adm", pro_space),
    ]:
        codes = pd.concat(tables[prefix, s] for s in SPLITS).short_codes.str.split(",")
        assert codes.str.len().between(1, 10).all()
        assert all(c in space for row in codes for c in row)
        freq = pd.Series([c for row in codes for c in row]).value_counts()
        assert freq.iloc[0] > 8 * freq.iloc[-1]  # long tail
    pro_codes = {
        c for row in tables["PRO_GROUPS_3_DIGITS_adm", "train"].short_codes for c in row.split(",")
    }
    assert any(len(c) == 2 for c in pro_codes)  # leading zeros lost, as in the task scripts


def test_outcome_texts(outcomes):
    folder, _ = outcomes
    texts = pd.concat(read(outcome_file(folder, "MP_IN_adm", s)) for s in SPLITS).text
    n_words = words(texts)
    assert 200 < n_words.median() < 600 and (n_words > 2000).sum() >= 3
    sections = [
        "CHIEF COMPLAINT:",
        "PRESENT ILLNESS:",
        "MEDICAL HISTORY:",
        "MEDICATIONS ON ADMISSION:",
        "ALLERGIES:",
        "PHYSICAL EXAM:",
        "FAMILY HISTORY:",
        "SOCIAL HISTORY:",
    ]
    assert all(all(s in t for s in sections) for t in texts)
    lower = texts.str.lower()
    for word in LEAKAGE_WORDS:
        assert not lower.str.contains(word, regex=False).any(), word


def test_outcome_labels_are_learnable(outcomes):
    """A bag-of-words logistic regression must beat 0.75 AUROC: the signal is there, not trivial."""
    folder, _ = outcomes
    train, test = (read(outcome_file(folder, "MP_IN_adm", s)) for s in ["train", "test"])
    vec, model = bow_model(train.text, train.hospital_expire_flag.astype(int))
    auroc = roc_auc_score(
        test.hospital_expire_flag.astype(int), model.decision_function(vec.transform(test.text))
    )
    assert 0.75 < auroc < 0.99

    train, test = (
        read(outcome_file(folder, "DIA_GROUPS_3_DIGITS_adm", s)) for s in ["train", "test"]
    )
    train_codes, test_codes = train.short_codes.str.split(","), test.short_codes.str.split(",")
    vec = CountVectorizer(binary=True, min_df=2)
    x_train, x_test = vec.fit_transform(train.text), vec.transform(test.text)
    aurocs = []
    for code in sorted({c for row in train_codes for c in row}):
        y = np.array([code in row for row in train_codes])
        y_test = np.array([code in row for row in test_codes])
        if 0 < y_test.sum() < len(y_test):
            model = LogisticRegression(C=0.3, max_iter=1000, solver="liblinear").fit(x_train, y)
            aurocs.append(roc_auc_score(y_test, model.decision_function(x_test)))
    assert len(aurocs) >= 40 and 0.75 < np.mean(aurocs) < 0.99


def test_outcomes_deterministic_and_real_code_space(tmp_path):
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        write_outcome_tasks(tmp_path / name, n_admissions=120, seed=seed)
    a, b, c = ((tmp_path / x / "MP_IN_adm_train.csv").read_bytes() for x in "abc")
    assert a == b and a != c

    counts = write_outcome_tasks(
        tmp_path / "real", n_admissions=200, n_diag_codes=1266, n_proc_codes=711
    )
    assert counts["ALL_3_DIGIT_DIA_CODES.txt"] == 1266
    assert counts["ALL_3_DIGIT_PRO_CODES.txt"] == 711
    dia = (tmp_path / "real" / "ALL_3_DIGIT_DIA_CODES.txt").read_text().split()
    pro = (tmp_path / "real" / "ALL_3_DIGIT_PRO_CODES.txt").read_text().split()
    assert len(set(dia)) == 1266 and len(set(pro)) == 711
    assert any(c.startswith("V") for c in dia) and any(c.startswith("E") for c in dia)
    assert any(len(c) == 2 for c in pro) and all(2 <= len(c) <= 3 for c in pro)
    assert code_space("diag", 50) == code_space("diag", 1266)[:50]  # same codes lead every size
    with pytest.raises(ValueError):
        code_space("proc", 5000)


# ---------------------------------------------------------------------------- instructions
@pytest.fixture(scope="module")
def instructions(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("instructions")
    return folder, write_instruction_tasks(folder)


def load(folder: Path, task: str, kind: str, split: str) -> list[dict]:
    return [
        json.loads(line)
        for line in (folder / task / f"{kind}_{split}.jsonl").read_text().splitlines()
    ]


def test_instruction_files(instructions):
    folder, counts = instructions
    answers = {
        "classification": r" (Yes|No)",
        "numeric": " (" + "|".join(V.NA_CHOICES) + ")",
        "reasoning": r" [ABCD]",
        "triage": r" Provider: (Nurse|Physician|Pharmacist|Scheduling); Urgency: (Routine|Urgent)",
        "summarisation": r" A \d+-year-old (man|woman) .+\.",
    }
    for task in INSTRUCTION_TASKS:
        for split, n in zip(SPLITS, [320, 40, 40], strict=True):
            sft, dpo = load(folder, task, "sft", split), load(folder, task, "dpo", split)
            assert len(sft) == len(dpo) == n == counts[f"{task}/sft_{split}.jsonl"]
            for s, d in zip(sft, dpo, strict=True):
                assert set(s) == {"prompt", "completion"}
                assert set(d) == {"prompt", "chosen", "rejected"}
                assert s["prompt"] == d["prompt"]
                assert s["completion"] == d["chosen"] != d["rejected"]
                assert re.fullmatch(answers[task], d["chosen"])
                assert re.fullmatch(answers[task], d["rejected"])
                if task != "summarisation":
                    assert len(s["completion"].split()) <= 4
        labels = [row["completion"] for row in load(folder, task, "sft", "train")]
        assert len(set(labels)) > 1  # not a constant answer


def test_instruction_answers_are_learnable(instructions):
    folder, _ = instructions
    for task, minimum in [("classification", 0.85), ("triage", 0.85)]:
        train = load(folder, task, "sft", "train")
        held = load(folder, task, "sft", "val") + load(folder, task, "sft", "test")
        vec, model = bow_model(
            [r["prompt"] for r in train], [r["completion"] for r in train], C=3.0
        )
        predicted = model.predict(vec.transform([r["prompt"] for r in held]))
        assert np.mean(predicted == np.array([r["completion"] for r in held])) >= minimum, task

    for row in load(folder, "numeric", "sft", "train"):  # the rule is in the numbers
        osm = int(re.search(r"Urine osmolality: (\d+)", row["prompt"]).group(1))
        sodium = int(re.search(r"Urine sodium: (\d+)", row["prompt"]).group(1))
        assert " " + hyponatremia_cause(osm, sodium) == row["completion"]

    # reasoning: pick the option whose condition's findings appear in the vignette
    by_option = {c[k].lower(): c for c in V.CONDITIONS for k in ("name", "treatment")}
    rows, hits = load(folder, "reasoning", "sft", "train"), 0
    for row in rows:
        options = dict(re.findall(r"\n([ABCD])\. (.+)", row["prompt"]))
        findings = {
            k: by_option[v.lower()]["symptoms"] + by_option[v.lower()]["exam"]
            for k, v in options.items()
        }
        scores = {k: sum(f in row["prompt"] for f in found) for k, found in findings.items()}
        hits += max(scores, key=scores.get) == row["completion"].strip()
    assert hits / len(rows) > 0.9

    def facts(summary: str) -> tuple[str, ...]:
        return re.search(
            r"admitted with (.+) and treated with (.+)\. \w+ was discharged to (.+) with", summary
        ).groups()

    # summarisation: a rule reading the note's facts tells chosen from rejected
    for row in load(folder, "summarisation", "dpo", "train"):
        note = tuple(
            re.search(pattern, row["prompt"]).group(1)
            for pattern in [
                r"Discharge Diagnosis: (.+)",
                r"treated with ([^.]+)\.\nDischarge Diagnosis",
                r"Discharge Disposition: (.+)",
            ]
        )
        assert facts(row["chosen"]) == note and facts(row["rejected"]) != note


def test_cli_writes_everything_flat(tmp_path, capsys):
    sizes = "--n-discharge 10 --n-radiology 70 --n-admissions 60 --n-per-task 20 --seed 3"
    main(["--out", str(tmp_path), "--what", "all", *sizes.split()])
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 + 15 + 2 + 5 * 9  # one line per file written (sft, dpo, kto x 3)
    for line in printed:
        assert Path(line.split("\t")[0]).is_file()
    assert (tmp_path / "discharge.csv.gz").is_file()
    assert (tmp_path / "MP_IN_adm_train.csv").is_file()
    assert (tmp_path / "triage" / "dpo_test.jsonl").is_file()
    assert (tmp_path / "triage" / "kto_test.jsonl").is_file()

    main(["--out", str(tmp_path / "n"), "--what", "notes", *sizes.split()])
    names = sorted(p.name for p in (tmp_path / "n").iterdir())
    assert names == ["discharge.csv.gz", "radiology.csv.gz"]
