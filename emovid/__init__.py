"""emovid: emotion recognition for video (detect, track, classify faces; annotated video and timeline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# When the face detector runs (emovid.schedule; shared by the CLI and the API): on every DEFAULT_EVERY-th analysed
# frame, on the whole frame every DEFAULT_SCAN_S seconds (a face that enters is found by the next scan) and, in
# between, only around the faces it tracks (the detector is most of a frame's cost); the tracker carries the boxes
# over the other frames. Each tracked face is classified every DEFAULT_CLASSIFY_EVERY-th analysed frame (a new face
# at once) and keeps its last emotion in between. Whole-frame scans are full (the detector's size) every
# DEFAULT_FULL_SCAN_S seconds and coarse (half that size; faces at least twice the smallest a full scan finds) in
# between. docs/performance.md measures their cost and what they change in the timeline.
DEFAULT_EVERY = 3
DEFAULT_SCAN_S = 0.5
DEFAULT_FULL_SCAN_S = 2.0
DEFAULT_CLASSIFY_EVERY = 2

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def analyze(path, **options) -> pd.DataFrame:
    """Analyse one video and return its per-second timeline as a pandas DataFrame (see emovid.pipeline)."""
    from emovid.pipeline import analyze as _analyze

    return _analyze(path, **options)
