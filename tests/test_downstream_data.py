"""Outcome tasks: label parsing per file format, class weights, batching, AUROC semantics."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from clinical_peft.data.outcomes import OutcomeDataModule, length_batches, windows
from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.stages.downstream import pool_chunks, probabilities
from clinical_peft.synthetic import write_outcome_tasks
from clinical_peft.tasks.outcomes import TASKS, get_task, label_space, parse_labels
from clinical_peft.util.errors import InputError


@pytest.fixture(scope="module")
def outcomes_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outcomes")
    write_outcome_tasks(folder, n_admissions=300, seed=1)
    return folder


def write_task_csv(path, label_column, rows):
    with path.open("w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        writer.writerow(["id", "text", label_column])
        writer.writerows(rows)


@pytest.mark.parametrize("key", list(TASKS))
def test_every_task_reads_its_synthetic_files(outcomes_dir, key):
    data = OutcomeDataModule(task=key, data_dir=str(outcomes_dir))
    task = TASKS[key]
    assert data.kind == task.kind
    if task.kind == "multilabel":
        codes = (outcomes_dir / task.codes_file).read_text().split()
        assert data.label_names == codes and data.num_labels == len(codes)
        assert data.class_weights is None
    else:
        assert data.num_labels == task.num_classes and len(data.class_weights) == task.num_classes


def test_label_parsing_per_format(tmp_path):
    mor, los, diag = get_task("mor"), get_task("los"), get_task("diag")
    assert parse_labels(mor, ["0", "1", "1.0"], ["a", "b", "c"], "f", [])[0] == [[0], [1], [1]]
    assert parse_labels(los, ["3", "0"], ["a", "b"], "f", [])[0] == [[3], [0]]
    space = ["401", "428", "38"]
    labels, unknown = parse_labels(diag, ["401,38", "", "999, 428"], ["a", "b", "c"], "f", space)
    assert labels == [[0, 2], [], [1]] and unknown == 1  # 999 is counted, not silently dropped
    # no codes file: the label space is the train split's codes
    assert label_space(diag, tmp_path, ["428,401", "38"]) == ["38", "401", "428"]
    assert get_task("pmv").path(tmp_path, "val").name == "pmv_dev.csv"
    assert get_task("proc").path(tmp_path, "test").name == "PRO_GROUPS_3_DIGITS_adm_test.csv"


@pytest.mark.parametrize("value", ["4", "-1", "x", "1.5"])
def test_label_out_of_range_names_file_column_and_row(value):
    with pytest.raises(InputError, match=r"LOS_WEEKS_adm_train.csv: field 'los_label'.*row id 7"):
        parse_labels(get_task("los"), [value], ["7"], "LOS_WEEKS_adm_train.csv", [])


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(InputError, match="unknown task 'icu'.*pmv, mor, los, diag, proc"):
        get_task("icu")


def test_bad_files_give_input_errors(outcomes_dir, tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / f"MP_IN_adm_{split}.csv").write_text(
            (outcomes_dir / f"MP_IN_adm_{split}.csv").read_text()
        )
    write_task_csv(tmp_path / "MP_IN_adm_train.csv", "label", [["1", "note", "0"]])
    with pytest.raises(
        InputError, match="MP_IN_adm_train.csv: missing column 'hospital_expire_flag'"
    ):
        OutcomeDataModule(task="mor", data_dir=str(tmp_path))
    write_task_csv(
        tmp_path / "MP_IN_adm_train.csv", "hospital_expire_flag", [["1", "a", "0"], ["2", " ", "1"]]
    )
    with pytest.raises(InputError, match="MP_IN_adm_train.csv: field 'text': empty note .row id 2"):
        OutcomeDataModule(task="mor", data_dir=str(tmp_path))
    write_task_csv(tmp_path / "MP_IN_adm_train.csv", "hospital_expire_flag", [["1", "a", "2"]])
    with pytest.raises(InputError, match="field 'hospital_expire_flag': value '2' out of range"):
        OutcomeDataModule(task="mor", data_dir=str(tmp_path))
    write_task_csv(tmp_path / "MP_IN_adm_train.csv", "hospital_expire_flag", [["1", "a", "0"]])
    with pytest.raises(InputError, match=r"class\(es\) \[1\] never appear"):
        OutcomeDataModule(task="mor", data_dir=str(tmp_path))


def test_class_weights_follow_the_paper(outcomes_dir):
    data = OutcomeDataModule(task="los", data_dir=str(outcomes_dir))
    with (outcomes_dir / "LOS_WEEKS_adm_train.csv").open() as f:
        labels = [int(row["los_label"]) for row in csv.DictReader(f)]
    counts = np.bincount(labels, minlength=4)
    expected = len(labels) / (4 * counts)
    np.testing.assert_allclose(data.class_weights, expected, rtol=1e-5)


def test_synthetic_mortality_is_imbalanced_like_the_real_data(outcomes_dir):
    with (outcomes_dir / "MP_IN_adm_train.csv").open() as f:
        died = [int(row["hospital_expire_flag"]) for row in csv.DictReader(f)]
    assert 0.04 < sum(died) / len(died) < 0.2


def test_length_batches_group_similar_lengths_and_cover_every_note():
    lengths = list(np.random.default_rng(0).integers(5, 500, size=400))
    for seed in (None, 3):
        batches = length_batches(lengths, 8, seed)
        assert sorted(i for b in batches for i in b) == list(range(400))
        # padding: far less than with batches in random order
        waste = sum(
            max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches
        )
        order = np.random.default_rng(1).permutation(400)
        random_waste = sum(
            max(lengths[i] for i in order[s : s + 8]) * 8
            - sum(lengths[i] for i in order[s : s + 8])
            for s in range(0, 400, 8)
        )
        assert waste < 0.2 * random_waste


def test_windows_and_chunk_pooling():
    assert windows(list(range(10)), 4, None) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert windows(list(range(10)), 4, 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    pooled = pool_chunks(logits, torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 1.0], [5.0, 5.0]]))


def test_probabilities_per_kind():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    torch.testing.assert_close(probabilities(logits, "binary"), torch.softmax(logits, -1)[:, 1])
    assert probabilities(logits, "multiclass").shape == (2, 2)
    torch.testing.assert_close(probabilities(logits, "multilabel"), torch.sigmoid(logits))


def test_auroc_semantics_match_sklearn_on_fixed_arrays():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = rng.random(60) + 0.3 * y
    assert outcome_metrics(s, y, "binary", 2)["auroc"] == pytest.approx(roc_auc_score(y, s))
    # LOS: one-vs-one macro, as the paper
    y4 = rng.integers(0, 4, 80)
    p4 = rng.dirichlet(np.ones(4), 80)
    got = outcome_metrics(p4, y4, "multiclass", 4)
    assert got["auroc"] == pytest.approx(roc_auc_score(y4, p4, multi_class="ovo", average="macro"))
    assert got["auroc_ovr"] == pytest.approx(roc_auc_score(y4, p4, multi_class="ovr"))
    # multilabel: a label with a single class in the split is skipped, not averaged in as 0
    ym = rng.integers(0, 2, (50, 3))
    ym[:, 1] = 0
    pm = rng.random((50, 3))
    got = outcome_metrics(pm, ym, "multilabel", 3)
    expected = np.mean([roc_auc_score(ym[:, j], pm[:, j]) for j in (0, 2)])
    assert got["auroc"] == pytest.approx(expected) and got["n_labels_scored"] == 2
    assert got["auroc_micro"] == pytest.approx(roc_auc_score(ym.ravel(), pm.ravel()))
    assert math.isnan(outcome_metrics(s, np.zeros(60), "binary", 2)["auroc"])


def test_suspicious_outcome_files_are_refused_or_reported(tiny_model, tmp_path):
    """Leakage and malformed code lists stop the run in one line; duplicates are counted."""
    import csv

    from clinical_peft.data.outcomes import OutcomeDataModule
    from clinical_peft.synthetic import write_outcome_tasks
    from clinical_peft.util.errors import InputError

    def make(folder, **kwargs):
        return OutcomeDataModule(task="proc", data_dir=str(folder), tokenizer=str(tiny_model),
                                 cache_dir=str(tmp_path / "cache"), max_length=32, **kwargs)  # fmt: skip

    def rows(path):
        with path.open(newline="") as f:
            return list(csv.reader(f))

    def write(path, table):
        with path.open("w", newline="") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL).writerows(table)

    folder = tmp_path / "leak"
    write_outcome_tasks(folder, n_admissions=60, seed=0, n_diag_codes=5, n_proc_codes=5)
    train, test = (
        folder / "PRO_GROUPS_3_DIGITS_adm_train.csv",
        folder / "PRO_GROUPS_3_DIGITS_adm_test.csv",
    )
    write(test, rows(test) + rows(train)[1:3])  # two training admissions copied into test
    with pytest.raises(InputError, match="field 'id': 2 admissions .*--data.allow_overlap") as err:
        make(folder).prepare_data()
    assert "\n" not in str(err.value)
    allowed = make(folder, allow_overlap=True)
    allowed.prepare_data()
    assert allowed.stats["data/test_ids_in_train"] == 2.0

    table = rows(train)
    write(train, table + [table[1]])  # a duplicate admission in train: counted, not refused
    allowed = make(folder, allow_overlap=True)
    allowed.prepare_data()
    assert allowed.stats["data/train_duplicate_ids"] == 1.0

    table[1][2] = "38;39"  # another separator would make "38;39" one unknown code
    write(train, table)
    with pytest.raises(InputError, match="codes separated by ';', expected ','"):
        make(folder, allow_overlap=True)
