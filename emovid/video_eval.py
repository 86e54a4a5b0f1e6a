"""Accuracy on labelled real video: run the pipeline on each clip and score the clip-level emotion.

A labels file is a CSV with columns `file,emotion` and optionally `start_s,end_s` (the labelled part of the clip;
empty: the whole clip) plus any other columns (dataset, actor...), which can select rows and group the results.
`file` is relative to the labels file's folder unless absolute. A clip's prediction is the argmax of the mean
probabilities of its main face (the track with the most analysed frames in the labelled part); a clip where no
face is found counts as wrong. Peers (e.g. the `fer` package, benchmarks/peer_clips.py) are scored from a JSON of
`{key: {"probs": [7 floats in EMOTIONS order]}}`, clips missing there counting as wrong; a clip's key is its
`file`, followed by `@start_s-end_s` when those are given (LabelledClip.key).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emovid import EMOTIONS
from emovid.errors import InputError


@dataclass(frozen=True)
class LabelledClip:
    file: str  # as written in the labels file
    path: Path
    emotion: str
    start_s: float | None = None
    end_s: float | None = None
    extra: dict[str, str] = field(default_factory=dict)  # the other columns

    @property
    def key(self) -> str:
        """The clip's name in results: its file, plus @start-end when only a part is labelled."""
        if self.start_s is None and self.end_s is None:
            return self.file
        return f"{self.file}@{'' if self.start_s is None else f'{self.start_s:g}'}-" \
               f"{'' if self.end_s is None else f'{self.end_s:g}'}"


def _time(value: str, column: str, where: str) -> float | None:
    if not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise InputError(f"{where}: {column} must be a number of seconds, got {value!r}") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InputError(f"{where}: {column} must be a finite number >= 0, got {value!r}")
    return seconds


def read_labels(path: Path | str, only: dict[str, str] | None = None) -> list[LabelledClip]:
    """The clips of a labels file (rows whose columns match every `only` item). InputError (one line, naming the
    file and line) for a missing file, missing columns, an unknown emotion or bad times."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in ("file", "emotion") if c not in columns]
            if missing:
                raise InputError(f"{path}: the labels file needs columns file,emotion (missing: {', '.join(missing)})")
            for key in only or {}:
                if key not in columns:
                    raise InputError(f"{path}: no column {key!r} to select rows by (columns: {', '.join(columns)})")
            clips = []
            for line, row in enumerate(reader, start=2):
                where = f"{path}, line {line}"
                if any(value is None for value in row.values()) or None in row:
                    raise InputError(f"{where}: expected {len(columns)} fields")
                if any(row[k] != v for k, v in (only or {}).items()):
                    continue
                emotion = row["emotion"].strip().lower()
                if emotion not in EMOTIONS:
                    raise InputError(f"{where}: unknown emotion {row['emotion']!r} (expected one of "
                                     f"{', '.join(EMOTIONS)})")
                if not row["file"].strip():
                    raise InputError(f"{where}: empty file name")
                start = _time(row.get("start_s", ""), "start_s", where)
                end = _time(row.get("end_s", ""), "end_s", where)
                if start is not None and end is not None and end <= start:
                    raise InputError(f"{where}: end_s ({end:g}) must be after start_s ({start:g})")
                clip_path = Path(row["file"])
                if not clip_path.is_absolute():
                    clip_path = path.parent / clip_path
                extra = {k: v for k, v in row.items() if k not in ("file", "emotion", "start_s", "end_s")}
                clips.append(LabelledClip(row["file"], clip_path, emotion, start, end, extra))
    except FileNotFoundError:
        raise InputError(f"{path}: labels file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 CSV file") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a valid CSV file ({exc})") from None
    if not clips:
        raise InputError(f"{path}: no labelled clips" + (" match the selection" if only else ""))
    return clips


def main_face_probs(frames: Iterable, start_s: float | None = None, end_s: float | None = None
                    ) -> tuple[np.ndarray | None, int]:
    """(mean probabilities of the track seen in the most frames within [start_s, end_s), number of frames in that
    range) from the pipeline's FrameFaces; None when no face was classified there."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    n_frames = 0
    for frame in frames:
        t = frame.timestamp_s
        if (start_s is not None and t < start_s) or (end_s is not None and t >= end_s):
            continue
        n_frames += 1
        faces = frame.faces
        for track, probs in zip(faces.track_id.tolist(), faces.probs, strict=True):
            if not np.all(np.isfinite(probs)):
                continue
            sums[track] = sums.get(track, 0) + probs.astype(np.float64)
            counts[track] = counts.get(track, 0) + 1
    if not counts:
        return None, n_frames
    main = min(counts, key=lambda k: (-counts[k], k))  # most frames; ties: the first id
    return sums[main] / counts[main], n_frames


