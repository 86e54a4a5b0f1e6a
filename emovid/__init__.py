"""emovid: emotion recognition for video (detect, track, classify faces; annotated video and timeline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The face detector runs on every 3rd analysed frame by default and the tracker carries the boxes in between (every
# frame is still classified): the detector is most of a frame's cost, and on the benchmark clips this changed the
# dominant emotion of 1.7 % of track-seconds (BENCHMARKS.md). 1 is the exact path. Shared by the CLI and the API.
DEFAULT_EVERY = 3
# Between two scans of the whole frame (every DEFAULT_SCAN_S seconds; a face that enters is found by the next one),
# the detector looks only around the faces it tracks (emovid.schedule). 0 scans at every detection.
DEFAULT_SCAN_S = 0.5

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def analyze(path, **options) -> pd.DataFrame:
    """Analyse one video and return its per-second timeline as a pandas DataFrame (see emovid.pipeline)."""
    from emovid.pipeline import analyze as _analyze

    return _analyze(path, **options)
