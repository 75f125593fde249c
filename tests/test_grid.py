"""Grids: the smoke grid end to end, idempotent reruns, a killed grid resuming to the same report,
failures recorded without stopping the grid, and a report every number of which is recomputed
here from the run directories' predictions (sklearn, scipy, a plain-loop DeLong)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from test_cli import in_process
from test_hardening import assert_one_line_error
from test_hardening_commands import lock_holder, wait_until_gone

from clinical_peft.metrics.bootstrap import resample_indices
from clinical_peft.metrics.delong import delong_test
from clinical_peft.studies.grid import load_spec
from clinical_peft.studies.grid import main as grid_main
from clinical_peft.studies.grid_report import t_interval
from clinical_peft.synthetic import write_outcome_tasks
from clinical_peft.util.errors import InputError

N_BOOT = 200  # the report's default is 1,000; fewer keeps the tests quick


@pytest.fixture(scope="module")
def outcomes_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("outcomes")  # 46 test admissions, 5 deaths
    write_outcome_tasks(folder, n_admissions=300, seed=0, n_diag_codes=20, n_proc_codes=12)
    return folder


def grid_args(spec: str, out: Path, tiny_model, notes_dir, outcomes_dir, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "clinical_peft", "grid", spec, "--out", str(out),
        "--n-boot", str(N_BOOT), "--var", f"model={tiny_model}", "--var", f"notes={notes_dir}",
        "--var", f"outcomes={outcomes_dir}", "--var", f"cache={out.parent / 'cache'}", *extra,
    ]  # fmt: skip


def run_grid(*args, **kwargs) -> subprocess.CompletedProcess:
    return in_process(*grid_args(*args, **kwargs)[3:])


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


#: the tests that read the smoke grid share one worker: else each worker runs the grid (~75 s)
SMOKE_ON_ONE_WORKER = pytest.mark.xdist_group("grid_smoke")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_model, notes_dir, outcomes_dir) -> Path:
    out = tmp_path_factory.mktemp("grid") / "grids"
    done = run_grid("smoke", out, tiny_model, notes_dir, outcomes_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 ok" in done.stdout
    return out / "smoke"


# --- the statistics against independent references -------------------------------------------


def brute_force_delong(a, b, y) -> float:
    """DeLong's p from the definition: placement values by an explicit double loop."""
    y = np.asarray(y).astype(bool)

    def placements(s):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(1), psi.mean(0), psi.mean()

    (v10a, v01a, auc_a), (v10b, v01b, auc_b) = placements(a), placements(b)
    s10, s01 = np.cov(v10a, v10b), np.cov(v01a, v01b)
    m, n = y.sum(), (~y).sum()
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return float(2 * stats.norm.sf(abs(auc_a - auc_b) / math.sqrt(var)))


