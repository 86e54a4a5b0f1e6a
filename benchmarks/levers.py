"""In-process measurements for benchmarks/run_all.py: the decode/encode floor, the detector and classifier
speeds, each speed lever of the pipeline one at a time, the effect of the faster paths on the timeline, and
int8 quantisation. Every timing is the median of `runs` runs (wall time and CPU time of the whole process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Timing:
    wall_s: float  # median
    best_wall_s: float
    cpu_s: float  # median process CPU time (all threads)
    runs: int

    def fps(self, frames: int) -> float:
        return frames / self.wall_s

    def cpu_ms_per_frame(self, frames: int) -> float:
        return 1000 * self.cpu_s / frames

    @classmethod
    def of(cls, walls: list[float], cpus: list[float]) -> Timing:
        return cls(statistics.median(walls), min(walls), statistics.median(cpus), len(walls))


def time_once(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall s, process CPU s, result) of one call."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0, result


def timed(fn: Callable[[], object], runs: int) -> tuple[Timing, object]:
    walls, cpus, result = [], [], None
    for _ in range(runs):
        wall, cpu, result = time_once(fn)
        walls.append(wall)
        cpus.append(cpu)
    return Timing.of(walls, cpus), result


# --- the floor --------------------------------------------------------------------------------------------------


def decode_only(path: Path) -> int:
    """Frames decoded as emovid does (PyAV, BGR, rotation applied), nothing else."""
    from emovid.video import read_frames

    return sum(1 for _ in read_frames(path))


def decode_encode(path: Path, out_dir: Path) -> int:
    """Decode (prefetch thread) and re-encode every frame with emovid's VideoSink (libx264 as annotate writes)."""
    from emovid.stream import Prefetch
    from emovid.video import VideoSink, probe, read_frames

    info = probe(path)
    n = 0
    with Prefetch(read_frames(path, info)) as frames, VideoSink(out_dir / "floor.mp4", info) as sink:
        for frame in frames:
            sink.write(frame.image, frame.timestamp_s)
            n += 1
    return n


# --- models -----------------------------------------------------------------------------------------------------


def sample_frames(path: Path, n: int) -> list[np.ndarray]:
    from emovid.video import read_frames

    out = []
    for frame in read_frames(path):
        out.append(frame.image)
        if len(out) >= n:
            break
    return out


def detector_ms(images: list[np.ndarray], max_side: int, model_path: Path | None = None, runs: int = 3
                ) -> tuple[float, float]:
    """Median and best ms per frame of CenterFaceDetector.detect (resize, inference, decoding, NMS)."""
    from emovid.detect import CenterFaceDetector

    detector = CenterFaceDetector(device="cpu", max_side=max_side, model_path=model_path)
    detector.detect(images[0])
    times = []
    for _ in range(runs):
        for image in images:
            start = time.perf_counter()
            detector.detect(image)
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def region_ms(images: list[np.ndarray], runs: int = 3) -> tuple[float, float]:
    """Median and best ms per frame of CenterFaceDetector.detect_regions on windows around the faces that
    detect() finds in each frame (what a detection frame between two scans costs), with the auto detector."""
    from emovid.detect import load_detector, region_windows

    detector = load_detector("auto", device="cpu")
    windows = [region_windows(detector.detect(image).xyxy, (image.shape[1], image.shape[0])) for image in images]
    detector.detect_regions(images[0], windows[0])
    times = []
    for _ in range(runs):
        for image, window in zip(images, windows, strict=True):
            start = time.perf_counter()
            detector.detect_regions(image, window)
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def face_crops(path: Path, n_frames: int = 120) -> np.ndarray:
    """float32 [N,48,48,1] crops of the faces CenterFace finds in the first frames of `path`."""
    from emovid.crop import crop_faces
    from emovid.detect import CenterFaceDetector

    detector = CenterFaceDetector(device="cpu")
    crops = []
    for image in sample_frames(path, n_frames):
        faces = detector.detect(image)
        crops.append(crop_faces(image, faces.xyxy, faces.landmarks))
    return np.concatenate(crops, axis=0)


