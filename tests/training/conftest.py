"""Fixtures for the training tests: tiny FER2013-format files and tiny trained runs, all in tmp folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fer_tiny import TINY_MOBILENET, TINY_SCRATCH, tiny_arrays, train_tiny, write_fer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_fer(tmp_path_factory) -> Path:
    """A FER2013-format .csv with 42 Training, 21 PublicTest and 21 PrivateTest rows (3 per class each)."""
    labels, usages, images = tiny_arrays()
    return write_fer(tmp_path_factory.mktemp("fer") / "tiny_fer2013.csv", labels, usages, images)


@pytest.fixture
def fer_writer(tmp_path) -> Callable[..., Path]:
    def write(name: str, labels, usages, images) -> Path:
        return write_fer(tmp_path / name, labels, usages, images)

    return write


@pytest.fixture(scope="session")
def scratch_run(tmp_path_factory, tiny_fer) -> Path:
    """A tiny scratch CNN trained for 2 epochs on the tiny file (a run folder like training writes)."""
    out = tmp_path_factory.mktemp("runs") / "scratch"
    train_tiny("scratch", out, tiny_fer, epochs=2, model_kwargs=TINY_SCRATCH)
    return out


@pytest.fixture(scope="session")
def mobilenet_run(tmp_path_factory, tiny_fer) -> Path:
    """A narrow MobileNetV2 (alpha 0.35, 96x96 inside) after one tiny epoch (3 training steps)."""
    out = tmp_path_factory.mktemp("runs") / "mobilenetv2"
    train_tiny("mobilenetv2", out, tiny_fer, learning_rate=3e-3, model_kwargs=TINY_MOBILENET)
    return out
