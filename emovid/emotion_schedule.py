"""When each tracked face's emotion is classified, and what it shows in between.

A tracked face is classified every `classify_every` analysed frames, counted from its track's first frame (so a new
face at once); in between it holds its track's most recent probabilities. The detection schedule is emovid.schedule.
"""

from __future__ import annotations

import numpy as np

from emovid import EMOTIONS
from emovid.faces import Faces


class ClassifySchedule:
    """Which faces of an analysed frame are classified: a tracked face every `every` analysed frames (counted from
    its track's first frame), an untracked one always. `due` runs in analysis order, before classification."""

    def __init__(self, every: int):
        self.every = every
        self._analysed = 0
        self._last: dict[int, int] = {}  # track id -> analysed frame number of its last classification

    def due(self, faces: Faces) -> np.ndarray:
        number, self._analysed = self._analysed, self._analysed + 1
        due = np.ones(len(faces), bool)
        if self.every == 1:
            return due
        for i, track in enumerate(faces.track_id.tolist()):
            if track < 0:
                continue
            last = self._last.get(track)
            if last is not None and number - last < self.every:
                due[i] = False
            else:
                self._last[track] = number
        return due


class HeldEmotions:
    """Each track's most recent probabilities, for its faces not classified in their frame (ClassifySchedule
    classifies a track in its first frame, so an earlier value always exists). Used in frame order."""

    def __init__(self) -> None:
        self._last: dict[int, np.ndarray] = {}

    def apply(self, faces: Faces, due: np.ndarray, due_probs: np.ndarray) -> Faces:
        """`faces` with `due_probs` for the faces due and their track's last probabilities for the others."""
        probs = np.empty((len(faces), len(EMOTIONS)), np.float32)
        probs[due] = due_probs
        for i in np.flatnonzero(~due):
            probs[i] = self._last[int(faces.track_id[i])]
        for track, row in zip(faces.track_id.tolist(), probs, strict=True):
            if track >= 0:
                self._last[track] = row
        return faces.with_probs(probs)
