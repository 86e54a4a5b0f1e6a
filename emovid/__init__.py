"""emovid: emotion recognition for video (detect, track, classify faces; annotated video and timeline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def analyze(path, **options) -> pd.DataFrame:
    """Analyse one video and return its per-second timeline as a pandas DataFrame (see emovid.pipeline)."""
    from emovid.pipeline import analyze as _analyze

    return _analyze(path, **options)
