"""The frame stage: detect (emovid.schedule) / track / crop / classify (emovid.emotion_schedule), frame by frame.

`analyse_frames` turns decoded frames into analysed ones, in order. The faces of several frames are classified in
one batch, in a worker thread while the next batch is detected and tracked; batches are the same and classified in
the same order either way, so threaded and sequential runs give the same results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from emovid.emotion_schedule import ClassifySchedule, HeldEmotions
from emovid.faces import Faces, Frame, FrameFaces

if TYPE_CHECKING:  # pragma: no cover
    from emovid.classify import EmotionClassifier
    from emovid.loading import Models
    from emovid.options import AnalysisOptions


class AnalysedFrame(NamedTuple):
    """One decoded frame after analysis. `faces` is None for frames not analysed (--sample-fps);
    `image` is None when the caller did not ask to keep images."""

    index: int
    timestamp_s: float
    image: np.ndarray | None
    faces: FrameFaces | None


class Sampler:
    """Picks the first frame at or after each multiple of 1/fps (variable frame rate safe); None takes all."""

    def __init__(self, fps: float | None):
        self.fps = fps
        self._next_s = 0.0

    def take(self, timestamp_s: float) -> bool:
        if self.fps is None:
            return True
        if timestamp_s + 1e-6 < self._next_s:
            return False
        self._next_s = (math.floor(timestamp_s * self.fps + 1e-6) + 1) / self.fps
        return True


class _Pending(NamedTuple):
    index: int
    timestamp_s: float
    image: np.ndarray | None  # kept when the caller keeps images
    faces: Faces | None  # None: not analysed
    crops: np.ndarray | None  # float32 [due.sum(),48,48,1], the faces due for classification (None: none due)
    due: np.ndarray | None = None  # bool [len(faces)]: classified in this frame (the others hold their track's last)


def _classify(classifier: EmotionClassifier, batch: Sequence[_Pending], held: HeldEmotions) -> list[Faces | None]:
    """The faces of a batch of frames with their probabilities: those due from one predict() call over all their
    crops, the others their track's last (`held`; batches are classified one at a time, in frame order)."""
    crops = [p.crops for p in batch if p.crops is not None]
    probs = classifier.predict(np.concatenate(crops, axis=0)) if crops else np.zeros((0, len(classifier.labels)))
    out: list[Faces | None] = []
    start = 0
    for p in batch:
        if p.faces is None or not len(p.faces):
            out.append(p.faces)
            continue
        n_due = 0 if p.crops is None else len(p.crops)
        out.append(held.apply(p.faces, p.due, probs[start:start + n_due]))
        start += n_due
    return out


def _frames_of(batch: Sequence[_Pending], classified: Sequence[Faces | None]) -> Iterator[AnalysedFrame]:
    for p, faces in zip(batch, classified, strict=True):
        yield AnalysedFrame(p.index, p.timestamp_s, p.image,
                            None if faces is None else FrameFaces(p.index, p.timestamp_s, faces))


class _BatchClassifier:
    """Classifies batches of frames in submission order. Threaded: in one worker thread, one batch at a time, while
    the caller detects and tracks the next batch (ONNX Runtime releases the GIL); `submit` yields the frames of the
    previous batch, so at most two batches are held. Sequential: in the caller's thread, yielded at once.
    The batches are the same and classified in the same order either way (held emotions included), so both give the
    same results."""

    def __init__(self, classifier: EmotionClassifier, threaded: bool):
        self.classifier = classifier
        self._held = HeldEmotions()  # only used by the one thread that classifies, batch after batch
        self._executor = None
        if threaded:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emovid-classify")
        self._in_flight = None

    def submit(self, batch: list[_Pending]) -> Iterator[AnalysedFrame]:
        if self._executor is None:
            yield from _frames_of(batch, _classify(self.classifier, batch, self._held))
            return
        previous = self._in_flight
        self._in_flight = (batch, self._executor.submit(_classify, self.classifier, batch, self._held))
        if previous is not None:
            yield from _frames_of(previous[0], previous[1].result())

    def finish(self) -> Iterator[AnalysedFrame]:
        previous, self._in_flight = self._in_flight, None
        if previous is not None:
            yield from _frames_of(previous[0], previous[1].result())

    def __enter__(self) -> _BatchClassifier:
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:  # on errors and interrupts too: the worker ends after its current batch
            self._executor.shutdown(wait=True, cancel_futures=True)


def analyse_frames(frames: Iterable[Frame], models: Models, options: AnalysisOptions, tracker=None,
                   keep_images: bool = False) -> Iterator[AnalysedFrame]:
    """Detect (emovid.schedule: the whole frame every `scan_every_s` seconds, at full size every
    `full_scan_every_s` and at half size in between, the tracked faces every `every` analysed frames) / track / crop
    / classify; yields every decoded frame, in order.

    Each tracked face is classified every `options.classify_every` analysed frames (ClassifySchedule; a new track at
    once) and holds its track's last probabilities in between (HeldEmotions, in frame order, so threaded and
    sequential runs agree). The faces of up to `options.batch_frames` analysed frames are classified in one batch
    (in a worker thread when `options.threaded`). `tracker` defaults to a new FaceTracker(max_gap_s=options.max_gap_s)
    with a re-identifier for options.effective_reid_window_s (ModelError when one is asked for and dlib is missing);
    `keep_images` passes the images on (for annotation).
    """
    from emovid.crop import crop_faces
    from emovid.cuts import CutDetector
    from emovid.schedule import FaceFinder

    if tracker is None:
        from emovid.reid import make_reidentifier
        from emovid.track import FaceTracker

        tracker = FaceTracker(max_gap_s=options.max_gap_s, reid=make_reidentifier(options.effective_reid_window_s))
    finder = FaceFinder(models.detector, tracker, every=options.every, scan_every_s=options.scan_every_s,
                        full_scan_every_s=options.full_scan_every_s, coarse_side_px=options.coarse_side_px,
                        cut_detector=CutDetector() if options.detect_cuts else None)
    sampler = Sampler(options.sample_fps)
    schedule = ClassifySchedule(options.classify_every)
    pending: list[_Pending] = []
    n_pending_analysed = 0
    with _BatchClassifier(models.classifier, options.threaded) as classifier:
        for frame in frames:
            image = frame.image if keep_images else None
            if sampler.take(frame.timestamp_s):
                faces = finder.faces_at(frame.image, frame.timestamp_s)
                due = schedule.due(faces)
                crops = (crop_faces(frame.image, faces.xyxy[due], faces.landmarks[due], options.framing,
                                    options.box_scale) if due.any() else None)
                pending.append(_Pending(frame.index, frame.timestamp_s, image, faces, crops, due))
                n_pending_analysed += 1
            else:
                pending.append(_Pending(frame.index, frame.timestamp_s, image, None, None))
            if n_pending_analysed >= options.batch_frames or len(pending) >= 4 * options.batch_frames:
                yield from classifier.submit(pending)
                pending, n_pending_analysed = [], 0
        yield from classifier.submit(pending)
        yield from classifier.finish()
