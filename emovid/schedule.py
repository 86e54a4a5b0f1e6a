"""When and where the face detector looks: the whole frame now and then, the tracked faces in between.

`FaceFinder.faces_at(image, t)` is called for every analysed frame, in order, and returns its tracked faces:

- every `every`-th analysed frame is a detection frame; the others get the tracker's prediction (boxes carried at
  constant velocity, no detection);
- on a detection frame, the detector scans the whole frame when `scan_every_s` seconds passed since the last scan
  (always on the first frame; `scan_every_s` 0 scans at every detection, the exact path with `every` 1); between
  scans it looks only in windows around the faces the tracker follows (`detect_regions`: about a tenth of the
  cost of a 640x360 frame per face), so a tracked face's box is still measured at every detection frame;
- a face that enters the picture is found by the next scan, at most `scan_every_s` (plus `every` frames) late.

This is how trackers of the MediaPipe kind run a detector on video: look everywhere rarely, look where the faces
are often. The detector is most of a frame's cost; BENCHMARKS.md measures what this schedule changes in the
timeline against the exact path.
"""

from __future__ import annotations

import math

import numpy as np

from emovid.detect import FaceDetector, region_windows
from emovid.faces import Faces
from emovid.track import FaceTracker


class FaceFinder:
    """Detection schedule + tracker for one video (see the module docstring). Counts what it ran: `scans`,
    `region_passes` (detect_regions calls) and `predictions` (frames carried by the tracker)."""

    def __init__(self, detector: FaceDetector, tracker: FaceTracker, every: int = 1, scan_every_s: float = 0.0):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if not (scan_every_s >= 0 and math.isfinite(scan_every_s)):
            raise ValueError(f"scan_every_s must be >= 0, got {scan_every_s}")
        self.detector = detector
        self.tracker = tracker
        self.every = int(every)
        self.scan_every_s = float(scan_every_s)
        self.scans = self.region_passes = self.predictions = 0
        self._analysed = 0
        self._last_scan_s: float | None = None

    def _scan_due(self, timestamp_s: float) -> bool:
        return (self.scan_every_s == 0 or self._last_scan_s is None
                or timestamp_s - self._last_scan_s >= self.scan_every_s - 1e-6)

    def faces_at(self, image_bgr: np.ndarray, timestamp_s: float) -> Faces:
        """The tracked faces of the next analysed frame (track ids set, probabilities not yet)."""
        detection_frame = self._analysed % self.every == 0
        self._analysed += 1
        if not detection_frame:
            self.predictions += 1
            return self.tracker.predict(timestamp_s)
        if self._scan_due(timestamp_s):
            self._last_scan_s = timestamp_s
            self.scans += 1
            return self.tracker.update(self.detector.detect(image_bgr), timestamp_s)
        expected = self.tracker.expected(timestamp_s)
        if not len(expected):  # nothing followed and no scan due: nothing to look at until the next scan
            return self.tracker.update(Faces.empty(), timestamp_s)
        height, width = np.asarray(image_bgr).shape[:2]
        windows = region_windows(expected, (width, height))
        self.region_passes += 1
        return self.tracker.update(self.detector.detect_regions(image_bgr, windows), timestamp_s)
