"""Subgroups: MIMIC-III / MIMIC-IV demographics joined by admission id, per-group AUROC and
calibration, the largest gap, small groups never written; the synthetic planted difference."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from clinical_peft.data.demographics import read_demographics
from clinical_peft.metrics.clinical import write_clinical_files
from clinical_peft.metrics.subgroups import COLUMNS, subgroup_tables
from clinical_peft.studies.tfidf_lr import fit_score, read_task, vectorize
from clinical_peft.synthetic import main as synthetic_main
from clinical_peft.synthetic import write_demographics, write_outcome_tasks
from clinical_peft.synthetic.demographics import PLANTED
from clinical_peft.util.errors import InputError


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """1,200 synthetic admissions, their demographics and the floor's mortality test scores."""
    root = tmp_path_factory.mktemp("subgroups")
    write_outcome_tasks(root / "outcomes", n_admissions=1200, seed=0)
    synthetic_main(["--out", str(root / "demographics"), "--what", "demographics"])
    data = read_task("mor", root / "outcomes")
    x = vectorize(data, min_df=2, max_features=50_000)
    scores = fit_score("binary", 1.0, data["weights"], x["train"], data["train"]["labels"],
                       [x["test"]])[0]  # fmt: skip
    return root, data["test"]["ids"], scores, data["test"]["labels"]


def write_gz(path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))


def test_mimic_iii_tables_cover_every_outcome_admission(world):
    root, _, _, _ = world
    table = read_demographics(root / "demographics")
    for split in ("train", "val", "test"):
        ids = pd.read_csv(root / "outcomes" / f"MP_IN_adm_{split}.csv", dtype=str)["id"]
        assert ids.isin(table.index).all()
    assert set(table["gender"]) == {"M", "F"}
    assert set(table["age"]) <= {"18-39", "40-59", "60-79", "80+"}
    assert {"White", "Black", "Unknown"} <= set(table["ethnicity"])
    assert PLANTED[1] in set(table["insurance"])
    raw = pd.read_csv(root / "demographics" / "ADMISSIONS.csv.gz")
    assert {"SUBJECT_ID", "HADM_ID", "ADMITTIME", "ETHNICITY", "INSURANCE"} <= set(raw.columns)


def test_mimic_iv_layout_ages_from_the_anchor(tmp_path):
    hosp = tmp_path / "hosp"
    write_gz(hosp / "admissions.csv.gz", pd.DataFrame({
        "subject_id": [1, 1, 2], "hadm_id": [20000001, 20000002, 20000003],
        "admittime": ["2150-01-02 10:00:00", "2160-05-01 00:00:00", "2140-07-07 08:00:00"],
        "race": ["WHITE - BRAZILIAN", "WHITE", "HISPANIC/LATINO - PUERTO RICAN"],
        "insurance": ["Medicare", "Medicare", ""]}))  # fmt: skip
    write_gz(hosp / "patients.csv.gz", pd.DataFrame({
        "subject_id": [1, 2], "gender": ["F", "M"], "anchor_age": [75, 30],
        "anchor_year": [2152, 2140]}))  # fmt: skip
    table = read_demographics(tmp_path)
    assert table.loc["20000001"].tolist() == ["F", "60-79", "White", "Medicare"]  # 75 - 2
    assert table.loc["20000002"].tolist() == ["F", "80+", "White", "Medicare"]  # 75 + 8
    assert table.loc["20000003"].tolist() == ["M", "18-39", "Hispanic", "Unknown"]


def test_bad_tables_are_one_line_errors_naming_file_and_field(tmp_path):
    with pytest.raises(InputError, match="no MIMIC-III ADMISSIONS"):
        read_demographics(tmp_path)
    write_gz(tmp_path / "ADMISSIONS.csv.gz", pd.DataFrame({"SUBJECT_ID": [1], "HADM_ID": [100001],
             "ADMITTIME": ["2150-01-01 00:00:00"], "INSURANCE": ["Private"]}))  # fmt: skip
    with pytest.raises(InputError, match="PATIENTS.csv.gz: not found"):
        read_demographics(tmp_path)
    write_gz(tmp_path / "PATIENTS.csv.gz", pd.DataFrame({"SUBJECT_ID": [1], "GENDER": ["M"],
             "DOB": ["2100-01-01 00:00:00"]}))  # fmt: skip
    with pytest.raises(InputError, match=r"ADMISSIONS.csv.gz: missing column 'ETHNICITY'"):
        read_demographics(tmp_path)
    write_gz(tmp_path / "ADMISSIONS.csv.gz", pd.DataFrame({"SUBJECT_ID": [1], "HADM_ID": [100001],
             "ADMITTIME": ["yesterday"], "INSURANCE": ["Private"], "ETHNICITY": ["ASIAN"]}))  # fmt: skip
    with pytest.raises(InputError, match=r"ADMISSIONS.csv.gz: field 'ADMITTIME': 'yesterday'"):
        read_demographics(tmp_path)


