"""CutDetector: a cut where most of the picture changes at once, not where a face enters or the camera moves."""

from __future__ import annotations

import numpy as np
import pytest

from emovid.cuts import CutDetector


def scene(level: int, seed: int, size_wh=(320, 180)) -> np.ndarray:
    w, h = size_wh
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 20 + 1, w // 20 + 1, 3)).astype(np.uint8)  # large blobs of colour
    return np.clip(np.kron(base, np.ones((20, 20, 1), np.uint8))[:h, :w].astype(int) + level - 128, 0, 255).astype(
        np.uint8)


def noisy(image: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-6, 7, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def test_a_hard_cut_is_found_on_its_first_frame_and_nowhere_else():
    a, b = scene(128, 1), scene(128, 2)
    frames = [noisy(a, i) for i in range(20)] + [noisy(b, 100 + i) for i in range(20)]
    detector = CutDetector()
    assert [i for i, f in enumerate(frames) if detector.is_cut(f)] == [20]
    assert detector.cuts == 1


def test_a_face_that_enters_is_not_a_cut():
    a = scene(128, 1)
    frames = [noisy(a, i) for i in range(10)]
    with_face = a.copy()
    with_face[40:120, 120:190] = (60, 90, 200)  # a face-sized patch appears at once
    frames += [noisy(with_face, 50 + i) for i in range(10)]
    detector = CutDetector()
    assert not any(detector.is_cut(f) for f in frames)


def test_a_steady_pan_is_not_a_cut():
    wide = scene(128, 3, size_wh=(1200, 180))
    detector = CutDetector()
    cuts = [detector.is_cut(noisy(wide[:, 8 * i:8 * i + 320], i)) for i in range(100)]
    assert not any(cuts[3:])  # the pan starts at once, so its first frames may pass for one (no history yet)


def test_two_cuts_closer_than_min_gap_count_once():
    a, b, c = scene(128, 1), scene(128, 2), scene(128, 3)
    frames = [a] * 10 + [b, c] + [c] * 10
    detector = CutDetector(min_gap=3)
    assert [i for i, f in enumerate(frames) if detector.is_cut(f)] == [10]


def test_settings_are_validated():
    with pytest.raises(ValueError):
        CutDetector(threshold=0)
    with pytest.raises(ValueError):
        CutDetector(ratio=0.5)


def test_one_thing_that_starts_moving_fast_on_a_plain_background_is_not_a_cut():
    def frame(x: int) -> np.ndarray:
        image = np.zeros((180, 480, 3), np.uint8)
        image[30:150, x:x + 120] = scene(128, 4, size_wh=(120, 120))  # a large, detailed tile
        return image

    xs = [100] * 10 + [100 + 30 * k for k in range(1, 7)]  # still, then 30 px a frame at once
    detector = CutDetector()
    assert not any(detector.is_cut(frame(x)) for x in xs)


def test_a_big_change_beside_the_tracked_faces_is_not_a_cut_and_one_where_they_are_is():
    """A 160x120 frame where a pasted face covers a quarter of the picture, as the test videos make them."""
    base = noisy(scene(128, 5, size_wh=(160, 120)), 0)
    tracked = np.array([[10.0, 20.0, 60.0, 80.0]])  # a face that stays as it is
    beside = base.copy()
    beside[10:110, 80:150] = (40, 80, 160)  # someone appears beside it at once
    detector = CutDetector()
    assert not any(detector.is_cut(f, tracked) for f in [base] * 5 + [beside])
    assert detector.last_difference >= detector.threshold  # as large a change as a cut, but not where the face is
    over = base.copy()
    over[10:110, 5:75] = (40, 80, 160)  # the same change where the tracked face is: another person, a cut
    detector = CutDetector()
    assert [detector.is_cut(f, tracked) for f in [base] * 5 + [over]] == [False] * 5 + [True]
