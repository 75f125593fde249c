"""Instruction items of the synthetic generator: one (prompt, chosen, rejected) maker per task
kind of study B, read by the task registry (`clinical_peft.tasks.instructions`). All randomness comes
from the `random.Random` passed in."""

from __future__ import annotations

import random
from collections.abc import Callable

from clinical_peft.synthetic import vocab as V
from clinical_peft.synthetic.text import pronouns


def _person(rng: random.Random) -> tuple[int, str, str]:
    sex = rng.choice("MF")
    return rng.randint(24, 92), sex, "man" if sex == "M" else "woman"


def classification_item(rng: random.Random) -> tuple[str, str, str]:
    """Does the note describe a urinary tract infection? Cues are UTI findings; negatives may
    mention the urine too, but negated."""
    age, sex, man = _person(rng)
    positive = rng.random() < 0.45
    c = rng.choice([c for c in V.CONDITIONS if c["short"] != "urosepsis"])
    if positive:
        findings = rng.sample(V.UTI_SYMPTOMS, rng.randint(1, 3)) + rng.sample(
            V.UTI_TESTS, rng.randint(0, 2)
        )
        if rng.random() < 0.3:  # an unrelated complaint alongside
            findings.insert(1, rng.choice(c["symptoms"]))
        plan = rng.choice(
            ["Will treat for cystitis.", "Urine culture sent.", "Plan discussed with patient."]
        )
    else:
        findings = rng.sample(c["symptoms"], 2) + rng.sample(c["exam"], 1)
        if rng.random() < 0.4:  # the urine may be mentioned, but negated
            findings.append(rng.choice(V.UTI_NEGATED))
        plan = rng.choice([f"Plan: {c['treatment']}.", "Plan discussed with patient."])
    note = (
        f"{age} year old {man} seen in clinic. {rng.choice(V.NEUTRAL_HPI)} Presents with "
        f"{findings[0]}."
        + (f" Also notable for {', '.join(findings[1:])}." if findings[1:] else "")
        + f" {plan}"
    )
    prompt = (
        "Does the following clinical note describe a urinary tract infection? Answer Yes or No."
        f"\n\nNote: {pronouns(note, sex)}\n\nAnswer:"
    )
    return prompt, "Yes" if positive else "No", "No" if positive else "Yes"


def hyponatremia_cause(urine_osm: float, urine_na: float) -> str:
    """The rule behind the numeric task: dilute urine -> polydipsia; low urine Na -> hypovolemia."""
    if urine_osm < 100:
        return "Primary polydipsia"
    return "Hypovolemia" if urine_na < 30 else "SIADH"


def numeric_item(rng: random.Random) -> tuple[str, str, str]:
    age, sex, man = _person(rng)
    cause = rng.choice(V.NA_CHOICES)
    if cause == "Primary polydipsia":
        uosm, una = rng.randint(45, 95), rng.randint(5, 45)
    elif cause == "Hypovolemia":
        uosm, una = rng.randint(300, 700), rng.randint(5, 25)
    else:
        uosm, una = rng.randint(250, 750), rng.randint(35, 95)
    labs = [
        f"Serum sodium: {rng.randint(116, 132)} mmol/L",
        f"Serum osmolality: {rng.randint(240, 274)} mOsm/kg",
        f"Urine osmolality: {uosm} mOsm/kg",
        f"Urine sodium: {una} mmol/L",
        f"Serum potassium: {rng.uniform(3.2, 5.0):.1f} mmol/L",
        f"Serum glucose: {rng.randint(80, 160)} mg/dL",
        f"Serum creatinine: {rng.uniform(0.6, 1.4):.1f} mg/dL",
    ]
    prompt = (
        f"A {age}-year-old {man} is found to have hyponatremia.\n"
        + "\n".join(labs)
        + "\n\nWhat is the most likely cause of the hyponatremia? Choose one of: "
        + ", ".join(V.NA_CHOICES)
        + ".\nAnswer:"
    )
    return prompt, cause, rng.choice([x for x in V.NA_CHOICES if x != cause])


