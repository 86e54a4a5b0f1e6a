"""Fakes for the emovid pipeline tests: tiny hand-built ONNX emotion models, a scripted face detector,
synthetic frames. No TensorFlow, no real faces, all in milliseconds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from emovid import EMOTIONS
from emovid.faces import Faces, Frame
from emovid.runtime import Device, RuntimeInfo

CONTRACT = {
    "emovid.contract": "1",
    "emovid.labels": json.dumps(list(EMOTIONS)),
    "emovid.input": "float32 [N,48,48,1] grayscale 0-255",
    "emovid.output": "float32 [N,7] probabilities",
}
# brightness model: class k for a crop whose mean brightness is near CENTERS[k]
CENTERS = 18.0 + 36.0 * np.arange(7)
TEMPERATURE = 36.0**2


def _save(graph, path: Path, metadata: dict[str, str] | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 10
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def _io(input_shape=("N", 48, 48, 1), output_shape=("N", 7)):
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, list(input_shape))
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, list(output_shape))
    return image, probs


def brightness_model(path: Path, metadata: dict[str, str] | None = None) -> Path:
    """probs = softmax(-(mean brightness - CENTERS)^2 / TEMPERATURE)."""
    image, probs = _io()
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape_n1"], ["mean"]),
        helper.make_node("Sub", ["mean", "centers"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["sq"]),
        helper.make_node("Mul", ["sq", "scale"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [
        helper.make_tensor("shape_n1", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("centers", TensorProto.FLOAT, [7], CENTERS.tolist()),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [-1.0 / TEMPERATURE]),
    ]
    graph = helper.make_graph(nodes, "brightness", [image], [probs], inits)
    return _save(graph, path, {**CONTRACT, "emovid.arch": "brightness", **(metadata or {})})


def brightness_reference(crops: np.ndarray) -> np.ndarray:
    mean = crops.reshape(len(crops), -1).astype(np.float64).mean(axis=1)
    logits = -((mean[:, None] - CENTERS[None, :]) ** 2) / TEMPERATURE
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def constant_model(path: Path, probabilities, metadata: dict[str, str] | None = None, *,
                   input_shape=("N", 48, 48, 1), output_shape=("N", 7), contract: bool = True) -> Path:
    """The same output row for every image (any shapes, for contract tests)."""
    probabilities = [float(p) for p in probabilities]
    image, probs = _io(input_shape, output_shape)
    nodes = [
        helper.make_node("Shape", ["image"], ["shape"], start=0, end=1),
        helper.make_node("Concat", ["shape", "width"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["q", "out_shape"], ["probs"]),
    ]
    inits = [
        helper.make_tensor("width", TensorProto.INT64, [1], [len(probabilities)]),
        helper.make_tensor("q", TensorProto.FLOAT, [len(probabilities)], probabilities),
    ]
    graph = helper.make_graph(nodes, "constant", [image], [probs], inits)
    return _save(graph, path, {**(CONTRACT if contract else {}), "emovid.arch": "constant", **(metadata or {})})


def one_hot(k: int, high: float = 0.94) -> list[float]:
    low = (1 - high) / 6
    return [high if i == k else low for i in range(7)]


class FakeDetector:
    """Returns scripted faces: `script(frame_index, image) -> list of (x0, y0, x1, y1)` boxes."""

    runtime = RuntimeInfo(provider="CPUExecutionProvider", device=Device.cpu)

    def __init__(self, script: Callable[[np.ndarray], list[tuple[float, float, float, float]]]):
        self.script = script
        self.calls = 0

    def detect(self, image_bgr: np.ndarray) -> Faces:
        self.calls += 1
        boxes = self.script(image_bgr)
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

    def update(self, faces: Faces, timestamp_s: float) -> Faces:
        ids = [1 + min(range(len(FACE_BOXES)), key=lambda k: np.abs(np.array(FACE_BOXES[k]) - box).sum())
               for box in faces.xyxy]
        self.last = faces.with_track_ids(np.array(ids, np.int64))
        return self.last

    def predict(self, timestamp_s: float) -> Faces:
        self.predicted += 1
        return self.last


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
