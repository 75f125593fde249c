"""The progress bar under max_steps (issue 22, item 4): its total (and ETA) ends at max_steps
("8/177 ... 1:01:20" before), and no `v_num: oard` (TensorBoard's version, cut to 4 letters)."""

from __future__ import annotations

from types import SimpleNamespace

from clinical_peft.cli.callbacks import ProgressBar


def bar_on(**trainer) -> ProgressBar:
    bar = ProgressBar()
    defaults = dict(max_epochs=1, max_steps=-1, global_step=0, accumulate_grad_batches=1,
                    num_training_batches=177, progress_bar_metrics={},
                    loggers=[SimpleNamespace(version="tensorboard")])  # fmt: skip
    bar._trainer = SimpleNamespace(**{**defaults, **trainer})
    return bar


def test_total_ends_at_max_steps():
    assert bar_on(max_steps=8).total_train_batches == 8
    assert bar_on(max_steps=8, global_step=5, accumulate_grad_batches=2).total_train_batches == 6
    assert bar_on().total_train_batches == 177  # no max_steps: the epoch
    assert bar_on(max_steps=1000).total_train_batches == 177


def test_no_v_num():
    bar = bar_on()
    assert "v_num" not in bar.get_metrics(bar._trainer, None)
