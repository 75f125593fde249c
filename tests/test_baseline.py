"""The TF-IDF + logistic-regression floor: run-directory contract, AUROC against sklearn, C chosen
on validation only, constant scores for labels with one class in train, input errors."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess

import numpy as np
import pytest
import yaml
from scipy import sparse
from sklearn.metrics import roc_auc_score
from test_cli import run_cli as cli_process

from clinical_peft.data.outcomes import read_split
from clinical_peft.metrics.outcomes import outcome_metrics
from clinical_peft.studies.floor import run_baseline
from clinical_peft.studies.tables import downstream_table
from clinical_peft.studies.tfidf_lr import fit_score, read_task
from clinical_peft.synthetic import write_outcome_tasks
from clinical_peft.tasks.outcomes import TASKS
from clinical_peft.util.errors import InputError

GRID = (0.1, 1.0, 10.0)
EXTRA_CODE = "ZZ9"  # listed in the codes file, in no note: one class in train


@pytest.fixture(scope="module")
def outcomes_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outcomes")
    write_outcome_tasks(folder, n_admissions=300, seed=1)
    codes = folder / TASKS["proc"].codes_file
    codes.write_text(codes.read_text() + EXTRA_CODE + "\n")
    return folder


@pytest.fixture(scope="module")
def runs(outcomes_dir, tmp_path_factory):
    """One run per kind: binary (mor), multiclass (los), multilabel (proc)."""
    root = tmp_path_factory.mktemp("baseline")
    return {t: (root / t, run_baseline(t, outcomes_dir, root / t, GRID)) for t in ("mor", "los", "proc")}  # fmt: skip


def copy_task(src, dst, prefix: str, relabel=None) -> None:
    """Copy a task's three files; `relabel(split, label)` rewrites the label column."""
    for path in src.glob(f"{prefix}_*.csv"):
        with path.open(newline="") as f:
            header, *rows = list(csv.reader(f))
        split = path.stem.rsplit("_", 1)[1]
        rows = [[*row[:-1], relabel(split, row[-1]) if relabel else row[-1]] for row in rows]
        with (dst / path.name).open("w", newline="") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL).writerows([header, *rows])


def sklearn_auroc(kind: str, scores: np.ndarray, labels: np.ndarray) -> float:
    """The paper's AUROC, computed independently with sklearn."""
    if kind == "binary":
        return roc_auc_score(labels, scores)
    if kind == "multiclass":
        classes = list(range(scores.shape[1]))
        return roc_auc_score(labels, scores, multi_class="ovo", average="macro", labels=classes)
    both = [j for j in range(labels.shape[1]) if 0 < labels[:, j].sum() < len(labels)]
    return float(np.mean([roc_auc_score(labels[:, j], scores[:, j]) for j in both]))


@pytest.mark.parametrize("task", ["mor", "los", "proc"])
def test_run_directory_contract_and_auroc(runs, outcomes_dir, task):
    run_dir, returned = runs[task]
    kind = TASKS[task].kind
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == pytest.approx(returned, nan_ok=True)
    data = read_task(task, outcomes_dir)
    n_labels = len(data["label_names"])
    for split in ("val", "test"):
        saved = np.load(run_dir / "predictions" / f"{split}.npz")
        assert set(saved.files) == {"ids", "scores", "labels"}
        assert saved["ids"].dtype == np.int64 and saved["labels"].dtype == np.int64
        assert saved["ids"].tolist() == [int(i) for i in data[split]["ids"]]  # file order
        assert np.array_equal(saved["labels"], data[split]["labels"])
        scores = saved["scores"]
        expected_shape = {"binary": (len(saved["ids"]),), "multiclass": (len(saved["ids"]), 4)}
        assert scores.shape == expected_shape.get(kind, (len(saved["ids"]), n_labels))
        assert ((scores >= 0) & (scores <= 1)).all()
        # every key outcome_metrics returns, and the headline AUROC as sklearn computes it
        keys = outcome_metrics(scores, saved["labels"], kind, n_labels)
        assert {f"{split}/{k}" for k in keys} <= set(metrics)
        assert metrics[f"{split}/auroc"] == pytest.approx(
            sklearn_auroc(kind, scores, saved["labels"]), abs=1e-6
        )
        assert (run_dir / "predictions" / f"{split}_roc.png").stat().st_size > 0
    assert metrics["test/auroc"] > 0.7  # the synthetic notes carry the outcome
    assert metrics["baseline/C"] in GRID


