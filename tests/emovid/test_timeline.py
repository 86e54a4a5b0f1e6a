"""The per-second timeline: every second present, frame counts at 29.97 and 25 fps, empty seconds, CSV bytes."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter

import numpy as np
import pytest
from onnx_models import one_hot

from emovid import EMOTIONS
from emovid.faces import Faces, FrameFaces
from emovid.timeline import (
    COLUMNS,
    FRAME_COLUMNS,
    TimelineBuilder,
    frames_csv,
    frames_dataframe,
    n_seconds,
    render_png,
    timelines_csv,
)

HEADER = ("video,track_id,second,start_s,end_s,frames,angry,disgust,fear,happy,sad,surprise,neutral,dominant,"
          "input_id\n")


def faces(track_ids, probs=None) -> Faces:
    n = len(track_ids)
    probs = np.array(probs if probs is not None else [one_hot(3)] * n, np.float32).reshape(n, 7)
    boxes = np.tile(np.array([[10, 10, 50, 50]], np.float32), (n, 1))
    return Faces(boxes, np.full(n, 0.9, np.float32), np.array(track_ids, np.int64), probs)


def build(n_frames: int, fps: float, tracks_of=lambda i: (1,), probs_of=None, video="clip.mp4"):
    builder = TimelineBuilder(video, n_frames / fps)
    for i in range(n_frames):
        ids = tracks_of(i)
        builder.add(FrameFaces(i, i / fps, faces(ids, probs_of(i, ids) if probs_of else None)))
    return builder.build()


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(("n_frames", "fps"), [(1050, 30000 / 1001), (1050, 29.97), (60, 25.0), (251, 25.0)])
def test_every_second_has_a_row_with_its_frame_count(n_frames, fps):
    timeline = build(n_frames, fps)
    duration = n_frames / fps
    assert [r.second for r in timeline.rows] == list(range(math.ceil(duration)))
    expected = Counter(int(math.floor(i / fps + 1e-9)) for i in range(n_frames))
    assert {r.second: r.frames for r in timeline.rows if r.track_id is not None} == dict(expected)
    assert sum(r.frames for r in timeline.rows) == n_frames
    last = timeline.rows[-1]
    assert last.start_s == len(timeline.rows) - 1 and last.end_s == pytest.approx(duration)


def test_frame_counts_at_29_97_fps_are_30_or_29():
    timeline = build(1049, 29.97)  # 35.0017 s -> 36 seconds; second 33 holds frames 990..1018 (29 frames)
    counts = [r.frames for r in timeline.rows]
    assert len(counts) == 36 and set(counts[:35]) == {29, 30} and counts[33] == 29 and counts[35] == 0
    assert timeline.rows[35].track_id is None  # [35, 35.0017) has no frame (the last is at 34.968): no-face row
    assert timeline.rows[35].end_s == pytest.approx(1049 / 29.97)


def test_25_fps_timestamps_on_second_boundaries_land_in_the_right_second():
    timeline = build(75, 25.0)  # frame 25 is at 25 * (1/25), which floats may put a hair below 1.0
    assert [r.frames for r in timeline.rows] == [25, 25, 25]


def test_a_second_without_faces_has_exactly_one_empty_row():
    timeline = build(75, 25.0, tracks_of=lambda i: () if 25 <= i < 50 else (1,))
    rows = parse(timeline.to_csv())
    assert [r["second"] for r in rows] == ["0", "1", "2"]
    empty = rows[1]
    assert empty["track_id"] == "" and empty["frames"] == "0" and empty["dominant"] == ""
    assert all(empty[e] == "" for e in EMOTIONS)
    assert (empty["start_s"], empty["end_s"]) == ("1.000", "2.000")


def test_tracks_are_sorted_and_averaged_per_second():
    def probs_of(i, ids):
        return [one_hot(0) if t == 7 else (one_hot(3) if i % 2 == 0 else one_hot(4, 0.5)) for t in ids]

    timeline = build(50, 25.0, tracks_of=lambda i: (7, 2) if i < 30 else (2,), probs_of=probs_of)
    assert [(r.second, r.track_id, r.frames) for r in timeline.rows] == [(0, 2, 25), (0, 7, 25), (1, 2, 25),
                                                                        (1, 7, 5)]
    row = timeline.rows[0]  # track 2 in second 0: frames 0..24, 13 even (happy 0.94) and 12 odd (sad 0.5)
    expected = (13 * np.array(one_hot(3)) + 12 * np.array(one_hot(4, 0.5))) / 25
    np.testing.assert_allclose(row.probs, expected, atol=1e-6)
    assert row.dominant == "happy" and timeline.rows[1].dominant == "angry"
    assert timeline.track_ids == (2, 7)


def test_csv_is_byte_identical_and_formatted():
    def probs_of(i, ids):
        rng = np.random.default_rng(i)
        p = rng.dirichlet(np.ones(7), size=len(ids))
        return p

    first = build(90, 29.97, tracks_of=lambda i: (1, 4) if i % 3 else (1,), probs_of=probs_of).to_csv()
    second = build(90, 29.97, tracks_of=lambda i: (1, 4) if i % 3 else (1,), probs_of=probs_of).to_csv()
    assert first == second and first.startswith(HEADER)
    line = first.splitlines()[1].split(",")
    assert line[:6] == ["clip.mp4", "1", "0", "0.000", "1.000", "30"]
    assert all(len(v.split(".")[1]) == 4 for v in line[6:13]) and line[13] in EMOTIONS
    assert tuple(first.splitlines()[0].split(",")) == COLUMNS


def test_untracked_or_unclassified_faces_are_not_counted():
    builder = TimelineBuilder("v.mp4", 1.0)
    nan = np.full((1, 7), np.nan, np.float32)
    builder.add(FrameFaces(0, 0.0, faces([-1])))
    builder.add(FrameFaces(1, 0.5, faces([3], nan)))
    rows = builder.build().rows
    assert len(rows) == 1 and rows[0].track_id is None


def test_frames_past_the_probed_duration_extend_the_timeline():
    builder = TimelineBuilder("v.mp4", 1.5)
    builder.add(FrameFaces(0, 2.2, faces([1])))
    rows = builder.build().rows
    assert [(r.second, r.track_id, r.end_s) for r in rows] == [(2, 1, 3.0)]  # no frame before 2.2 s: no row


def test_rows_are_bounded_by_the_frames_decoded_whatever_the_header_says():
    """One frame at 0 s and one at 1e6 s, a header claiming 1e9 s: three rows, not a million; no second after the
    last decoded frame is reported as "no face"."""
    builder = TimelineBuilder("v.mp4", 1e9, frame_period_s=0.04)
    builder.add(FrameFaces(0, 0.0, faces([1])))
    builder.saw(0.04)
    builder.add(FrameFaces(2, 1e6, faces([2])))
    timeline = builder.build()
    assert [(r.second, r.track_id) for r in timeline.rows] == [(0, 1), (1_000_000, 2)]
    assert timeline.duration_s == pytest.approx(1e6 + 0.04) and timeline.rows[-1].end_s == pytest.approx(1e6 + 0.04)
    assert render_png(timeline).startswith(b"\x89PNG")  # the axis of a million seconds draws a dozen ticks


def test_a_cut_video_has_no_rows_past_its_last_decoded_frame():
    builder = TimelineBuilder("v.mp4", 10.0, frame_period_s=0.04)  # the header says 10 s; 55 frames decode
    for i in range(55):
        builder.add(FrameFaces(i, i * 0.04, faces([1])))
    assert [(r.second, r.frames) for r in builder.build().rows] == [(0, 25), (1, 25), (2, 5)]


def test_formula_like_names_are_neutralised_and_same_named_videos_told_apart():
    a = TimelineBuilder("=1+2.mp4", 1.0, input_id="0a1b2c3d4e5f")
    a.add(FrameFaces(0, 0.0, faces([1])))
    b = TimelineBuilder("=1+2.mp4", 1.0, input_id="ffffffffffff")
    b.add(FrameFaces(0, 0.0, faces([1])))
    rows = parse(timelines_csv([a.build(), b.build()]))
    assert [(r["video"], r["input_id"]) for r in rows] == [("'=1+2.mp4", "0a1b2c3d4e5f"), ("'=1+2.mp4", "ffffffffffff")]
    for name in ["+x.mp4", "-x.mp4", "@x.mp4", "\tx.mp4", "\rx.mp4"]:
        only = TimelineBuilder(name, 1.0)
        only.saw(0.0)
        assert parse(only.build().to_csv())[0]["video"] == "'" + name
    plain = TimelineBuilder("talk-1.mp4", 1.0)
    plain.saw(0.0)
    assert parse(plain.build().to_csv())[0]["video"] == "talk-1.mp4"


def test_n_seconds_ignores_float_noise():
    assert n_seconds(3.0) == 3 and n_seconds(3.0000000001) == 3 and n_seconds(3.003) == 4
    assert n_seconds(0.01) == 1 and n_seconds(0) == 0


def test_dataframe_and_combined_csv():
    a = build(30, 25.0, tracks_of=lambda i: () if i >= 25 else (1,), video="a.mp4")
    b = build(25, 25.0, video="b.mp4")
    frame = a.to_dataframe()
    assert list(frame.columns) == list(COLUMNS)
    assert str(frame["track_id"].dtype) == "Int64" and frame["track_id"].isna().tolist() == [False, True]
    assert frame["happy"].iloc[0] == pytest.approx(0.94) and np.isnan(frame["happy"].iloc[1])
    combined = timelines_csv([a, b])
    assert combined.count("video,track_id") == 1
    assert [r["video"] for r in parse(combined)] == ["a.mp4", "a.mp4", "b.mp4"]


def test_per_frame_rows():
    frames = [FrameFaces(0, 0.0, faces([1, 2])), FrameFaces(1, 0.04, Faces.empty())]
    text = frames_csv(frames)
    rows = parse(text)
    assert tuple(text.splitlines()[0].split(",")) == FRAME_COLUMNS
    assert [(r["frame"], r["track_id"]) for r in rows] == [("0", "1"), ("0", "2"), ("1", "")]
    assert rows[0]["x1"] == "10.0" and rows[0]["happy"] == "0.9400" and rows[2]["happy"] == ""
    frame = frames_dataframe(frames)
    assert len(frame) == 3 and str(frame["track_id"].dtype) == "Int64"


def test_png_is_deterministic_for_tracks_and_for_no_faces():
    timeline = build(100, 25.0, tracks_of=lambda i: (1, 2) if i < 60 else (2,))
    png = render_png(timeline)
    assert png.startswith(b"\x89PNG") and png == render_png(timeline)
    empty = build(50, 25.0, tracks_of=lambda i: ())
    assert render_png(empty).startswith(b"\x89PNG")
    many = build(30, 25.0, tracks_of=lambda i: tuple(range(12)))
    assert render_png(many, max_tracks=4).startswith(b"\x89PNG")


def test_png_draws_each_track_in_the_colours_of_its_emotions():
    """Track 1 is happy for 2 s then sad for 2 s: its panel's left half is the happy colour, its right half sad;
    a video without faces draws no emotion colour outside the legend."""
    import cv2

    from emovid.timeline import EMOTION_COLORS, _bgr

    timeline = build(100, 25.0, probs_of=lambda i, ids: [one_hot(EMOTIONS.index("happy" if i < 50 else "sad"),
                                                                 high=1.0)] * len(ids))
    image = cv2.imdecode(np.frombuffer(render_png(timeline), np.uint8), cv2.IMREAD_COLOR)
    happy, sad = np.array(_bgr(EMOTION_COLORS["happy"])), np.array(_bgr(EMOTION_COLORS["sad"]))
    plot = image[80:180]  # the first panel, below the title and legend

    def share(region, color) -> float:
        return float(np.mean(np.all(np.abs(region.astype(int) - color) <= 2, axis=-1)))

    first, last = plot[:, 100:510], plot[:, 550:960]  # the plot spans x 80-980: 2 s of 4 end at x 530
    assert share(first, happy) > 0.8 and share(first, sad) == 0
    assert share(last, sad) > 0.8 and share(last, happy) == 0
    empty = cv2.imdecode(np.frombuffer(render_png(build(50, 25.0, tracks_of=lambda i: ())), np.uint8),
                         cv2.IMREAD_COLOR)
    colours = [c for e, c in EMOTION_COLORS.items() if e != "neutral"]  # neutral is a grey, like anti-aliased text
    assert all(share(empty[60:], np.array(_bgr(c))) == 0 for c in colours)
    assert share(empty[80:110, 100:960], np.array(_bgr(EMOTION_COLORS["neutral"]))) == 0


@pytest.mark.parametrize("track_id", [1, 12, 123, 12345])
def test_person_labels_end_left_of_the_probability_ticks(track_id):
    from emovid.timeline import _LEFT_PX, _TICK_SCALE, _text_w, track_label

    ticks_left = _LEFT_PX - 6 - max(_text_w(t, _TICK_SCALE) for t in ("0", "0.5", "1"))
    lines = track_label(track_id)
    assert [text for text, _, _ in lines] == ["person", f"#{track_id}"]
    assert all(x + _text_w(text, scale) < ticks_left for text, scale, x in lines)
