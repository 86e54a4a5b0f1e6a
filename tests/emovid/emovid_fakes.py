"""Fakes for the emovid pipeline tests: tiny hand-built ONNX emotion models, a scripted face detector,
synthetic frames. No TensorFlow, no real faces, all in milliseconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from onnx_models import CENTERS

from emovid.faces import Faces, Frame
from emovid.runtime import Device, RuntimeInfo


class FakeDetector:
    """Returns scripted faces: `script(image) -> list of (x0, y0, x1, y1)` boxes; detect_regions keeps those whose
    centre lies in a window. Counts its calls: `calls` (whole frames) and `region_calls`."""

    runtime = RuntimeInfo(provider="CPUExecutionProvider", device=Device.cpu)

    def __init__(self, script: Callable[[np.ndarray], list[tuple[float, float, float, float]]]):
        self.script = script
        self.calls = 0
        self.region_calls = 0

    def detect(self, image_bgr: np.ndarray, max_side: int | None = None) -> Faces:
        self.calls += 1
        boxes = self.script(image_bgr)
        if not boxes:
            return Faces.empty()
        return Faces.from_boxes(np.array(boxes, np.float32), np.full(len(boxes), 0.9, np.float32))

    def detect_regions(self, image_bgr: np.ndarray, windows_xyxy: np.ndarray) -> Faces:
        self.region_calls += 1
        found = self.script(image_bgr)

        def inside(box, window) -> bool:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            return window[0] <= cx < window[2] and window[1] <= cy < window[3]

        boxes = [b for b in found if any(inside(b, w) for w in np.asarray(windows_xyxy).reshape(-1, 4))]
        if not boxes:
            return Faces.empty()
        return Faces.from_boxes(np.array(boxes, np.float32), np.full(len(boxes), 0.9, np.float32))


def _marker(k: int) -> tuple[slice, slice]:
    return slice(0, 8), slice(16 * k, 16 * k + 8)


def marker_script(image_bgr: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Boxes encoded in the image itself by `synthetic_frames` (a green 8x8 block at the top edge per face), so
    the fake detector also works on frames decoded from an encoded video."""
    boxes = []
    for k, box in enumerate(FACE_BOXES):
        block = image_bgr[_marker(k)].reshape(-1, 3).astype(np.float64).mean(axis=0)
        if block[1] > 150 and block[0] < 100 and block[2] < 100:
            boxes.append(box)
    return boxes


FACE_BOXES = ((20.0, 30.0, 60.0, 70.0), (100.0, 40.0, 140.0, 80.0))


def two_people(i: int) -> tuple[int, ...]:
    """Face 0 in every frame, face 1 from frame 30 on (a `faces` argument of synthetic_frames)."""
    return (0, 1) if i >= 30 else (0,)


def synthetic_frames(n_frames: int, fps: float, faces: Callable[[int], tuple[int, ...]] = lambda i: (0,),
                     size_wh: tuple[int, int] = (160, 120)) -> Iterator[Frame]:
    """Frames at timestamps index / fps. `faces(i)` lists the FACE_BOXES shown in frame i: each is drawn as a
    50x50 square of brightness CENTERS[3 + k] (the brightness model says happy for face 0, sad for face 1)
    and marked for `marker_script`."""
    w, h = size_wh
    for i in range(n_frames):
        image = np.full((h, w, 3), 30, np.uint8)
        for k in faces(i):
            x0, y0, x1, y1 = (int(v) for v in FACE_BOXES[k])
            image[y0 - 5:y1 + 5, x0 - 5:x1 + 5] = int(CENTERS[3 + k])
            image[_marker(k)] = (0, 255, 0)
        yield Frame(index=i, timestamp_s=i / fps, image=image)


class FakeTracker:
    """Track id = 1 + the index of the FACE_BOXES entry a box equals (what a real tracker would find for
    boxes that do not move); predict() returns the last detected faces."""

    def __init__(self):
        self.last = Faces.empty()
        self.predicted = 0

    def update(self, faces: Faces, timestamp_s: float, image_bgr: np.ndarray | None = None) -> Faces:
        ids = [1 + min(range(len(FACE_BOXES)), key=lambda k: np.abs(np.array(FACE_BOXES[k]) - box).sum())
               for box in faces.xyxy]
        self.last = faces.with_track_ids(np.array(ids, np.int64))
        return self.last

    def cut(self, timestamp_s: float) -> None:
        self.last = Faces.empty()

    def predict(self, timestamp_s: float) -> Faces:
        self.predicted += 1
        return self.last

    def expected(self, timestamp_s: float) -> np.ndarray:
        return self.last.xyxy


class CountingClassifier:
    """Wraps an EmotionClassifier and records the batch size of every predict() call."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.labels, self.runtime = inner.name, inner.labels, inner.runtime
        self.batches: list[int] = []

    def describe(self) -> str:
        return self.inner.describe()

    def predict(self, crops: np.ndarray) -> np.ndarray:
        self.batches.append(len(crops))
        return self.inner.predict(crops)


def write_video(path: Path, frames, fps, audio: bool = False) -> Path:
    """Encode frames (BGR) to H.264 with PyAV at a rational fps (e.g. Fraction(30000, 1001)); optional AAC tone."""
    from fractions import Fraction

    import av

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        audio_stream = None
        if audio:
            audio_stream = container.add_stream("aac", rate=16000)
        n = 0
        for frame in frames:
            image = frame.image if isinstance(frame, Frame) else frame
            if n == 0:
                stream.height, stream.width = image.shape[:2]
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            video_frame.pts = n
            video_frame.time_base = 1 / rate
            for packet in stream.encode(video_frame):
                container.mux(packet)
            n += 1
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            samples = int(16000 * n / rate)
            t = np.arange(samples) / 16000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                                   layout="mono")
                chunk.sample_rate = 16000
                chunk.pts = start
                for packet in audio_stream.encode(chunk):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return Path(path)