def test_config_records_settings_and_no_patient_text(runs, outcomes_dir):
    run_dir, _ = runs["proc"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["task"] == "proc" and config["model"]["c_grid"] == list(GRID)
    assert config["model"]["vectorizer"]["ngram_range"] == [1, 2]
    written = "".join(p.read_text() for p in (run_dir / "config.yaml", run_dir / "metrics.json"))
    notes = read_split(TASKS["proc"].path(outcomes_dir, "train"), "short_codes", None)["text"]
    assert not any(note[:40] in written for note in notes)


def test_class_weights_are_the_papers(runs, outcomes_dir):
    """N / (C * count_c) of the train split for single-label tasks; none for multilabel (BCE)."""
    for task, (run_dir, _) in runs.items():
        weights = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["class_weights"]
        if task == "proc":
            assert weights is None
            continue
        y = read_task(task, outcomes_dir)["train"]["labels"]
        counts = np.bincount(y, minlength=len(weights))
        assert weights == pytest.approx(len(y) / (len(weights) * counts), rel=1e-6)


def test_c_is_chosen_on_validation_only(runs, outcomes_dir, tmp_path):
    _, metrics = runs["mor"]
    search = {float(k.split("_C")[1]): v for k, v in metrics.items() if k.startswith("search/")}
    assert sorted(search) == list(GRID)
    assert metrics["baseline/C"] == max(search, key=search.get)
    # Flipping every test label changes the test AUROC, never the choice of C.
    copy_task(outcomes_dir, tmp_path, "MP_IN_adm", lambda split, y: str(1 - int(y)) if split == "test" else y)  # fmt: skip
    flipped = run_baseline("mor", tmp_path, tmp_path / "run", GRID)
    assert flipped["baseline/C"] == metrics["baseline/C"]
    assert flipped["val/auroc"] == metrics["val/auroc"]
    assert flipped["test/auroc"] == pytest.approx(1 - metrics["test/auroc"], abs=1e-6)


def test_labels_with_one_class_in_train_get_a_constant_score(runs):
    run_dir, metrics = runs["proc"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    saved = np.load(run_dir / "predictions" / "test.npz")
    assert saved["labels"].shape[1] == 31  # the 30 synthetic codes and EXTRA_CODE
    assert (saved["scores"][:, -1] == 0).all()  # codes are sorted: ZZ9 is the last label
    assert config["model"]["c_grid"] == list(GRID) and metrics["test/n_labels_scored"] <= 30
    # and a label present in every train note: a constant 1
    x = sparse.random(20, 50, density=0.3, format="csr", random_state=0)
    y = np.zeros((20, 3), dtype=np.int64)
    y[:, 1], y[::2, 2] = 1, 1
    (scores,) = fit_score("multilabel", 1.0, None, x, y, [x])
    assert (scores[:, 0] == 0).all() and (scores[:, 1] == 1).all()
    assert len(set(scores[:, 2].tolist())) > 1


def test_labels_fitted_in_parallel_score_as_one_at_a_time(outcomes_dir):
    data = read_task("proc", outcomes_dir)
    x = sparse.random(len(data["train"]["ids"]), 80, density=0.2, format="csr", random_state=1)
    y = data["train"]["labels"]
    one = fit_score("multilabel", 1.0, None, x, y, [x[:50]], jobs=1)
    two = fit_score("multilabel", 1.0, None, x, y, [x[:50]], jobs=2)
    assert np.array_equal(one[0], two[0])


def test_report_gives_the_baseline_its_own_row(runs, tmp_path):
    table = downstream_table([runs[t][0] for t in runs], tmp_path / "table")
    (row,) = table
    assert row["model"] == "TF-IDF + LR"
    for task, (_, metrics) in runs.items():
        assert row[task] == pytest.approx(100 * metrics["test/auroc"])
    assert row["pmv"] is None and not math.isnan(row["mean"])
    assert "TF-IDF + LR" in (tmp_path / "table.md").read_text()


def test_report_shows_a_task_outside_the_five_as_its_own_column(tmp_path):
    """A run of a task the registry does not list (a user's own data source) gets a column, and
    the mean is over the columns a row shows, never over a task the table leaves out."""
    scores = {"mor": 0.8, "readmit": 0.6}
    for task, auroc in scores.items():
        run = tmp_path / task
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"test/auroc": auroc}))
        config = {"model": {"base_model": "tiny"}, "data": {"class_path": "x", "init_args": {"task": task}}}  # fmt: skip
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    (row,) = downstream_table([tmp_path / "mor", tmp_path / "readmit"], tmp_path / "table")
    assert row["readmit"] == pytest.approx(60) and row["mean"] == pytest.approx(70)
    header = (tmp_path / "table.csv").read_text().splitlines()[0].split(",")
    assert header == ["model", *TASKS, "readmit", "mean"]


