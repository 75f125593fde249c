"""The user's experiment tracker beside the CSV logger: TensorBoard by default, MLflow when named."""

from __future__ import annotations

import json

import pytest
import yaml

from clinical_peft.cli.stage import run_stage

pytestmark = pytest.mark.slow


def test_a_run_shows_up_in_tensorboard_and_mlflow(notes_dir, tiny_model, tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    extra = tmp_path / "mlflow.yaml"
    extra.write_text(yaml.safe_dump({"trainer": {"logger": [{
        "class_path": "lightning.pytorch.loggers.MLFlowLogger",
        "init_args": {"experiment_name": "clinical-peft-test", "tracking_uri": store},
    }]}}))  # fmt: skip
    run = tmp_path / "run"
    run_stage("pretrain", [
        "-c", "experiments/pretrain/lora.yaml", "-c", str(extra),
        "--trainer", "experiments/trainer/cpu.yaml", "--model.base_model", str(tiny_model),
        "--data.data_dir", str(notes_dir), "--data.cache_dir", str(tmp_path / "cache"),
        "--data.block_size", "64", "--data.max_notes", "60", "--trainer.max_steps", "3",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--run_dir", str(run),
    ])  # fmt: skip
    saved = json.loads((run / "metrics.json").read_text())
    assert (run / "metrics.csv").is_file()  # the CSV logger stays first

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "train/loss" in scalars and "final/val/ppl" in scalars
    assert events.Scalars("final/val/ppl")[-1].value == pytest.approx(saved["val/ppl"], rel=1e-5)

    import mlflow

    client = mlflow.tracking.MlflowClient(store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "clinical-peft-test"]
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.metrics["final/val/ppl"] == pytest.approx(saved["val/ppl"], rel=1e-5)
    assert "train/loss" in logged.data.metrics
    assert logged.data.params["base_model"] == str(tiny_model)  # the run's hyperparameters
    assert logged.info.status == "FINISHED"
