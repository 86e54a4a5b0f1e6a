"""Property-based tests (hypothesis): the per-second timeline aggregation and the tracker's id invariants hold for
any frames, rates, gaps and faces, not only for the hand-picked cases of test_timeline.py and test_track.py."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emovid import EMOTIONS
from emovid.faces import Faces, FrameFaces
from emovid.timeline import PROB_DECIMALS, TimelineBuilder, second_of
from emovid.track import FaceTracker

# --- the timeline -----------------------------------------------------------------------------------------------

probabilities = st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7).filter(lambda p: sum(p) > 1e-3).map(
    lambda p: (np.array(p) / sum(p)).tolist())
face = st.tuples(st.sampled_from([-1, 1, 2, 3, 4, 7]), probabilities)  # -1: untracked, not counted


@st.composite
def videos(draw):
    """(duration_s, [(timestamp_s, [(track_id, probs), ...]), ...]) with increasing timestamps (any frame rate,
    variable ones included) and track ids unique per frame."""
    duration = draw(st.floats(0.05, 6.0))
    times = sorted(draw(st.lists(st.floats(0.0, duration), min_size=1, max_size=40)))
    frames = []
    for t in times:
        faces = draw(st.lists(face, max_size=4))
        seen, unique = set(), []
        for track_id, probs in faces:
            if track_id < 0 or track_id not in seen:
                seen.add(track_id)
                unique.append((track_id, probs))
        frames.append((t, unique))
    return duration, frames


def build(duration, frames):
    builder = TimelineBuilder("clip.mp4", duration)
    for i, (t, faces) in enumerate(frames):
        n = len(faces)
        probs = np.array([p for _, p in faces], np.float32).reshape(n, 7)
        boxes = np.tile(np.array([[10, 10, 50, 50]], np.float32), (n, 1))
        track_ids = np.array([k for k, _ in faces], np.int64)
        builder.add(FrameFaces(i, t, Faces(boxes, np.full(n, 0.9, np.float32), track_ids, probs)))
    return builder.build()


def shown_seconds(duration: float, times: list[float]) -> list[int]:
    """The seconds a frame is shown in: from its time to the next frame's, one second at most, the last one until
    the duration (when that is later)."""
    ends = [min(b, a + 1.0) for a, b in zip(times, times[1:], strict=False)]
    ends.append(min(duration, times[-1] + 1.0) if duration > times[-1] else times[-1])
    seconds = set()
    for t, end in zip(times, ends, strict=True):
        seconds.add(second_of(t))
        k = second_of(t) + 1
        while k < end - 1e-6:
            seconds.add(k)
            k += 1
    return sorted(seconds)


@settings(max_examples=150, deadline=None)
@given(video=videos())
def test_timeline_rows_cover_every_second_and_add_up(video):
    duration, frames = video
    timeline = build(duration, frames)
    rows = timeline.rows
    assert [(r.second, r.track_id or 0) for r in rows] == sorted((r.second, r.track_id or 0) for r in rows)
    assert sorted({r.second for r in rows}) == shown_seconds(duration, [t for t, _ in frames])  # in order

    expected: dict[tuple[int, int], list] = defaultdict(list)
    for t, faces in frames:
        for track_id, probs in faces:
            if track_id >= 0:
                expected[(second_of(t), track_id)].append(probs)
    by_second = Counter(r.second for r in rows)
    for r in rows:
        assert r.start_s == r.second and r.start_s < r.end_s <= r.second + 1
        if r.track_id is None:  # the one row of a second without faces
            assert (r.frames, r.probs, by_second[r.second]) == (0, None, 1)
            assert not any(second == r.second for second, _ in expected)
            continue
        probs = np.array(r.probs)
        assert np.all(probs >= 0) and np.all(probs <= 1) and abs(probs.sum() - 1) < 1e-5
        assert r.frames == len(expected[(r.second, r.track_id)])
        np.testing.assert_allclose(probs, np.mean(expected[(r.second, r.track_id)], axis=0), atol=1e-5)
    assert {(r.second, r.track_id) for r in rows if r.track_id is not None} == set(expected)
    assert sum(r.frames for r in rows) == sum(len(v) for v in expected.values())  # frame counts add up


@settings(max_examples=60, deadline=None)
@given(video=videos())
def test_timeline_csv_is_byte_identical_and_its_probabilities_sum_to_one(video):
    duration, frames = video
    text = build(duration, frames).to_csv()
    assert text == build(duration, frames).to_csv()
    for row in csv.DictReader(io.StringIO(text)):
        if row["track_id"]:
            probs = [float(row[e]) for e in EMOTIONS]
            assert all(0 <= p <= 1 for p in probs)
            assert abs(sum(probs) - 1) <= len(EMOTIONS) * 0.5 * 10 ** -PROB_DECIMALS + 1e-9
            assert row["dominant"] == EMOTIONS[int(np.argmax(probs))] or max(probs) - probs[
                EMOTIONS.index(row["dominant"])] <= 10 ** -PROB_DECIMALS  # rounding ties


# --- the tracker ------------------------------------------------------------------------------------------------

SIDE = 60.0
MAX_GAP_S = 0.5


@st.composite
def scenes(draw):
    """People at well separated places (150 px apart), boxes jittering a few pixels, each visible or not in each
    frame; a frame every `step_s`; `every` > 1 runs predict() between detections as --every does."""
    n_people = draw(st.integers(1, 4))
    n_frames = draw(st.integers(1, 30))
    visible = draw(st.lists(st.lists(st.booleans(), min_size=n_people, max_size=n_people),
                            min_size=n_frames, max_size=n_frames))
    jitter = draw(st.lists(st.tuples(st.integers(-4, 4), st.integers(-4, 4)), min_size=n_frames * n_people,
                           max_size=n_frames * n_people))
    order = draw(st.lists(st.randoms(use_true_random=False), min_size=1, max_size=1))[0]
    step_s = draw(st.sampled_from([0.04, 0.15, 0.3]))
    every = draw(st.sampled_from([1, 1, 2, 3]))
    return n_people, visible, jitter, order, step_s, every


@settings(max_examples=150, deadline=None)
@given(scene=scenes())
def test_track_ids_are_unique_per_frame_and_never_reused_for_another_face(scene):
    n_people, visible, jitter, order, step_s, every = scene
    tracker = FaceTracker(max_gap_s=MAX_GAP_S)
    person_of: dict[int, int] = {}  # track id -> the person it was given to
    last: dict[int, tuple[float, int]] = {}  # person -> (last time seen, its id then)
    issued = 0
    for i, shown in enumerate(visible):
        t = i * step_s
        people = [p for p in range(n_people) if shown[p]]
        order.shuffle(people)  # the detector's order must not matter
        boxes = []
        for p in people:
            dx, dy = jitter[i * n_people + p]
            x, y = 20 + 150 * p + dx, 40 + dy
            boxes.append((x, y, x + SIDE, y + SIDE))
        if i % every:  # a frame without detection: the tracker predicts the faces of the last update
            predicted = tracker.predict(t).track_id.tolist()
            assert len(set(predicted)) == len(predicted) and set(predicted) <= set(person_of)
            continue
        faces = Faces.from_boxes(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))
        ids = tracker.update(faces, t).track_id.tolist()
        assert len(set(ids)) == len(ids) and all(k >= 1 for k in ids)  # unique in the frame
        for person, track_id in zip(people, ids, strict=True):
            if track_id not in person_of:
                issued += 1
                assert track_id == issued  # new ids count up: an id is never handed out twice
            assert person_of.setdefault(track_id, person) == person  # never another person's id
            if person in last:
                seen_s, previous = last[person]
                if t - seen_s <= MAX_GAP_S:
                    assert track_id == previous  # kept through gaps shorter than max_gap_s
                else:
                    assert track_id != previous  # expired: a new id
            last[person] = (t, track_id)
    assert tracker.ids_issued == issued
