"""FaceFinder: the whole frame every scan_every_s, the tracked faces in between, the tracker's prediction on the
other frames (scripted detector, real tracker)."""

from __future__ import annotations

import numpy as np
import pytest
from emovid_fakes import FakeDetector

from emovid.detect import REGION_CONTEXT, region_windows
from emovid.faces import Faces
from emovid.schedule import FaceFinder
from emovid.track import FaceTracker

FPS = 25.0
STILL = (40.0, 30.0, 80.0, 80.0)
LATE = (100.0, 40.0, 140.0, 90.0)


def frame(i: int) -> np.ndarray:
    """A 160x120 frame whose first pixel holds its index (what the scripted detector reads)."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[0, 0, 0] = i
    return image


class RecordingDetector(FakeDetector):
    """FakeDetector over frame indices that records what it was asked: ("scan", i) or ("regions", i, windows)."""

    def __init__(self, script):
        super().__init__(lambda image: script(int(image[0, 0, 0])))
        self.log: list[tuple] = []

    def detect(self, image_bgr: np.ndarray) -> Faces:
        self.log.append(("scan", int(image_bgr[0, 0, 0])))
        return super().detect(image_bgr)

    def detect_regions(self, image_bgr: np.ndarray, windows_xyxy: np.ndarray) -> Faces:
        self.log.append(("regions", int(image_bgr[0, 0, 0]), np.asarray(windows_xyxy).tolist()))
        return super().detect_regions(image_bgr, windows_xyxy)


def run(script, n: int, every: int, scan_every_s: float) -> tuple[RecordingDetector, FaceFinder, list[Faces]]:
    detector = RecordingDetector(script)
    finder = FaceFinder(detector, FaceTracker(), every=every, scan_every_s=scan_every_s)
    return detector, finder, [finder.faces_at(frame(i), i / FPS) for i in range(n)]


def test_the_exact_path_scans_every_frame():
    detector, finder, _ = run(lambda i: [STILL], 20, every=1, scan_every_s=0)
    assert [e[0] for e in detector.log] == ["scan"] * 20
    assert (finder.scans, finder.region_passes, finder.predictions) == (20, 0, 0)


def test_scans_every_scan_every_s_regions_on_the_other_detection_frames_predictions_in_between():
    detector, finder, out = run(lambda i: [STILL], 40, every=3, scan_every_s=0.5)
    # detection frames 0, 3, 6, ...; a scan on the first of them at least 0.5 s (12.5 frames) after the last scan
    assert [e[1] for e in detector.log if e[0] == "scan"] == [0, 15, 30]
    assert [e[1] for e in detector.log if e[0] == "regions"] == [3, 6, 9, 12, 18, 21, 24, 27, 33, 36, 39]
    assert (finder.scans, finder.region_passes, finder.predictions) == (3, 11, 40 - 14)
    assert all(f.track_id.tolist() == [1] for f in out)  # one face, one id throughout


def test_regions_are_windows_around_the_tracked_faces():
    detector, _, _ = run(lambda i: [STILL, LATE], 10, every=1, scan_every_s=1.0)
    expected = region_windows(np.array([STILL, LATE]), (160, 120), REGION_CONTEXT).tolist()
    assert [e[2] for e in detector.log if e[0] == "regions"] == [expected] * 9


def test_a_face_that_enters_is_found_by_the_next_scan():
    detector, _, out = run(lambda i: [STILL] + ([LATE] if i >= 5 else []), 30, every=1, scan_every_s=0.5)
    # scans at frames 0 and 13 (0.52 s): the face that entered at frame 5 is not looked for before 13
    assert [e[1] for e in detector.log if e[0] == "scan"] == [0, 13, 26]
    assert [len(f) for f in out] == [1] * 13 + [2] * 17
    assert out[13].track_id.tolist() == [1, 2] and out[-1].track_id.tolist() == [1, 2]


def test_a_face_missed_once_is_looked_for_again_and_keeps_its_id():
    detector, _, out = run(lambda i: [] if i == 4 else [STILL], 10, every=1, scan_every_s=10.0)
    assert [len(f) for f in out] == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    assert out[5].track_id.tolist() == [1]  # found again in its window at frame 5, same id
    assert [e[0] for e in detector.log] == ["scan"] + ["regions"] * 9


def test_nothing_tracked_and_no_scan_due_costs_nothing():
    detector, finder, out = run(lambda i: [STILL] if i >= 3 else [], 12, every=1, scan_every_s=0.4)
    assert [e[0] for e in detector.log] == ["scan", "scan", "regions"]  # frames 0 and 10, then 11
    assert [len(f) for f in out] == [0] * 10 + [1, 1]


def test_the_schedule_is_validated():
    with pytest.raises(ValueError, match="every"):
        FaceFinder(FakeDetector(lambda image: []), FaceTracker(), every=0)
    with pytest.raises(ValueError, match="scan_every_s"):
        FaceFinder(FakeDetector(lambda image: []), FaceTracker(), scan_every_s=-1)