def classifier_faces_per_s(model: Path, crops: np.ndarray, batch: int, repeats: int = 5) -> float:
    """Faces per second of EmotionClassifier.predict at a batch size (median over repeats, after a warm-up)."""
    from emovid.classify import load_classifier

    classifier = load_classifier(model, "cpu")
    images = np.resize(crops, (max(batch, 64), 48, 48, 1)).astype(np.float32)
    classifier.predict(images[:batch])
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        for first in range(0, len(images), batch):
            chunk = images[first:first + batch]
            classifier.predict(chunk)
            n += len(chunk)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


# --- the pipeline's levers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def ort_session_options(**overrides) -> Iterator[None]:
    """Models loaded inside the block get these emovid.runtime.session_options arguments (e.g. spinning=True,
    intra_op_threads=1) and, with graph_optimization="basic" (or "disable"), that graph optimisation level, to
    measure ONNX Runtime settings that emovid does not expose."""
    import onnxruntime as ort

    import emovid.runtime as runtime

    original = runtime.session_options
    level = overrides.pop("graph_optimization", None)

    def patched(intra_op_threads: int = 0, spinning: bool = False):
        settings = {"intra_op_threads": intra_op_threads, "spinning": spinning, **overrides}
        options = original(**settings)
        if level is not None:
            options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                                "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[level]
        return options

    runtime.session_options = patched
    try:
        yield
    finally:
        runtime.session_options = original


@contextlib.contextmanager
def swscale_conversion(enabled: bool) -> Iterator[None]:
    """Inside the block (when enabled) decoded frames are converted to BGR by swscale (PyAV's to_ndarray), as
    before emovid.video.to_bgr converted 4:2:0 frames with OpenCV."""
    import emovid.video as video

    original = video.to_bgr
    if enabled:
        video.to_bgr = lambda frame: frame.to_ndarray(format="bgr24")
    try:
        yield
    finally:
        video.to_bgr = original


@dataclass(frozen=True)
class Config:
    name: str
    options: dict  # AnalysisOptions fields
    ort: dict = dataclasses.field(default_factory=dict)  # ort_session_options overrides
    model: Path | None = None  # another emotion model (int8)
    swscale: bool = False  # convert frames to BGR with swscale (the conversion before emovid.video.to_bgr)


def load(config: Config, model: Path):
    from emovid.pipeline import AnalysisOptions, load_models

    options = AnalysisOptions(model=str(config.model or model), device="cpu", **config.options)
    with ort_session_options(**config.ort):
        return options, load_models(options)


def run_pipeline(path: Path, config: Config, model: Path, video: bool, runs: int, out_dir: Path):
    """(Timing, Timeline, frames) of process_video on `path` with `config` (models loaded once, outside)."""
    from emovid.pipeline import NO_OUTPUTS, OutputOptions, process_video

    options, models = load(config, model)
    outputs = OutputOptions(out_dir=out_dir, video=True, csv=False, png=False, overwrite=True) if video \
        else NO_OUTPUTS
    with swscale_conversion(config.swscale):
        timing, result = timed(lambda: process_video(path, options, outputs, models=models), runs)
    return timing, result.timeline, result.frames


def dominant_changes(reference, other) -> tuple[float, float, int]:
    """(share of track-seconds whose dominant emotion differs or that exist in one timeline only, mean absolute
    probability difference over the shared track-seconds, track-seconds compared)."""
    def table(timeline) -> dict[tuple[int, int], np.ndarray]:
        return {(r.second, r.track_id): np.array(r.probs) for r in timeline.rows
                if r.track_id is not None and r.probs is not None}

    a, b = table(reference), table(other)
    keys = set(a) | set(b)
    if not keys:
        return 0.0, 0.0, 0
    changed = sum(1 for k in keys if k not in a or k not in b or int(np.argmax(a[k])) != int(np.argmax(b[k])))
    shared = [k for k in keys if k in a and k in b]
    diff = float(np.mean([np.abs(a[k] - b[k]).mean() for k in shared])) if shared else float("nan")
    return changed / len(keys), diff, len(keys)


