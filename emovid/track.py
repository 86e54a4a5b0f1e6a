"""Face tracking: stable ids for the faces of consecutive frames, by box overlap (IoU), position, time and, with a
re-identifier (emovid.reid), appearance.

- Every detection gets an id at once (no tentative tracks): a face that matches no live track starts a new one, or
  takes back the id of a person who left (re-identification, below). Ids start at 1, increase, and are never
  handed out twice (an id comes back only as the same person's).
- Matching runs in two passes, each greedy, best pair first (ties: lower track id, then lower detection index):
  1. IoU: only pairs with IoU >= iou_threshold match. A track's IoU with a detection is the larger of its IoU with
     the track's last box and with its constant-velocity prediction (box centre moved by the smoothed velocity,
     size kept), so faces that move, stop or come back after a short occlusion keep their ids.
  2. Distance, for the tracks and detections left over: the distance between the detection's centre and the
     track's predicted (or last) centre, in units of the larger of the two boxes' longer sides, must be at most
     `gate` plus `gate_growth` per second since the track was last seen (at most `max_gate`, so someone else two
     faces away is not taken for a face that moved), and the boxes' sides may differ by at most `max_size_ratio`;
     so a fast or blurred face whose box no longer overlaps its prediction (a detection every N frames, a sudden
     move, a first move before any velocity is known) keeps its id.
  In both passes the tracks seen at the previous update() match first; tracks coasting through a gap then share
  the detections left over, so a face that hides another keeps its own id.
- A track ends when more than `max_gap_s` seconds (timestamps, not frame counts) passed since it was last matched,
  or at a shot cut (`cut()`: every track ends, since nothing on screen continues across it). Without a
  re-identifier a face that comes back later gets a new id; with one, the ended track's appearance is kept for
  `reid.window_s` seconds and a new face that looks like it takes its id back.
- `predict(t)` returns the tracks matched by the latest `update()` with their boxes extrapolated to t, for frames
  where detection is skipped (--every N). Tracks that were not seen at the latest update (coasting through a gap)
  are kept for matching but not drawn.
- `expected(t)` returns where every live track (seen at the latest update or coasting) should be at t: where the
  detector looks between two scans of the whole frame (emovid.schedule).
- Inputs are never modified; `update()` returns the same faces (same order) with their track ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emovid.faces import Faces

if TYPE_CHECKING:  # pragma: no cover
    from emovid.reid import ReIdentifier

VELOCITY_SMOOTHING = 0.5  # weight of the newest velocity measurement in the running estimate
DEFAULT_GATE = 1.0  # distance pass: centre distance in box sides (a face that moved by its own width still matches)
DEFAULT_GATE_GROWTH = 10.0  # distance pass: box sides per second since last seen (a head turned quickly)
DEFAULT_MAX_GATE = 2.0  # distance pass: box sides, whatever the time since last seen
DEFAULT_MAX_SIZE_RATIO = 1.6  # distance pass: box sides may differ this much (a half-face box still matches)
NESTED_OVERLAP = 0.6  # a box that has this share of its area inside another boxes the same face (suppress_nested)


@dataclass
class _Track:
    track_id: int
    xyxy: np.ndarray  # float64 [4], last matched box
    velocity: np.ndarray  # float64 [2], box centre px/s
    last_s: float
    confidence: float
    landmarks_rel: np.ndarray  # float64 [5,2] last landmarks as fractions of the box (NaN when unknown)
    hits: int = 1
    first_s: float = 0.0

    def predict(self, timestamp_s: float, max_gap_s: float) -> np.ndarray:
        dt = min(max(timestamp_s - self.last_s, 0.0), max_gap_s)
        shift = self.velocity * dt
        return self.xyxy + np.array([shift[0], shift[1], shift[0], shift[1]])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N,4] with every box in b [M,4] (xyxy) -> float64 [N,M]."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area, every box in a [N,4] with every box in b [M,4] -> float64 [N,M]
    (1 when one box lies inside the other)."""
    inter, area_a, area_b = _intersections(a, b)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return inter, area_a, area_b


def suppress_nested(faces: Faces, overlap: float = NESTED_OVERLAP) -> Faces:
    """`faces` without the boxes that box a face another box already does: of two boxes whose intersection covers
    more than `overlap` of the smaller one, the one with the larger area x score stays (a half-face box inside a
    face's box, the same face found by two windows or scans). Order kept; the input is not modified."""
    if len(faces) < 2:
        return faces
    nested = overlap_of_smaller(faces.xyxy, faces.xyxy) > overlap
    np.fill_diagonal(nested, False)
    if not nested.any():
        return faces
    size = faces.size_wh.astype(np.float64)
    weight = size[:, 0] * size[:, 1] * faces.confidence.astype(np.float64)
    order = np.lexsort((np.arange(len(faces)), -weight))  # strongest first; ties: the earlier one
    keep = np.ones(len(faces), bool)
    for i in order:
        if keep[i]:
            losers = nested[i] & keep
            losers[i] = False
            keep[losers & (weight <= weight[i])] = False
    return faces[keep]