def scipy_bca(s: np.ndarray, y: np.ndarray, draws: list[float]) -> tuple[float, float]:
    """scipy's BCa interval of given draws, its acceleration from sklearn on each of the
    leave-one-out samples (scipy makes them)."""

    def auroc(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.squeeze([roc_auc_score(y[i], s[i]) for i in np.atleast_2d(idx)])

    result = stats.bootstrap((np.arange(len(y)),), auroc, n_resamples=0, method="BCa",
                             bootstrap_result=SimpleNamespace(bootstrap_distribution=np.array(draws)))  # fmt: skip
    return tuple(result.confidence_interval)


def test_delong_matches_its_definition_and_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    a = y + rng.normal(0, 1.0, 200)
    b = np.round(0.5 * y + rng.normal(0, 1.0, 200), 1)  # ties inside one model
    result = delong_test(a, b, y)
    assert result["auroc_a"] == pytest.approx(roc_auc_score(y, a))
    assert result["auroc_b"] == pytest.approx(roc_auc_score(y, b))
    assert result["p"] == pytest.approx(brute_force_delong(a, b, y), rel=1e-9)
    assert delong_test(a, a, y)["p"] == 1.0
    with pytest.raises(ValueError, match="positive and negative"):
        delong_test(a, b, np.zeros(200))


def test_t_interval_matches_scipy():
    values = [0.71, 0.74, 0.69]
    mean, low, high = t_interval(values)
    ref = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (mean, low, high) == pytest.approx((np.mean(values), *ref))
    assert math.isnan(t_interval([0.7])[1])


def test_spec_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows:\n  a:\n    stage: nope\n")
    with pytest.raises(InputError, match="bad.yaml.*rows.a.*field 'stage'"):
        load_spec(bad)
    bad.write_text("reference: missing\nrows:\n  a: {stage: baseline}\n")
    with pytest.raises(InputError, match="field 'reference'"):
        load_spec(bad)
    bad.write_text("rows:\n  a: {configs: ['{nope}.yaml']}\n")
    with pytest.raises(InputError, match="unknown placeholder"):
        load_spec(bad)


def test_counts_and_vars_that_mean_nothing_are_refused(tmp_path):
    """`--seeds 0` ran an empty grid, `--var model` (no `=`) was dropped: both silently."""
    spec = tmp_path / "g.yaml"
    spec.write_text("rows:\n  floor: {stage: baseline, args: {task: mor}}\n")
    with pytest.raises(InputError, match="--seeds: at least 1 .got 0"):
        load_spec(spec, tmp_path, seeds=0)
    spec.write_text("seeds: -1\nrows:\n  floor: {stage: baseline, args: {task: mor}}\n")
    with pytest.raises(InputError, match="g.yaml: field 'seeds': at least 1 .got -1"):
        load_spec(spec, tmp_path)
    spec.write_text("rows:\n  floor: {stage: baseline, seeds: 0, args: {task: mor}}\n")
    with pytest.raises(InputError, match="rows.floor: field 'seeds': at least 1 .got 0"):
        load_spec(spec, tmp_path)
    with pytest.raises(InputError, match="--var: expected KEY=VALUE, got 'model'"):
        grid_main([str(spec), "--var", "model", "--count"])


@pytest.mark.parametrize("grid", sorted(p.stem for p in Path("experiments/grids").glob("*.yaml")))
def test_every_grid_spec_loads(grid):
    spec = load_spec(f"experiments/grids/{grid}.yaml", seeds=3)
    assert spec.jobs(), grid
    for cell in spec.cells:
        for config in cell.configs:
            assert Path(config).is_file(), f"{grid}: {cell.name}: {config}"


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.slow
@SMOKE_ON_ONE_WORKER
def test_smoke_grid_report_is_recomputed_from_predictions(smoke):
    rows = {r["row"]: r for r in read_csv(smoke / "report.csv")}
    assert set(rows) == {"lora", "clinical_lora"}
    preds = {}
    for row in rows:
        runs = [np.load(smoke / f"{row}-mor" / f"seed{k}" / "predictions" / "test.npz") for k in (0, 1)]  # fmt: skip
        # A seed changes the model, never the test examples.
        assert np.array_equal(runs[0]["ids"], runs[1]["ids"])
        assert not np.array_equal(runs[0]["scores"], runs[1]["scores"])
        preds[row] = [(r["scores"][np.argsort(r["ids"])], r["labels"][np.argsort(r["ids"])]) for r in runs]  # fmt: skip
    for row, r in rows.items():
        values = [roc_auc_score(y, s) for s, y in preds[row]]
        assert [float(v) for v in r["values"].split(";")] == pytest.approx(values)
        mean, low, high = t_interval(values)
        assert float(r["mean"]) == pytest.approx(np.mean(values))
        assert (float(r["t_low"]), float(r["t_high"])) == pytest.approx((low, high))
        for k, (s, y) in enumerate(preds[row]):  # bootstrap CI: a plain sklearn loop, same draws
            boot = [roc_auc_score(y[i], s[i]) for b in resample_indices(len(y), N_BOOT)
                    for i in b.numpy() if 0 < y[i].sum() < len(i)]  # fmt: skip
            expected = scipy_bca(s, y, boot)
            got = (float(r["boot_low"].split(";")[k]), float(r["boot_high"].split(";")[k]))
            assert got == pytest.approx(tuple(expected), abs=1e-6)
            assert r["boot_method"].split(";")[k] == "bca"
    diff = rows["clinical_lora"]
    pairs = list(zip(preds["clinical_lora"], preds["lora"]))
    assert float(diff["diff"]) == pytest.approx(
        np.mean([roc_auc_score(y, a) - roc_auc_score(y, b) for (a, y), (b, _) in pairs])
    )
    ps = [float(p) for p in diff["delong_p"].split(";")]
    assert ps == pytest.approx([brute_force_delong(a, b, y) for (a, y), (b, _) in pairs])
    assert float(diff["diff_low"]) <= float(diff["diff"]) <= float(diff["diff_high"])
    for figure in ("forest.png", "roc_mor.png", "bars.png", "report.md"):
        assert (smoke / figure).is_file()
    # The clinical adapter was built once, for both seeds of the cell that needs it.
    assert "_prereq/clinical" in (smoke / "status.json").read_text()


@pytest.mark.slow
@SMOKE_ON_ONE_WORKER
def test_rerun_skips_every_finished_run(smoke, tiny_model, notes_dir, outcomes_dir):
    stamps = {p: p.stat().st_mtime_ns for p in smoke.glob("*/seed*/metrics.json")}
    again = run_grid("smoke", smoke.parent, tiny_model, notes_dir, outcomes_dir)
    assert again.returncode == 0, again.stderr
    assert "grid smoke: 4 done" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in smoke.glob("*/seed*/metrics.json")} == stamps


