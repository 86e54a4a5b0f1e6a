"""CenterFace: finds real faces pasted at known places, nothing on empty frames, respects min_face_px."""

from __future__ import annotations

import media
import numpy as np
import onnx
import pytest

from emovid.detect import (
    INT8_MODEL_PATH,
    MODEL_PATH,
    REGION_PX,
    CenterFaceDetector,
    FaceDetector,
    input_size_wh,
    load_detector,
    nms,
    region_windows,
)
from emovid.errors import ModelError
from emovid.faces import NO_TRACK
from emovid.video import read_frames


@pytest.fixture(scope="module", params=["centerface", "centerface-int8"])
def detector(request) -> CenterFaceDetector:
    """Every detection test runs on the float model and on its int8 copy (the CPU default)."""
    return load_detector(request.param, device="cpu")


def assert_found(faces, truth, min_iou=0.5) -> None:
    assert len(faces) == len(truth), (faces.xyxy, truth)
    overlap = media.iou(truth, faces.xyxy)
    assert (overlap.max(axis=1) > min_iou).all(), overlap


@pytest.mark.parametrize("size_wh, boxes", [
    ((160, 120), [(60, 30, 100, 80)]),
    ((160, 120), [(12, 30, 52, 80), ((100, 35, 140, 85), 1)]),
    ((320, 240), [((30, 40, 90, 115), 1), (200, 60, 260, 135)]),
    ((640, 360), [(100, 100, 124, 130), ((300, 80, 340, 130), 1), (500, 50, 580, 150)]),
    ((1280, 720), [(200, 200, 300, 330), ((900, 300, 960, 380), 1)]),
])
def test_finds_pasted_faces(detector, size_wh, boxes):
    image = media.face_image(size_wh, boxes)
    before = image.copy()
    faces = detector.detect(image)
    assert_found(faces, [media._face_args(b)[0] for b in boxes])
    assert np.array_equal(image, before)  # input untouched
    assert (faces.track_id == NO_TRACK).all() and np.isnan(faces.probs).all()
    assert ((faces.confidence > 0.5) & (faces.confidence <= 1)).all()
    assert list(faces.xyxy[:, 0]) == sorted(faces.xyxy[:, 0])  # left to right


@pytest.mark.parametrize("kind", ["plain", "noise"])
def test_nothing_on_empty_frames(detector, kind):
    faces = detector.detect(media.background((320, 240), kind))
    assert len(faces) == 0 and faces.xyxy.shape == (0, 4) and faces.probs.shape == (0, 7)
    assert len(detector.detect(np.zeros((120, 160, 3), np.uint8))) == 0


# --- looking only around tracked faces (detect_regions) ----------------------------------------------------------

THREE = [(100, 100, 124, 130), ((300, 80, 340, 130), 1), (500, 50, 580, 150)]  # 24-80 px faces in 640x360


def test_regions_find_the_faces_of_the_whole_frame(detector):
    image = media.face_image((640, 360), THREE)
    whole = detector.detect(image)
    found = detector.detect_regions(image, region_windows(whole.xyxy, (640, 360)))
    assert_found(found, [media._face_args(b)[0] for b in THREE])
    assert (media.iou(whole.xyxy, found.xyxy).max(axis=1) > 0.7).all()
    assert list(found.xyxy[:, 0]) == sorted(found.xyxy[:, 0]) and (found.track_id == NO_TRACK).all()


def test_regions_see_only_their_windows(detector):
    image = media.face_image((640, 360), THREE)
    around_middle = region_windows(np.array([[300, 80, 340, 130]]), (640, 360))
    assert_found(detector.detect_regions(image, around_middle), [(300, 80, 340, 130)])
    empty_corner = np.array([[0, 250, 100, 350]])
    assert len(detector.detect_regions(image, empty_corner)) == 0
    assert len(detector.detect_regions(image, np.zeros((0, 4)))) == 0


def test_a_big_face_is_shrunk_into_its_region_and_a_small_one_is_not_enlarged(detector):
    image = media.face_image((1280, 720), [(500, 150, 780, 500), ((100, 600, 124, 630), 1)])
    windows = region_windows(np.array([[500, 150, 780, 500], [100, 600, 124, 630]]), (1280, 720))
    assert (windows[0, 2] - windows[0, 0]) > REGION_PX > (windows[1, 2] - windows[1, 0])
    assert_found(detector.detect_regions(image, windows), [(100, 600, 124, 630), (500, 150, 780, 500)])


def test_many_regions_cost_as_much_as_the_frame_and_become_a_whole_frame_detection():
    image = media.face_image((320, 240), [(20, 40, 60, 90), ((200, 60, 260, 135), 1)])
    detector = CenterFaceDetector(device="cpu")
    windows = np.array([[0, 0, 10, 10]] * 5)  # 5 x 128^2 px >= the 320x256 network input: the whole frame
    assert_found(detector.detect_regions(image, windows), [(20, 40, 60, 90), (200, 60, 260, 135)])


def test_region_windows_are_squares_around_the_boxes_inside_the_frame():
    boxes = np.array([[100, 100, 140, 150], [0, 0, 20, 20], [600, 300, 640, 360], [10, 10, 12, 12]])
    windows = region_windows(boxes, (640, 360), context=2.0, min_side_px=32)
    sides = windows[:, 2:] - windows[:, :2]
    assert sides.tolist() == [[100, 100], [40, 40], [120, 120], [32, 32]]  # 2x the longer side, at least 32
    assert windows[0].tolist() == [70, 75, 170, 175]  # centred on (120, 125)
    assert windows[1].tolist() == [0, 0, 40, 40] and windows[2].tolist() == [520, 240, 640, 360]  # moved inside
    huge = region_windows(np.array([[0, 0, 300, 300]]), (640, 360))
    assert huge.tolist() == [[0, 0, 600, 360]]  # cut to the frame's height
    assert region_windows(np.zeros((0, 4)), (640, 360)).shape == (0, 4)


