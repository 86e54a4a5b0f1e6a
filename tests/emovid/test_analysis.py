"""The frame stage (emovid.analysis): detect / track / classify schedules with fakes (scripted detector, tiny
ONNX model)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from emovid_fakes import (
    FACE_BOXES,
    CountingClassifier,
    FakeTracker,
    synthetic_frames,
    two_people,
)

from emovid import EMOTIONS
from emovid.analysis import Sampler, analyse_frames
from emovid.loading import Models
from emovid.options import AnalysisOptions


def test_frames_come_out_in_order_tracked_and_classified(models):
    out = list(analyse_frames(synthetic_frames(50, 25.0, two_people), models, AnalysisOptions(), FakeTracker()))
    assert [f.index for f in out] == list(range(50))
    assert all(f.faces is not None and f.image is None for f in out)
    assert [len(f.faces.faces) for f in out] == [len(two_people(i)) for i in range(50)]
    last = out[-1].faces.faces
    assert last.track_id.tolist() == [1, 2]
    assert [EMOTIONS[k] for k in last.probs.argmax(axis=1)] == ["happy", "sad"]
    assert out[-1].faces.timestamp_s == pytest.approx(49 / 25)


def test_faces_of_several_frames_are_classified_in_one_batch(models):
    options = AnalysisOptions(batch_frames=8, classify_every=1)
    out = list(analyse_frames(synthetic_frames(50, 25.0, two_people), models, options, FakeTracker(),
                              keep_images=True))
    assert all(f.image is not None for f in out)
    batches = models.classifier.batches
    assert len(batches) == math.ceil(50 / 8) and sum(batches) == 30 + 2 * 20 and max(batches) == 16


def test_every_n_detects_on_every_nth_frame_and_predicts_in_between(models):
    tracker = FakeTracker()
    # full scans only: one detector call per detection frame (a coarse scan adds a region pass, test_schedule.py)
    out = list(analyse_frames(synthetic_frames(30, 25.0), models, AnalysisOptions(every=4, full_scan_every_s=0),
                              tracker))
    detector = models.detector
    assert detector.calls + detector.region_calls == math.ceil(30 / 4) and tracker.predicted == 30 - math.ceil(30 / 4)
    assert detector.calls == 2  # whole-frame scans at 0 and 0.64 s (the first detection frame 0.5 s after 0)
    assert all(f.faces.faces.track_id.tolist() == [1] and np.all(np.isfinite(f.faces.faces.probs)) for f in out)


def changing_faces(n_frames: int, fps: float) -> list:
    """two_people frames whose faces brighten a little every frame, so each frame's emotion probabilities differ."""
    frames = []
    for frame in synthetic_frames(n_frames, fps, two_people):
        image = frame.image.copy()
        for k in two_people(frame.index):
            x0, y0, x1, y1 = (int(v) for v in FACE_BOXES[k])
            image[y0:y1, x0:x1] = np.clip(image[y0:y1, x0:x1].astype(int) + frame.index % 7, 0, 255)
        frames.append(dataclasses.replace(frame, image=image))
    return frames


@pytest.mark.parametrize("threaded", [False, True])
def test_classify_every_n_classifies_each_track_every_nth_frame_and_holds_its_emotion(models, threaded):
    frames = changing_faces(50, 25.0)  # face 0 (track 1) from frame 0, face 1 (track 2) from frame 30
    every_frame = list(analyse_frames(frames, models, AnalysisOptions(classify_every=1, threaded=threaded),
                                      FakeTracker()))
    counting = CountingClassifier(models.classifier.inner)
    held = list(analyse_frames(frames, Models(models.detector, counting),
                               AnalysisOptions(classify_every=3, threaded=threaded), FakeTracker()))
    assert sum(counting.batches) == math.ceil(50 / 3) + math.ceil(20 / 3)
    first_frame = {1: 0, 2: 30}
    for exact, item in zip(every_frame, held, strict=True):
        assert item.faces.faces.track_id.tolist() == exact.faces.faces.track_id.tolist()
        for row, track in enumerate(item.faces.faces.track_id.tolist()):
            classified_at = item.index - (item.index - first_frame[track]) % 3  # a new track at once, then every 3rd
            then = every_frame[classified_at].faces.faces
            np.testing.assert_array_equal(item.faces.faces.probs[row], then.probs[then.track_id.tolist().index(track)])
            if classified_at != item.index:  # held: not what this frame alone would give
                assert not np.allclose(item.faces.faces.probs[row], exact.faces.faces.probs[row])


def test_untracked_faces_are_classified_in_every_frame(models):
    class NoIds(FakeTracker):
        def update(self, faces, timestamp_s, image_bgr=None):
            self.last = faces  # track id -1 (NO_TRACK)
            return faces

    counting = CountingClassifier(models.classifier.inner)
    out = list(analyse_frames(changing_faces(12, 25.0), Models(models.detector, counting),
                              AnalysisOptions(classify_every=4, every=1), NoIds()))
    assert sum(counting.batches) == 12
    assert all(np.all(np.isfinite(f.faces.faces.probs)) for f in out)


def test_sample_fps_analyses_some_frames_and_passes_all_on(models):
    options = AnalysisOptions(sample_fps=5, every=1, full_scan_every_s=0)  # one detector call per analysed frame
    out = list(analyse_frames(synthetic_frames(50, 25.0), models, options, FakeTracker()))
    assert [f.index for f in out] == list(range(50))
    assert [f.index for f in out if f.faces is not None] == list(range(0, 50, 5))
    assert models.detector.calls + models.detector.region_calls == 10


def test_sampler_takes_the_first_frame_at_or_after_each_tick():
    sampler = Sampler(2.0)  # ticks at 0, 0.5, 1.0, ...
    times = [0.0, 0.2, 0.49, 0.51, 0.7, 1.0, 1.9, 2.6, 2.61]  # variable frame rate
    assert [t for t in times if sampler.take(t)] == [0.0, 0.51, 1.0, 1.9, 2.6]
    everything = Sampler(None)
    assert all(everything.take(t) for t in times)
    at_29_97 = Sampler(1.0)
    assert sum(at_29_97.take(i / 29.97) for i in range(300)) == 10  # one per second 0..9 (frame 299: 9.977 s)