def _clip_frames(clip: LabelledClip) -> Iterator:
    """Decoded frames of a clip, stopping after end_s (the pipeline sees the clip from its start, as a user's
    run would, so tracking and the detection schedule behave as in a real run)."""
    from emovid.video import probe, read_frames

    info = probe(clip.path)
    for frame in read_frames(clip.path, info):
        if clip.end_s is not None and frame.timestamp_s >= clip.end_s:
            return
        yield frame


def predict_clips(clips: Sequence[LabelledClip], models, options, progress=None) -> dict[str, np.ndarray | None]:
    """{clip key: main face's mean probabilities (None: no face)} for each clip, with the real pipeline
    (emovid.pipeline.analyse_frames) and `options` (AnalysisOptions)."""
    from emovid.pipeline import analyse_frames

    results: dict[str, np.ndarray | None] = {}
    for k, clip in enumerate(clips):
        analysed = (item.faces for item in analyse_frames(_clip_frames(clip), models, options)
                    if item.faces is not None)
        results[clip.key], _ = main_face_probs(analysed, clip.start_s, clip.end_s)
        if progress is not None:
            progress(k + 1, len(clips))
    return results


@dataclass(frozen=True)
class ClipScore:
    """One model's (or peer's) clip-level results on a labelled set."""

    name: str
    n_clips: int
    correct: int
    no_face: int
    confusion: np.ndarray  # int64 [7, 7]: rows true class, columns predicted (clips without a face left out)
    groups: dict[str, tuple[int, int]]  # group value -> (correct, clips)
    predictions: dict[str, str | None]  # clip key -> predicted emotion (None: no face)
    truths: tuple[str, ...]  # each clip's labelled emotion

    @property
    def accuracy(self) -> float:
        return self.correct / self.n_clips if self.n_clips else float("nan")

    def recall(self) -> dict[str, float | None]:
        """Per true class: share of its clips predicted as it (None when the set has none)."""
        support = {e: 0 for e in EMOTIONS}
        for truth in self.truths:
            support[truth] += 1
        return {e: (self.confusion[i, i] / support[e] if support[e] else None) for i, e in enumerate(EMOTIONS)}

    def to_dict(self) -> dict:
        return {"name": self.name, "clips": self.n_clips, "correct": self.correct, "accuracy": self.accuracy,
                "no_face": self.no_face, "recall": self.recall(), "confusion": self.confusion.tolist(),
                "groups": {g: {"correct": c, "clips": n, "accuracy": c / n} for g, (c, n) in self.groups.items()},
                "predictions": self.predictions}


def score_clips(name: str, clips: Sequence[LabelledClip], probs: dict[str, np.ndarray | None],
                group_by: str | None = None) -> ClipScore:
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
    groups: dict[str, list[int]] = {}
    predictions: dict[str, str | None] = {}
    correct = no_face = 0
    for clip in clips:
        p = probs.get(clip.key)
        predicted = None if p is None else EMOTIONS[int(np.argmax(p))]
        predictions[clip.key] = predicted
        hit = predicted == clip.emotion
        correct += hit
        if predicted is None:
            no_face += 1
        else:
            confusion[EMOTIONS.index(clip.emotion), EMOTIONS.index(predicted)] += 1
        if group_by is not None:
            tally = groups.setdefault(clip.extra.get(group_by, ""), [0, 0])
            tally[0] += hit
            tally[1] += 1
    return ClipScore(name, len(clips), correct, no_face, confusion, {g: (c, n) for g, (c, n) in sorted(groups.items())},
                     predictions, tuple(c.emotion for c in clips))


def read_peer(path: Path | str) -> dict[str, np.ndarray | None]:
    """A peer's clip probabilities: JSON {clip key: {"probs": [7 floats] | null}}. InputError when malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: peer results not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{file: {{\"probs\": [7 numbers]}}}}")
    out: dict[str, np.ndarray | None] = {}
    for key, value in data.items():
        probs = value.get("probs") if isinstance(value, dict) else None
        if probs is None:
            out[key] = None
            continue
        array = np.asarray(probs, np.float64) if isinstance(probs, list) else None
        if array is None or array.shape != (len(EMOTIONS),) or not np.all(np.isfinite(array)):
            raise InputError(f"{path}: {key}: probs must be {len(EMOTIONS)} finite numbers")
        out[key] = array
    return out
