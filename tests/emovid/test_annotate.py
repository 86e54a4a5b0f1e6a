"""Drawing faces: a copy of the frame, colours by track id, label text, bars, sizes that scale with the frame."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_models import one_hot

from emovid.annotate import COMPACT_AFTER, PALETTE, Style, _label, annotate, color_for, layout, short_labels
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


def _overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


@pytest.mark.parametrize("n_faces", [2, 3])
def test_tags_and_panels_cover_neither_each_other_nor_other_faces(n_faces):
    """Faces side by side with little room between them (where tags and panels used to be drawn over each other)."""
    boxes = [(40 + 150 * k, 120, 140 + 150 * k, 240) for k in range(n_faces)]
    places = layout(boxes, [(110, 20)] * n_faces, (70, 90), [True] * n_faces, (640, 360))
    rects = [r for p in places for r in (p.tag, p.panel) if r is not None]
    assert all(not _overlaps(a, b) for i, a in enumerate(rects) for b in rects[i + 1:])
    for i, place in enumerate(places):
        for k, box in enumerate(boxes):
            if k != i:
                assert not _overlaps(place.tag, box)
                assert place.panel is None or not _overlaps(place.panel, box)
    assert all(p.panel is not None for p in places[:1])


def test_past_compact_after_faces_only_tags_are_drawn():
    image = frame(640, 360)
    n = COMPACT_AFTER + 1
    boxes = [[20 + 150 * k, 150, 100 + 150 * k, 240] for k in range(n)]
    out = annotate(image, make_faces(boxes, list(range(1, n + 1))))
    panel_grey = out[150:240, 105:165]  # right of the first face: a panel would darken it
    np.testing.assert_array_equal(panel_grey, image[150:240, 105:165])
    for k in range(n):
        assert has_color(out, color_for(k + 1))
    few = annotate(image, make_faces(boxes[:COMPACT_AFTER], list(range(1, COMPACT_AFTER + 1))))
    assert not np.array_equal(few[150:240, 105:165], image[150:240, 105:165])


def test_a_face_that_fills_a_small_frame_still_gets_its_bars():
    places = layout([(20, 10, 150, 115)], [(60, 15)], (50, 80), [True], (160, 120))
    assert places[0].panel is not None