def test_the_planted_difference_is_found(world, tmp_path):
    root, ids, scores, labels = world
    table = read_demographics(root / "demographics")
    groups, gaps, counts = subgroup_tables(ids, scores, labels, "binary", table, n_boot=200)
    assert list(groups.columns) == COLUMNS and counts["subgroups/unmatched_admissions"] == 0
    gap = gaps.set_index("attribute").loc[PLANTED[0]]
    assert gap["lower"] == PLANTED[1]
    assert gap["auroc_gap_ci_low"] > 0.2  # an interval well clear of no difference
    row = groups[(groups.attribute == PLANTED[0]) & (groups.group == PLANTED[1])].iloc[0]
    member = table.reindex([str(i) for i in ids])["insurance"].eq(PLANTED[1]).to_numpy()
    assert row["n"] == member.sum()
    assert row["auroc"] == pytest.approx(roc_auc_score(labels[member], scores[member]))
    assert row["brier"] == pytest.approx(brier_score_loss(labels[member], scores[member]))
    others = groups[(groups.attribute == PLANTED[0]) & (groups.group != PLANTED[1])]
    assert (others["auroc_ci_low"] > row["auroc_ci_high"]).all()


def test_small_groups_are_never_written(world, tmp_path):
    root, ids, scores, labels = world
    table = read_demographics(root / "demographics")
    result = write_clinical_files(tmp_path, ids, scores, labels, "binary", "mor", table,
                                  min_group=40, n_boot=20)  # fmt: skip
    written = pd.read_csv(tmp_path / "subgroups.csv")
    sizes = table.reindex([str(i) for i in ids]).apply(pd.Series.value_counts).stack()
    small = {name for (name, _), n in sizes.items() if n < 40}
    assert small and not small & set(written["group"])  # e.g. Asian, Self Pay: left out
    assert (written["n"] >= 40).all() and result["metrics"]["subgroups/groups_suppressed"] > 0
    gaps = pd.read_csv(tmp_path / "subgroup_gaps.csv")
    assert not small & (set(gaps["higher"]) | set(gaps["lower"]))
    text = "".join(p.read_text() for p in tmp_path.glob("*.csv"))
    assert not any(str(i) in text for i in ids)  # no admission id leaves the cache
    for name in ("subgroups.png", "reliability.png", "decision_curve.png", "decision_curve.csv"):
        assert (tmp_path / name).stat().st_size > 0


def test_demographics_are_deterministic_and_leave_the_task_files_alone(tmp_path):
    write_outcome_tasks(tmp_path / "a", n_admissions=60, seed=0)
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    write_demographics(tmp_path / "d1", n_admissions=60, seed=0)
    write_demographics(tmp_path / "d2", n_admissions=60, seed=0)
    for name in ("ADMISSIONS.csv.gz", "PATIENTS.csv.gz"):
        assert (tmp_path / "d1" / name).read_bytes() == (tmp_path / "d2" / name).read_bytes()
    write_outcome_tasks(tmp_path / "a", n_admissions=60, seed=0)
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before
    ages = read_demographics(tmp_path / "d1")["age"]
    assert np.isin(ages, ["18-39", "40-59", "60-79", "80+"]).all()


def test_a_small_group_cannot_be_recovered_by_subtraction():
    from clinical_peft.metrics.subgroups import shown_groups

    # 3 Asian admissions alone would be hidden, but 200 - 120 - 77 = 3 gives them back
    assert shown_groups({"White": 120, "Black": 77, "Asian": 3}, 10) == {"White"}
    assert shown_groups({"White": 120, "Black": 77, "Asian": 12}, 10) == {"White", "Black", "Asian"}
    assert shown_groups({"M": 5, "F": 200}, 10) == set()  # F = total - 5: both left out
    assert shown_groups({"A": 4, "B": 7, "C": 50}, 10) == {"C"}  # 11 left out: enough
