"""Draw faces on a frame: a box coloured by track id, `#id emotion 87%`, and the 7 probabilities as bars.

Sizes (line width, font, bars) scale with the frame's shorter side, so the same drawing is readable at 320x240
and at 1920x1080. The input image is never modified: `annotate` draws on a copy.

With several faces the tags and bar panels are placed (`layout`) so that they cover neither each other nor another
face: each tag goes to the first free place of above, below, inside the top of its box; each panel to the first
free place of right, left, below, above; a panel with no free place is left out (its face keeps its tag), and past
COMPACT_AFTER faces no panels are drawn, only tags.
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
COMPACT_AFTER = 3  # more faces than this: tags only (seven bars per face would cover the picture)


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


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 pixels, end-exclusive


@dataclass(frozen=True)
class Placement:
    """Where one face's tag and bar panel go (panel None: not drawn)."""

    tag: Rect
    panel: Rect | None


def _overlap_px(a: Rect, b: Rect) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _inside(rect: Rect, w: int, h: int) -> bool:
    return rect[0] >= 0 and rect[1] >= 0 and rect[2] <= w and rect[3] <= h


def _shifted_in(rect: Rect, w: int, h: int) -> Rect:
    """The rectangle moved (not resized) to lie in the frame where it can."""
    dx = -rect[0] if rect[0] < 0 else min(0, w - rect[2])
    dy = -rect[1] if rect[1] < 0 else min(0, h - rect[3])
    return rect[0] + dx, rect[1] + dy, rect[2] + dx, rect[3] + dy


def layout(boxes: list[Rect], tag_sizes: list[tuple[int, int]], panel_size: tuple[int, int] | None,
           has_panel: list[bool], frame_wh: tuple[int, int], gap_px: int = 1) -> list[Placement]:
    """Tags and panels for faces, in face order: each at the first candidate place (moved into the frame) that
    covers no other face's box and nothing placed before it; a tag with no free place takes the place that covers
    the least, a panel with none is left out. `panel_size` None: no panels (compact)."""
    w, h = frame_wh
    placed: list[Rect] = []
    out = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        others = [b for k, b in enumerate(boxes) if k != i]
        tw, th = tag_sizes[i]
        tags = [(x0, y0 - th, x0 + tw, y0), (x0, y1 + gap_px, x0 + tw, y1 + gap_px + th), (x0, y0, x0 + tw, y0 + th)]
        tags = [_shifted_in(t, w, h) for t in tags]
        cost = [sum(_overlap_px(t, r) for r in placed + others) for t in tags]
        tag = tags[int(np.argmin(cost))]
        placed.append(tag)
        panel = None
        if panel_size is not None and has_panel[i]:
            pw, ph = panel_size
            top = min(max(y0, 0), max(h - ph, 0))
            below, above = max(y1, tag[3]) + gap_px, min(y0, tag[1]) - gap_px
            candidates = [(x1 + gap_px, top, x1 + gap_px + pw, top + ph),
                          (x0 - gap_px - pw, top, x0 - gap_px, top + ph),
                          (x0, below, x0 + pw, below + ph), (x0, above - ph, x0 + pw, above)]
            # free places first; then, moved into the frame, over its own face (a face that fills a small frame)
            candidates += [_shifted_in(c, w, h) for c in candidates]
            own = (x0, y0, x1, y1)
            for k, candidate in enumerate(candidates):
                covered = placed + others + ([own] if k < 4 else [])
                if _inside(candidate, w, h) and not any(_overlap_px(candidate, r) for r in covered):
                    panel = candidate
                    placed.append(panel)
                    break
        out.append(Placement(tag, panel))
    return out


def annotate(image_bgr: np.ndarray, faces: Faces, labels: tuple[str, ...] = EMOTIONS) -> np.ndarray:
    """A copy of `image_bgr` with every face drawn (box, label, probability bars; placed by `layout`)."""
    import cv2

    out = np.array(image_bgr, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    style = Style.for_size((w, h))
    font = cv2.FONT_HERSHEY_SIMPLEX
    initials = short_labels(labels)
    (_, text_h), baseline = cv2.getTextSize("Ag", font, style.font_scale, style.font_px)
    (init_w, _), _ = cv2.getTextSize("Su", font, style.font_scale * 0.8, style.font_px)
    row_h = max(style.bar_h, int(text_h * 0.8)) + style.pad
    panel_size = (init_w + style.bar_w + 3 * style.pad, row_h * len(labels) + style.pad)
    boxes = [tuple(int(round(float(v))) for v in np.nan_to_num(faces.xyxy[i])) for i in range(len(faces))]
    texts = [_label(int(faces.track_id[i]), faces.probs[i], labels) for i in range(len(faces))]
    tag_h = text_h + baseline + 2 * style.pad
    tag_sizes = [(cv2.getTextSize(t, font, style.font_scale, style.font_px)[0][0] + 2 * style.pad, tag_h)
                 for t in texts]
    classified = [bool(np.all(np.isfinite(faces.probs[i]))) for i in range(len(faces))]
    places = layout(boxes, tag_sizes, None if len(faces) > COMPACT_AFTER else panel_size, classified, (w, h),
                    gap_px=style.line_px)
    colors = [color_for(int(faces.track_id[i])) for i in range(len(faces))]
    for (x0, y0, x1, y1), color in zip(boxes, colors, strict=True):
        cv2.rectangle(out, (x0, y0), (x1, y1), color, style.line_px, cv2.LINE_AA)
    for i, place in enumerate(places):
        if place.panel is None:
            continue
        # Probability bars: one row per emotion, initials then a bar.
        px0, py0, px1, py1 = place.panel
        _panel(out, px0, py0, px1, py1)
        probs = faces.probs[i]
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
                cv2.rectangle(out, (bx0, bar_y0), (bx0 + filled, bar_y1), colors[i] if k == best else (220, 220, 220),
                              cv2.FILLED)
    for text, place, color in zip(texts, places, colors, strict=True):  # tags last: on top of everything
        tx0, ty0, tx1, ty1 = place.tag
        cv2.rectangle(out, (tx0, ty0), (tx1 - 1, ty1 - 1), color, cv2.FILLED)
        dark = sum(color) / 3 > 140
        cv2.putText(out, text, (tx0 + style.pad, ty0 + style.pad + text_h), font, style.font_scale,
                    (0, 0, 0) if dark else TEXT, style.font_px, cv2.LINE_AA)
    return out
