"""Shared fixtures: small synthetic MIMIC-shaped files and a tiny LLaMA built on them, once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from release_tier import RELEASE  # noqa: E402

from clinical_peft.models.tiny_llama import build_tiny_llama  # noqa: E402
from clinical_peft.synthetic import (  # noqa: E402
    write_instruction_tasks,
    write_notes,
    write_outcome_tasks,
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Multi-process runs each spawn a rank per core: under pytest-xdist they take turns on one
    # worker (`--dist loadgroup`) rather than crowd the other worker's core.
    names = [item.nodeid.removeprefix("tests/") for item in items]
    files = {name.split("::")[0] for name in names}
    whole_files = not config.option.keyword and not any("::" in arg for arg in config.args)
    for key in RELEASE if whole_files else ():  # a renamed test would silently leave the tier
        if key.split("::")[0] in files and not any(name.startswith(key) for name in names):
            raise pytest.UsageError(f"tests/release_tier.py: '{key}' names no collected test")
    for item in items:
        if item.get_closest_marker("distributed"):
            item.add_marker(pytest.mark.xdist_group("distributed"))
        if release_tier(item.nodeid):
            item.add_marker(pytest.mark.release)


def release_tier(nodeid: str) -> str | None:
    """The RELEASE entry (tests/release_tier.py) a test id falls under: `make test-slow` runs it."""
    name = nodeid.removeprefix("tests/")
    return next((key for key in RELEASE if name.startswith(key)), None)


@pytest.fixture(scope="session")
def notes_dir(tmp_path_factory) -> Path:
    """A small MIMIC-IV-Note folder: 40 discharge and 280 radiology notes."""
    folder = tmp_path_factory.mktemp("notes")
    write_notes(folder, n_discharge=40, n_radiology=280, seed=0)
    return folder


@pytest.fixture(scope="session")
def tiny_model(notes_dir, tmp_path_factory) -> Path:
    """A tiny LLaMA (hidden 64, 2 layers, 1k vocab) with a tokenizer trained on `notes_dir`."""
    out = tmp_path_factory.mktemp("models") / "tiny-llama"
    return build_tiny_llama(notes_dir, out, vocab_size=1024, hidden_size=64, intermediate_size=128)


@pytest.fixture(scope="session")
def instructions_dir(tmp_path_factory) -> Path:
    """SFT and DPO files of the five instruction tasks, 200 items each."""
    folder = tmp_path_factory.mktemp("instructions")
    write_instruction_tasks(folder, n_per_task=200, seed=0)
    return folder


@pytest.fixture
def mortality(tmp_path) -> Path:
    """The five outcome tasks' files at 60 admissions (a test's own copy: tests rewrite them)."""
    folder = tmp_path / "outcomes"
    write_outcome_tasks(folder, n_admissions=60, seed=0)
    return folder
