"""When and where the face detector looks: the whole frame now and then, the tracked faces in between.

`FaceFinder.faces_at(image, t)` is called for every analysed frame, in order, and returns its tracked faces:

- every `every`-th analysed frame is a detection frame; the others get the tracker's prediction (boxes carried at
  constant velocity, no detection);
- on a detection frame, the detector scans the whole frame when `scan_every_s` seconds passed since the last scan
  (always on the first frame; `scan_every_s` 0 scans at every detection, the exact path with `every` 1); between
  scans it looks only in windows around the faces the tracker follows (`detect_regions`: about a tenth of the
  cost of a 640x360 frame per face), so a tracked face's box is still measured at every detection frame;
- a scan is *full* (the detector's own input size) on the first frame and then every `full_scan_every_s` seconds,
  and *coarse* in between: the frame shrunk to `coarse_side_px` (emovid: half the detector's size, about a third
  of the time), which finds every face at least twice the smallest size a full scan finds. A coarse scan only
  looks for new faces: the tracked ones are measured in their windows, as on the other detection frames, and the
  coarse scan adds the faces outside those windows. With `scan_every_s` 0 or `full_scan_every_s` 0, or a frame no
  larger than `coarse_side_px`, every scan is full;
- a face that enters the picture is found by the next scan that can see it: at most `scan_every_s` (plus `every`
  frames) late, or `full_scan_every_s` for a face too small for the coarse scans;
- with a cut detector (emovid.cuts), every analysed frame is checked for a shot cut first; at a cut every track
  ends (`tracker.cut`) and the frame gets a full scan at once, and the detection frames count on from it;
- whatever looked (windows, coarse and full scans), boxes that box the same face are merged before tracking
  (emovid.track.suppress_nested), so no two tracks follow one face.

This is how trackers of the MediaPipe kind run a detector on video: look everywhere rarely, look where the faces
are often. The detector is most of a frame's cost; docs/performance.md measures what this schedule changes in the
timeline against the exact path.
"""

from __future__ import annotations

import math

import numpy as np

from emovid.cuts import CutDetector
from emovid.detect import FaceDetector, region_windows
from emovid.faces import Faces
from emovid.track import NESTED_OVERLAP, FaceTracker, suppress_nested


