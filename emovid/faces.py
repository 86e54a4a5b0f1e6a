"""The records that carry faces through every stage: detect -> track -> classify -> annotate -> timeline."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from emovid import EMOTIONS

N_EMOTIONS = len(EMOTIONS)
N_LANDMARKS = 5
NO_TRACK = -1


def _frozen(array: np.ndarray, dtype, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True)
    if out.ndim != 1 + len(shape_tail) or out.shape[1:] != shape_tail:
        raise ValueError(f"Faces.{name} must have shape (N, {', '.join(map(str, shape_tail))}), got {out.shape}")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Faces:
    """Faces of one frame as parallel arrays; immutable (stages return new records, never edit inputs).

    xyxy: float32 [N,4] box corners in pixels of the displayed (rotation-applied) frame.
    confidence: float32 [N] detector score in [0,1].
    track_id: int64 [N]; NO_TRACK (-1) until the tracker assigns one.
    probs: float32 [N,7] emotion probabilities in EMOTIONS order; NaN until classified.
    landmarks: float32 [N,5,2] (x, y) pixels of the eyes, nose tip and mouth corners, image-left first in each
        pair (the detector's five points); NaN where unknown. None builds all-NaN landmarks.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    track_id: np.ndarray
    probs: np.ndarray
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        raw_xyxy = np.reshape(self.xyxy, (-1, 4)) if np.size(self.xyxy) == 0 else self.xyxy
        xyxy = _frozen(raw_xyxy, np.float32, (4,), "xyxy")
        n = len(xyxy)
        fields = {
            "xyxy": xyxy,
            "confidence": _frozen(np.reshape(self.confidence, (-1,)), np.float32, (), "confidence"),
            "track_id": _frozen(np.reshape(self.track_id, (-1,)), np.int64, (), "track_id"),
            "probs": _frozen(np.reshape(self.probs, (-1, N_EMOTIONS)), np.float32, (N_EMOTIONS,), "probs"),
            "landmarks": _frozen(np.full((n, N_LANDMARKS, 2), np.nan, np.float32) if self.landmarks is None
                                 else np.reshape(self.landmarks, (-1, N_LANDMARKS, 2)), np.float32,
                                 (N_LANDMARKS, 2), "landmarks"),
        }
        for name, value in fields.items():
            if len(value) != n:
                raise ValueError(f"Faces.{name} has {len(value)} rows, xyxy has {n}")
            object.__setattr__(self, name, value)

    @classmethod
    def empty(cls) -> Faces:
        return cls.from_boxes(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_boxes(cls, xyxy: np.ndarray, confidence: np.ndarray, landmarks: np.ndarray | None = None) -> Faces:
        n = len(xyxy)
        return cls(xyxy, confidence, np.full(n, NO_TRACK, np.int64), np.full((n, N_EMOTIONS), np.nan, np.float32),
                   landmarks)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index) -> Faces:
        """Select faces with a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Faces(self.xyxy[index], self.confidence[index], self.track_id[index], self.probs[index],
                     self.landmarks[index])

    def with_track_ids(self, track_id: np.ndarray) -> Faces:
        return dataclasses.replace(self, track_id=track_id)

    def with_probs(self, probs: np.ndarray) -> Faces:
        return dataclasses.replace(self, probs=probs)

    @property
    def size_wh(self) -> np.ndarray:
        """float32 [N,2] box width and height in pixels."""
        return self.xyxy[:, 2:] - self.xyxy[:, :2]


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: BGR uint8 [H,W,3] with rotation metadata already applied."""

    index: int  # 0-based position in decode order
    timestamp_s: float  # presentation time from the container (variable frame rate safe)
    image: np.ndarray


@dataclass(frozen=True, eq=False)
class FrameFaces:
    """A frame's timing and the faces found in it (what the timeline and per-frame CSV consume)."""

    index: int
    timestamp_s: float
    faces: Faces