def reasoning_item(rng: random.Random) -> tuple[str, str, str]:
    """Multiple choice: the vignette is built from one condition's findings."""
    age, sex, man = _person(rng)
    picks = rng.sample(range(len(V.CONDITIONS)), 4)
    c = V.CONDITIONS[picks[0]]
    symptoms = rng.sample(c["symptoms"], 2)
    vignette = (
        f"A {age}-year-old {man} presents with {symptoms[0]} and {symptoms[1]}. "
        f"Examination shows {rng.choice(c['exam'])}."
    )
    if c["imaging"] and rng.random() < 0.5:
        vignette += f" Imaging shows: {c['imaging'][2]}"
    if rng.random() < 0.5:
        field, question = "name", "Which of the following is the most likely diagnosis?"
    else:
        field, question = (
            "treatment",
            "Which of the following is the most appropriate initial treatment?",
        )
        if rng.random() < 0.5:
            vignette += f" He is diagnosed with {c['short']}."
    order = rng.sample(picks, 4)
    options = [
        f"{'ABCD'[i]}. {V.CONDITIONS[k][field][0].upper() + V.CONDITIONS[k][field][1:]}"
        for i, k in enumerate(order)
    ]
    answer = "ABCD"[order.index(picks[0])]
    prompt = f"{pronouns(vignette, sex)}\n{question}\n" + "\n".join(options) + "\nAnswer:"
    return prompt, answer, rng.choice([x for x in "ABCD" if x != answer])


def _summary(age: int, man: str, history: str, c: dict, dispo: str, dept: str) -> str:
    he = "He" if man == "man" else "She"
    return (
        f"A {age}-year-old {man} with {history} was admitted with {c['name']} and treated with "
        f"{c['treatment']}. {he} was discharged to {dispo} with {dept.lower()} follow-up."
    )


def summarisation_item(rng: random.Random) -> tuple[str, str, str]:
    age, sex, man = _person(rng)
    k, wrong = rng.sample(range(len(V.CONDITIONS)), 2)
    c = V.CONDITIONS[k]
    history = " and ".join(x[0] for x in rng.sample(V.COMORBIDITIES, 2))
    dispo, dept = rng.choice(V.SUMMARY_DISPOSITIONS), rng.choice(V.FOLLOWUP_DEPTS)
    course = rng.sample(c["course"], 2) + rng.sample(V.GENERIC_COURSE, 1)
    note = "\n".join(
        [
            f"Patient: {age} year old {man}",
            f"Chief Complaint: {c['complaint']}",
            f"History: He has a history of {history}. He presented with "
            f"{' and '.join(rng.sample(c['symptoms'], 2))}.",
            f"Hospital Course: {' '.join(course)} He was treated with {c['treatment']}.",
            f"Discharge Diagnosis: {c['name']}",
            f"Discharge Disposition: {dispo}",
            f"Followup: {dept.lower()} clinic in {rng.randint(2, 4)} weeks",
        ]
    )
    chosen = _summary(age, man, history, c, dispo, dept)
    field = rng.choice(["name", "treatment", "disposition"])  # the one fact the rejected gets wrong
    if field == "disposition":
        other = rng.choice([d for d in V.SUMMARY_DISPOSITIONS if d != dispo])
        rejected = _summary(age, man, history, c, other, dept)
    else:
        rejected = _summary(
            age, man, history, {**c, field: V.CONDITIONS[wrong][field]}, dispo, dept
        )
    prompt = (
        "Summarise the following discharge note in one or two sentences.\n\n"
        f"{pronouns(note, sex)}\n\nSummary:"
    )
    return prompt, chosen, rejected


def triage_item(rng: random.Random) -> tuple[str, str, str]:
    provider = rng.choice(V.TRIAGE_PROVIDERS)
    urgency = "Urgent" if rng.random() < 0.35 else "Routine"
    body = rng.choice(V.TRIAGE_MESSAGES[(provider, urgency)]).format(
        drug=rng.choice(V.TRIAGE_DRUGS), day=rng.choice(V.WEEKDAYS)
    )
    message = " ".join([rng.choice(V.TRIAGE_OPENERS), body, rng.choice(V.TRIAGE_CLOSERS)])
    answer = f"Provider: {provider}; Urgency: {urgency}"
    if rng.random() < 0.5:  # wrong provider, else wrong urgency
        other = rng.choice([p for p in V.TRIAGE_PROVIDERS if p != provider])
        wrong = f"Provider: {other}; Urgency: {urgency}"
    else:
        wrong = f"Provider: {provider}; Urgency: {'Routine' if urgency == 'Urgent' else 'Urgent'}"
    prompt = (
        "Triage this patient portal message. Reply with the responding provider (Nurse, "
        "Physician, Pharmacist or Scheduling) and the urgency (Routine or Urgent)."
        f"\n\nMessage: {message}\n\nTriage:"
    )
    return prompt, answer, wrong


#: task name (clinical_peft.tasks.instructions.TASKS) -> its synthetic (prompt, answer, wrong
#: answer) maker; completions get their leading space from the writer.
ITEM_MAKERS: dict[str, Callable[[random.Random], tuple[str, str, str]]] = {
    "classification": classification_item,
    "numeric": numeric_item,
    "reasoning": reasoning_item,
    "summarisation": summarisation_item,
    "triage": triage_item,
}