def test_bad_input_is_the_data_modules_input_error(outcomes_dir, tmp_path):
    copy_task(outcomes_dir, tmp_path, "MP_IN_adm", lambda split, y: "0" if split == "train" else y)  # fmt: skip
    with pytest.raises(InputError, match=r"MP_IN_adm_train.csv: field 'hospital_expire_flag'.*\[1\] never appear"):  # fmt: skip
        run_baseline("mor", tmp_path, tmp_path / "run", GRID)
    with pytest.raises(InputError, match="unknown task 'icu'"):
        run_baseline("icu", tmp_path, tmp_path / "run", GRID)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return cli_process("baseline", *args)


def test_cli_runs_and_refuses_a_missing_file(outcomes_dir, tmp_path):
    copy_task(outcomes_dir, tmp_path, "pmv")
    args = ["--task", "pmv", "--data-dir", str(tmp_path), "--c-grid", "1"]
    done = run_cli(*args, "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert "2 labels" in done.stdout and "test AUROC" in done.stdout
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["baseline/C"] == 1.0
    notes = read_split(tmp_path / "pmv_train.csv", "label", None)["text"]
    assert not any(note[:40] in done.stdout + done.stderr for note in notes)

    (tmp_path / "pmv_dev.csv").unlink()
    failed = run_cli(*args, "--run-dir", str(tmp_path / "run2"))
    assert failed.returncode == 2
    assert failed.stderr.strip() == f"error: {tmp_path / 'pmv_dev.csv'}: file not found"
    assert not (tmp_path / "run2").exists()


def test_report_refuses_a_broken_run_directory_in_one_line(runs, tmp_path):
    """A cut-off metrics.json or config.yaml, or a run that is not a downstream one, is named
    in one line (they ended in json's, yaml's or a KeyError's traceback)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["mor"][0], run)
    metrics = (run / "metrics.json").read_text()
    cases = [
        ("metrics.json", metrics[: len(metrics) // 2], "metrics.json: not valid JSON"),
        ("metrics.json", '{"val/ppl": 3.0}', "no 'test/auroc': not a downstream run"),
        ("config.yaml", "model: [unclosed\n", "config.yaml: not valid YAML"),
    ]
    for name, text, words in cases:
        good = (run / name).read_text()
        (run / name).write_text(text)
        with pytest.raises(InputError, match=re.escape(words)):
            downstream_table([run], tmp_path / "table")
        (run / name).write_text(good)
