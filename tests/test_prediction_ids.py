"""predictions/{split}.npz keeps admission ids as they were read: integers as int64 (they join
the CSVs' integer ids without a cast), any other id as its text; the grid report reads files
that stored integer ids as floats (182362.0) as the int64 files of today."""

from __future__ import annotations

import numpy as np

from clinical_peft.metrics.predictions import write_predictions
from clinical_peft.studies.grid_stats import load_predictions

SCORES, LABELS = np.array([0.9, 0.2, 0.6]), np.array([1, 0, 1])


def written_ids(tmp_path, ids: list) -> np.ndarray:
    write_predictions(tmp_path / "predictions", "test", ids, SCORES, LABELS, "binary")
    assert (tmp_path / "predictions" / "test_roc.png").is_file()
    return np.load(tmp_path / "predictions" / "test.npz")["ids"]


def test_integer_ids_are_stored_as_int64(tmp_path):
    ids = written_ids(tmp_path, ["182362", "113449", "-4"])
    assert ids.dtype == np.int64 and ids.tolist() == [182362, 113449, -4]


def test_ids_that_an_integer_would_change_keep_their_text(tmp_path):
    for ids in (["0182362", "113449", "7"], ["182362", " 113449", "7"], ["A-1", "B-2", "3"]):
        stored = written_ids(tmp_path, ids)
        assert stored.dtype.kind == "U" and stored.tolist() == ids, ids


def test_the_report_pairs_an_old_float_file_with_a_new_int_file(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    (old / "predictions").mkdir(parents=True)
    np.savez(old / "predictions" / "test.npz", ids=np.array([182362.0, 113449.0, 7.0]),
             scores=SCORES, labels=LABELS)  # fmt: skip
    write_predictions(new / "predictions", "test", ["182362", "113449", "7"], SCORES, LABELS, "binary")  # fmt: skip
    a, b = load_predictions(old), load_predictions(new)
    assert a["ids"].dtype == b["ids"].dtype == np.int64
    assert a["ids"].tolist() == b["ids"].tolist() == [7, 113449, 182362]  # sorted by id
    np.testing.assert_array_equal(a["scores"], b["scores"])
