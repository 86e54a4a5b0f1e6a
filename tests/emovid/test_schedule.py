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
    """FakeDetector over frame indices that records what it was asked: ("scan", i), ("coarse", i, max_side) or
    ("regions", i, windows)."""

    def __init__(self, script):
        super().__init__(lambda image: script(int(image[0, 0, 0])))
        self.log: list[tuple] = []

    def detect(self, image_bgr: np.ndarray, max_side: int | None = None) -> Faces:
        self.log.append(("scan", int(image_bgr[0, 0, 0])) if max_side is None
                        else ("coarse", int(image_bgr[0, 0, 0]), max_side))
        return super().detect(image_bgr, max_side)

    def detect_regions(self, image_bgr: np.ndarray, windows_xyxy: np.ndarray) -> Faces:
        self.log.append(("regions", int(image_bgr[0, 0, 0]), np.asarray(windows_xyxy).tolist()))
        return super().detect_regions(image_bgr, windows_xyxy)


def run(script, n: int, every: int, scan_every_s: float, **coarse) -> tuple[RecordingDetector, FaceFinder,
                                                                          list[Faces]]:
    detector = RecordingDetector(script)
    finder = FaceFinder(detector, FaceTracker(), every=every, scan_every_s=scan_every_s, **coarse)
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
    detector, finder, out = run(lambda i: [] if i == 4 else [STILL], 10, every=1, scan_every_s=10.0)
    assert [len(f) for f in out] == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    assert out[5].track_id.tolist() == [1]  # found again in its window at frame 5, same id
    # missing from its window at frame 4: the whole frame is scanned at once, in case it moved away fast
    assert [e[0] for e in detector.log] == ["scan"] + ["regions"] * 4 + ["scan"] + ["regions"] * 5
    assert finder.rescans == 1


def test_nothing_tracked_and_no_scan_due_costs_nothing():
    detector, finder, out = run(lambda i: [STILL] if i >= 3 else [], 12, every=1, scan_every_s=0.4)
    assert [e[0] for e in detector.log] == ["scan", "scan", "regions"]  # frames 0 and 10, then 11
    assert [len(f) for f in out] == [0] * 10 + [1, 1]


def test_full_scans_every_full_scan_every_s_coarse_scans_in_between():
    detector, finder, _ = run(lambda i: [STILL], 60, every=3, scan_every_s=0.5, full_scan_every_s=1.0,
                              coarse_side_px=80)
    # scans at frames 0, 15, 30, 45 (as above); full on the first and then at least 1 s after the last full one
    assert [e for e in detector.log if e[0] != "regions"] == [("scan", 0), ("coarse", 15, 80), ("scan", 30),
                                                              ("coarse", 45, 80)]
    assert (finder.scans, finder.coarse_scans) == (4, 2)


@pytest.mark.parametrize("scan_every_s, full_scan_every_s, coarse_side_px", [(0.0, 1.0, 80), (0.5, 0.0, 80),
                                                                          (0.5, 1.0, 160)])
def test_every_scan_is_full_with_scan_every_or_full_scan_every_0_or_a_frame_no_larger_than_a_coarse_scan(
        scan_every_s, full_scan_every_s, coarse_side_px):
    detector, finder, _ = run(lambda i: [STILL], 40, every=1, scan_every_s=scan_every_s,
                              full_scan_every_s=full_scan_every_s, coarse_side_px=coarse_side_px)  # 160x120 frames
    assert finder.scans == (40 if scan_every_s == 0 else 4) and finder.coarse_scans == 0
    assert {e[0] for e in detector.log} <= {"scan", "regions"}


def test_a_face_too_small_for_coarse_scans_is_found_by_the_next_full_scan():
    class SmallFaceDetector(RecordingDetector):
        """The LATE face enters at frame 5 and is too small to be seen at a coarse scan's size."""

        def detect(self, image_bgr, max_side=None):
            found = super().detect(image_bgr, max_side)
            return found if max_side is None else Faces.from_boxes(found.xyxy[:1], found.confidence[:1])

    detector = SmallFaceDetector(lambda i: [STILL] + ([LATE] if i >= 5 else []))
    finder = FaceFinder(detector, FaceTracker(), every=1, scan_every_s=0.4, full_scan_every_s=1.2,
                        coarse_side_px=80)
    out = [finder.faces_at(frame(i), i / FPS) for i in range(40)]
    assert [e[:2] for e in detector.log if e[0] != "regions"] == [("scan", 0), ("coarse", 10), ("coarse", 20),
                                                                   ("scan", 30)]
    assert [len(f) for f in out] == [1] * 30 + [2] * 10  # not at the coarse scans of frames 10 and 20
    assert out[-1].track_id.tolist() == [1, 2]


