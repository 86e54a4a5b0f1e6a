"""Draw faces on a frame: a box coloured by track id, `#id emotion 87%`, and the 7 probabilities as bars.

Sizes (line width, font, bars) scale with the frame's shorter side, so the same drawing is readable at 320x240
and at 1920x1080. The input image is never modified: `annotate` draws on a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emovid import EMOTIONS
from emovid.faces import Faces

# A fixed palette (BGR), indexed by track id: the same person keeps the same colour in every frame and run.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (75, 180, 60), (48, 130, 245), (200, 130, 0), (25, 225, 255), (180, 30, 145), (240, 240, 70),
    (230, 50, 240), (60, 245, 210), (0, 0, 230), (195, 255, 170), (128, 128, 0), (255, 190, 220),
)
UNTRACKED = (160, 160, 160)
TEXT = (255, 255, 255)
PANEL = (32, 32, 32)


def color_for(track_id: int) -> tuple[int, int, int]:
    """The BGR colour of a track id (grey for untracked faces)."""
    return UNTRACKED if track_id < 0 else PALETTE[int(track_id) % len(PALETTE)]


def short_labels(labels: tuple[str, ...] = EMOTIONS) -> tuple[str, ...]:
    """The shortest distinct prefixes, capitalised: A D F H Sa Su N for the 7 emotions."""
    out = []
    for label in labels:
        n = 1
        while n < len(label) and any(o != label and o.startswith(label[:n]) for o in labels):
            n += 1
        out.append(label[:n].capitalize())
    return tuple(out)


@dataclass(frozen=True)
class Style:
    """Drawing sizes for one frame size."""

    line_px: int
    font_scale: float
    font_px: int  # thickness of text strokes
    bar_w: int
    bar_h: int
    pad: int

    @classmethod
    def for_size(cls, size_wh: tuple[int, int]) -> Style:
        scale = max(min(size_wh) / 480.0, 0.4)
        return cls(line_px=max(1, round(2 * scale)), font_scale=max(0.36, 0.5 * scale), font_px=max(1, round(scale)),
                   bar_w=max(24, round(50 * scale)), bar_h=max(5, round(11 * scale)), pad=max(1, round(3 * scale)))


def _label(track_id: int, probs: np.ndarray, labels: tuple[str, ...]) -> str:
    tag = f"#{track_id}" if track_id >= 0 else "face"
    if not np.all(np.isfinite(probs)):
        return tag
    best = int(np.argmax(probs))
    return f"{tag} {labels[best]} {probs[best]:.0%}"


def _panel(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.65) -> None:
    """Darken a rectangle in place (clipped to the image), for text that stays readable on any background."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 > x0 and y1 > y0:
        roi = image[y0:y1, x0:x1]
        roi[:] = (roi * (1 - alpha) + np.array(PANEL) * alpha).astype(np.uint8)


def annotate(image_bgr: np.ndarray, faces: Faces, labels: tuple[str, ...] = EMOTIONS) -> np.ndarray:
    """A copy of `image_bgr` with every face drawn (box, label, probability bars)."""
    import cv2

    out = np.array(image_bgr, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    style = Style.for_size((w, h))
    font = cv2.FONT_HERSHEY_SIMPLEX
    initials = short_labels(labels)
    (_, text_h), baseline = cv2.getTextSize("Ag", font, style.font_scale, style.font_px)
    for i in range(len(faces)):
        x0, y0, x1, y1 = (int(round(float(v))) for v in np.nan_to_num(faces.xyxy[i]))
        track_id = int(faces.track_id[i])
        probs = faces.probs[i]
        color = color_for(track_id)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, style.line_px, cv2.LINE_AA)

        # `#id emotion 87%` on a filled tag above the box (inside it when the box touches the top edge).
        text = _label(track_id, probs, labels)
        (text_w, _), _ = cv2.getTextSize(text, font, style.font_scale, style.font_px)
        tag_h = text_h + baseline + 2 * style.pad
        ty0 = y0 - tag_h if y0 - tag_h >= 0 else y0
        tx0 = min(max(x0, 0), max(w - text_w - 2 * style.pad, 0))
        cv2.rectangle(out, (tx0, ty0), (tx0 + text_w + 2 * style.pad, ty0 + tag_h), color, cv2.FILLED)
        dark = sum(color) / 3 > 140
        cv2.putText(out, text, (tx0 + style.pad, ty0 + style.pad + text_h), font, style.font_scale,
                    (0, 0, 0) if dark else TEXT, style.font_px, cv2.LINE_AA)

        if not np.all(np.isfinite(probs)):
            continue
        # Probability bars: one row per emotion, initials then a bar; right of the box, else left of it.
        (init_w, _), _ = cv2.getTextSize("Su", font, style.font_scale * 0.8, style.font_px)
        row_h = max(style.bar_h, int(text_h * 0.8)) + style.pad
        panel_w = init_w + style.bar_w + 3 * style.pad
        panel_h = row_h * len(labels) + style.pad
        px0 = x1 + style.line_px if x1 + style.line_px + panel_w <= w else x0 - style.line_px - panel_w
        px0 = min(max(px0, 0), max(w - panel_w, 0))
        py0 = min(max(y0, 0), max(h - panel_h, 0))
        _panel(out, px0, py0, px0 + panel_w, py0 + panel_h)
        best = int(np.argmax(probs))
        for k, (initial, p) in enumerate(zip(initials, probs, strict=True)):
            ry = py0 + style.pad + k * row_h
            cv2.putText(out, initial, (px0 + style.pad, ry + row_h - style.pad - 1), font, style.font_scale * 0.8,
                        TEXT, style.font_px, cv2.LINE_AA)
            bx0 = px0 + 2 * style.pad + init_w
            bar_y0, bar_y1 = ry + (row_h - style.pad - style.bar_h) // 2, ry + (row_h - style.pad + style.bar_h) // 2
            cv2.rectangle(out, (bx0, bar_y0), (bx0 + style.bar_w, bar_y1), (90, 90, 90), cv2.FILLED)
            filled = int(round(float(np.clip(p, 0, 1)) * style.bar_w))
            if filled > 0:
                cv2.rectangle(out, (bx0, bar_y0), (bx0 + filled, bar_y1), color if k == best else (220, 220, 220),
                              cv2.FILLED)
    return out
