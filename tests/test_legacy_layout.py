"""Files written by the code before the package had role folders (commit 23d0b8b) still load:
a downstream run directory scores again to its own figures, its saved config.yaml re-parses,
and a sweep trial overlay that names `clinical_peft.sweep_pruning.OptunaPruning` resolves.

The fixture is that commit's `downstream` run on mor (clinical none, 1 epoch, 64 tokens) over
the test suite's own tiny LLaMA and outcome files (both built deterministically by conftest).
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from clinical_peft.cli.commands import main
from clinical_peft.moved import MOVED

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_23d0b8b"


def test_every_old_module_path_imports_as_the_module_now_there():
    for old, new in MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old


def test_an_old_downstream_run_evaluates_to_its_own_test_auroc(tiny_model, mortality, tmp_path):
    run = tmp_path / "mor"
    shutil.copytree(FIXTURE / "mor", run)
    out = tmp_path / "again"
    code = main(["evaluate", "--run", str(run), "--data", str(mortality), "--out", str(out),
                 "--base_model", str(tiny_model), "--n_boot", "10"])  # fmt: skip
    assert code == 0
    before = json.loads((FIXTURE / "mor" / "metrics.json").read_text())
    after = json.loads((out / "metrics.json").read_text())
    assert after["test/auroc"] == pytest.approx(before["test/auroc"], abs=1e-6)
    old = np.load(FIXTURE / "mor" / "predictions" / "test.npz")
    new = np.load(out / "predictions.npz")
    new_ids = new["ids"].astype(np.int64)  # evaluate's npz holds the CSV's ids as text
    order = np.argsort(new_ids)
    np.testing.assert_array_equal(np.sort(old["ids"]), new_ids[order])
    np.testing.assert_allclose(
        old["scores"][np.argsort(old["ids"])], new["scores"][order], atol=1e-5
    )


def test_an_old_config_and_sweep_overlay_parse_with_todays_cli(tmp_path, capsys):
    from clinical_peft.cli.stage import run_stage

    with pytest.raises(SystemExit) as exit_info:
        run_stage("downstream", [
            "-c", str(FIXTURE / "mor" / "config.yaml"), "-c", str(FIXTURE / "sweep_trial0.yaml"),
            "--run_dir", str(tmp_path / "again"), "--print_config",
        ])  # fmt: skip
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["class_path"] == "clinical_peft.data.outcomes.OutcomeDataModule"
    (callback,) = config["trainer"]["callbacks"]
    module, name = callback["class_path"].rsplit(".", 1)
    from clinical_peft.studies.pruning import OptunaPruning

    assert getattr(importlib.import_module(module), name) is OptunaPruning
    assert config["model"]["optim"]["lr"] == pytest.approx(0.0004889880121528842)
