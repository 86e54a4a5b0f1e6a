"""The pipeline's wiring: whole videos (timeline, annotated video, skips, failures), batches and analyze()."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from emovid_fakes import (
    FakeDetector,
    marker_script,
    synthetic_frames,
    two_people,
    write_video,
)

from emovid.annotate import color_for
from emovid.errors import InputError, ModelError, OutputError
from emovid.loading import Models, ModelsLoading
from emovid.options import AnalysisOptions, OutputOptions
from emovid.pipeline import process_video, run_batch
from emovid.video import probe, read_frames


@pytest.fixture(scope="module")
def clip_29_97(tmp_path_factory) -> Path:
    """160x120, 29.97 fps, 100 frames (3.34 s): face 0 throughout, face 1 from frame 30, no face in frames
    60..89 (second 2 has no face), with an audio track."""
    def faces(i):
        return () if 60 <= i < 90 else two_people(i)

    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    return write_video(path, synthetic_frames(100, 29.97, faces), Fraction(30000, 1001), audio=True)


@pytest.fixture(scope="module")
def clip_25(tmp_path_factory) -> Path:
    """160x120, 25 fps, 60 frames (2.4 s), face 0 throughout, no audio."""
    return write_video(tmp_path_factory.mktemp("v") / "clip25.mp4", synthetic_frames(60, 25.0), 25)


# ids survive the 1 s without faces in clip_29_97; both faces vanish and come back at once, which is a cut to the
# cut detector (tracks end there), so it is off
KEEP_IDS = AnalysisOptions(max_gap_s=2.0, detect_cuts=False)


def rows_of(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_timeline_of_a_29_97_fps_video(tmp_path, clip_29_97, models):
    result = process_video(clip_29_97, KEEP_IDS, OutputOptions(out_dir=tmp_path), models=models)
    assert result.status == "done" and result.frames == 100 and result.analysed_frames == 100
    assert result.tracks == 2 and result.duration_s == pytest.approx(100 / 29.97, abs=0.05)
    assert files_in(tmp_path) == ["clip.emovid.json", "clip.timeline.csv", "clip.timeline.png"]
    rows = rows_of(tmp_path / "clip.timeline.csv")
    assert [(r["second"], r["track_id"], r["frames"], r["dominant"]) for r in rows] == [
        ("0", "1", "30", "happy"),
        ("1", "1", "30", "happy"), ("1", "2", "30", "sad"),
        ("2", "", "0", ""),  # frames 60..89 have no face
        ("3", "1", "10", "happy"), ("3", "2", "10", "sad"),
    ]
    assert rows[0]["video"] == "clip.mp4" and rows[-1]["end_s"] == f"{result.duration_s:.3f}"


def test_timeline_of_a_25_fps_video_and_same_bytes_twice(tmp_path, clip_25, models):
    first = process_video(clip_25, AnalysisOptions(), OutputOptions(out_dir=tmp_path / "a", png=False),
                          models=models)
    process_video(clip_25, AnalysisOptions(), OutputOptions(out_dir=tmp_path / "b", png=False), models=models)
    text = (tmp_path / "a" / "clip25.timeline.csv").read_bytes()
    assert text == (tmp_path / "b" / "clip25.timeline.csv").read_bytes()
    assert [r.frames for r in first.timeline.rows] == [25, 25, 10]


def test_complete_outputs_are_skipped_unless_overwrite(tmp_path, clip_25, models):
    outputs = OutputOptions(out_dir=tmp_path)
    assert process_video(clip_25, AnalysisOptions(), outputs, models=models).status == "done"
    csv_path = tmp_path / "clip25.timeline.csv"
    written = csv_path.read_bytes()
    assert process_video(clip_25, AnalysisOptions(), outputs, models=models).status == "skipped"
    (tmp_path / "clip25.timeline.png").unlink()  # incomplete: done again
    assert process_video(clip_25, AnalysisOptions(), outputs, models=models).status == "done"
    assert csv_path.read_bytes() == written
    assert process_video(clip_25, AnalysisOptions(every=1), outputs, models=models).status == "done"  # new options
    assert process_video(clip_25, AnalysisOptions(every=1), outputs, models=models).status == "skipped"
    csv_path.write_text("marker")  # changed since: no longer emovid's, so never replaced without overwrite
    with pytest.raises(OutputError, match="clip25.timeline.csv: exists and was not written by emovid"):
        process_video(clip_25, AnalysisOptions(every=1), outputs, models=models)
    assert csv_path.read_text() == "marker"
    redo = OutputOptions(out_dir=tmp_path, overwrite=True)
    assert process_video(clip_25, AnalysisOptions(), redo, models=models).status == "done"
    assert csv_path.read_bytes() == written


def test_outputs_of_another_input_with_the_same_name_are_not_taken_for_this_one(tmp_path, clip_25, clip_29_97,
                                                                                 models):
    """Two talk.mp4 from different folders into one --out, one after the other: the second is analysed (not
    "skipped" with the first one's results), and the CSV's input_id tells them apart."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "talk.mp4", tmp_path / "b" / "talk.mp4"
    first.write_bytes(clip_25.read_bytes())
    second.write_bytes(clip_29_97.read_bytes())
    outputs = OutputOptions(out_dir=tmp_path / "out")
    assert process_video(first, AnalysisOptions(), outputs, models=models).status == "done"
    ids_first = {r["input_id"] for r in rows_of(tmp_path / "out" / "talk.timeline.csv")}
    result = process_video(second, AnalysisOptions(), outputs, models=models)
    assert result.status == "done" and result.frames == 100
    ids_second = {r["input_id"] for r in rows_of(tmp_path / "out" / "talk.timeline.csv")}
    assert len(ids_first) == len(ids_second) == 1 and ids_first != ids_second
    assert process_video(second, AnalysisOptions(), outputs, models=models).status == "skipped"
    second.write_bytes(clip_25.read_bytes())  # the same name, new content: analysed again
    assert process_video(second, AnalysisOptions(), outputs, models=models).status == "done"


def test_a_file_emovid_did_not_write_is_never_replaced_without_overwrite(tmp_path, clip_25, models):
    clip = tmp_path / "talk.mp4"
    clip.write_bytes(clip_25.read_bytes())
    mine = tmp_path / "talk.annotated.mp4"
    mine.write_bytes(b"the user's own video")
    with pytest.raises(OutputError, match="talk.annotated.mp4: exists and was not written by emovid"):
        process_video(clip, AnalysisOptions(), OutputOptions(video=True), models=models)
    assert mine.read_bytes() == b"the user's own video" and files_in(tmp_path) == ["talk.annotated.mp4", "talk.mp4"]
    assert process_video(clip, AnalysisOptions(), OutputOptions(video=True, overwrite=True),
                         models=models).status == "done"
    assert probe(mine).frame_count == 60


def test_annotated_video_keeps_frame_count_size_fps_and_audio(tmp_path, clip_29_97, models):
    result = process_video(clip_29_97, KEEP_IDS, OutputOptions(out_dir=tmp_path, video=True, frames=True),
                           models=models)
    assert files_in(tmp_path) == ["clip.annotated.mp4", "clip.emovid.json", "clip.frames.csv", "clip.timeline.csv",
                                 "clip.timeline.png"]
    assert result.outputs[0] == tmp_path / "clip.annotated.mp4"
    source, annotated = probe(clip_29_97), probe(tmp_path / "clip.annotated.mp4")
    assert annotated.frame_count == source.frame_count == 100
    assert annotated.size_wh == (160, 120) and annotated.fps == pytest.approx(30000 / 1001, rel=1e-4)
    assert annotated.has_audio
    frame_rows = rows_of(tmp_path / "clip.frames.csv")
    assert len(frame_rows) == 30 + 2 * 30 + 30 + 2 * 10  # one row per face, one per frame without faces
    assert frame_rows[0]["track_id"] == "1" and frame_rows[0]["x1"] == "20.0"


def test_annotated_frames_show_the_faces(tmp_path, clip_25, models):
    process_video(clip_25, AnalysisOptions(), OutputOptions(out_dir=tmp_path, video=True), models=models)
    frames = list(read_frames(tmp_path / "clip25.annotated.mp4"))
    assert len(frames) == 60
    tag = np.median(frames[10].image[20:29, 21:50].reshape(-1, 3), axis=0)  # the label tag above face 0
    assert np.abs(tag - np.array(color_for(1))).max() < 45  # H.264 + yuv420p shift colours a little


class ExplodingDetector(FakeDetector):
    def __init__(self, after: int, error: BaseException):
        super().__init__(marker_script)
        self.after, self.error = after, error

    def detect(self, image_bgr, max_side=None):
        if self.calls + self.region_calls >= self.after:
            raise self.error
        return super().detect(image_bgr, max_side)

    def detect_regions(self, image_bgr, windows_xyxy):
        if self.calls + self.region_calls >= self.after:
            raise self.error
        return super().detect_regions(image_bgr, windows_xyxy)


@pytest.mark.parametrize("error", [RuntimeError("detector crashed"), KeyboardInterrupt()])
def test_a_failure_mid_video_leaves_no_files(tmp_path, clip_29_97, classifier, error):
    models = Models(detector=ExplodingDetector(40, error), classifier=classifier)
    with pytest.raises(type(error)):
        process_video(clip_29_97, AnalysisOptions(every=1), OutputOptions(out_dir=tmp_path, video=True, frames=True),
                      models=models)
    assert files_in(tmp_path) == []


def test_a_batch_reports_a_failing_video_and_runs_the_others(tmp_path, clip_25, models):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    results = run_batch([broken, clip_25], AnalysisOptions(), OutputOptions(out_dir=tmp_path / "out"), models=models)
    assert [r.status for r in results] == ["failed", "done"]
    assert "broken.mp4" in results[0].error and "\n" not in results[0].error
    assert files_in(tmp_path / "out") == ["clip25.emovid.json", "clip25.timeline.csv", "clip25.timeline.png"]


class RecordingReporter:
    def __init__(self):
        self.loaded: list[Models] = []
        self.finished: list[str] = []

    def models_loaded(self, models):
        self.loaded.append(models)

    def video_started(self, path):
        return None

    def video_finished(self, result):
        self.finished.append(result.status)


def test_a_batch_waits_for_models_loading_in_the_background(tmp_path, clip_25, models, monkeypatch):
    import threading

    release, threads = threading.Event(), []

    def slow_load(options):
        threads.append(threading.current_thread().name)
        release.wait(10)  # still loading when run_batch asks for the models
        return models

    monkeypatch.setattr("emovid.loading.load_models", slow_load)
    loading = ModelsLoading(AnalysisOptions())
    threading.Timer(0.2, release.set).start()
    reporter = RecordingReporter()
    results = run_batch([clip_25, clip_25], AnalysisOptions(), OutputOptions(out_dir=tmp_path, overwrite=True),
                        reporter=reporter, models=loading)
    assert [r.status for r in results] == ["done", "done"] and reporter.finished == ["done", "done"]
    assert reporter.loaded == [models] and threads == ["emovid-load-models"]  # loaded once, in its own thread
    assert models.detector.calls > 0


def test_a_loading_error_stops_the_batch_in_the_caller_unless_every_video_is_skipped(tmp_path, clip_25, models,
                                                                                     monkeypatch):
    def broken(options):
        raise ModelError("bad.onnx: not a loadable ONNX model (truncated)")

    monkeypatch.setattr("emovid.loading.load_models", broken)
    outputs = OutputOptions(out_dir=tmp_path)
    with pytest.raises(ModelError, match="bad.onnx"):  # not one "failed" video: nothing can run
        run_batch([clip_25], AnalysisOptions(), outputs, models=ModelsLoading(AnalysisOptions()))
    assert outputs.needs_work(clip_25)
    run_batch([clip_25], AnalysisOptions(), outputs, models=models)
    assert not outputs.needs_work(clip_25) and OutputOptions(out_dir=tmp_path, overwrite=True).needs_work(clip_25)
    results = run_batch([clip_25], AnalysisOptions(), outputs, models=ModelsLoading(AnalysisOptions()))
    assert [r.status for r in results] == ["skipped"]  # the models were never needed, so their error is not raised


def test_sample_fps_analyses_fewer_frames(tmp_path, clip_25, models):
    options = AnalysisOptions(sample_fps=2, every=1)
    result = process_video(clip_25, options, OutputOptions(out_dir=tmp_path), models=models)
    assert result.frames == 60 and result.analysed_frames == 5  # t = 0, 0.5, 1.0, 1.5, 2.0
    assert [r.frames for r in result.timeline.rows] == [2, 2, 1]


def test_analyze_returns_dataframes(clip_29_97, models):
    from emovid import analyze
    from emovid.timeline import COLUMNS, FRAME_COLUMNS

    frame = analyze(clip_29_97, models=models, max_gap_s=2.0)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 6
    assert frame["track_id"].isna().sum() == 1 and frame["dominant"].dropna().unique().tolist() == ["happy", "sad"]
    per_frame = analyze(clip_29_97, models=models, per_frame=True, every=5)
    assert list(per_frame.columns) == list(FRAME_COLUMNS) and len(per_frame) == 30 + 2 * 30 + 30 + 2 * 10
    with pytest.raises(TypeError, match="unknown options: colour"):
        analyze(clip_29_97, models=models, colour=True)
    with pytest.raises(InputError):
        analyze(clip_29_97.with_name("missing.mp4"), models=models)
