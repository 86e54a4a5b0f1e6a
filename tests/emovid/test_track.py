"""FaceTracker on scripted box sequences: stable ids, gaps measured in seconds, ids never reused, predict()."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emovid.faces import NO_TRACK, Faces
from emovid.track import FaceTracker, closeness, greedy_match, iou_matrix, overlap_of_smaller, suppress_nested


def faces_at(*boxes) -> Faces:
    if not boxes:
        return Faces.empty()
    return Faces.from_boxes(np.array(boxes, np.float32), np.linspace(0.9, 0.8, len(boxes)).astype(np.float32))


def box(x: float, y: float = 40.0, size: float = 40.0) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


def test_every_face_gets_an_id_starting_at_one():
    tracker = FaceTracker()
    out = tracker.update(faces_at(box(10), box(100)), 0.0)
    assert out.track_id.tolist() == [1, 2]
    assert tracker.ids_issued == 2
    empty = tracker.update(Faces.empty(), 0.04)
    assert len(empty) == 0 and empty.track_id.dtype == np.int64


def test_update_returns_new_faces_and_leaves_its_input_alone():
    faces = faces_at(box(10), box(100))
    out = FaceTracker().update(faces, 0.0)
    assert (faces.track_id == NO_TRACK).all()
    assert np.array_equal(out.xyxy, faces.xyxy) and np.array_equal(out.confidence, faces.confidence)


def test_two_faces_side_by_side_keep_their_ids_whatever_the_detection_order():
    tracker = FaceTracker()
    first = tracker.update(faces_at(box(10), box(100)), 0.0)
    left, right = first.track_id.tolist()
    for i in range(1, 60):
        jitter = 2.0 * np.sin(i)
        boxes = [box(10 + jitter), box(100 - jitter)]
        order = [1, 0] if i % 2 else [0, 1]
        out = tracker.update(faces_at(*[boxes[k] for k in order]), i / 30)
        assert out.track_id.tolist() == [[left, right][k] for k in order]
    assert tracker.ids_issued == 2


@pytest.mark.parametrize("occluded", [False, True])
def test_crossing_faces_keep_their_ids(occluded):
    """A walks right, B walks left, slightly lower; occluded: while they overlap only B (in front) is detected."""
    tracker = FaceTracker(max_gap_s=1.0)
    ids_a, ids_b = set(), set()
    for i in range(40):
        a, b = box(10 + 5 * i, 40), box(210 - 5 * i, 40 if occluded else 55)
        hidden = occluded and iou_matrix([a], [b])[0, 0] > 0.05
        shown = [b] if hidden else [a, b]
        out = tracker.update(faces_at(*shown), i / 30)
        ids = dict(zip(shown, out.track_id.tolist(), strict=True))
        if not hidden:
            ids_a.add(ids[a])
        ids_b.add(ids[b])
    assert ids_a == {1} and ids_b == {2}


def test_a_face_returning_within_max_gap_keeps_its_id_and_after_it_gets_a_new_one():
    tracker = FaceTracker(max_gap_s=1.0)
    assert tracker.update(faces_at(box(50)), 0.0).track_id.tolist() == [1]
    assert tracker.update(faces_at(), 0.5).track_id.tolist() == []
    assert tracker.update(faces_at(box(52)), 0.9).track_id.tolist() == [1]  # 0.9 s gap
    assert tracker.update(faces_at(box(52)), 2.0).track_id.tolist() == [2]  # 1.1 s gap: new person
    assert tracker.update(faces_at(box(52), box(150)), 2.04).track_id.tolist() == [2, 3]


def test_gaps_are_measured_in_seconds_not_frames():
    for fps, expected in ((30.0, [1, 1]), (5.0, [1, 2])):  # the same 10-frame gap: 0.33 s vs 2 s
        tracker = FaceTracker(max_gap_s=0.5)
        ids = [tracker.update(faces_at(box(50)), 0.0).track_id[0]]
        for i in range(1, 10):
            tracker.update(faces_at(), i / fps)
        ids.append(tracker.update(faces_at(box(50)), 10 / fps).track_id[0])
        assert ids == expected, fps


def test_ids_are_never_reused():
    tracker = FaceTracker(max_gap_s=0.2)
    seen = []
    for k in range(5):  # a face appears, vanishes for longer than max_gap_s, appears again...
        seen += tracker.update(faces_at(box(50)), k * 1.0).track_id.tolist()
    assert seen == [1, 2, 3, 4, 5]


def test_a_moving_face_is_followed_by_its_predicted_position():
    tracker = FaceTracker(max_gap_s=1.0)
    for i in range(10):  # 300 px/s to the right
        tracker.update(faces_at(box(10 + 10 * i)), i / 30)
    # hidden for 0.3 s: it moved 90 px further, far from its last box (IoU 0) but where it was heading
    out = tracker.update(faces_at(box(10 + 10 * 18)), 18 / 30)
    assert out.track_id.tolist() == [1]


def test_predict_extrapolates_the_faces_seen_at_the_last_update():
    tracker = FaceTracker(max_gap_s=1.0)
    assert len(tracker.predict(0.0)) == 0
    tracker.update(faces_at(box(100), box(10)), 0.0)
    tracker.update(faces_at(box(103), box(10)), 0.1)  # face 1 moves at 30 px/s, face 2 stands
    predicted = tracker.predict(0.2)
    assert predicted.track_id.tolist() == [1, 2]
    np.testing.assert_allclose(predicted.xyxy, [box(106), box(10)], atol=1e-4)
    assert np.isnan(predicted.probs).all()
    assert predicted.confidence.tolist() == pytest.approx([0.9, 0.8])
    tracker.update(faces_at(box(10)), 0.3)  # face 1 not seen: it is not drawn in between
    assert tracker.predict(0.35).track_id.tolist() == [2]
    assert len(tracker.predict(1.5)) == 0  # older than max_gap_s


def test_greedy_matching_is_deterministic_on_ties():
    scores = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert greedy_match(scores, 0.3) == [(0, 0), (1, 1)]
    assert greedy_match(np.array([[0.2, 0.9], [0.8, 0.85]]), 0.3) == [(0, 1), (1, 0)]
    assert greedy_match(np.zeros((0, 3)), 0.3) == []


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        FaceTracker(max_gap_s=-1)
    with pytest.raises(ValueError):
        FaceTracker(iou_threshold=0)


frames_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 100), st.integers(10, 60)), max_size=4),
    min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(frames=frames_strategy, step_s=st.sampled_from([0.04, 0.3, 0.7]))
def test_ids_are_unique_per_frame_increasing_and_never_come_back_after_expiry(frames, step_s):
    tracker = FaceTracker(max_gap_s=0.5)
    last_seen: dict[int, float] = {}
    for i, frame in enumerate(frames):
        t = i * step_s
        out = tracker.update(faces_at(*[box(x, y, s) for x, y, s in frame]), t)
        ids = out.track_id.tolist()
        assert len(set(ids)) == len(ids) and all(1 <= k <= tracker.ids_issued for k in ids)
        for k in ids:
            if k in last_seen:
                assert t - last_seen[k] <= 0.5 + 1e-9  # an expired id never returns
            last_seen[k] = t
    assert sorted(last_seen) == list(range(1, tracker.ids_issued + 1))


def test_expected_boxes_include_coasting_tracks_and_drop_expired_ones():
    tracker = FaceTracker(max_gap_s=1.0)
    tracker.update(faces_at(box(10), box(100)), 0.0)
    tracker.update(faces_at(box(14), box(100)), 0.1)  # face 1 moves 40 px/s
    tracker.update(faces_at(box(18)), 0.2)  # face 2 is missed: it coasts
    assert len(tracker.predict(0.3)) == 1  # not drawn...
    expected = tracker.expected(0.3)
    assert expected.shape == (2, 4) and expected.dtype == np.float32  # ...but still looked for
    assert expected[0] == pytest.approx(box(22), abs=1e-3) and expected[1] == pytest.approx(box(100))
    assert len(tracker.expected(1.15)) == 1  # face 2 last seen at 0.1 s: gone after 1 s
    assert len(tracker.expected(1.25)) == 0


# --- one box per face, the distance pass, cuts ---------------------------------------------------------------------


def test_a_box_mostly_inside_another_is_dropped_and_the_input_is_left_alone():
    face, half = box(100, size=60), (102.0, 45.0, 128.0, 95.0)  # the left half of the same face
    faces = faces_at(box(10), half, face)
    kept = suppress_nested(faces)
    assert kept.xyxy.tolist() == [list(box(10)), list(face)]  # order kept, the larger box stays
    assert len(faces) == 3 and (faces.track_id == NO_TRACK).all()
    side_by_side = faces_at(box(10), box(45))  # overlapping faces of two people: both kept
    assert len(suppress_nested(side_by_side)) == 2
    np.testing.assert_allclose(overlap_of_smaller([face], [half]), [[1.0]])


def test_a_face_that_jumps_past_its_box_keeps_its_id_within_the_gate():
    tracker = FaceTracker()
    tracker.update(faces_at(box(100)), 0.0)
    # 0.12 s later (a detection every 3rd frame) 70 px away: no overlap, but within 1 + 10 x 0.12 box sides (at most 2)
    assert tracker.update(faces_at(box(170)), 0.12).track_id.tolist() == [1]
    assert tracker.update(faces_at(box(400)), 0.24).track_id.tolist() == [2]  # far beyond: someone else
    assert tracker.update(faces_at(box(170, size=120)), 0.28).track_id.tolist() == [3]  # three times as large


def test_closeness_scores_by_distance_in_box_sides():
    scores = closeness(np.array([box(0)]), np.array([box(0), box(20), box(40), box(60)]), 1.0, 1.6)
    np.testing.assert_allclose(scores, [[1.0, 0.5, 0.0, 0.0]])


def test_a_cut_ends_every_track():
    tracker = FaceTracker(max_gap_s=1.0)
    assert tracker.update(faces_at(box(50)), 0.0).track_id.tolist() == [1]
    tracker.cut(0.04)
    assert len(tracker.predict(0.04)) == 0 and len(tracker.expected(0.04)) == 0
    assert tracker.update(faces_at(box(50)), 0.04).track_id.tolist() == [2]
    assert tracker.cuts == 1