class FaceFinder:
    """Detection schedule + tracker for one video (see the module docstring). Counts what it ran: `scans` (of
    which `coarse_scans`), `region_passes` (detect_regions calls) and `predictions` (frames carried by the
    tracker), `rescans` (scans because a tracked face was missing from its window) and `cuts` (shot cuts found).
    `coarse_side_px` None: every scan is full; `cut_detector` None: no cut detection."""

    def __init__(self, detector: FaceDetector, tracker: FaceTracker, every: int = 1, scan_every_s: float = 0.0,
                 full_scan_every_s: float = 0.0, coarse_side_px: int | None = None,
                 cut_detector: CutDetector | None = None, nested_overlap: float = NESTED_OVERLAP):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        for name, value in (("scan_every_s", scan_every_s), ("full_scan_every_s", full_scan_every_s)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0, got {value}")
        if coarse_side_px is not None and coarse_side_px < 32:
            raise ValueError(f"coarse_side_px must be >= 32, got {coarse_side_px}")
        self.detector = detector
        self.tracker = tracker
        self.every = int(every)
        self.scan_every_s = float(scan_every_s)
        self.full_scan_every_s = float(full_scan_every_s)
        self.coarse_side_px = coarse_side_px
        self.cut_detector = cut_detector
        self.nested_overlap = float(nested_overlap)
        self.scans = self.coarse_scans = self.region_passes = self.predictions = self.cuts = self.rescans = 0
        self._analysed = 0
        self._last_scan_s: float | None = None
        self._last_full_scan_s: float | None = None

    @staticmethod
    def _due(last_s: float | None, period_s: float, timestamp_s: float) -> bool:
        return period_s == 0 or last_s is None or timestamp_s - last_s >= period_s - 1e-6

    def _scan(self, image_bgr: np.ndarray, timestamp_s: float, full: bool = False,
              tracked: tuple[Faces, np.ndarray] | None = None) -> Faces:
        """A whole-frame scan (full or coarse). `tracked`: the faces a region pass of this frame found and its
        windows, when there was one (a coarse scan then needs no second one)."""
        self._last_scan_s = timestamp_s
        self.scans += 1
        if (full or self.coarse_side_px is None or self.scan_every_s == 0
                or max(np.shape(image_bgr)[:2]) <= self.coarse_side_px  # a coarse scan would see it all anyway
                or self._due(self._last_full_scan_s, self.full_scan_every_s, timestamp_s)):
            self._last_full_scan_s = timestamp_s
            return self.detector.detect(image_bgr)
        self.coarse_scans += 1
        found = self.detector.detect(image_bgr, max_side=self.coarse_side_px)
        if tracked is None:
            windows = self._windows(image_bgr, timestamp_s)
            if windows is None:
                return found
            tracked = (self.detector.detect_regions(image_bgr, windows), windows)
        # the tracked faces measured in their windows (as precisely as at any detection frame), the coarse scan's
        # faces outside every window (new ones). A window's faces are those whose centre it holds, so no face comes
        # twice, also when detect_regions returns the whole frame's faces (many windows cost as much as the frame).
        in_windows, windows = tracked
        return _merged(in_windows[_centred_in(in_windows, windows)], found[~_centred_in(found, windows)])

    def _windows(self, image_bgr: np.ndarray, timestamp_s: float) -> np.ndarray | None:
        """Windows around the faces the tracker expects at timestamp_s (None when it follows none); counts a
        region pass."""
        expected = self.tracker.expected(timestamp_s)
        if not len(expected):
            return None
        height, width = np.asarray(image_bgr).shape[:2]
        self.region_passes += 1
        return region_windows(expected, (width, height))

    def faces_at(self, image_bgr: np.ndarray, timestamp_s: float) -> Faces:
        """The tracked faces of the next analysed frame (track ids set, probabilities not yet)."""
        if self.cut_detector is not None and self.cut_detector.is_cut(
                image_bgr, lambda: self.tracker.expected(timestamp_s)):
            self.cuts += 1
            self.tracker.cut(timestamp_s)
            self._analysed = 1  # this frame is a detection frame; the next ones count from it
            return self._track(self._scan(image_bgr, timestamp_s, full=True), image_bgr, timestamp_s)
        detection_frame = self._analysed % self.every == 0
        self._analysed += 1
        if not detection_frame:
            self.predictions += 1
            return self.tracker.predict(timestamp_s)
        if self._due(self._last_scan_s, self.scan_every_s, timestamp_s):
            return self._track(self._scan(image_bgr, timestamp_s), image_bgr, timestamp_s)
        windows = self._windows(image_bgr, timestamp_s)
        if windows is None:  # nothing followed and no scan due: nothing to look at until the next scan
            return self._track(Faces.empty(), image_bgr, timestamp_s)
        found = self.detector.detect_regions(image_bgr, windows)
        if len(found) < len(windows):  # a tracked face is not where it was expected: look everywhere now
            self.rescans += 1
            return self._track(self._scan(image_bgr, timestamp_s, tracked=(found, windows)), image_bgr, timestamp_s)
        return self._track(found, image_bgr, timestamp_s)

    def _track(self, found: Faces, image_bgr: np.ndarray, timestamp_s: float) -> Faces:
        return self.tracker.update(suppress_nested(found, self.nested_overlap), timestamp_s, image_bgr)


def _centred_in(faces: Faces, windows_xyxy: np.ndarray) -> np.ndarray:
    """bool [N]: the face's box centre lies in one of the windows (end-exclusive, as detect_regions counts it)."""
    centre = (faces.xyxy[:, None, :2] + faces.xyxy[:, None, 2:]) / 2
    windows = np.asarray(windows_xyxy)[None]
    return ((centre >= windows[..., :2]) & (centre < windows[..., 2:])).all(axis=2).any(axis=1)


def _merged(a: Faces, b: Faces) -> Faces:
    """The faces of both, sorted by x0, then y0 (the detector's order)."""
    xyxy = np.concatenate([a.xyxy, b.xyxy])
    confidence = np.concatenate([a.confidence, b.confidence])
    landmarks = np.concatenate([a.landmarks, b.landmarks])
    order = np.lexsort((xyxy[:, 1], xyxy[:, 0]))
    return Faces.from_boxes(xyxy[order], confidence[order], landmarks[order])
