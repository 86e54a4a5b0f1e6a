"""Drawing faces: a copy of the frame, colours by track id, label text, bars, sizes that scale with the frame."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_models import one_hot

from emovid.annotate import PALETTE, Style, _label, annotate, color_for, short_labels
from emovid.faces import Faces


def make_faces(boxes, track_ids, probs=None) -> Faces:
    n = len(boxes)
    probs = np.array(probs if probs is not None else [one_hot(3, 0.87)] * n, np.float32)
    return Faces(np.array(boxes, np.float32), np.full(n, 0.9, np.float32), np.array(track_ids, np.int64), probs)


def frame(w: int, h: int) -> np.ndarray:
    return np.full((h, w, 3), 100, np.uint8)


def has_color(image: np.ndarray, color) -> bool:
    return bool(np.any(np.all(image == np.array(color, np.uint8), axis=-1)))


def test_annotate_draws_on_a_copy():
    image = frame(320, 240)
    before = image.copy()
    out = annotate(image, make_faces([[100, 80, 160, 150]], [0]))
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)


def test_no_faces_leaves_the_frame_as_it_is():
    image = frame(160, 120)
    np.testing.assert_array_equal(annotate(image, Faces.empty()), image)


def test_boxes_are_coloured_by_track_id():
    out = annotate(frame(640, 360), make_faces([[50, 60, 150, 180], [300, 60, 400, 180]], [1, 2]))
    assert has_color(out, color_for(1)) and has_color(out, color_for(2))
    assert not has_color(out, color_for(3))
    assert color_for(1) != color_for(2) and color_for(1) == color_for(1 + len(PALETTE))
    assert color_for(-1) not in PALETTE


def test_label_text_and_initials():
    assert _label(3, np.array(one_hot(3, 0.87)), ("angry", "disgust", "fear", "happy", "sad", "surprise",
                                                   "neutral")) == "#3 happy 87%"
    assert _label(-1, np.full(7, np.nan), ()) == "face"
    assert short_labels() == ("A", "D", "F", "H", "Sa", "Su", "N")


def test_sizes_scale_with_the_frame():
    small, large = Style.for_size((320, 240)), Style.for_size((1920, 1080))
    assert large.line_px > small.line_px and large.font_scale > 2 * small.font_scale
    assert large.bar_w > small.bar_w and large.bar_h > small.bar_h
    assert small.font_scale >= 0.36 and small.bar_h >= 5  # still readable at 320x240


@pytest.mark.parametrize("size_wh", [(320, 240), (1920, 1080), (160, 120)])
def test_faces_at_the_edges_and_unclassified_faces_draw_without_errors(size_wh):
    w, h = size_wh
    boxes = [[-20, -20, 40, 40], [w - 30, h - 30, w + 20, h + 20], [w / 3, h / 3, w / 2, h / 2]]
    probs = [one_hot(0), np.full(7, np.nan), one_hot(6)]
    out = annotate(frame(w, h), make_faces(boxes, [0, 5, -1], probs))
    assert out.shape == (h, w, 3)
    assert has_color(out, color_for(0)) and has_color(out, color_for(5))


def test_bars_are_drawn_only_for_classified_faces():
    image = frame(640, 480)
    box = [[100, 100, 200, 220]]
    with_bars = annotate(image, make_faces(box, [4]))
    without = annotate(image, make_faces(box, [4], [np.full(7, np.nan)]))
    right_of_box = (slice(100, 230), slice(205, 320))
    assert not np.array_equal(with_bars[right_of_box], image[right_of_box])
    np.testing.assert_array_equal(without[right_of_box], image[right_of_box])