def test_a_coarse_scan_adds_new_faces_and_the_tracked_ones_are_measured_in_their_windows():
    class CoarseDetector(RecordingDetector):
        """A coarse scan sees the STILL face 4 px off (its box is less precise at the smaller size) and LATE, which
        enters at frame 10."""

        def detect(self, image_bgr, max_side=None):
            found = super().detect(image_bgr, max_side)
            if max_side is None:
                return found
            return Faces.from_boxes(np.array([np.add(STILL, 4), LATE], np.float32), np.full(2, 0.9, np.float32))

    detector = CoarseDetector(lambda i: [STILL] + ([LATE] if i >= 10 else []))
    finder = FaceFinder(detector, FaceTracker(), every=1, scan_every_s=0.4, full_scan_every_s=2.0, coarse_side_px=80)
    out = [finder.faces_at(frame(i), i / FPS) for i in range(12)]
    assert [e[:2] for e in detector.log][9:12] == [("regions", 9), ("coarse", 10), ("regions", 10)]
    assert out[10].xyxy.tolist() == [list(STILL), list(LATE)]  # STILL from its window, LATE once, new track
    assert out[10].track_id.tolist() == [1, 2] and out[11].track_id.tolist() == [1, 2]
    assert (finder.scans, finder.coarse_scans, finder.region_passes) == (2, 1, 11)


def test_a_coarse_scan_counts_no_face_twice_when_the_windows_become_a_whole_frame_detection():
    class WholeFrameRegions(RecordingDetector):
        """detect_regions as CenterFaceDetector runs it when the windows cost as much as the frame: all faces."""

        def detect_regions(self, image_bgr, windows_xyxy):
            super().detect_regions(image_bgr, windows_xyxy)
            return super().detect(image_bgr)

    detector = WholeFrameRegions(lambda i: [STILL] + ([LATE] if i >= 10 else []))
    finder = FaceFinder(detector, FaceTracker(), every=1, scan_every_s=0.4, full_scan_every_s=2.0, coarse_side_px=80)
    out = [finder.faces_at(frame(i), i / FPS) for i in range(12)]
    assert ("coarse", 10, 80) in detector.log
    assert out[10].xyxy.tolist() == [list(STILL), list(LATE)] and out[11].track_id.tolist() == [1, 2]


def test_the_schedule_is_validated():
    with pytest.raises(ValueError, match="every"):
        FaceFinder(FakeDetector(lambda image: []), FaceTracker(), every=0)
    with pytest.raises(ValueError, match="scan_every_s"):
        FaceFinder(FakeDetector(lambda image: []), FaceTracker(), scan_every_s=-1)
    with pytest.raises(ValueError, match="full_scan_every_s"):
        FaceFinder(FakeDetector(lambda image: []), FaceTracker(), full_scan_every_s=float("nan"))
    with pytest.raises(ValueError, match="coarse_side_px"):
        FaceFinder(FakeDetector(lambda image: []), FaceTracker(), coarse_side_px=16)


class ScriptedCuts:
    """A cut detector that reports cuts at the given frame indices (read from the frame, as RecordingDetector)."""

    def __init__(self, *frames: int):
        self.frames = set(frames)

    def is_cut(self, image_bgr: np.ndarray, faces_xyxy=None) -> bool:
        return int(image_bgr[0, 0, 0]) in self.frames


def test_at_a_cut_tracks_end_and_the_frame_gets_a_full_scan_at_once():
    detector = RecordingDetector(lambda i: [STILL])
    finder = FaceFinder(detector, FaceTracker(), every=3, scan_every_s=0.5, full_scan_every_s=2.0, coarse_side_px=80,
                        cut_detector=ScriptedCuts(7))
    out = [finder.faces_at(frame(i), i / FPS) for i in range(12)]
    # frame 7 is neither a detection frame (every 3) nor due a scan (0.5 s): the cut makes it a full scan
    assert [e[:2] for e in detector.log] == [("scan", 0), ("regions", 3), ("regions", 6), ("scan", 7),
                                             ("regions", 10)]
    assert [f.track_id.tolist() for f in out] == [[1]] * 7 + [[2]] * 5  # same place, but a new shot: a new track
    assert finder.cuts == 1


def test_a_box_inside_another_is_not_tracked():
    half = (STILL[0] + 2, STILL[1] + 5, STILL[0] + 18, STILL[3] - 5)  # the left part of the same face
    _, finder, out = run(lambda i: [STILL, half], 10, every=1, scan_every_s=0.2)
    assert all(f.xyxy.tolist() == [list(STILL)] and f.track_id.tolist() == [1] for f in out)
    assert finder.tracker.ids_issued == 1


def test_a_face_that_leaves_its_window_is_found_by_a_coarse_scan_on_the_same_frame():
    far = (100.0, 40.0, 140.0, 90.0)  # jumped 60 px: its centre is out of its window, within the tracker's gate
    detector, finder, out = run(lambda i: [STILL] if i < 5 else [far], 8, every=1, scan_every_s=10.0,
                                full_scan_every_s=10.0, coarse_side_px=80)
    assert [e[:2] for e in detector.log][4:7] == [("regions", 4), ("regions", 5), ("coarse", 5)]
    assert out[5].xyxy.tolist() == [list(far)] and out[5].track_id.tolist() == [1]
    assert finder.rescans == 1 and [e[0] for e in detector.log][7:] == ["regions"] * 2  # found: no more scans
