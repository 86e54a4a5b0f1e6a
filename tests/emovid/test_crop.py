"""Face crops: box framing (a square around the detector's box) and landmark alignment onto FER2013's framing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emovid.crop import FER_LANDMARKS_48, crop_boxes, crop_faces, similarity_to_fer


def gradient_image(w: int = 160, h: int = 120) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 1.5) % 256, (y * 2) % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def reference_crop(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The crop by cv2.copyMakeBorder(BORDER_REPLICATE) on the whole frame, then gray + INTER_AREA."""
    pad = side + 2
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    patch = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return cv2.resize(cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)


# --- crops ------------------------------------------------------------------------------------------------------


def test_crop_window_is_square_centred_with_its_scale():
    windows = crop_boxes(np.array([[20, 30, 60, 70], [0, 0, 40, 20]], np.float32), scale=1.25)
    assert windows.tolist() == [[15, 25, 65, 75], [-5, -15, 45, 35]]  # side 50 = 1.25 x the longer side


def test_crop_inside_the_frame_matches_a_plain_slice():
    image = gradient_image()
    crops = crop_faces(image, np.array([[40, 30, 80, 70]], np.float32), box_scale=1.25)
    assert crops.shape == (1, 48, 48, 1) and crops.dtype == np.float32
    expected = reference_crop(image, 35, 25, 50)
    np.testing.assert_array_equal(crops[0, :, :, 0], expected)


@pytest.mark.parametrize("box", [
    (-10, -10, 30, 30),  # top-left corner, partly outside
    (140, 100, 175, 130),  # bottom-right corner, partly outside
    (0, 40, 20, 80),  # touching the left edge: the margin leaves the frame
    (150, 0, 159, 119),  # tall box at the right edge
])
def test_crop_at_frame_edges_replicates_the_border(box):
    image = gradient_image()
    x0, y0, x1, y1 = crop_boxes(np.array([box], np.float32), 1.25)[0]
    crops = crop_faces(image, np.array([box], np.float32), box_scale=1.25)
    np.testing.assert_array_equal(crops[0, :, :, 0], reference_crop(image, int(x0), int(y0), int(x1 - x0)))


def test_crop_of_a_box_entirely_outside_repeats_the_nearest_pixels():
    image = gradient_image()
    crops = crop_faces(image, np.array([[300, 300, 340, 340]], np.float32))
    corner = cv2.cvtColor(image[-1:, -1:], cv2.COLOR_BGR2GRAY)[0, 0]
    assert np.all(crops == corner)


def test_crop_faces_of_no_boxes_and_tiny_boxes():
    image = gradient_image()
    assert crop_faces(image, np.zeros((0, 4), np.float32)).shape == (0, 48, 48, 1)
    tiny = crop_faces(image, np.array([[10, 10, 10, 10], [5, 5, 5.4, 5.2]], np.float32))
    assert tiny.shape == (2, 48, 48, 1) and np.all(np.isfinite(tiny))


def test_crop_faces_does_not_modify_the_image():
    image = gradient_image()
    before = image.copy()
    crop_faces(image, np.array([[-10, -10, 30, 30], [40, 30, 80, 70]], np.float32))
    np.testing.assert_array_equal(image, before)


# --- aligned framing --------------------------------------------------------------------------------------------


def _similarity(angle_deg: float, scale: float, shift_xy: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), shift_xy[0]],
                     [scale * np.sin(a), scale * np.cos(a), shift_xy[1]]])


def _dots(size_wh: tuple[int, int], points: np.ndarray, sigma: float) -> np.ndarray:
    """A BGR image, black but for a Gaussian dot at each point (continuous pixel coordinates)."""
    w, h = size_wh
    y, x = np.mgrid[0:h, 0:w] + 0.5
    image = np.zeros((h, w), np.float64)
    for px, py in points:
        image += np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * sigma ** 2))
    return cv2.cvtColor(np.clip(image * 255, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _centroid(crop: np.ndarray, near_xy: np.ndarray, radius: int) -> np.ndarray:
    x, y = int(near_xy[0]), int(near_xy[1])
    patch = crop[y - radius:y + radius + 1, x - radius:x + radius + 1].astype(np.float64)
    yy, xx = np.mgrid[y - radius:y + radius + 1, x - radius:x + radius + 1] + 0.5
    return np.array([(patch * xx).sum() / patch.sum(), (patch * yy).sum() / patch.sum()])


@pytest.mark.parametrize("angle, scale", [(0.0, 4.0), (25.0, 6.0), (-15.0, 2.5)])
def test_alignment_puts_a_tilted_face_s_landmarks_on_fer2013_positions(angle, scale):
    """A face whose five points are FER2013's, rotated, scaled and moved: the aligned crop undoes it."""
    to_frame = _similarity(angle, scale, (300.0, 220.0))
    landmarks = np.c_[FER_LANDMARKS_48, np.ones(5)] @ to_frame.T
    image = _dots((640, 480), landmarks, sigma=1.2 * scale)
    size = 480  # a large crop measures positions to a tenth of a 48-px pixel
    crop = crop_faces(image, np.array([[0, 0, 10, 10]], np.float32), landmarks[None], "aligned", size=size)[0, :, :, 0]
    expected = FER_LANDMARKS_48 * size / 48
    found = np.array([_centroid(crop, p, radius=20) for p in expected])
    np.testing.assert_allclose(found, expected, atol=1.0)  # 1 px of 480 = 0.1 px of 48
    eyes = found[:2]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1.0  # the eye line is level


def test_similarity_to_fer_is_exact_for_fer2013_s_own_points():
    matrix = similarity_to_fer(FER_LANDMARKS_48)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_faces_without_landmarks_fall_back_to_the_box():
    image = gradient_image()
    box = np.array([[40, 30, 80, 70]], np.float32)
    aligned = crop_faces(image, box, np.full((1, 5, 2), np.nan, np.float32), "aligned")
    np.testing.assert_array_equal(aligned, crop_faces(image, box, None, "box"))
    collapsed = np.full((1, 5, 2), 50.0, np.float32)  # degenerate: every point at one place
    np.testing.assert_array_equal(crop_faces(image, box, collapsed, "aligned"), aligned)


def test_aligned_crop_of_a_big_face_is_area_averaged():
    """A fine stripe pattern on a 400 px face averages to grey instead of aliasing into stripes."""
    stripes = np.zeros((600, 600, 3), np.uint8)
    stripes[:, ::2] = 255
    landmarks = FER_LANDMARKS_48 * 8 + 100  # a face about 380 px wide
    crop = crop_faces(stripes, np.array([[0, 0, 10, 10]], np.float32), landmarks[None], "aligned")[0, :, :, 0]
    assert abs(crop.mean() - 127.5) < 6 and crop.std() < 12


def test_unknown_framing_is_an_error():
    with pytest.raises(ValueError, match="framing"):
        crop_faces(gradient_image(), np.zeros((0, 4), np.float32), framing="tight")