def test_min_face_px_drops_small_faces():
    image = media.face_image((320, 240), [(20, 40, 44, 70), ((150, 40, 230, 140), 1)])
    everything = CenterFaceDetector(device="cpu").detect(image)
    assert_found(everything, [(20, 40, 44, 70), (150, 40, 230, 140)])
    large = load_detector(device="cpu", min_face_px=40).detect(image)
    assert_found(large, [(150, 40, 230, 140)])


def test_finds_the_face_of_the_carphone_clip(detector):
    frames = media.carphone_frames()
    for index, box in media.SOURCES:
        assert_found(detector.detect(frames[index]), [box], min_iou=0.7)


def test_detects_on_decoded_video_frames(detector, face_video):
    truth = face_video(duration_s=1.0, faces=[(0.0, 0.5, (20, 30, 60, 80)), (0.3, 1.0, (100, 35, 140, 85), 1)])
    for frame in list(read_frames(truth.path))[::5]:
        assert_found(detector.detect(frame.image), truth.boxes[frame.index])


def test_grayscale_and_odd_sizes_work(detector):
    image = media.face_image((161, 123), [(60, 30, 100, 80)])
    assert_found(detector.detect(image), [(60, 30, 100, 80)])
    assert_found(detector.detect(image.mean(axis=2).astype(np.uint8)), [(60, 30, 100, 80)])
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect(image.astype(np.float32))


def test_frames_are_shrunk_to_max_side_and_padded_to_multiples_of_32():
    assert input_size_wh((1920, 1080), 640) == ((640, 360), (640, 384), 1 / 3)
    assert input_size_wh((160, 120), 640) == ((160, 120), (160, 128), 1.0)  # never enlarged
    assert input_size_wh((100, 1000), 320) == ((32, 320), (32, 320), 0.32)


def test_a_smaller_max_side_for_one_call_finds_the_big_faces_only(detector):
    """emovid.schedule's coarse scans: detect(image, max_side) sees the frame at that size for this call only."""
    small, big = (200, 200, 240, 250), (700, 150, 860, 350)
    image = media.face_image((1280, 720), [small, big])
    assert_found(detector.detect(image), [small, big])
    assert_found(detector.detect(image, max_side=320), [big])  # the 40 px face is 10 px at 320: too small
    assert_found(detector.detect(image), [small, big])  # the detector's own size is unchanged
    assert detector.preprocess(image, 320)[0].shape == (1, 3, 192, 320)
    with pytest.raises(ValueError, match="max_side"):
        detector.detect(image, max_side=16)


def test_nms_keeps_the_best_of_overlapping_boxes_deterministically():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.9], np.float32)
    assert nms(boxes, scores, 0.3).tolist() == [3, 2]  # equal scores: lower x0 first


def test_load_detector_and_the_shipped_model(detector):
    assert isinstance(detector, FaceDetector)
    assert detector.runtime.provider == "CPUExecutionProvider"
    with pytest.raises(ModelError, match="unknown face detector"):
        load_detector("yunet")
    model = onnx.load(str(MODEL_PATH), load_external_data=False)
    assert model.ir_version <= 10
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "H", "W"]
    assert [o.name for o in model.graph.output] == ["heatmap", "scale", "offset", "landmarks"]
    assert (MODEL_PATH.parent / "CENTERFACE_LICENSE.md").is_file()


def test_auto_is_the_int8_copy_on_the_cpu_and_names_what_it_loaded():
    assert load_detector("auto", device="cpu").name == "centerface-int8"
    assert load_detector(device="cpu").model_path == INT8_MODEL_PATH
    assert load_detector("centerface", device="cpu").name == "centerface"
    auto = load_detector("auto", device="auto")
    expected = "centerface-int8" if auto.runtime.provider == "CPUExecutionProvider" else "centerface"
    assert auto.name == expected
    model = onnx.load(str(INT8_MODEL_PATH))
    assert {n.op_type for n in model.graph.node} >= {"QuantizeLinear", "DequantizeLinear", "Conv"}
    assert [o.name for o in model.graph.output] == ["heatmap", "scale", "offset", "landmarks"]
    assert dict((p.key, p.value) for p in model.metadata_props)["emovid.quantized"].startswith("int8 static QDQ")


def test_the_int8_copy_finds_the_boxes_of_the_float_model():
    """Same faces, boxes within a few pixels (IoU > 0.85), on real faces of 24-100 px."""
    image = media.face_image((640, 360), [(100, 100, 124, 130), ((300, 80, 340, 130), 1), (500, 50, 580, 150)])
    exact = load_detector("centerface", device="cpu").detect(image)
    fast = load_detector("centerface-int8", device="cpu").detect(image)
    assert len(exact) == len(fast) == 3
    assert (media.iou(exact.xyxy, fast.xyxy).max(axis=1) > 0.85).all()


def test_a_model_that_is_not_centerface_is_a_model_error(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 10
    onnx.save(model, str(tmp_path / "identity.onnx"))
    with pytest.raises(ModelError, match="not a CenterFace model"):
        CenterFaceDetector(device="cpu", model_path=tmp_path / "identity.onnx")
