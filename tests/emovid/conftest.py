"""Fixtures of the frame-stage and pipeline tests (a test file's own fixture of the same name takes precedence).

- `classifier`: the tiny brightness ONNX model (emotion = how bright the face is), on the CPU.
- `models`: the scripted FakeDetector with that classifier, counting its calls.
"""

from __future__ import annotations

import pytest
from emovid_fakes import CountingClassifier, FakeDetector, marker_script
from onnx_models import brightness_model

from emovid.classify import load_classifier
from emovid.loading import Models


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return load_classifier(brightness_model(tmp_path_factory.mktemp("m") / "bright.onnx"), device="cpu")


@pytest.fixture
def models(classifier):
    return Models(detector=FakeDetector(marker_script), classifier=CountingClassifier(classifier))