def greedy_match(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, col) pairs, best score first, each row and column at most once, only scores >= threshold.
    Ties go to the lower row, then the lower column (deterministic)."""
    rows, cols = np.nonzero(scores >= threshold)
    order = np.lexsort((cols, rows, -scores[rows, cols]))
    used_rows, used_cols, pairs = set(), set(), []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_rows and c not in used_cols:
            used_rows.add(r)
            used_cols.add(c)
            pairs.append((r, c))
    return pairs


def closeness(track_boxes: np.ndarray, boxes: np.ndarray, gate, max_size_ratio: float) -> np.ndarray:
    """float64 [N,M] in [0,1]: 1 - centre distance / (gate x the larger box's longer side); 0 beyond the gate or when
    the boxes' longer sides differ by more than max_size_ratio. `gate`: one number, or one per track box [N]."""
    a = np.asarray(track_boxes, np.float64).reshape(-1, 4)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    side_a = np.max(a[:, 2:] - a[:, :2], axis=1)
    side_b = np.max(b[:, 2:] - b[:, :2], axis=1)
    centre_a = (a[:, :2] + a[:, 2:]) / 2
    centre_b = (b[:, :2] + b[:, 2:]) / 2
    distance = np.linalg.norm(centre_a[:, None] - centre_b[None], axis=2)
    larger = np.maximum(side_a[:, None], side_b[None, :])
    smaller = np.minimum(side_a[:, None], side_b[None, :])
    reach = np.reshape(np.asarray(gate, np.float64), (-1, 1)) * larger
    score = 1 - np.divide(distance, reach, out=np.full_like(distance, np.inf), where=reach > 0)
    score[smaller * max_size_ratio < larger] = 0
    return np.clip(np.nan_to_num(score, nan=0.0), 0, 1)


class FaceTracker:
    """Assigns track ids to faces frame after frame (see the module docstring). `reid`: an
    emovid.reid.ReIdentifier (None: a face that comes back after max_gap_s, or after a cut, gets a new id)."""

    def __init__(self, max_gap_s: float = 1.0, iou_threshold: float = 0.3, gate: float = DEFAULT_GATE,
                 gate_growth: float = DEFAULT_GATE_GROWTH, max_gate: float = DEFAULT_MAX_GATE,
                 max_size_ratio: float = DEFAULT_MAX_SIZE_RATIO,
                 reid: ReIdentifier | None = None):
        if not max_gap_s >= 0:
            raise ValueError(f"max_gap_s must be >= 0, got {max_gap_s}")
        if not 0 < iou_threshold <= 1:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if not (gate >= 0 and gate_growth >= 0 and max_gate >= gate):
            raise ValueError(f"need 0 <= gate <= max_gate and gate_growth >= 0, got {gate}, {max_gate}, {gate_growth}")
        if not max_size_ratio >= 1:
            raise ValueError(f"max_size_ratio must be >= 1, got {max_size_ratio}")
        self.max_gap_s = float(max_gap_s)
        self.iou_threshold = float(iou_threshold)
        self.gate = float(gate)
        self.gate_growth = float(gate_growth)
        self.max_gate = float(max_gate)
        self.max_size_ratio = float(max_size_ratio)
        self.reid = reid
        self._tracks: list[_Track] = []
        self._visible: list[int] = []  # ids matched by the latest update(), in face order
        self._next_id = 1
        self.cuts = 0  # cut() calls
        self.reidentified = 0  # new faces that took back an ended track's id

    @property
    def ids_issued(self) -> int:
        """How many ids were handed out so far (the last one is this number)."""
        return self._next_id - 1

    def _expire(self, timestamp_s: float) -> None:
        alive = []
        for track in self._tracks:
            if self._alive(track, timestamp_s):
                alive.append(track)
            elif self.reid is not None:
                self.reid.track_ended(track.track_id, track.last_s)
        self._tracks = alive

    def cut(self, timestamp_s: float) -> None:
        """A shot cut at `timestamp_s`: every track ends (re-identification may still bring its person back)."""
        self.cuts += 1
        if self.reid is not None:
            for track in self._tracks:
                self.reid.track_ended(track.track_id, track.last_s)
        self._tracks = []
        self._visible = []

    def update(self, faces: Faces, timestamp_s: float, image_bgr: np.ndarray | None = None) -> Faces:
        """`faces` with their track ids. `image_bgr`: the frame they were found in (what a re-identifier looks at;
        ignored without one)."""
        timestamp_s = float(timestamp_s)
        self._expire(timestamp_s)
        boxes = np.asarray(faces.xyxy, np.float64)
        ids = np.full(len(faces), -1, np.int64)
        if self._tracks and len(faces):
            last = np.stack([t.xyxy for t in self._tracks])
            predicted = np.stack([t.predict(timestamp_s, self.max_gap_s) for t in self._tracks])
            overlap = np.maximum(iou_matrix(last, boxes), iou_matrix(predicted, boxes))

            def near() -> np.ndarray:  # only needed when the IoU pass leaves tracks and faces unmatched
                since_s = np.array([min(max(timestamp_s - t.last_s, 0.0), self.max_gap_s) for t in self._tracks])
                gate = np.minimum(self.gate + self.gate_growth * since_s, self.max_gate)
                return np.maximum(closeness(last, boxes, gate, self.max_size_ratio),
                                  closeness(predicted, boxes, gate, self.max_size_ratio))

            for r, c in self._match(overlap, near):
                track = self._tracks[r]
                dt = timestamp_s - track.last_s
                if dt > 0:
                    measured = (_centre(boxes[c]) - _centre(track.xyxy)) / dt
                    track.velocity = (measured if track.hits == 1 else
                                      VELOCITY_SMOOTHING * measured + (1 - VELOCITY_SMOOTHING) * track.velocity)
                track.xyxy = boxes[c].copy()
                track.last_s = timestamp_s
                track.confidence = float(faces.confidence[c])
                track.landmarks_rel = _relative(faces.landmarks[c], boxes[c])
                track.hits += 1
                ids[c] = track.track_id
        new = np.nonzero(ids < 0)[0]
        returning: dict[int, int] = {}
        if self.reid is not None and len(new) and image_bgr is not None:
            returning = self.reid.identify(image_bgr, faces[new], timestamp_s)
            self.reidentified += len(returning)
        for k, c in enumerate(new):
            track_id = returning.get(k)
            if track_id is None:
                track_id = self._next_id
                self._next_id += 1
            track = _Track(track_id, boxes[c].copy(), np.zeros(2), timestamp_s, float(faces.confidence[c]),
                           _relative(faces.landmarks[c], boxes[c]), first_s=timestamp_s)
            self._tracks.append(track)
            ids[c] = track.track_id
        if self.reid is not None and image_bgr is not None and len(faces):
            self.reid.observe(image_bgr, faces.with_track_ids(ids), timestamp_s)
        self._visible = [int(i) for i in ids]
        return faces.with_track_ids(ids)

    def _match(self, overlap: np.ndarray, near: Callable[[], np.ndarray]) -> list[tuple[int, int]]:
        """By IoU, then by distance (`near()`) for what is left; in each pass the tracks seen at the previous update()
        pick their detections first, then the ones coasting through a gap (so a face that hides another keeps its
        own id while the hidden one waits for its prediction)."""
        visible = set(self._visible)
        first = np.array([t.track_id in visible for t in self._tracks])
        pairs: list[tuple[int, int]] = []
        free_rows = np.ones(overlap.shape[0], bool)
        free_cols = np.ones(overlap.shape[1], bool)
        for pass_number, threshold in ((0, self.iou_threshold), (1, 1e-9)):
            if pass_number == 1:
                if not (free_rows.any() and free_cols.any()):
                    break
                scores = near()
            else:
                scores = overlap
            for group in (first, ~first):
                rows = np.nonzero(group & free_rows)[0]
                cols = np.nonzero(free_cols)[0]
                if not len(rows) or not len(cols):
                    continue
                for r, c in greedy_match(scores[np.ix_(rows, cols)], threshold):
                    pairs.append((int(rows[r]), int(cols[c])))
                    free_rows[rows[r]] = False
                    free_cols[cols[c]] = False
        return pairs

    def _alive(self, track: _Track, timestamp_s: float) -> bool:
        return timestamp_s - track.last_s <= self.max_gap_s + 1e-9

    def expected(self, timestamp_s: float) -> np.ndarray:
        """float32 [N,4] boxes of every live track (seen at the latest update or coasting through a gap),
        extrapolated to `timestamp_s`, by track id."""
        timestamp_s = float(timestamp_s)
        tracks = sorted((t for t in self._tracks if self._alive(t, timestamp_s)), key=lambda t: t.track_id)
        if not tracks:
            return np.zeros((0, 4), np.float32)
        return np.stack([t.predict(timestamp_s, self.max_gap_s) for t in tracks]).astype(np.float32)

    def predict(self, timestamp_s: float) -> Faces:
        """Faces of the tracks seen at the latest update(), boxes extrapolated to `timestamp_s` (by id order)."""
        timestamp_s = float(timestamp_s)
        by_id = {t.track_id: t for t in self._tracks}
        tracks = [by_id[i] for i in sorted(self._visible) if i in by_id and self._alive(by_id[i], timestamp_s)]
        if not tracks:
            return Faces.empty()
        xyxy = np.stack([t.predict(timestamp_s, self.max_gap_s) for t in tracks])
        confidence = np.array([t.confidence for t in tracks], np.float32)
        rel = np.stack([t.landmarks_rel for t in tracks])
        landmarks = xyxy[:, None, :2] + rel * (xyxy[:, None, 2:] - xyxy[:, None, :2])
        faces = Faces.from_boxes(xyxy.astype(np.float32), confidence, landmarks.astype(np.float32))
        return faces.with_track_ids(np.array([t.track_id for t in tracks], np.int64))


def _relative(landmarks: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Landmarks [5,2] as fractions of the box (moved and scaled with it when the box is predicted)."""
    size = np.maximum(xyxy[2:] - xyxy[:2], 1e-6)
    return (np.asarray(landmarks, np.float64) - xyxy[:2]) / size


def _centre(xyxy: np.ndarray) -> np.ndarray:
    return np.array([(xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2])
