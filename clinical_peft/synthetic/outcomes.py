"""The five van Aken et al. admission-note tasks, synthetic: code spaces with learnable signal,
admissions split by patient, files named and laid out as the loaders read them."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

from clinical_peft.synthetic import text as T
from clinical_peft.synthetic import vocab as V
from clinical_peft.synthetic.files import csv_bytes, rng_for, write_file
from clinical_peft.tasks.outcomes import TASKS as OUTCOME_TASKS


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


def admissions(
    n_admissions: int = 1200, seed: int = 0, n_diag_codes: int = 50, n_proc_codes: int = 30
) -> tuple[dict[str, list[list[dict]]], list, list]:
    """The admissions of the task files, patient by patient, split 70 / 15 / 15 by patient, and
    the diagnosis and procedure code spaces. Each admission keeps its latent severity `s`."""
    if n_diag_codes < 1 or n_proc_codes < 1:
        raise ValueError("n_diag_codes and n_proc_codes must be at least 1")
    rng = rng_for("outcomes", seed)
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
    return splits, diag_space, proc_space


def write_outcome_tasks(
    out_dir: str | Path,
    n_admissions: int = 1200,
    seed: int = 0,
    n_diag_codes: int = 50,
    n_proc_codes: int = 30,
) -> dict[str, int]:
    """Write the five van Aken et al. task files and the two code lists; return rows per file."""
    splits, diag_space, proc_space = admissions(n_admissions, seed, n_diag_codes, n_proc_codes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
            write_file(path, csv_bytes(header, rows, quoting=csv.QUOTE_ALL))
            counts[path.name] = len(rows)
    for task, space in [("diag", diag_space), ("proc", proc_space)]:
        name = OUTCOME_TASKS[task].codes_file
        codes = sorted(code for code, _, _ in space)
        write_file(out / name, ("\n".join(codes) + "\n").encode())
        counts[name] = len(codes)
    return counts
