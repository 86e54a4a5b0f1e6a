"""Shot cuts: where the picture changes at once (an edit), so nothing tracked before continues after.

`CutDetector.is_cut(image)` is called for every analysed frame, in order. It shrinks the frame to a THUMB_WH
thumbnail (nearest pixels down to twice that size, then INTER_AREA, so noise and compression artefacts partly
average out at a fraction of a full-frame area resize's cost) and measures the share of its pixels that changed
(some channel by more than PIXEL_CHANGE levels of 255) since the previous thumbnail. A frame is a cut when:

- that share is at least `threshold` (a hard cut changes most of the picture in one frame; a face that enters
  changes a part of it);
- and at least `ratio` times the mean share of the recent frames (`history`): a pan, a zoom or a person walking
  through changes a lot on every frame, which raises the recent mean (so a cut in the middle of a fast pan is
  missed);
- and the previous thumbnail shifted by a few pixels does not explain it (a pan that starts at once, one thing
  moving fast on a plain background); a few dozen thumbnail comparisons, only on the frames that passed the rest;
- and, given where the tracked faces are, the picture changed there too (FACES_CHANGED of their boxes): a person
  who appears at once beside them changes the picture as much as a cut to someone else at the same place, but
  leaves the faces already there as they were.

After a cut the next `min_gap` frames are not cuts (flashes, two-frame dissolves), and nor are the first two
differences of a video (no history yet). A large thing that starts moving fast over a detailed background at once
(a person darting out of a close shot) can still pass for a cut: its tracks end, and re-identification gives the
people their ids back.

PySceneDetect's detectors are not used: fed frames one by one, ContentDetector converts each full frame to HSV
(its SceneManager, which would downscale first, wants to own the decoding), and AdaptiveDetector decides a frame's
cut only after seeing the frames that follow it, while the tracker must end its tracks and the detector scan the
whole picture on the first frame of the new shot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

THUMB_WH = (64, 36)
PIXEL_CHANGE = 24  # levels of 255: more than noise and compression move a thumbnail pixel
DEFAULT_THRESHOLD = 0.15  # share of the thumbnail changed: low enough for two people filmed in one studio
DEFAULT_RATIO = 4.0
FACES_CHANGED = 0.3  # share of the tracked faces' boxes that must change too (a new face next to them is no cut)
MAX_SHIFT_PX = (6, 3)  # thumbnail pixels (x, y): how far the picture may move in one frame and still not be a cut
DEFAULT_HISTORY = 8
DEFAULT_MIN_GAP = 3


class CutDetector:
    """Hard cuts between consecutive analysed frames (see the module docstring); counts them in `cuts`."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, ratio: float = DEFAULT_RATIO,
                 history: int = DEFAULT_HISTORY, min_gap: int = DEFAULT_MIN_GAP):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if not ratio >= 1:
            raise ValueError(f"ratio must be >= 1, got {ratio}")
        self.threshold = float(threshold)
        self.ratio = float(ratio)
        self.min_gap = int(min_gap)
        self._previous: np.ndarray | None = None
        self._before_last: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=max(1, int(history)))
        self._since_cut = self.min_gap
        self.cuts = 0
        self.last_difference = 0.0

    def difference(self, image_bgr: np.ndarray) -> float | None:
        """The share of this frame's thumbnail that changed since the previous one (None for the first frame, or
        after a change of frame size), and this frame becomes the previous one."""
        import cv2

        image = np.asarray(image_bgr)
        sampled = cv2.resize(image, (2 * THUMB_WH[0], 2 * THUMB_WH[1]), interpolation=cv2.INTER_NEAREST)
        thumb = cv2.resize(sampled, THUMB_WH, interpolation=cv2.INTER_AREA)
        previous, self._previous = self._previous, thumb
        self._before_last = previous
        if previous is None or previous.shape != thumb.shape:
            return None
        return _changed_share(thumb, previous)

    def _moved(self) -> bool:
        """True when the last thumbnail is the previous one shifted (by up to MAX_SHIFT_PX thumbnail pixels): a
        sudden pan, or one thing moving fast on a plain background, rather than a new picture."""
        previous, current = self._before_last, self._previous
        h, w = current.shape[:2]
        for dy in range(-MAX_SHIFT_PX[1], MAX_SHIFT_PX[1] + 1):
            for dx in range(-MAX_SHIFT_PX[0], MAX_SHIFT_PX[0] + 1):
                a = current[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
                b = previous[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
                if _changed_share(a, b) < self.threshold:
                    return True
        return False

    def is_cut(self, image_bgr: np.ndarray,
               faces_xyxy: np.ndarray | Callable[[], np.ndarray] | None = None) -> bool:
        """True when this frame starts a new shot. `faces_xyxy`: where the tracked faces are (frame pixels, [N,4]),
        or a function that says it (called only for frames that pass the other tests); when not empty, the picture
        must also have changed where they are, since a person who appears at once next to them (or a face-sized
        change) is not a cut while they stay as they were."""
        difference = self.difference(image_bgr)
        if difference is None:
            return False
        self.last_difference = difference
        recent = sum(self._recent) / len(self._recent) if self._recent else 0.0
        self._recent.append(difference)
        self._since_cut += 1
        if (len(self._recent) < 2 or self._since_cut <= self.min_gap  # no history yet to tell a cut from motion
                or difference < self.threshold or difference < self.ratio * recent or self._moved()
                or not self._changed_where(faces_xyxy, np.shape(image_bgr)[:2])):
            return False
        self._since_cut = 0
        self.cuts += 1
        return True

    def _changed_where(self, faces_xyxy, frame_hw: tuple[int, int]) -> bool:
        """The share of the faces' boxes (on the thumbnail) that changed is at least FACES_CHANGED (True without
        faces)."""
        if callable(faces_xyxy):
            faces_xyxy = faces_xyxy()
        boxes = np.asarray(faces_xyxy if faces_xyxy is not None else np.zeros((0, 4)), np.float64).reshape(-1, 4)
        if not len(boxes):
            return True
        changed = _changed_mask(self._previous, self._before_last)
        scale = np.array([THUMB_WH[0] / frame_hw[1], THUMB_WH[1] / frame_hw[0]] * 2)
        inside = np.zeros(changed.shape, bool)
        for x0, y0, x1, y1 in np.nan_to_num(boxes * scale):
            x0, y0 = int(np.clip(np.floor(x0), 0, THUMB_WH[0] - 1)), int(np.clip(np.floor(y0), 0, THUMB_WH[1] - 1))
            inside[y0:max(int(np.ceil(y1)), y0 + 1), x0:max(int(np.ceil(x1)), x0 + 1)] = True
        return bool(changed[inside].mean() >= FACES_CHANGED)


def _changed_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool [H,W]: some channel differs by more than PIXEL_CHANGE."""
    import cv2

    blue, green, red = cv2.split(cv2.absdiff(np.ascontiguousarray(a), np.ascontiguousarray(b)))
    return cv2.max(cv2.max(blue, green), red) > PIXEL_CHANGE


def _changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the pixels of two BGR uint8 images of one size where some channel differs by more than
    PIXEL_CHANGE (OpenCV's per-channel operations: several times faster than numpy's on images this small)."""
    import cv2

    blue, green, red = cv2.split(cv2.absdiff(np.ascontiguousarray(a), np.ascontiguousarray(b)))
    largest = cv2.max(cv2.max(blue, green), red)
    return cv2.countNonZero(cv2.threshold(largest, PIXEL_CHANGE, 255, cv2.THRESH_BINARY)[1]) / largest.size
