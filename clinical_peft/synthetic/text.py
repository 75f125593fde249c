"""Templates of the synthetic generator: render notes and admission texts from facts (the
instruction items are in `items.py`).

Templates are written for a man; `pronouns` rewrites them for a woman. All randomness comes from
the `random.Random` passed in, so output depends on the caller's seed alone.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re

from clinical_peft.synthetic import vocab as V


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


_FEMALE = [
    (re.compile(r"\bHe\b"), "She"),
    (re.compile(r"\bhe\b"), "she"),
    (re.compile(r"\bHis\b"), "Her"),
    (re.compile(r"\bhis\b"), "her"),
    (re.compile(r"\bhim\b"), "her"),
    (re.compile(r"\bMr\."), "Ms."),
    (re.compile(r"\bman\b"), "woman"),
]


def pronouns(text: str, sex: str) -> str:
    """Templates are written for a man; rewrite them for a woman."""
    if sex == "M":
        return text
    for pattern, repl in _FEMALE:
        text = pattern.sub(repl, text)
    return text


def deid_date(day: dt.date | dt.datetime) -> str:
    """A de-identified date, MIMIC-III style: [**2150-3-2**]."""
    return f"[**{day.year}-{day.month}-{day.day}**]"


def _lab(name: str, value: float, lo: float, hi: float, dec: int) -> str:
    return f"{name}-{value:.{dec}f}{'*' if not lo <= value <= hi else ''}"


_PANEL_NAMES = {name for panel in V.LAB_PANELS for name, *_ in panel}


def _exam(rng: random.Random, findings: list[str], prefix: str = "") -> list[str]:
    lines = dict(V.NORMAL_EXAM)
    for finding in findings:
        system = next(
            (s for s, keys in V.EXAM_SYSTEMS if any(k in finding for k in keys)), "GENERAL"
        )
        lines[system] = prefix + finding
    vitals = (
        f"VS: T {rng.uniform(97.5, 100.8):.1f} BP {rng.randint(100, 160)}/{rng.randint(55, 95)} "
        f"HR {rng.randint(60, 115)} RR {rng.randint(14, 24)} O2 {rng.randint(91, 100)}% RA"
    )
    return [vitals] + [f"{k}: {v}" for k, v in lines.items()]


def lab_lines(rng: random.Random, when: str, abnormal: dict, recovery: float) -> list[str]:
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


def discharge_text(rng: random.Random, pt: dict, adm: dict) -> str:
    c = V.CONDITIONS[adm["cond"]]
    comorb = [V.COMORBIDITIES[i] for i in pt["comorb"]]
    admit, disch, age = adm["admit"], adm["disch"], adm["age"]
    who = f"Mr. [**Known lastname {pt['name']}**]"
    history = ", ".join(x[0] for x in comorb) or "no significant past medical history"
    cc = c["complaint"]
    symptoms = rng.sample(c["symptoms"], rng.randint(3, len(c["symptoms"])))
    verbs = ["He reports", "He endorses", "He also describes", "Notable for", "He notes"]
    hpi = [
        f"{who} is a {age} year old man with a history of {history} who presents with "
        f"{cc.lower()}. " + " ".join(f"{rng.choice(verbs)} {s}." for s in symptoms)
    ]
    hpi.append(" ".join(rng.sample(V.NEUTRAL_HPI, rng.randint(1, 4))))
    lab_names = ", ".join(rng.sample(list(c["labs"]), len(c["labs"])))
    vitals = (
        f"{rng.uniform(97.6, 101.9):.1f} {rng.randint(78, 128)} {rng.randint(92, 168)}/"
        f"{rng.randint(50, 96)} {rng.randint(14, 28)} {rng.randint(88, 99)}% RA"
    )
    ed = (
        f"In the ED, initial vitals were: {vitals}. Exam notable for {rng.choice(c['exam'])}. "
        f"Labs notable for elevated or abnormal {lab_names}."
    )
    if c["imaging"]:
        ed += f" {V.EXAMS[c['imaging'][0]][0].title()} showed: {c['imaging'][2]}"
    hpi.append(
        ed + f" He was given {c['treatment']} and admitted to the {pt['service'].lower()} service."
    )
    ros = [s for s in V.ROS_NEGATIVES if not any(s in x for x in symptoms)]
    hpi.append(
        "ROS: Positive per HPI. Denies " + ", ".join(rng.sample(ros, rng.randint(6, 12))) + "."
    )

    adm_when, dis_when = (
        f"{deid_date(admit)} {rng.randint(1, 11):02d}:{rng.randint(0, 59):02d}PM",
        deid_date(disch),
    )
    results = ["ADMISSION LABS:"] + lab_lines(rng, adm_when, c["labs"], 0.0)
    for day in range(1, min(3, (disch - admit).days)):  # a few daily labs in between
        when = f"{deid_date(admit + dt.timedelta(days=day))} 05:{rng.randint(10, 59)}AM"
        results += ["", f"INTERVAL LABS DAY {day}:"] + lab_lines(rng, when, c["labs"], day / 4)[:2]
    results += ["", "DISCHARGE LABS:"] + lab_lines(rng, f"{dis_when} 06:10AM", c["labs"], 0.7)
    results += [
        "",
        "MICROBIOLOGY:",
        f"{deid_date(admit)} BLOOD CULTURE Blood Culture, Routine-FINAL NO GROWTH",
        f"{deid_date(admit)} URINE URINE CULTURE-FINAL {rng.choice(['NO GROWTH', 'MIXED FLORA'])}",
    ]
    results += ["", rng.choice(V.EKG_LINES)]
    if c["imaging"]:
        title = V.EXAMS[c["imaging"][0]][0]
        results += [
            "",
            "IMAGING:",
            f"{title} {deid_date(admit)}: {c['imaging'][1]} IMPRESSION: {c['imaging'][2]}",
        ]

    course = [
        f"{who} is a {age} year old man with {history} who presented with {cc.lower()} "
        f"and was found to have {c['name']}.",
        "",
        "ACUTE ISSUES:",
        f"# {c['name'].capitalize()}",
        " ".join(c["course"] + rng.sample(V.GENERIC_COURSE, rng.randint(3, 7))),
    ]
    if rng.random() < 0.5:  # a second, shorter acute problem from another condition
        other = V.CONDITIONS[rng.randrange(len(V.CONDITIONS))]
        if other is not c:
            course += [
                f"# Concern for {other['short']}",
                f"Considered on admission. {other['course'][-1]}",
            ]
    course += ["", "CHRONIC ISSUES:"] + [f"# {n.capitalize()}: {line}" for n, _, line in comorb]
    course += [
        "",
        "TRANSITIONAL ISSUES:",
        f"- Please follow up on {c['short']} at the first visit.",
        f"- Please check a {rng.choice(['CBC', 'chem 10', 'BMP'])} within one week.",
        f"- Code status: {rng.choice(['Full code', 'Full code (confirmed)', 'DNR/DNI'])}",
        f"- Contact: {pt['contact']} {pt['phone']}",
    ]
    home = [m for _, m, _ in comorb] or ["None"]
    followups = []
    for _ in range(rng.randint(1, 3)):
        when = disch + dt.timedelta(days=rng.randint(5, 40))
        followups.append(V.FOLLOWUP_BLOCK.format(
            dept=rng.choice(V.FOLLOWUP_DEPTS), weekday=when.strftime("%A").upper(),
            date=deid_date(when), hour=rng.randint(8, 11), minute=rng.choice(["00", "30"]),
            n1=rng.randint(100, 999), n2=rng.randint(1000, 9999), n3=rng.randint(1000, 9999),
            n4=rng.randint(100, 999)))  # fmt: skip
    fields = dict(
        name=pt["name"], unit=pt["unit"], admit=deid_date(admit), disch=deid_date(disch),
        dob=deid_date(pt["dob"]), sex=pt["sex"], service=pt["service"], allergy=pt["allergy"],
        attending=pt["attending"], cc=cc, cc_lower=cc.lower(), procedure=adm["procedure"],
        hpi="\n \n".join(hpi), pmh="\n".join(f"- {x[0]}" for x in comorb) or "None",
        social=" ".join(rng.sample(V.SOCIAL, 3)), family=" ".join(rng.sample(V.FAMILY, 2)),
        exam_in="\n".join(_exam(rng, rng.sample(c["exam"], 2))),
        exam_out="\n".join(_exam(rng, [c["exam"][0]], "improved ")),
        results="\n".join(results), course="\n".join(course),
        meds_in="\n".join(f"{i}. {m}" for i, m in enumerate(home, 1)),
        meds_out="\n".join(f"{i}. {m}" for i, m in enumerate(home + c["meds"], 1)),
        dispo=adm["dispo"], dx=c["name"], dx2="\n".join(x[0] for x in comorb) or "None", who=who,
        short=c["short"], treatment=c["treatment"], followups="\n".join(followups),
    )  # fmt: skip
    text = " \n" + "\n \n".join(block.format(**fields) for block in V.DISCHARGE_BLOCKS)
    return pronouns(text, pt["sex"])


def radiology_text(
    rng: random.Random, pt: dict, age: int, cond: int | None, when: dt.datetime
) -> str:
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
    lines = [
        f"EXAMINATION:  {title}",
        "",
        f"INDICATION:  {age} year old man with {indication}",
        "",
        f"TECHNIQUE:  {technique}",
        "",
        f"COMPARISON:  {deid_date(prior) if rng.random() < 0.6 else 'None.'}",
        "",
        "FINDINGS: ",
        "",
        "\n".join(findings if key == "CTAP" else [" ".join(findings)]),
        "",
        "IMPRESSION: ",
        "",
        impression,
    ]
    if key.startswith("CT"):
        lines[5:5] = [f"DOSE:  Total DLP (Body) = {rng.uniform(150, 900):.1f} mGy-cm.", ""]
    if abnormal and rng.random() < 0.4:
        doctors = (
            f"Dr. [**Last Name (STitle) {rng.randint(100, 9999)}**] by Dr. "
            f"[**First Name8 (NamePattern2) {rng.randint(10, 999)}**]"
        )
        at = f"{deid_date(when)} at {rng.randint(1, 11)}:{rng.randint(10, 59)} PM"
        lines += [
            "",
            f"NOTIFICATION:  The findings were discussed with {doctors} on the telephone on {at}.",
        ]
    return pronouns("\n".join(lines), pt["sex"])


def admission_text(rng: random.Random, a: dict, diag: list[str], proc: list[str]) -> str:
    s = a["s"]
    age = "[**Age over 90 **]" if a["age"] > 89 else str(a["age"])
    severe = [p for p, t in V.SEVERE_PHRASES if rng.random() < sigmoid(2.5 * (s - t))]
    mild = [p for p, t in V.MILD_PHRASES if rng.random() < sigmoid(2.5 * (-s - t))]
    if a["vent"] and rng.random() < 0.75:
        severe.append("intubated and sedated")
    if a["vent"]:
        severe += [p for p in V.PMV_PHRASES if rng.random() < (0.4 if a["pmv"] else 0.1)]
    cc = diag[0] if diag and rng.random() < 0.5 else rng.choice(V.ADMISSION_COMPLAINTS)
    split = len(diag) // 2
    hpi = [
        f"{age} year old man who presents with {cc}.",
        rng.choice(V.HPI_ONSET).format(n=rng.randint(1, 10), cc=cc),
    ]
    hpi += rng.sample(V.HPI_STORY, rng.randint(2, 6))
    hpi += [
        f"{rng.choice(['Notable for', 'Found to have', 'Known', 'Reports'])} {t}."
        for t in diag[:split]
    ]
    hpi += [f"On arrival: {p}." for p in severe[: len(severe) // 2 + 1]]
    hpi += [f"{rng.choice(['Plan for', 'Possible need for', 'Discussed'])} {t}." for t in proc]
    hpi += rng.sample(V.NEUTRAL_HPI, rng.randint(2, 8))
    hpi.append("ROS: denies " + ", ".join(rng.sample(V.ROS_NEGATIVES, rng.randint(4, 16))) + ".")
    temp, hr = rng.gauss(98.6 + 0.6 * s, 0.8), round(rng.gauss(85 + 12 * s, 10))
    bp = f"{round(rng.gauss(125 - 14 * s, 12))}/{round(rng.gauss(72 - 6 * s, 8))}"
    rr, sat = round(rng.gauss(18 + 3 * s, 2)), min(100, round(rng.gauss(96 - 2.5 * s, 2)))
    vitals = f"T {temp:.1f} HR {hr} BP {bp} RR {rr} O2 sat {sat}%"
    general = ", ".join(severe[len(severe) // 2 + 1 :] + mild) or "lying in bed"
    exam = [f"Vitals: {vitals}.", f"General: {general}."]
    exam += [
        f"{k}: {v}." for k, v in V.NORMAL_EXAM.items() if k != "GENERAL" and rng.random() < 0.6
    ]
    sections = [
        ("CHIEF COMPLAINT", cc),
        ("PRESENT ILLNESS", " ".join(hpi)),
        (
            "MEDICAL HISTORY",
            ", ".join(diag[split:] + rng.sample(["HTN", "HLD", "GERD", "OA", "BPH"], 2)),
        ),
        ("MEDICATIONS ON ADMISSION", ", ".join(rng.sample(V.HOME_MEDS, rng.randint(2, 10)))),
        ("ALLERGIES", rng.choice(V.ALLERGIES)),
        ("PHYSICAL EXAM", " ".join(exam)),
        ("FAMILY HISTORY", " ".join(rng.sample(V.FAMILY, rng.randint(1, 2)))),
        (
            "SOCIAL HISTORY",
            " ".join([rng.choice(V.SOCIAL[:2])] + rng.sample(V.SOCIAL[2:], rng.randint(0, 3))),
        ),
    ]
    if a["long"]:  # a few very long notes (outside records pasted in) for the long-note mode
        extra, target = [], rng.randint(2100, 3500)
        while sum(len(x.split()) for x in extra) < target:
            when = f"[**{rng.randint(2100, 2199)}-{rng.randint(1, 12)}-{rng.randint(1, 28)}**]"
            extra += lab_lines(rng, when, {}, 0.0) + rng.sample(V.NEUTRAL_HPI, 4)
        sections.insert(2, ("PRIOR RECORDS", " ".join(extra)))
    text = "\n\n".join(f"{head}: {body}" for head, body in sections)
    return pronouns(text, a["sex"])