# --- int8 quantisation ------------------------------------------------------------------------------------------


class _Reader:
    """onnxruntime.quantization CalibrationDataReader over a list of input arrays."""

    def __init__(self, name: str, batches: list[np.ndarray]):
        self._items = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover (not used by MinMax calibration)
        pass


def quantize(source: Path, out: Path, batches: list[np.ndarray], static: bool = True,
             op_types: tuple[str, ...] | None = None) -> Path:
    """int8 copy of an ONNX model: static QDQ (per-channel int8 weights, uint8 activations calibrated with
    MinMax on `batches`), or dynamic (weights only). `op_types`: quantise only these operators (e.g. Conv and
    MatMul, leaving the final Softmax in float so the output stays probabilities); None: all supported."""
    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if out.is_file():
        return out
    original = onnx.load(str(source))
    name = original.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        temp = Path(tmp) / out.name
        opset = max((o.version for o in original.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if static and opset < 13:  # per-channel QDQ needs opset 13 (CenterFace ships with an older one)
            upgraded = Path(tmp) / "opset13.onnx"
            onnx.save(onnx.version_converter.convert_version(original, 13), str(upgraded))
            source = upgraded
        if static:
            quantize_static(str(source), str(temp), _Reader(name, batches), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(op_types) if op_types else None)
        else:
            quantize_dynamic(str(source), str(temp), weight_type=QuantType.QInt8,
                             op_types_to_quantize=list(op_types) if op_types else None)
        model = onnx.load(str(temp))
        source_meta = {p.key: p.value for p in original.metadata_props}
        onnx.helper.set_model_props(model, {**source_meta, "emovid.quantized": "int8 static QDQ" if static
                                            else "int8 dynamic"})
        onnx.save(model, str(out))
    return out


def load_fer2013_private(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(float32 [N,48,48,1] images, int labels) of the PrivateTest rows of a FER2013-format CSV, or None."""
    if not path.is_file():
        return None
    import pandas as pd

    data = pd.read_csv(path, usecols=["emotion", "pixels", "Usage"])
    data = data[data["Usage"] == "PrivateTest"]
    if limit:
        data = data.iloc[:limit]
    images = np.stack([np.array(p.split(), np.float32) for p in data["pixels"]]).reshape(-1, 48, 48, 1)
    return images, data["emotion"].to_numpy()


def predict_all(model: Path, images: np.ndarray, exact: bool = False) -> np.ndarray:
    """Probabilities of `model` for `images`; exact=True runs the graph without optimisation (an int8 QDQ model
    then computes its exact quantised arithmetic, as CPUs with VNNI do, instead of this CPU's int8 kernels)."""
    from emovid.classify import load_classifier

    with ort_session_options(**({"graph_optimization": "disable"} if exact else {})):
        classifier = load_classifier(model, "cpu")
    return np.concatenate([classifier.predict(images[i:i + 256]) for i in range(0, len(images), 256)])


def detector_agreement(reference_model: Path | None, other_model: Path, images: list[np.ndarray], max_side: int
                       ) -> float:
    """Share of the reference detector's faces that the other model finds too (IoU >= 0.5), plus its extras as
    misses: matched / (reference faces + extra faces)."""
    from emovid.detect import CenterFaceDetector
    from emovid.track import greedy_match, iou_matrix

    a = CenterFaceDetector(device="cpu", max_side=max_side, model_path=reference_model)
    b = CenterFaceDetector(device="cpu", max_side=max_side, model_path=other_model)
    matched = total = 0
    for image in images:
        fa, fb = a.detect(image), b.detect(image)
        pairs = greedy_match(iou_matrix(fa.xyxy, fb.xyxy), 0.5) if len(fa) and len(fb) else []
        matched += len(pairs)
        total += len(fa) + (len(fb) - len(pairs))
    return matched / total if total else 1.0


def detector_calibration(images: list[np.ndarray], max_side: int) -> list[np.ndarray]:
    from emovid.detect import CenterFaceDetector

    detector = CenterFaceDetector(device="cpu", max_side=max_side)
    return [detector.preprocess(image)[0] for image in images]

