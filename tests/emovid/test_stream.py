"""The threaded pipeline (emovid.stream): order, bounded memory, errors and interrupts cross threads, and the
threaded path gives exactly what the sequential path gives (CSV byte for byte), with real faces."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from onnx_models import brightness_model

from emovid.classify import load_classifier
from emovid.detect import CenterFaceDetector
from emovid.pipeline import AnalysisOptions, Models, OutputOptions, process_video
from emovid.stream import BackgroundWriter, Prefetch, queue_size
from emovid.video import read_frames


def emovid_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("emovid-")]


# --- Prefetch ---------------------------------------------------------------------------------------------------


def test_prefetch_yields_every_item_in_order():
    with Prefetch(range(100), maxsize=3) as items:
        assert list(items) == list(range(100))
    assert not emovid_threads()


def test_prefetch_stays_at_most_maxsize_ahead():
    produced = []

    def source():
        for i in range(50):
            produced.append(i)
            yield i

    with Prefetch(source(), maxsize=4, name="emovid-test") as items:
        assert next(items) == 0
        time.sleep(0.3)  # the worker fills the queue and waits
        assert len(produced) <= 1 + 4 + 1  # the consumed item, a full queue, one waiting to be put


def test_prefetch_raises_the_sources_error_in_the_consumer():
    def source():
        yield 1
        raise OSError("disk gone")

    items = Prefetch(source())
    assert next(items) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(items)
    items.close()


def test_closing_a_prefetch_stops_its_worker_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(10_000)
        finally:
            closed.set()  # e.g. read_frames closing its container

    with Prefetch(source(), maxsize=2, name="emovid-test") as items:
        assert next(items) == 0
    assert closed.is_set() and not emovid_threads()
    with pytest.raises(StopIteration):
        next(items)


def test_queues_of_big_frames_are_shorter():
    assert queue_size(640 * 360 * 3) == 8
    assert queue_size(3840 * 2160 * 3) == 2  # 25 MB frames: two, not eight
    assert queue_size(0) == 8


# --- BackgroundWriter -------------------------------------------------------------------------------------------


def test_writer_writes_everything_in_order_before_close_returns():
    written = []

    def slow_write(item):
        time.sleep(0.001)
        written.append(item)

    with BackgroundWriter(slow_write, maxsize=2) as writer:
        for i in range(30):
            writer.submit(i)
    assert written == list(range(30)) and not emovid_threads()


def test_writer_error_is_raised_in_the_caller():
    def write(item):
        if item == 3:
            raise OSError("no space left on device")

    writer = BackgroundWriter(write, maxsize=1)
    with pytest.raises(OSError, match="no space"):
        for i in range(100):
            writer.submit(i)
    writer.abort()
    assert not emovid_threads()


def test_writer_aborts_when_the_block_fails():
    written = []
    with pytest.raises(KeyboardInterrupt), BackgroundWriter(written.append, maxsize=100) as writer:
        writer.submit(1)
        raise KeyboardInterrupt
    assert not emovid_threads() and written in ([], [1])


# --- the pipeline: threaded == sequential -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_models(tmp_path_factory):
    """The shipped CenterFace detector and the tiny brightness emotion model (fast, deterministic)."""
    classifier = load_classifier(brightness_model(tmp_path_factory.mktemp("m") / "bright.onnx"), device="cpu")
    return Models(detector=CenterFaceDetector(device="cpu"), classifier=classifier)


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """Real faces (carphone) at 29.97 fps: one moving across the frame, one appearing after 0.5 s; 480x270, so the
    default schedule's scans between full ones are at half size (320 px)."""
    import media

    folder = tmp_path_factory.mktemp("v")
    rate = 30000 / 1001
    n = 60
    frames, boxes = [], []
    for i in range(n):
        x = 20 + 2.0 * i  # the first face moves 2 px per frame
        shown = [((x, 40.0, x + 64.0, 120.0), 0)]
        if i >= 15:
            shown.append(((220.0, 60.0, 276.0, 130.0), 1))
        frames.append(media.face_image((480, 270), shown, seed=1))
        boxes.append(shown)
    path = media.write_frames(folder / "two.mp4", frames, fps=rate, audio=True)
    return path


