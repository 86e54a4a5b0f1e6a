"""Face tracking: stable ids for the faces of consecutive frames, by box overlap (IoU) and time.

- Every detection gets an id at once (no tentative tracks): a face that matches no live track starts a new one.
  Ids start at 1, increase, and are never reused.
- Matching is greedy on IoU, best pair first (ties: lower track id, then lower detection index); only pairs with
  IoU >= iou_threshold match. A track's IoU with a detection is the larger of its IoU with the track's last box
  and with its constant-velocity prediction (box centre moved by the smoothed velocity, size kept), so faces that
  move, stop or come back after a short occlusion keep their ids. Tracks seen at the previous update() match
  first; tracks coasting through a gap then share the detections left over, so a face that hides another keeps
  its own id.
- A track expires when more than `max_gap_s` seconds (timestamps, not frame counts) passed since it was last
  matched; a face that comes back later gets a new id.
- `predict(t)` returns the tracks matched by the latest `update()` with their boxes extrapolated to t, for frames
  where detection is skipped (--every N). Tracks that were not seen at the latest update (coasting through a gap)
  are kept for matching but not drawn.
- `expected(t)` returns where every live track (seen at the latest update or coasting) should be at t: where the
  detector looks between two scans of the whole frame (emovid.schedule).
- Inputs are never modified; `update()` returns the same faces (same order) with their track ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emovid.faces import Faces

VELOCITY_SMOOTHING = 0.5  # weight of the newest velocity measurement in the running estimate


@dataclass
class _Track:
    track_id: int
    xyxy: np.ndarray  # float64 [4], last matched box
    velocity: np.ndarray  # float64 [2], box centre px/s
    last_s: float
    confidence: float
    landmarks_rel: np.ndarray  # float64 [5,2] last landmarks as fractions of the box (NaN when unknown)
    hits: int = 1

    def predict(self, timestamp_s: float, max_gap_s: float) -> np.ndarray:
        dt = min(max(timestamp_s - self.last_s, 0.0), max_gap_s)
        shift = self.velocity * dt
        return self.xyxy + np.array([shift[0], shift[1], shift[0], shift[1]])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N,4] with every box in b [M,4] (xyxy) -> float64 [N,M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


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


class FaceTracker:
    """Assigns track ids to faces frame after frame (see the module docstring)."""

    def __init__(self, max_gap_s: float = 1.0, iou_threshold: float = 0.3):
        if not max_gap_s >= 0:
            raise ValueError(f"max_gap_s must be >= 0, got {max_gap_s}")
        if not 0 < iou_threshold <= 1:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.max_gap_s = float(max_gap_s)
        self.iou_threshold = float(iou_threshold)
        self._tracks: list[_Track] = []
        self._visible: list[int] = []  # ids matched by the latest update(), in face order
        self._next_id = 1

    @property
    def ids_issued(self) -> int:
        """How many ids were handed out so far (the last one is this number)."""
        return self._next_id - 1

    def _expire(self, timestamp_s: float) -> None:
        self._tracks = [t for t in self._tracks if self._alive(t, timestamp_s)]

    def update(self, faces: Faces, timestamp_s: float) -> Faces:
        timestamp_s = float(timestamp_s)
        self._expire(timestamp_s)
        boxes = np.asarray(faces.xyxy, np.float64)
        ids = np.full(len(faces), -1, np.int64)
        if self._tracks and len(faces):
            last = np.stack([t.xyxy for t in self._tracks])
            predicted = np.stack([t.predict(timestamp_s, self.max_gap_s) for t in self._tracks])
            scores = np.maximum(iou_matrix(last, boxes), iou_matrix(predicted, boxes))
            for r, c in self._match(scores):
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
        for c in np.nonzero(ids < 0)[0]:
            track = _Track(self._next_id, boxes[c].copy(), np.zeros(2), timestamp_s, float(faces.confidence[c]),
                           _relative(faces.landmarks[c], boxes[c]))
            self._next_id += 1
            self._tracks.append(track)
            ids[c] = track.track_id
        self._visible = [int(i) for i in ids]
        return faces.with_track_ids(ids)

    def _match(self, scores: np.ndarray) -> list[tuple[int, int]]:
        """Tracks seen at the previous update() pick their detections first, then the ones coasting through a gap
        (so a face that hides another keeps its own id while the hidden one waits for its prediction)."""
        visible = set(self._visible)
        first = np.array([t.track_id in visible for t in self._tracks])
        pairs = []
        free_cols = np.arange(scores.shape[1])
        for rows in (np.nonzero(first)[0], np.nonzero(~first)[0]):
            if not len(rows) or not len(free_cols):
                continue
            matched = greedy_match(scores[np.ix_(rows, free_cols)], self.iou_threshold)
            pairs += [(int(rows[r]), int(free_cols[c])) for r, c in matched]
            taken = {free_cols[c] for _, c in matched}
            free_cols = np.array([c for c in free_cols if c not in taken], np.int64)
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
