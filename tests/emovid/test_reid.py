"""ReIdentifier with a fake embedder: ended tracks are recognised within the window, each at most once, closest
first; embeddings are computed only when a new face must be compared; the dlib extra is optional."""

from __future__ import annotations

import numpy as np
import pytest

from emovid.errors import ModelError
from emovid.faces import Faces
from emovid.reid import DlibEmbedder, ReIdentifier, reid_available
from emovid.track import FaceTracker


class ShadeEmbedder:
    """The mean brightness of a face's box, 0-1 (people are painted as flat shades)."""

    max_distance = 0.05

    def __init__(self):
        self.faces_embedded = 0

    def embed(self, image_bgr, xyxy):
        out = []
        for x0, y0, x1, y1 in np.asarray(xyxy, int).reshape(-1, 4):
            out.append([image_bgr[y0:y1, x0:x1].mean() / 255])
        self.faces_embedded += len(out)
        return np.array(out, np.float32)


def painted(*people) -> tuple[np.ndarray, Faces]:
    """A 200x120 frame with each (shade, x0) as a 40x50 patch, and its faces."""
    image = np.zeros((120, 200, 3), np.uint8)
    boxes = []
    for shade, x0 in people:
        image[30:80, x0:x0 + 40] = shade
        boxes.append((x0, 30, x0 + 40, 80))
    faces = Faces.from_boxes(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))
    return image, faces


def run(tracker, *people, t):
    image, faces = painted(*people)
    return tracker.update(faces, t, image).track_id.tolist()


def test_people_who_come_back_within_the_window_get_their_ids_back_each_at_most_once():
    embedder = ShadeEmbedder()
    tracker = FaceTracker(max_gap_s=0.5, reid=ReIdentifier(embedder, window_s=5.0))
    assert run(tracker, (200, 10), (100, 120), t=0.0) == [1, 2]
    assert embedder.faces_embedded == 0  # nobody left yet: nothing to compare
    assert run(tracker, t=1.0) == []  # both gone
    # both come back, in each other's place; a third person with them
    assert run(tracker, (100, 10), (200, 120), (30, 70), t=2.0) == [2, 1, 3]
    assert tracker.reidentified == 2 and tracker.ids_issued == 3


def test_after_the_window_a_returning_person_gets_a_new_id():
    tracker = FaceTracker(max_gap_s=0.5, reid=ReIdentifier(ShadeEmbedder(), window_s=2.0))
    assert run(tracker, (200, 10), t=0.0) == [1]
    assert run(tracker, t=1.0) == []
    assert run(tracker, (200, 10), t=3.1) == [2]  # ended at 0.0 s (last seen), 3.1 s > 2 s ago


def test_a_cut_away_and_back_keeps_the_speakers_id():
    tracker = FaceTracker(reid=ReIdentifier(ShadeEmbedder(), window_s=10.0))
    assert run(tracker, (200, 80), t=0.0) == [1]
    tracker.cut(2.0)
    assert run(tracker, (60, 80), t=2.0) == [2]  # the other person, same place
    tracker.cut(4.0)
    assert run(tracker, (200, 80), t=4.0) == [1]


def test_the_extra_is_optional():
    if reid_available():
        pytest.skip("dlib is installed here")
    with pytest.raises(ModelError, match="emovid\\[reid\\]"):
        DlibEmbedder()


def test_reid_window_without_the_extra_is_a_usage_error(tmp_path):
    if reid_available():
        pytest.skip("dlib is installed here")
    from typer.testing import CliRunner

    from emovid.cli import app

    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"")
    result = CliRunner().invoke(app, ["timeline", str(clip), "--reid-window", "5"])
    assert result.exit_code == 2 and "emovid[reid]" in result.output


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        ReIdentifier(ShadeEmbedder(), window_s=0)
    with pytest.raises(ValueError):
        ReIdentifier(ShadeEmbedder(), samples_per_track=0)


def test_samples_of_big_faces_are_stored_small_and_the_frame_is_not_kept():
    reid = ReIdentifier(ShadeEmbedder())
    image = np.full((1080, 1920, 3), 90, np.uint8)
    faces = Faces.from_boxes(np.array([[600, 200, 1200, 900]], np.float32), np.ones(1, np.float32))
    reid.observe(image, faces.with_track_ids(np.array([1])), 0.0)
    sample = reid._people[1].samples[0]
    assert max(sample.crop.shape[:2]) <= 2 * 160 + 2 and sample.crop.base is None
    image[:] = 0  # the caller reuses its frame: the sample is a copy
    assert sample.crop.mean() == 90
