"""Crops: what the emotion model sees of each face, framed the way FER2013 frames its faces.

FER2013 faces are registered: upright, centred, filling the 48x48 frame from forehead to chin. Two framings:

- "aligned" (the default): a similarity warp (rotation, uniform scale, shift) that puts the detector's five
  landmarks (eyes, nose tip, mouth corners) where CenterFace finds them on FER2013's own faces (`FER_LANDMARKS_48`,
  the median over PublicTest faces, made left-right symmetric; tools/fer_landmarks.py measures them). A tilted head is
  levelled and every face gets the same size in the crop whatever its box. Faces without landmarks fall back to
  "box".
- "box": a square centred on the detector's box, `scale` x its longer side (1.0: the size of a FER2013 face).

Both give float32 [N,48,48,1] grayscale 0-255 (the model contract). Parts of a crop outside the frame repeat the
nearest edge pixel. Large faces are shrunk with area averaging before the warp, so a 300 px face does not alias.
"""

from __future__ import annotations

import numpy as np

CROP_SIZE = 48
FRAMINGS = ("aligned", "box")
DEFAULT_FRAMING = "aligned"
DEFAULT_BOX_SCALE = 1.0  # a FER2013 face fills a square of about the detector box's longer side

# Five landmarks (x, y) in a 48x48 FER2013 frame (continuous coordinates: pixel i spans [i, i+1)), symmetric about
# the frame's vertical centre line; order as the detector's: image-left eye, image-right eye, nose, mouth corners.
FER_LANDMARKS_48 = np.array([[15.15, 19.35], [32.85, 19.35], [24.0, 28.84], [17.0, 36.2], [31.0, 36.2]], np.float64)
_POINT_WEIGHTS = np.array([1.0, 1.0, 0.5, 1.0, 1.0])  # the nose tip moves most with head turns


def crop_boxes(xyxy: np.ndarray, scale: float = DEFAULT_BOX_SCALE) -> np.ndarray:
    """int64 [N,4] square crop windows (x0, y0, x1, y1), end-exclusive, in frame pixels (may leave the frame).

    Each window is centred on its box with a side of `scale` x the box's longer side (at least one pixel).
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1) * scale
    side = np.maximum(np.nan_to_num(np.round(side), nan=1.0), 1.0)
    start = np.floor(np.nan_to_num(centre - side[:, None] / 2) + 0.5)
    return np.concatenate([start, start + side[:, None]], axis=1).astype(np.int64)


def similarity_to_fer(landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """float64 [2,3] similarity transform (continuous pixel coordinates) taking five landmarks [5,2] to
    FER_LANDMARKS_48 scaled to `size`: weighted least squares over rotation, uniform scale and shift."""
    src = np.asarray(landmarks, np.float64).reshape(5, 2)
    dst = FER_LANDMARKS_48 * (size / 48.0)
    w = _POINT_WEIGHTS / _POINT_WEIGHTS.sum()
    src_mean, dst_mean = w @ src, w @ dst
    s, d = src - src_mean, dst - dst_mean
    # minimise sum w |[a -b; b a] s + t - d|^2 over a, b (scale x cos, scale x sin)
    norm = float(w @ (s ** 2).sum(1))
    if not norm > 1e-9:
        raise ValueError("landmarks are all at one point")
    a = float(w @ (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1])) / norm
    b = float(w @ (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0])) / norm
    rot = np.array([[a, -b], [b, a]])
    shift = dst_mean - rot @ src_mean
    return np.concatenate([rot, shift[:, None]], axis=1)


def _gray_window(image: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Grayscale uint8 of the frame's pixels in `window` (x0, y0, x1, y1, end-exclusive); outside the frame the
    nearest edge pixel repeats."""
    import cv2

    x0, y0, x1, y1 = window
    height, width = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx0 < cx1 and cy0 < cy1:
        gray = cv2.cvtColor(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]), cv2.COLOR_BGR2GRAY)
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):  # grey first, then the border: fewer pixels to convert
            gray = cv2.copyMakeBorder(gray, int(cy0 - y0), int(y1 - cy1), int(cx0 - x0), int(x1 - cx1),
                                      cv2.BORDER_REPLICATE)
        return gray
    rows = np.clip(np.arange(y0, y1), 0, height - 1)
    cols = np.clip(np.arange(x0, x1), 0, width - 1)
    return cv2.cvtColor(np.ascontiguousarray(image[rows[:, None], cols[None, :]]), cv2.COLOR_BGR2GRAY)


def _aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    import cv2

    matrix = similarity_to_fer(landmarks, size)
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inverse.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    gray = _gray_window(image, (int(x0), int(y0), int(x1), int(y1)))
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))  # output pixels per frame pixel
    shrink = 1.0
    if scale < 0.5:  # area-average big faces down to about twice the output size, then warp
        shrink = 2.0 * scale
        new_wh = (max(1, int(round(gray.shape[1] * shrink))), max(1, int(round(gray.shape[0] * shrink))))
        gray = cv2.resize(gray, new_wh, interpolation=cv2.INTER_AREA)
        shrink_x, shrink_y = new_wh[0] / (x1 - x0), new_wh[1] / (y1 - y0)
    else:
        shrink_x = shrink_y = 1.0
    # continuous window coordinates (u, v) = ((x - x0) * sx, (y - y0) * sy); cv2 samples pixel centres (-0.5)
    to_window = np.array([[1 / shrink_x, 0, x0], [0, 1 / shrink_y, y0], [0, 0, 1]], np.float64)
    centre_shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
    full = np.vstack([matrix, [0, 0, 1]]) @ to_window @ centre_shift
    full[:2, 2] -= 0.5
    return cv2.warpAffine(gray, full[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _box_crop(image: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    import cv2

    gray = _gray_window(image, tuple(int(v) for v in window))
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def crop_faces(image_bgr: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray | None = None,
               framing: str = DEFAULT_FRAMING, box_scale: float = DEFAULT_BOX_SCALE,
               size: int = CROP_SIZE) -> np.ndarray:
    """float32 [N,size,size,1] grayscale 0-255 crops of the faces (boxes xyxy [N,4], landmarks [N,5,2] or None).

    framing "aligned" warps faces with five finite landmarks onto FER2013's landmark positions and crops the others
    as "box" does: a square of `box_scale` x the box's longer side, centred on the box (see crop_boxes)."""
    image = np.asarray(image_bgr)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"crop_faces needs a BGR image [H,W,3], got shape {image.shape}")
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    points = (np.full((len(boxes), 5, 2), np.nan) if landmarks is None
              else np.asarray(landmarks, np.float64).reshape(-1, 5, 2))
    windows = crop_boxes(boxes, box_scale)
    out = np.empty((len(boxes), size, size, 1), np.float32)
    for i in range(len(boxes)):
        crop = None
        if framing == "aligned" and np.isfinite(points[i]).all():
            try:
                crop = _aligned_crop(image, points[i], size)
            except ValueError:  # degenerate landmarks
                crop = None
        if crop is None:
            crop = _box_crop(image, windows[i], size)
        out[i, :, :, 0] = crop
    return out