def test_threaded_pipeline_writes_the_same_files_as_the_sequential_one(tmp_path, two_faces, real_models):
    outputs = {}
    for threaded in (False, True):
        out = tmp_path / ("threaded" if threaded else "sequential")
        result = process_video(two_faces, AnalysisOptions(threaded=threaded),
                               OutputOptions(out_dir=out, video=True, frames=True, png=False), models=real_models)
        assert result.status == "done" and result.frames == 60 and result.tracks == 2
        outputs[threaded] = out
    for name in ("two.timeline.csv", "two.frames.csv"):
        assert (outputs[True] / name).read_bytes() == (outputs[False] / name).read_bytes(), name
    # The annotated videos get the same frames at the same times. Their pixels are compared with a tolerance:
    # libx264 (threaded) was seen to encode the same frames slightly differently in two sequential runs too.
    annotated = [list(read_frames(outputs[t] / "two.annotated.mp4")) for t in (False, True)]
    assert [f.timestamp_s for f in annotated[0]] == [f.timestamp_s for f in annotated[1]]
    assert len(annotated[0]) == 60
    for a, b in zip(*annotated, strict=True):
        assert np.abs(a.image.astype(np.int16) - b.image).mean() < 1.0
    assert not emovid_threads()


class ScanSizes:
    """A detector that records the size each whole-frame scan asked for (None: the detector's own)."""

    def __init__(self, detector):
        self.detector, self.runtime, self.sizes = detector, detector.runtime, []

    def detect(self, image_bgr, max_side=None):
        self.sizes.append(max_side)
        return self.detector.detect(image_bgr, max_side)

    def detect_regions(self, image_bgr, windows_xyxy):
        return self.detector.detect_regions(image_bgr, windows_xyxy)


def test_the_default_schedule_keeps_the_track_ids_of_the_exact_path(two_faces, real_models):
    ids = {}
    detector = ScanSizes(real_models.detector)
    models = Models(detector=detector, classifier=real_models.classifier)
    for name, options in (("exact", AnalysisOptions(every=1, scan_every_s=0)), ("default", AnalysisOptions())):
        frames = []
        detector.sizes.clear()
        process_video(two_faces, options, OutputOptions(csv=False, png=False), models=models, on_frame=frames.append)
        ids[name] = [f.faces.track_id.tolist() for f in frames]
    # scans at 0 s (full), 0.5 s and 1.0 s, 1.5 s (half size): 2 s of video
    assert detector.sizes == [None, 320, 320, 320]
    # the moving face stays #1 between detections and in its windows; the second face (from frame 15, 0.5005 s)
    # is #2 from its first frame: the second scan, at half size, is due at 0.5 s
    assert ids["default"] == ids["exact"]
    assert ids["exact"][0] == [1] and ids["exact"][15] == [1, 2] and ids["exact"][-1] == [1, 2]


class Interrupting:
    """A progress callback that presses Ctrl-C at a given frame."""

    def __init__(self, at_frame: int):
        self.at_frame = at_frame

    def __call__(self, done: int, total: int) -> None:
        if done == self.at_frame:
            raise KeyboardInterrupt


def test_interrupt_stops_the_threads_and_leaves_no_output(tmp_path, two_faces, real_models):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        process_video(two_faces, AnalysisOptions(), OutputOptions(out_dir=out, video=True, frames=True),
                      progress=Interrupting(20), models=real_models)
    assert list(out.iterdir()) == [] and not emovid_threads()


class FailingClassifier:
    """An emotion classifier that fails on its n-th batch (a worker-side failure is tested in the writer tests)."""

    def __init__(self, inner, fail_at: int):
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        self.name, self.labels, self.runtime = inner.name, inner.labels, inner.runtime

    def describe(self) -> str:
        return self.inner.describe()

    def predict(self, crops):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("inference failed")
        return self.inner.predict(crops)


def test_a_failure_mid_video_stops_the_threads_and_leaves_no_output(tmp_path, two_faces, real_models):
    models = Models(detector=real_models.detector, classifier=FailingClassifier(real_models.classifier, 3))
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="inference failed"):
        process_video(two_faces, AnalysisOptions(), OutputOptions(out_dir=out, video=True), models=models)
    assert list(out.iterdir()) == [] and not emovid_threads()


def test_the_detector_input_size_option_reaches_the_detector(tmp_path):
    from emovid.pipeline import load_models

    model = brightness_model(tmp_path / "bright.onnx")
    models = load_models(AnalysisOptions(model=str(model), device="cpu", detect_size_px=320))
    assert models.detector.max_side == 320
    with pytest.raises(ValueError, match="detect_size_px"):
        AnalysisOptions(detect_size_px=16)
