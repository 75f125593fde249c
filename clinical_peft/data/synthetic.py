"""MIMIC-shaped synthetic files with learnable signal, for the default run and the tests.

Three families, each in the exact format the real sources use (see shared/PAPERS.md):
- `write_notes`: MIMIC-IV-Note `discharge.csv.gz` / `radiology.csv.gz` (pretraining corpus);
- `write_outcome_tasks`: the five van Aken et al. admission-note tasks (mor, los, diag, proc, pmv);
- `write_instruction_tasks`: SFT and DPO JSONL for the five Savage et al. task kinds.

Every value comes from a `random.Random` seeded with (family, seed), so the same seed gives
byte-identical files. Files are written to a temporary name and renamed, so an interrupted run
never leaves a half file. Vocabularies live in `synthetic_text.py`.

    python -m clinical_peft.data.synthetic --out data/synthetic --what all
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
import math
import os
import random
import re
from pathlib import Path

from clinical_peft.data import synthetic_text as V

NOTE_COLUMNS = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                "storetime", "text"]  # fmt: skip
NOTE_FILES = {"discharge": "discharge.csv.gz", "radiology": "radiology.csv.gz"}
OUTCOME_FILES = {  # file prefix -> label column
    "MP_IN_adm": "hospital_expire_flag",
    "LOS_WEEKS_adm": "los_label",
    "DIA_GROUPS_3_DIGITS_adm": "short_codes",
    "PRO_GROUPS_3_DIGITS_adm": "short_codes",
    "pmv": "label",
}
INSTRUCTION_TASKS = ["classification", "numeric", "reasoning", "summarisation", "triage"]
LEAKAGE_WORDS = ["expired", "died", "death", "deceased", "passed away", "discharged", "hospice"]


# ---------------------------------------------------------------------------------- helpers
def _rng(family: str, seed: int) -> random.Random:
    # A string seed is hashed with sha512, so streams do not depend on PYTHONHASHSEED.
    return random.Random(f"clinical-peft/{family}/{seed}")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _csv_bytes(header: list[str], rows: list[list], quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=quoting, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _pronouns(text: str, sex: str) -> str:
    """Templates are written for a man; rewrite them for a woman."""
    if sex == "M":
        return text
    for pattern, repl in _FEMALE:
        text = pattern.sub(repl, text)
    return text


_FEMALE = [(re.compile(r"\bHe\b"), "She"), (re.compile(r"\bhe\b"), "she"),
           (re.compile(r"\bHis\b"), "Her"), (re.compile(r"\bhis\b"), "her"),
           (re.compile(r"\bhim\b"), "her"), (re.compile(r"\bMr\."), "Ms."),
           (re.compile(r"\bman\b"), "woman")]  # fmt: skip


def _d(day: dt.date | dt.datetime) -> str:
    """A de-identified date, MIMIC-III style: [**2150-3-2**]."""
    return f"[**{day.year}-{day.month}-{day.day}**]"


def _lab(name: str, value: float, lo: float, hi: float, dec: int) -> str:
    return f"{name}-{value:.{dec}f}{'*' if not lo <= value <= hi else ''}"


# ------------------------------------------------------------------------------------ notes
_PANEL_NAMES = {name for panel in V.LAB_PANELS for name, *_ in panel}
_EXAM_SYSTEMS = [  # (line, keywords): where an abnormal exam finding belongs
    ("NECK", ["JVP"]),
    ("LUNGS", ["crackles", "wheez", "egophony", "expiratory", "respirations", "accessory", "tachypneic"]),
    ("CV", ["murmur", "gallop", "irregular", "tachycardic", "S4"]),
    ("ABDOMEN", ["abdom", "ascites", "bowel", "guarding", "epigastric", "melena", "costovertebral",
                 "suprapubic", "angiomata"]),
    ("EXTREMITIES", ["edema", "erythema", "shin", "calf", "tinea", "leg"]),
    ("NEURO", ["drift", "droop", "strength", "dysarthria", "asterixis"]),
    ("HEENT", ["conjunctivae", "icterus", "mucous", "odor"]),
]  # fmt: skip
_NORMAL_EXAM = {
    "GENERAL": "Alert, oriented, no acute distress", "HEENT": "Sclera anicteric, MMM, oropharynx clear",
    "NECK": "Supple, JVP not elevated, no LAD",
    "LUNGS": "Clear to auscultation bilaterally, no wheezes, rales, rhonchi",
    "CV": "Regular rate and rhythm, normal S1 + S2, no murmurs, rubs, gallops",
    "ABDOMEN": "Soft, non-tender, non-distended, bowel sounds present, no organomegaly",
    "EXTREMITIES": "Warm, well perfused, 2+ pulses, no clubbing, cyanosis or edema",
    "NEURO": "CNII-XII intact, 5/5 strength upper/lower extremities, grossly normal sensation",
    "SKIN": "No rashes or lesions",
}  # fmt: skip


def _exam(rng: random.Random, findings: list[str], prefix: str = "") -> list[str]:
    lines = dict(_NORMAL_EXAM)
    for finding in findings:
        system = next((s for s, keys in _EXAM_SYSTEMS if any(k in finding for k in keys)), "GENERAL")
        lines[system] = prefix + finding
    vitals = (f"VS: T {rng.uniform(97.5, 100.8):.1f} BP {rng.randint(100, 160)}/{rng.randint(55, 95)} "
              f"HR {rng.randint(60, 115)} RR {rng.randint(14, 24)} O2 {rng.randint(91, 100)}% RA")  # fmt: skip
    return [vitals] + [f"{k}: {v}" for k, v in lines.items()]


def _lab_lines(rng: random.Random, when: str, abnormal: dict, recovery: float) -> list[str]:
    """Panels as MIMIC-IV prints them; `recovery` moves abnormal values back to normal (0 to 1)."""
    lines = []
    for i, panel in enumerate(V.LAB_PANELS):
        if i >= 2 and not any(name in abnormal for name, *_ in panel) and rng.random() < 0.5:
            continue  # the LFT, mineral and coag panels are not sent every time
        items = []
        for name, lo, hi, dec in panel:
            value = rng.uniform(lo, hi)
            if name in abnormal:
                sick = rng.uniform(*abnormal[name])
                value = sick + (value - sick) * recovery
            items.append(_lab(name, value, lo, hi, dec))
        lines.append(f"{when} BLOOD " + " ".join(items))
    extras = []
    for name, rng_ab in abnormal.items():
        if name not in _PANEL_NAMES:
            lo, hi, dec = V.EXTRA_LABS[name]
            value = rng.uniform(*rng_ab)
            extras.append(_lab(name, value + (rng.uniform(lo, hi) - value) * recovery, lo, hi, dec))
    if extras:
        lines.append(f"{when} BLOOD " + " ".join(extras))
    return lines


def _discharge_text(rng: random.Random, pt: dict, adm: dict) -> str:
    c = V.CONDITIONS[adm["cond"]]
    comorb = [V.COMORBIDITIES[i] for i in pt["comorb"]]
    admit, disch, age = adm["admit"], adm["disch"], adm["age"]
    name = pt["name"]
    who = f"Mr. [**Known lastname {name}**]"
    history = ", ".join(x[0] for x in comorb) or "no significant past medical history"
    cc = c["complaint"]
    symptoms = rng.sample(c["symptoms"], rng.randint(3, len(c["symptoms"])))
    verbs = ["He reports", "He endorses", "He also describes", "Notable for", "He notes"]
    hpi = [f"{who} is a {age} year old man with a history of {history} who presents with "
           f"{cc.lower()}. " + " ".join(f"{rng.choice(verbs)} {s}." for s in symptoms)]
    hpi.append(" ".join(rng.sample(V.NEUTRAL_HPI, rng.randint(1, 4))))
    lab_names = ", ".join(rng.sample(list(c["labs"]), len(c["labs"])))
    ed = (f"In the ED, initial vitals were: {rng.uniform(97.6, 101.9):.1f} {rng.randint(78, 128)} "
          f"{rng.randint(92, 168)}/{rng.randint(50, 96)} {rng.randint(14, 28)} {rng.randint(88, 99)}% RA. "
          f"Exam notable for {rng.choice(c['exam'])}. Labs notable for elevated or abnormal {lab_names}.")  # fmt: skip
    if c["imaging"]:
        ed += f" {V.EXAMS[c['imaging'][0]][0].title()} showed: {c['imaging'][2]}"
    hpi.append(ed + f" He was given {c['treatment']} and admitted to the {pt['service'].lower()} service.")
    ros = [s for s in V.ROS_NEGATIVES if not any(s in x for x in symptoms)]
    hpi.append("ROS: Positive per HPI. Denies " + ", ".join(rng.sample(ros, rng.randint(6, 12))) + ".")

    adm_when, dis_when = f"{_d(admit)} {rng.randint(1, 11):02d}:{rng.randint(0, 59):02d}PM", _d(disch)
    results = ["ADMISSION LABS:"] + _lab_lines(rng, adm_when, c["labs"], 0.0)
    for day in range(1, min(3, (disch - admit).days)):  # a few daily labs in between
        when = f"{_d(admit + dt.timedelta(days=day))} 05:{rng.randint(10, 59)}AM"
        results += ["", f"INTERVAL LABS DAY {day}:"] + _lab_lines(rng, when, c["labs"], day / 4)[:2]
    results += ["", "DISCHARGE LABS:"] + _lab_lines(rng, f"{dis_when} 06:10AM", c["labs"], 0.7)
    results += ["", "MICROBIOLOGY:", f"{_d(admit)} BLOOD CULTURE Blood Culture, Routine-FINAL NO GROWTH",
                f"{_d(admit)} URINE URINE CULTURE-FINAL {rng.choice(['NO GROWTH', 'MIXED FLORA'])}"]
    results += ["", rng.choice(V.EKG_LINES)]
    if c["imaging"]:
        title = V.EXAMS[c["imaging"][0]][0]
        results += ["", "IMAGING:", f"{title} {_d(admit)}: {c['imaging'][1]} IMPRESSION: {c['imaging'][2]}"]

    course = [f"{who} is a {age} year old man with {history} who presented with {cc.lower()} "
              f"and was found to have {c['name']}.", "", "ACUTE ISSUES:", f"# {c['name'].capitalize()}",
              " ".join(c["course"] + rng.sample(V.GENERIC_COURSE, rng.randint(3, 7)))]  # fmt: skip
    if rng.random() < 0.5:  # a second, shorter acute problem from another condition
        other = V.CONDITIONS[rng.randrange(len(V.CONDITIONS))]
        if other is not c:
            course += [f"# Concern for {other['short']}", f"Considered on admission. {other['course'][-1]}"]
    course += ["", "CHRONIC ISSUES:"] + [f"# {n.capitalize()}: {line}" for n, _, line in comorb]
    course += ["", "TRANSITIONAL ISSUES:", f"- Please follow up on {c['short']} at the first visit.",
               f"- Please check a {rng.choice(['CBC', 'chem 10', 'BMP'])} within one week.",
               f"- Code status: {rng.choice(['Full code', 'Full code (confirmed)', 'DNR/DNI'])}",
               f"- Contact: {pt['contact']} {pt['phone']}"]  # fmt: skip
    home = [m for _, m, _ in comorb] or ["None"]
    discharge_meds = home + c["meds"]

    followups = []
    for k in range(rng.randint(1, 3)):
        when = disch + dt.timedelta(days=rng.randint(5, 40))
        followups += [f"Department: {rng.choice(V.FOLLOWUP_DEPTS)}",
                      f"When: {when.strftime('%A').upper()} {_d(when)} at {rng.randint(8, 11)}:{rng.choice(['00', '30'])} AM",
                      f"With: [**First Name8 (NamePattern2) {rng.randint(100, 999)}**] [**Last Name (NamePattern1) "
                      f"{rng.randint(1000, 9999)}**], MD [**Telephone/Fax (1) {rng.randint(1000, 9999)}**]",
                      f"Building: [**Hospital6 29**] [**Location (un) {rng.randint(100, 999)}**]", ""]  # fmt: skip

    sections = [
        " ", f"Name:  [**Known lastname {name}**]                 Unit No:   [**Numeric Identifier {pt['unit']}**]",
        " ", f"Admission Date:  {_d(admit)}              Discharge Date:   {_d(disch)}",
        " ", f"Date of Birth:  {_d(pt['dob'])}             Sex:   {pt['sex']}",
        " ", f"Service: {pt['service']}", " ", "Allergies: ", pt["allergy"], " ",
        f"Attending: [**First Name3 (LF) {pt['attending']}**].", " ", "Chief Complaint:", cc, " ",
        "Major Surgical or Invasive Procedure:", adm["procedure"], "", " ",
        "History of Present Illness:", "\n \n".join(hpi), " ",
        "Past Medical History:", "\n".join(f"- {x[0]}" for x in comorb) or "None", " ",
        "Social History:", " ".join(rng.sample(V.SOCIAL, 3)), "Family History:",
        " ".join(rng.sample(V.FAMILY, 2)), " ", "Physical Exam:", "ADMISSION PHYSICAL EXAM:",
        *_exam(rng, rng.sample(c["exam"], 2)), "", "DISCHARGE PHYSICAL EXAM:",
        *_exam(rng, [c["exam"][0]], "improved "), " ", "Pertinent Results:", *results, " ",
        "Brief Hospital Course:", *course, " ", "Medications on Admission:",
        "The Preadmission Medication list is accurate and complete.",
        *[f"{i}. {m}" for i, m in enumerate(home, 1)], " ", "Discharge Medications:",
        *[f"{i}. {m}" for i, m in enumerate(discharge_meds, 1)], " ", "Discharge Disposition:",
        adm["dispo"], " ", "Discharge Diagnosis:", "PRIMARY DIAGNOSIS:", c["name"], "",
        "SECONDARY DIAGNOSES:", *[x[0] for x in comorb], " ", "Discharge Condition:",
        "Mental Status: Clear and coherent.", "Level of Consciousness: Alert and interactive.",
        "Activity Status: Ambulatory - Independent.", " ", "Discharge Instructions:",
        f"Dear {who},", "", "It was a pleasure taking care of you at [**Hospital1 18**].", "",
        "WHY WERE YOU ADMITTED TO THE HOSPITAL?", f"- You were admitted because of {cc.lower()}.", "",
        "WHAT HAPPENED WHILE YOU WERE IN THE HOSPITAL?", f"- You were found to have {c['short']}.",
        f"- You were treated with {c['treatment']}.", "- Your symptoms improved.", "",
        "WHAT SHOULD YOU DO WHEN YOU LEAVE THE HOSPITAL?", "- Please take all of your medications as prescribed.",
        "- Please attend your follow up appointments listed below.",
        f"- Please call your doctor if your {cc.lower()} comes back or gets worse.", "",
        "We wish you the best!", "Your [**Hospital1 18**] Care Team", " ",
        "Followup Instructions:", *followups,
    ]  # fmt: skip
    return _pronouns("\n".join(sections), pt["sex"])


def _radiology_text(rng: random.Random, pt: dict, age: int, cond: int | None, when: dt.datetime) -> str:
    c = V.CONDITIONS[cond] if cond is not None else None
    abnormal = c is not None and c["imaging"] is not None and rng.random() < 0.6
    key = c["imaging"][0] if abnormal else rng.choice(V.EXAM_KEYS)
    title, technique, normal, impression = V.EXAMS[key]
    findings = rng.sample(normal, rng.randint(max(3, len(normal) - 3), len(normal)))
    findings.sort(key=normal.index)  # keep the radiologist's fixed order
    if abnormal:
        findings.insert(0, c["imaging"][1])
        impression = c["imaging"][2]
    if rng.random() < 0.5:  # an incidental finding, mentioned in findings and impression
        extra = rng.choice(V.INCIDENTALS)
        findings.append(extra[0])
        impression = f"1. {impression}\n2. {extra[1]}"
    if c is not None:
        indication = f"{c['complaint'].lower()} // eval for {c['short']}"
    else:
        indication = " // ".join(rng.choice(V.OUTPATIENT_INDICATIONS))
    prior = when - dt.timedelta(days=rng.randint(30, 900))
    lines = [f"EXAMINATION:  {title}", "", f"INDICATION:  {age} year old man with {indication}", "",
             f"TECHNIQUE:  {technique}", "", f"COMPARISON:  {_d(prior) if rng.random() < 0.6 else 'None.'}",
             "", "FINDINGS: ", "", "\n".join(findings if key == "CTAP" else [" ".join(findings)]), "",
             "IMPRESSION: ", "", impression]  # fmt: skip
    if key.startswith("CT"):
        lines[5:5] = [f"DOSE:  Total DLP (Body) = {rng.uniform(150, 900):.1f} mGy-cm.", ""]
    if abnormal and rng.random() < 0.4:
        lines += ["", f"NOTIFICATION:  The findings were discussed with Dr. [**Last Name (STitle) "
                  f"{rng.randint(100, 9999)}**] by Dr. [**First Name8 (NamePattern2) {rng.randint(10, 999)}**] "
                  f"on the telephone on {_d(when)} at {rng.randint(1, 11)}:{rng.randint(10, 59)} PM."]  # fmt: skip
    return _pronouns("\n".join(lines), pt["sex"])


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
        patients.append(dict(
            subject_id=sid, sex=rng.choice("MF"), start=start, admissions=[],
            dob=start.date() - dt.timedelta(days=rng.randint(25 * 365, 90 * 365)),
            comorb=sorted(rng.sample(range(len(V.COMORBIDITIES)), rng.randint(0, 5))),
            name=rng.randint(1000, 99999), unit=rng.randint(10000, 99999), attending=rng.randint(10, 999),
            allergy=rng.choice(V.ALLERGIES), contact=rng.choice(["wife", "husband", "daughter", "son"]),
            phone=f"[**Telephone/Fax (1) {rng.randint(1000, 9999)}**]", weight=rng.lognormvariate(0, 0.8),
            rows=[], stays=[]))  # fmt: skip
    weights = [p["weight"] for p in patients]

    n_ad = n_discharge // 30 if n_discharge >= 10 else 0  # about 3 % addenda
    hadm_ids = rng.sample(range(20_000_000, 30_000_000), n_discharge - n_ad)
    for hadm_id, p in zip(hadm_ids, rng.choices(patients, weights, k=len(hadm_ids))):
        p["admissions"].append(hadm_id)
    admissions = []
    for p in patients:  # admissions of one patient follow each other in time
        when = p["start"]
        for i, hadm_id in enumerate(p["admissions"]):
            when += dt.timedelta(days=rng.randint(20, 400) if i else 0, hours=rng.randint(0, 23))
            cond = rng.randrange(len(V.CONDITIONS))
            disch = when + dt.timedelta(days=rng.randint(1, 12))
            adm = dict(patient=p, hadm_id=hadm_id, cond=cond, admit=when, disch=disch,
                       age=(when.date() - p["dob"]).days // 365, dispo=rng.choice(V.DISPOSITIONS),
                       procedure=rng.choice(["None", "None", "PICC line placement", "EGD", "Paracentesis"]))  # fmt: skip
            p["service"] = V.SERVICES.get(V.CONDITIONS[cond]["short"], V.SERVICES["default"])
            text = _discharge_text(rng, p, adm)
            store = disch + dt.timedelta(hours=rng.randint(10, 40))
            p["rows"].append(["DS", hadm_id, disch, store, text])
            admissions.append(adm)
            p["stays"].append(adm)
            when = disch
    for adm in rng.sample(admissions, min(n_ad, len(admissions))):
        p, store = adm["patient"], adm["disch"] + dt.timedelta(days=rng.randint(2, 20))
        text = _pronouns(f"Discharge Addendum:\nOf note, {rng.choice(V.CONDITIONS[adm['cond']]['meds'])} was "
                         f"sent to the pharmacy on {_d(store)}. Please follow up on pending "
                         f"{rng.choice(['blood cultures', 'pathology', 'urine studies'])} at the visit with "
                         f"[**First Name8 (NamePattern2) {rng.randint(10, 999)}**]. He was informed.", p["sex"])  # fmt: skip
        p["rows"].append(["AD", adm["hadm_id"], adm["disch"], store, text])

    n_ar = n_radiology // 50  # about 2 % addenda
    for i, p in enumerate(rng.choices(patients, weights, k=n_radiology)):
        if p["stays"] and rng.random() < 0.7:  # during a stay, and about that stay's problem
            adm = rng.choice(p["stays"])
            span = max(1, int((adm["disch"] - adm["admit"]).total_seconds() // 60))
            when = adm["admit"] + dt.timedelta(minutes=rng.randrange(span))
            hadm, cond, age = adm["hadm_id"], adm["cond"], adm["age"]
        else:
            when = p["start"] + dt.timedelta(days=rng.randint(-300, 900), minutes=rng.randint(0, 1439))
            hadm, cond, age = "", None, (when.date() - p["dob"]).days // 365
        text = _radiology_text(rng, p, age, cond, when)
        kind = "AR" if i < n_ar else "RR"
        if kind == "AR":
            text = (f"ADDENDUM:  On review, {rng.choice(['no change to the impression', 'the prior study was reviewed'])}"
                    f". Discussed with Dr. [**Last Name (STitle) {rng.randint(100, 9999)}**].\n\n" + text)  # fmt: skip
        p["rows"].append([kind, hadm, when, when + dt.timedelta(minutes=rng.randint(20, 600)), text])

    fmt = "%Y-%m-%d %H:%M:%S"
    tables: dict[str, list[list]] = {"discharge": [], "radiology": []}
    for p in patients:  # note_seq counts up in time, per patient and per file, as in MIMIC-IV
        seq = {"discharge": rng.randint(10, 25), "radiology": rng.randint(1, 20)}
        for kind, hadm, chart, store, text in sorted(p["rows"], key=lambda r: (r[2], r[3], r[0])):
            family = "discharge" if kind in ("DS", "AD") else "radiology"
            chart_s = chart.strftime("%Y-%m-%d 00:00:00" if family == "discharge" else fmt)
            tables[family].append([f"{p['subject_id']}-{kind}-{seq[family]}", p["subject_id"], hadm,
                                   kind, seq[family], chart_s, store.strftime(fmt), text])  # fmt: skip
            seq[family] += 1
    for family, rows in tables.items():
        data = gzip.compress(_csv_bytes(NOTE_COLUMNS, rows), compresslevel=6, mtime=0)
        _write_atomic(out / NOTE_FILES[family], data)
    return {family: len(rows) for family, rows in tables.items()}


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
        pool = ([f"{i:03d}" for i in range(1, 1000)] + [f"V{i:02d}" for i in range(1, 92)]
                + [f"E{i}" for i in range(800, 1000)])  # fmt: skip
        terms = [f"{a} {b} of the {c}" for a in V.TAIL_ADJ for b in V.TAIL_LESION for c in V.TAIL_SITE]
    else:  # "038" is written "38" in the task files: leading zeros were lost
        pool = [str(i) for i in range(10, 1000)]
        terms = [f"{a} of the {c}" for a in V.TAIL_PROC for c in V.TAIL_SITE]
    taken = {code for code, _, _ in curated}
    pool = [code for code in pool if code not in taken]
    need = n - len(curated)
    if need > min(len(pool), len(terms)):
        raise ValueError(f"at most {len(curated) + min(len(pool), len(terms))} {kind} codes, asked {n}")
    return curated + [(c, [t], False) for c, t in zip(rng.sample(pool, need), rng.sample(terms, need))]


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


def _admission_text(rng: random.Random, a: dict, diag: list[str], proc: list[str]) -> str:
    s = a["s"]
    age = "[**Age over 90 **]" if a["age"] > 89 else str(a["age"])
    severe = [p for p, t in V.SEVERE_PHRASES if rng.random() < _sigmoid(2 * (s - t))]
    mild = [p for p, t in V.MILD_PHRASES if rng.random() < _sigmoid(2 * (-s - t))]
    if a["vent"] and rng.random() < 0.75:
        severe.append("intubated and sedated")
    if a["vent"]:
        severe += [p for p in V.PMV_PHRASES if rng.random() < (0.4 if a["pmv"] else 0.1)]
    cc = diag[0] if diag and rng.random() < 0.5 else rng.choice(
        ["shortness of breath", "chest pain", "fever", "fall", "abdominal pain", "weakness",
         "altered mental status", "transfer from outside hospital"])  # fmt: skip
    split = len(diag) // 2
    hpi = [f"{age} year old man who presents with {cc}.",
           rng.choice(V.HPI_ONSET).format(n=rng.randint(1, 10), cc=cc)]
    hpi += rng.sample(V.HPI_STORY, rng.randint(2, 6))
    hpi += [f"{rng.choice(['Notable for', 'Found to have', 'Known', 'Reports'])} {t}." for t in diag[:split]]
    hpi += [f"On arrival: {p}." for p in severe[: len(severe) // 2 + 1]]
    hpi += [f"{rng.choice(['Plan for', 'Possible need for', 'Discussed'])} {t}." for t in proc]
    hpi += rng.sample(V.NEUTRAL_HPI, rng.randint(2, 8))
    hpi.append("ROS: denies " + ", ".join(rng.sample(V.ROS_NEGATIVES, rng.randint(4, 16))) + ".")
    vitals = (f"T {rng.gauss(98.6 + 0.6 * s, 0.8):.1f} HR {round(rng.gauss(85 + 12 * s, 10))} "
              f"BP {round(rng.gauss(125 - 14 * s, 12))}/{round(rng.gauss(72 - 6 * s, 8))} "
              f"RR {round(rng.gauss(18 + 3 * s, 2))} O2 sat {min(100, round(rng.gauss(96 - 2.5 * s, 2)))}%")  # fmt: skip
    general = ", ".join(severe[len(severe) // 2 + 1 :] + mild) or "lying in bed"
    exam = [f"Vitals: {vitals}.", f"General: {general}."]
    exam += [f"{k}: {v}." for k, v in _NORMAL_EXAM.items() if k != "GENERAL" and rng.random() < 0.6]
    sections = [
        ("CHIEF COMPLAINT", cc),
        ("PRESENT ILLNESS", " ".join(hpi)),
        ("MEDICAL HISTORY", ", ".join(diag[split:] + rng.sample(["HTN", "HLD", "GERD", "OA", "BPH"], 2))),
        ("MEDICATIONS ON ADMISSION", ", ".join(rng.sample(V.HOME_MEDS, rng.randint(2, 10)))),
        ("ALLERGIES", rng.choice(V.ALLERGIES)),
        ("PHYSICAL EXAM", " ".join(exam)),
        ("FAMILY HISTORY", " ".join(rng.sample(V.FAMILY, rng.randint(1, 2)))),
        ("SOCIAL HISTORY", " ".join([rng.choice(V.SOCIAL[:2])] + rng.sample(V.SOCIAL[2:], rng.randint(0, 3)))),
    ]
    if a["long"]:  # a few very long notes (outside records pasted in) for the long-note mode
        extra, target = [], rng.randint(2100, 3500)
        while sum(len(x.split()) for x in extra) < target:
            when = f"[**{rng.randint(2100, 2199)}-{rng.randint(1, 12)}-{rng.randint(1, 28)}**]"
            extra += _lab_lines(rng, when, {}, 0.0) + rng.sample(V.NEUTRAL_HPI, 4)
        sections.insert(2, ("PRIOR RECORDS", " ".join(extra)))
    text = "\n\n".join(f"{head}: {body}" for head, body in sections)
    return _pronouns(text, a["sex"])


def write_outcome_tasks(
    out_dir: str | Path,
    n_admissions: int = 1200,
    seed: int = 0,
    n_diag_codes: int = 50,
    n_proc_codes: int = 30,
) -> dict[str, int]:
    """Write the five van Aken et al. task files and the two code lists; return rows per file."""
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
        a = dict(id=hadm, s=s, long=j in long_ids,
                 n_stays=first["n_stays"] if first else rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 2, 3]),
                 sex=first["sex"] if first else rng.choice("MF"),
                 age=min(99, max(18, round(rng.gauss(62 + 7 * s, 15)))))  # fmt: skip
        a["vent"] = rng.random() < _sigmoid(-2.1 + 1.4 * s)
        a["pmv"] = a["vent"] and rng.random() < _sigmoid(-0.3 + 1.3 * (s - 1.0))
        a["died"] = rng.random() < _sigmoid(-3.3 + 1.8 * s + 0.4 * a["vent"])
        days = math.exp(math.log(6.0) + 0.45 * s + 0.35 * a["vent"] + rng.gauss(0, 0.5))
        a["los"] = 0 if days <= 3 else 1 if days <= 7 else 2 if days <= 14 else 3
        a["diag"] = diag_sampler.draw(rng, s, [])
        forced = [vent_code] if a["vent"] and vent_code is not None else []
        has_proc = bool(forced) or rng.random() < 0.86
        a["proc"] = proc_sampler.draw(rng, s, forced) if has_proc else []
        diag_terms, proc_terms = _mentions(rng, diag_space, a["diag"]), []
        if a["proc"]:
            proc_terms = _mentions(rng, proc_space, a["proc"])
        a["text"] = _admission_text(rng, a, diag_terms, proc_terms)
        patients[-1].append(a)

    rng.shuffle(patients)  # split by patient, 70 / 15 / 15
    cut1, cut2 = round(0.7 * len(patients)), round(0.85 * len(patients))
    splits = {"train": patients[:cut1], "val": patients[cut1:cut2], "test": patients[cut2:]}
    counts: dict[str, int] = {}
    for split, group in splits.items():
        adms = [a for p in group for a in p]
        tables = {
            "MP_IN_adm": [[a["id"], a["text"], int(a["died"])] for a in adms],
            "LOS_WEEKS_adm": [[a["id"], a["text"], a["los"]] for a in adms if not a["died"]],
            "DIA_GROUPS_3_DIGITS_adm": [
                [a["id"], a["text"], ",".join(diag_space[i][0] for i in a["diag"])] for a in adms
            ],
            "PRO_GROUPS_3_DIGITS_adm": [
                [a["id"], a["text"], ",".join(proc_space[i][0] for i in a["proc"])]
                for a in adms
                if a["proc"]
            ],
            "pmv": [[a["id"], a["text"], int(a["pmv"])] for a in adms if a["vent"]],
        }
        for prefix, rows in tables.items():
            name = f"{prefix}_{'dev' if prefix == 'pmv' and split == 'val' else split}.csv"
            header = ["id", "text", OUTCOME_FILES[prefix]]
            _write_atomic(out / name, _csv_bytes(header, rows, quoting=csv.QUOTE_ALL))
            counts[name] = len(rows)
    for name, space in [("ALL_3_DIGIT_DIA_CODES.txt", diag_space), ("ALL_3_DIGIT_PRO_CODES.txt", proc_space)]:
        codes = sorted(code for code, _, _ in space)
        _write_atomic(out / name, ("\n".join(codes) + "\n").encode())
        counts[name] = len(codes)
    return counts