@pytest.mark.slow
@SMOKE_ON_ONE_WORKER
def test_killed_grid_resumes_to_the_same_report(
    smoke, tiny_model, notes_dir, outcomes_dir, tmp_path
):
    out = tmp_path / "grids"
    # Same prerequisite (built once already): the kill lands in the downstream runs.
    shutil.copytree(smoke / "_prereq", out / "smoke" / "_prereq")
    shutil.copy(smoke / "status.json", out / "smoke" / "status.json")
    args = grid_args("smoke", out, tiny_model, notes_dir, outcomes_dir)
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL)
    second = out / "smoke" / "lora-mor" / "seed1"
    holder = lock_holder(second / ".run.lock", seconds=300)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its running cell
    proc.wait()
    # The cell's lock goes with its process, which may outlive the runner by a moment: a grid
    # resumed before that would rightly leave the cell to it ("busy").
    assert wait_until_gone(holder), f"the killed cell (pid {holder}) is still alive"
    assert (out / "smoke" / "lora-mor" / "seed0" / "metrics.json").is_file()
    assert not (second / "metrics.json").is_file()
    resumed = run_grid("smoke", out, tiny_model, notes_dir, outcomes_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "lora-mor/seed0: done" in resumed.stdout, resumed.stdout
    assert read_csv(out / "smoke" / "report.csv") == read_csv(smoke / "report.csv")


@pytest.mark.slow
def test_failed_cell_is_recorded_and_the_grid_goes_on(tmp_path, outcomes_dir):
    spec = tmp_path / "mixed.yaml"
    spec.write_text(
        f"seeds: 2\nreference: floor\nrows:\n"
        f"  floor:\n    stage: baseline\n    seeds: 1\n"
        f"    args: {{task: mor, data-dir: {outcomes_dir}}}\n"
        f"  broken:\n    configs: [experiments/downstream/missing.yaml]\n"
    )
    count = in_process("grid", str(spec), "--count")
    assert count.stdout.strip() == "3"  # floor once, broken twice
    out = tmp_path / "grids"
    one = in_process(
        "grid", str(spec), "--out", str(out), "--array", env={"SLURM_ARRAY_TASK_ID": "0"}
    )
    assert one.returncode == 0, one.stdout + one.stderr
    assert (out / "mixed" / "floor" / "seed0" / "metrics.json").is_file()
    assert not (out / "mixed" / "broken").exists()  # one job only
    every = in_process("grid", str(spec), "--out", str(out), "--n-boot", "50")
    assert every.returncode == 1
    assert "1 done" in every.stdout and "2 failed" in every.stdout
    report = (out / "mixed" / "report.md").read_text()
    assert "## Failed runs" in report and "broken/seed1" in report and "missing.yaml" in report
    rows = {r["row"]: r for r in read_csv(out / "mixed" / "report.csv")}
    assert rows["broken"]["failed"] == "broken/seed0;broken/seed1"
    assert rows["floor"]["n_seeds"] == "1"


@pytest.mark.slow
def test_rows_and_tasks_run_part_of_a_grid(tmp_path, outcomes_dir, capsys):
    """`--rows` / `--tasks` run part of a table (say, without the encoder rows); the report
    still lists every cell, the ones not run with no seeds."""
    spec = tmp_path / "part.yaml"
    spec.write_text(
        f"seeds: 2\ntasks: [mor, pmv]\nrows:\n"
        f"  floor:\n    stage: baseline\n    seeds: 1\n"
        f"    args: {{task: '{{task}}', data-dir: {outcomes_dir}}}\n"
        f"  broken:\n    configs: [experiments/downstream/missing.yaml]\n"
    )
    out = tmp_path / "g"

    def count(*extra: str) -> int:
        grid_main([str(spec), "--out", str(out), "--count", *extra])
        return int(capsys.readouterr().out)

    assert count() == 6
    assert count("--rows", "floor") == 2
    assert count("--rows", "floor,broken", "--tasks", "pmv") == 3
    cmd = ["grid", str(spec), "--out", str(out)]
    bad = in_process(*cmd, "--rows", "floor,bert")
    line = assert_one_line_error(bad.returncode, bad.stderr)
    assert line == "error: --rows: unknown bert (valid: floor, broken)"
    part = in_process(*cmd, "--rows", "floor", "--tasks", "pmv", "--n-boot", "20")
    assert part.returncode == 0, part.stdout + part.stderr
    assert "1 ok" in part.stdout and "failed" not in part.stdout
    assert (out / "part" / "floor-pmv" / "seed0" / "metrics.json").is_file()
    assert not (out / "part" / "floor-mor").exists() and not (out / "part" / "broken-pmv").exists()
    rows = {(r["row"], r["task"]): r for r in read_csv(out / "part" / "report.csv")}
    assert set(rows) == {(r, t) for r in ("floor", "broken") for t in ("mor", "pmv")}
    assert rows[("floor", "pmv")]["n_seeds"] == "1" and rows[("floor", "mor")]["n_seeds"] == "0"


def test_a_stopped_runner_stops_its_run(tmp_path):
    """SIGTERM to the runner alone (not its process group) stops the run it started: an orphan
    would go on writing a run directory whose lock the dead runner no longer holds."""
    spec = tmp_path / "one.yaml"
    spec.write_text("rows:\n  floor:\n    stage: baseline\n    args: {task: mor}\n")
    pid_file = tmp_path / "run.pid"
    run = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(120)"  # fmt: skip
    runner = (
        "import sys; import clinical_peft.studies.grid as g\n"
        f"g.command = lambda *a, **k: [sys.executable, '-c', {run!r}]\n"
        f"g.main([{str(spec)!r}, '--out', {str(tmp_path / 'g')!r}])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", runner], start_new_session=True)
    deadline = time.time() + 120
    while not pid_file.is_file() and time.time() < deadline:
        time.sleep(0.2)
    run_pid = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(run_pid, 0)
