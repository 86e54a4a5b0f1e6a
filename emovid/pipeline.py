"""The pipeline: probe -> read_frames -> detect (every N) / track -> crop + classify (batched; each face every N) ->
annotate + VideoSink (annotate only) -> timeline rows.

Stages are generators over small records, so decode, inference and encode run in threads (emovid.stream:
decoding ahead, encoding behind; AnalysisOptions.threaded) without changing what each stage does: the
threaded and sequential paths write the same CSVs. `process_video` analyses one video and writes its outputs atomically;
`run_batch` runs many and turns each video's failure into a result; `analyze` is the notebook API.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

import numpy as np

from emovid import DEFAULT_CLASSIFY_EVERY, DEFAULT_EVERY, DEFAULT_FULL_SCAN_S, DEFAULT_SCAN_S, EMOTIONS
from emovid.errors import EmovidError, InputError, ModelError, OutputError
from emovid.faces import Faces, Frame, FrameFaces
from emovid.outputs import (
    OutputPaths,
    Staged,
    check_names,
    foreign_outputs,
    input_id,
    input_identity,
    is_output_name,
    manifest_text,
    matching_outputs,
    output_error,
    output_paths,
    prepare_dir,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from emovid.classify import EmotionClassifier
    from emovid.detect import FaceDetector
    from emovid.runtime import SessionConfig
    from emovid.timeline import Timeline

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
ProgressCallback = Callable[[int, int], None]  # (frames decoded so far, expected frame count)


@dataclass(frozen=True)
class AnalysisOptions:
    """What is analysed and how (the same for every video of a batch)."""

    model: str = "best"  # best | scratch | mobilenetv2 | vgg16 | ensemble | PATH.onnx
    device: str = "auto"  # auto | cpu | cuda | tensorrt
    detector: str = "auto"  # auto (centerface-int8 on the CPU, centerface on a GPU) | centerface | centerface-int8
    min_face_px: int = 0  # ignore faces smaller than this (box side, pixels)
    detect_size_px: int = 640  # frames are shrunk to this longer side for the face detector (never enlarged)
    every: int = DEFAULT_EVERY  # run the detector every N analysed frames; the tracker predicts boxes in between
    classify_every: int = DEFAULT_CLASSIFY_EVERY  # classify each tracked face every N analysed frames; held between
    scan_every_s: float = DEFAULT_SCAN_S  # the whole frame this often; in between, around the tracked faces only
    full_scan_every_s: float = DEFAULT_FULL_SCAN_S  # scans at detect_size_px this often, at half of it in between
    sample_fps: float | None = None  # analyse this many frames per second of video (None: every frame)
    max_gap_s: float = 1.0  # a track survives this long without detections
    reid_window_s: float | None = None  # a person absent up to this long gets their id back (emovid.reid); 0: off;
    # None: DEFAULT_REID_WINDOW_S when the re-identification extra is installed, else off
    detect_cuts: bool = True  # end every track at a shot cut and scan the whole frame at once (emovid.cuts)
    batch_frames: int = 8  # frames whose faces are classified in one batch
    threaded: bool = True  # decode and encode in worker threads (emovid.stream); False: all in one
    inference_threads: int = 0  # ONNX Runtime's intra-op threads per model on the CPU; 0: its default (one per core)
    framing: str = "aligned"  # aligned (landmarks onto FER2013's) | box (a square of the detector's box); emovid.crop
    box_scale: float = 1.0  # the box framing's side, in multiples of the box's longer side
    max_megapixels: float = 36.0  # larger frames fail the video: memory grows with frame size (8K UHD fits)

    @property
    def coarse_side_px(self) -> int | None:
        """The detector's input size for the scans between full ones: half of detect_size_px; None (every scan
        full) when that is under the detector's 32 px minimum."""
        half = self.detect_size_px // 2
        return half if half >= 32 else None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.classify_every < 1:
            raise ValueError(f"classify_every must be >= 1, got {self.classify_every}")
        for name in ("scan_every_s", "full_scan_every_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.sample_fps is not None and not (self.sample_fps > 0 and math.isfinite(self.sample_fps)):
            raise ValueError(f"sample_fps must be > 0, got {self.sample_fps}")
        if self.min_face_px < 0:
            raise ValueError(f"min_face_px must be >= 0, got {self.min_face_px}")
        if self.detect_size_px < 32:
            raise ValueError(f"detect_size_px must be >= 32, got {self.detect_size_px}")
        if self.batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {self.batch_frames}")
        if self.inference_threads < 0:
            raise ValueError(f"inference_threads must be >= 0, got {self.inference_threads}")
        if self.framing not in ("aligned", "box"):
            raise ValueError(f"framing must be aligned or box, got {self.framing!r}")
        if not (0.5 <= self.box_scale <= 4):
            raise ValueError(f"box_scale must be in [0.5, 4], got {self.box_scale}")
        if not (self.max_megapixels > 0 and math.isfinite(self.max_megapixels)):
            raise ValueError(f"max_megapixels must be > 0, got {self.max_megapixels}")

        if self.reid_window_s is not None and not (self.reid_window_s >= 0 and math.isfinite(self.reid_window_s)):
            raise ValueError(f"reid_window_s must be >= 0, got {self.reid_window_s}")


    @property
    def effective_reid_window_s(self) -> float:
        """The re-identification window in use: reid_window_s, or for None the default when the extra is
        installed (0 otherwise)."""
        if self.reid_window_s is not None:
            return self.reid_window_s
        from emovid.reid import DEFAULT_REID_WINDOW_S, reid_available

        return DEFAULT_REID_WINDOW_S if reid_available() else 0.0

    def shaping(self) -> dict:
        """The options that shape the results (recorded with the outputs; a rerun skips only on a match), with
        emovid's version; not those that only change speed or what is accepted."""
        from emovid import __version__

        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("threaded", "inference_threads", "batch_frames", "max_megapixels")}
        if self.model.lower().endswith(".onnx"):  # a model file retrained in place gives other results
            with contextlib.suppress(OSError):
                st = os.stat(self.model)
                fields["model_file"] = {"path": os.path.abspath(self.model), "size": st.st_size,
                                        "mtime_ns": st.st_mtime_ns}
        fields["reid_window_s"] = self.effective_reid_window_s  # installing the extra changes the default
        return {"emovid": __version__, **fields}


@dataclass(frozen=True)
class OutputOptions:
    """What is written where. Defaults: the timeline CSV and PNG beside the input."""

    out_dir: Path | None = None  # None: beside each input
    video: bool = False  # <stem>.annotated.mp4
    csv: bool = True  # <stem>.timeline.csv
    png: bool = True  # <stem>.timeline.png
    frames: bool = False  # <stem>.frames.csv
    overwrite: bool = False  # False: skip a video whose outputs match their record; never replace others' files
    always: bool = False  # analyse every video even when its outputs match (--csv collects every input's rows)

    def paths_for(self, video_path: Path) -> OutputPaths:
        return output_paths(video_path, self.out_dir, video=self.video, csv=self.csv, png=self.png,
                            frames=self.frames)

    def needs_work(self, video_path: Path, options: AnalysisOptions | None = None) -> bool:
        """False when the video would be skipped: every wanted output is on disk as emovid recorded it for this
        input and these analysis options (default ones when None), and neither `overwrite` nor `always`."""
        if self.overwrite or self.always:
            return True
        shaping = (options or AnalysisOptions()).shaping()
        return not matching_outputs(self.paths_for(video_path), input_identity(video_path), shaping)


NO_OUTPUTS = OutputOptions(csv=False, png=False)


@dataclass
class Models:
    """The detector and emotion classifier of a batch (loaded once)."""

    detector: FaceDetector
    classifier: EmotionClassifier

    def describe(self) -> str:
        """One line: the execution provider in use, then the emotion model and the face detector."""
        line = self.classifier.runtime.describe()
        detector_runtime = getattr(self.detector, "runtime", None)
        if detector_runtime is not None and detector_runtime.provider != self.classifier.runtime.provider:
            line += f" (face detector: {detector_runtime.describe()})"
        detector_name = getattr(self.detector, "name", None)
        return f"{line}; {self.classifier.describe()}" + (f"; face detector {detector_name}" if detector_name else "")


def load_models(options: AnalysisOptions, session_config: SessionConfig | None = None) -> Models:
    """Load the face detector and the emotion classifier (ModelError / DeviceError on failure; ModelError too when
    re-identification is asked for and its extra is missing). `session_config`: extra ONNX Runtime settings for
    both models' sessions (see emovid.runtime.session_options)."""
    from emovid.classify import load_classifier

    if options.reid_window_s:
        from emovid.reid import DlibEmbedder

        DlibEmbedder()  # checks that the extra is installed; its models load when first needed

    threads = options.inference_threads
    classifier = load_classifier(options.model, options.device, intra_op_threads=threads,
                                 session_config=session_config)
    from emovid.detect import load_detector

    detector = load_detector(options.detector, device=options.device, min_face_px=options.min_face_px,
                             max_side=options.detect_size_px, intra_op_threads=threads,
                             session_config=session_config)
    return Models(detector=detector, classifier=classifier)


class ModelsLoading:
    """`load_models(options)` running in a daemon thread from construction on; `result()` waits for it and returns
    the Models, or raises what loading raised (ModelError, DeviceError...).

    ONNX Runtime builds its sessions without holding the GIL, so the CLI starts this first and imports the video,
    drawing and console modules and checks the inputs meanwhile. A daemon thread, so an
    interrupted or failed run does not wait for the models it will never use."""

    def __init__(self, options: AnalysisOptions):
        import threading

        self._models: Models | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(options,), name="emovid-load-models", daemon=True)
        self._thread.start()

    def _load(self, options: AnalysisOptions) -> None:
        try:
            self._models = load_models(options)
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def result(self) -> Models:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._models is not None
        return self._models


@dataclass(frozen=True)
class VideoResult:
    path: Path
    status: Literal["done", "skipped", "failed"]
    outputs: tuple[Path, ...] = ()
    duration_s: float | None = None
    frames: int = 0  # frames decoded
    analysed_frames: int = 0
    tracks: int = 0  # distinct track ids (people) seen
    elapsed_s: float = 0.0
    error: str | None = None  # one line, for failures
    node: str | None = None  # the machine that processed it (Ray runs)
    runtime: str | None = None  # the execution provider and models it ran on (Ray runs)
    timeline: Timeline | None = field(default=None, repr=False)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def fps(self) -> float | None:
        """Processing speed (decoded frames per second of wall time)."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 and self.frames else None


# --- inputs -----------------------------------------------------------------------------------------------------


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not is_output_name(p.name))


def _no_videos(args: Sequence[str]) -> str:
    kinds = "/".join(e.lstrip(".") for e in VIDEO_EXTENSIONS)
    return f"{', '.join(args)}: no video files found ({kinds})"


def collect_inputs(args: Sequence[str | Path]) -> list[Path]:
    """Files, folders (their video files by extension, not recursive) and globs (`**` recurses) -> video paths in
    argument order, each once. InputError when an argument matches nothing."""
    found, missing, empty = find_inputs(args)
    if missing:
        raise InputError(f"{missing[0]}: no such file or folder")
    if empty:
        raise InputError(_no_videos(empty))
    return found


def input_problems(args: Sequence[str | Path]) -> tuple[list[Path], list[VideoResult]]:
    """(the videos of `args` as collect_inputs finds them, a "failed" result for each argument that matches nothing),
    so a batch can process the videos it found and report the rest."""
    found, missing, empty = find_inputs(args)
    failed = [VideoResult(path=Path(a), status="failed", error=f"{a}: no such file or folder") for a in missing]
    failed += [VideoResult(path=Path(a), status="failed", error=_no_videos([a])) for a in empty]
    return found, failed


def find_inputs(args: Sequence[str | Path]) -> tuple[list[Path], list[str], list[str]]:
    """(video paths in argument order, each once; arguments that do not exist; arguments without videos)."""
    found: list[Path] = []
    missing: list[str] = []
    empty: list[str] = []
    for arg in args:
        text = str(arg)
        path = Path(text).expanduser()
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = _videos_in(path)
        elif glob.has_magic(text):
            matches = []
            for hit in sorted(glob.glob(str(path), recursive=True)):
                hit_path = Path(hit)
                if hit_path.is_dir():
                    matches.extend(_videos_in(hit_path))
                elif hit_path.suffix.lower() in VIDEO_EXTENSIONS and not is_output_name(hit_path.name):
                    matches.append(hit_path)
        else:
            missing.append(text)
            continue
        if not matches:
            empty.append(text)
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), missing, empty


def check_output_collisions(paths: Sequence[Path], outputs: OutputOptions) -> None:
    """InputError when two inputs would write the same output file (same stem, same output folder)."""
    owner: dict[Path, Path] = {}
    for path in paths:
        for out in outputs.paths_for(path).paths():
            try:
                key = out.resolve()
            except OSError:  # e.g. a name too long: that video fails on its own later
                key = Path(os.path.abspath(out))
            if key in owner:
                raise InputError(f"{owner[key]} and {path} would both write {out}; process them in separate runs "
                                 "or with different --out folders")
            owner[key] = path


# --- the frame pipeline -----------------------------------------------------------------------------------------


class AnalysedFrame(NamedTuple):
    """One decoded frame after analysis. `faces` is None for frames not analysed (--sample-fps);
    `image` is None when the caller did not ask to keep images."""

    index: int
    timestamp_s: float
    image: np.ndarray | None
    faces: FrameFaces | None


class Sampler:
    """Picks the first frame at or after each multiple of 1/fps (variable frame rate safe); None takes all."""

    def __init__(self, fps: float | None):
        self.fps = fps
        self._next_s = 0.0

    def take(self, timestamp_s: float) -> bool:
        if self.fps is None:
            return True
        if timestamp_s + 1e-6 < self._next_s:
            return False
        self._next_s = (math.floor(timestamp_s * self.fps + 1e-6) + 1) / self.fps
        return True


class _Pending(NamedTuple):
    index: int
    timestamp_s: float
    image: np.ndarray | None  # kept when the caller keeps images
    faces: Faces | None  # None: not analysed
    crops: np.ndarray | None  # float32 [due.sum(),48,48,1], the faces due for classification (None: none due)
    due: np.ndarray | None = None  # bool [len(faces)]: classified in this frame (the others hold their track's last)


def _classify(classifier: EmotionClassifier, batch: Sequence[_Pending], held: _HeldEmotions) -> list[Faces | None]:
    """The faces of a batch of frames with their probabilities: those due from one predict() call over all their
    crops, the others their track's last (`held`; batches are classified one at a time, in frame order)."""
    crops = [p.crops for p in batch if p.crops is not None]
    probs = classifier.predict(np.concatenate(crops, axis=0)) if crops else np.zeros((0, len(classifier.labels)))
    out: list[Faces | None] = []
    start = 0
    for p in batch:
        if p.faces is None or not len(p.faces):
            out.append(p.faces)
            continue
        n_due = 0 if p.crops is None else len(p.crops)
        out.append(held.apply(p.faces, p.due, probs[start:start + n_due]))
        start += n_due
    return out


class _ClassifySchedule:
    """Which faces of an analysed frame are classified: a tracked face every `every` analysed frames (counted from
    its track's first frame), an untracked one always. `due` runs in analysis order, before classification."""

    def __init__(self, every: int):
        self.every = every
        self._analysed = 0
        self._last: dict[int, int] = {}  # track id -> analysed frame number of its last classification

    def due(self, faces: Faces) -> np.ndarray:
        number, self._analysed = self._analysed, self._analysed + 1
        due = np.ones(len(faces), bool)
        if self.every == 1:
            return due
        for i, track in enumerate(faces.track_id.tolist()):
            if track < 0:
                continue
            last = self._last.get(track)
            if last is not None and number - last < self.every:
                due[i] = False
            else:
                self._last[track] = number
        return due


class _HeldEmotions:
    """Each track's most recent probabilities, for its faces not classified in their frame (_ClassifySchedule
    classifies a track in its first frame, so an earlier value always exists). Used in frame order."""

    def __init__(self) -> None:
        self._last: dict[int, np.ndarray] = {}

    def apply(self, faces: Faces, due: np.ndarray, due_probs: np.ndarray) -> Faces:
        """`faces` with `due_probs` for the faces due and their track's last probabilities for the others."""
        probs = np.empty((len(faces), len(EMOTIONS)), np.float32)
        probs[due] = due_probs
        for i in np.flatnonzero(~due):
            probs[i] = self._last[int(faces.track_id[i])]
        for track, row in zip(faces.track_id.tolist(), probs, strict=True):
            if track >= 0:
                self._last[track] = row
        return faces.with_probs(probs)


def _frames_of(batch: Sequence[_Pending], classified: Sequence[Faces | None]) -> Iterator[AnalysedFrame]:
    for p, faces in zip(batch, classified, strict=True):
        yield AnalysedFrame(p.index, p.timestamp_s, p.image,
                            None if faces is None else FrameFaces(p.index, p.timestamp_s, faces))


class _BatchClassifier:
    """Classifies batches of frames in submission order. Threaded: in one worker thread, one batch at a time, while
    the caller detects and tracks the next batch (ONNX Runtime releases the GIL); `submit` yields the frames of the
    previous batch, so at most two batches are held. Sequential: in the caller's thread, yielded at once.
    The batches are the same and classified in the same order either way (held emotions included), so both give the
    same results."""

    def __init__(self, classifier: EmotionClassifier, threaded: bool):
        self.classifier = classifier
        self._held = _HeldEmotions()  # only used by the one thread that classifies, batch after batch
        self._executor = None
        if threaded:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emovid-classify")
        self._in_flight = None

    def submit(self, batch: list[_Pending]) -> Iterator[AnalysedFrame]:
        if self._executor is None:
            yield from _frames_of(batch, _classify(self.classifier, batch, self._held))
            return
        previous = self._in_flight
        self._in_flight = (batch, self._executor.submit(_classify, self.classifier, batch, self._held))
        if previous is not None:
            yield from _frames_of(previous[0], previous[1].result())

    def finish(self) -> Iterator[AnalysedFrame]:
        previous, self._in_flight = self._in_flight, None
        if previous is not None:
            yield from _frames_of(previous[0], previous[1].result())

    def __enter__(self) -> _BatchClassifier:
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:  # on errors and interrupts too: the worker ends after its current batch
            self._executor.shutdown(wait=True, cancel_futures=True)


def analyse_frames(frames: Iterable[Frame], models: Models, options: AnalysisOptions, tracker=None,
                   keep_images: bool = False) -> Iterator[AnalysedFrame]:
    """Detect (emovid.schedule: the whole frame every `scan_every_s` seconds, at full size every
    `full_scan_every_s` and at half size in between, the tracked faces every `every` analysed frames) / track / crop
    / classify; yields every decoded frame, in order.

    Each tracked face is classified every `options.classify_every` analysed frames (_ClassifySchedule; a new track at
    once) and holds its track's last probabilities in between (_HeldEmotions, in frame order, so threaded and
    sequential runs agree). The faces of up to `options.batch_frames` analysed frames are classified in one batch
    (in a worker thread when `options.threaded`). `tracker` defaults to a new FaceTracker(max_gap_s=options.max_gap_s)
    with a re-identifier for options.effective_reid_window_s (ModelError when one is asked for and dlib is missing);
    `keep_images` passes the images on (for annotation).
    """
    from emovid.crop import crop_faces
    from emovid.cuts import CutDetector
    from emovid.schedule import FaceFinder

    if tracker is None:
        from emovid.reid import make_reidentifier
        from emovid.track import FaceTracker

        tracker = FaceTracker(max_gap_s=options.max_gap_s, reid=make_reidentifier(options.effective_reid_window_s))
    finder = FaceFinder(models.detector, tracker, every=options.every, scan_every_s=options.scan_every_s,
                        full_scan_every_s=options.full_scan_every_s, coarse_side_px=options.coarse_side_px,
                        cut_detector=CutDetector() if options.detect_cuts else None)
    sampler = Sampler(options.sample_fps)
    schedule = _ClassifySchedule(options.classify_every)
    pending: list[_Pending] = []
    n_pending_analysed = 0
    with _BatchClassifier(models.classifier, options.threaded) as classifier:
        for frame in frames:
            image = frame.image if keep_images else None
            if sampler.take(frame.timestamp_s):
                faces = finder.faces_at(frame.image, frame.timestamp_s)
                due = schedule.due(faces)
                crops = (crop_faces(frame.image, faces.xyxy[due], faces.landmarks[due], options.framing,
                                    options.box_scale) if due.any() else None)
                pending.append(_Pending(frame.index, frame.timestamp_s, image, faces, crops, due))
                n_pending_analysed += 1
            else:
                pending.append(_Pending(frame.index, frame.timestamp_s, image, None, None))
            if n_pending_analysed >= options.batch_frames or len(pending) >= 4 * options.batch_frames:
                yield from classifier.submit(pending)
                pending, n_pending_analysed = [], 0
        yield from classifier.submit(pending)
        yield from classifier.finish()


# --- one video --------------------------------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    """An exception as one line: EmovidError messages as they are, others prefixed with their type."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EmovidError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def process_video(path: Path | str, options: AnalysisOptions = AnalysisOptions(),
                  outputs: OutputOptions = OutputOptions(), progress: ProgressCallback | None = None,
                  models: Models | None = None, on_frame: Callable[[FrameFaces], None] | None = None) -> VideoResult:
    """Analyse one video and write its outputs and their record (emovid.outputs: all or none, at the end).

    Skips (status "skipped") when every wanted output matches its record for this input and these options, and not
    `outputs.overwrite` / `outputs.always`. Raises EmovidError subclasses for problems the user can fix (InputError
    for an undecodable or cut file, OutputError for an output emovid did not write, ModelError for an emotion model
    that returns NaN...).
    """
    from emovid.annotate import annotate
    from emovid.timeline import TimelineBuilder, frame_rows, render_png
    from emovid.video import VideoSink, probe, read_frames

    path = Path(path)
    paths = outputs.paths_for(path)
    identity, shaping = input_identity(path), options.shaping()
    if not (outputs.overwrite or outputs.always) and matching_outputs(paths, identity, shaping):
        return VideoResult(path=path, status="skipped", outputs=paths.paths())
    foreign = [] if outputs.overwrite else foreign_outputs(paths)
    if foreign:
        raise OutputError(f"{foreign[0]}: exists and was not written by emovid (or was changed since); --overwrite "
                          "replaces it")
    started = time.perf_counter()
    info = probe(path, max_megapixels=options.max_megapixels)
    width, height = info.size_wh  # as decoded (a header may say otherwise)
    if width * height > options.max_megapixels * 1e6:
        raise InputError(f"{path}: frames of {width}x{height} are over --max-megapixels {options.max_megapixels:g} "
                         "(memory grows with frame size; raise it to analyse this video)")
    if paths.paths():
        prepare_dir(paths.paths()[0].parent)
        check_names(paths)
    models = models or load_models(options)
    builder = TimelineBuilder(path.name, info.duration_s, frame_period_s=1.0 / info.fps, input_id=input_id(path))
    tracks: set[int] = set()
    decoded = analysed = 0
    total = max(int(info.frame_count), 0)
    if progress is not None:
        progress(0, total)
    with ExitStack() as stack:
        staged = stack.enter_context(Staged())  # exits last: removes the temporaries unless committed
        sink = None
        if paths.video is not None:
            temp_video = staged.temp(paths.video)
            sink = stack.enter_context(VideoSink(temp_video, info, audio_from=path if info.has_audio else None))
        frames_file = None
        if paths.frames is not None:
            import csv

            from emovid.timeline import FRAME_COLUMNS

            frames_handle = stack.enter_context(staged.text(paths.frames))
            frames_file = csv.writer(frames_handle, lineterminator="\n")
            frames_file.writerow(FRAME_COLUMNS)
        frames = read_frames(path, info)
        encode = writer = None
        if sink is not None:
            def encode(drawn: tuple[np.ndarray, float]) -> None:
                sink.write(*drawn)
        if options.threaded:  # decode ahead and encode behind the analysis; each exits before the sink does
            from emovid.stream import BackgroundWriter, Prefetch, queue_size

            depth = queue_size(info.size_wh[0] * info.size_wh[1] * 3)
            frames = stack.enter_context(Prefetch(frames, maxsize=depth, name="emovid-decode"))
            if encode is not None:
                # Only the encoder in its thread: libx264 sets the pace, and drawing there too kept its frame threads
                # waiting for the next frame.
                writer = stack.enter_context(BackgroundWriter(encode, maxsize=depth, name="emovid-encode"))
                encode = writer.submit
        stream = analyse_frames(frames, models, options, keep_images=sink is not None)
        for item in stream:
            decoded += 1
            builder.saw(item.timestamp_s)
            if item.faces is not None:
                probs = item.faces.faces.probs
                if len(probs) and not np.isfinite(probs).all():  # dropping those faces would report "no face"
                    raise ModelError(f"{path}: {_model_name(models.classifier)} returned NaN or infinite "
                                     f"probabilities for a face at {item.timestamp_s:.3f} s")
                analysed += 1
                builder.add(item.faces)
                tracks.update(int(t) for t in item.faces.faces.track_id if t >= 0)
                if frames_file is not None:
                    try:
                        frames_file.writerows(frame_rows(item.faces))
                    except OSError as exc:  # e.g. the disk is full
                        raise output_error(paths.frames, exc) from None
                if on_frame is not None:
                    on_frame(item.faces)
            if encode is not None:
                faces = item.faces.faces if item.faces is not None else Faces.empty()
                encode((annotate(item.image, faces, models.classifier.labels), item.timestamp_s))
            if progress is not None:
                progress(decoded, max(total, decoded))
        if decoded == 0:
            raise InputError(f"{path}: no frames could be decoded")
        # every output is finished before any is renamed (Staged.commit): all or none
        if writer is not None:
            writer.close()  # the frames still queued for encoding
        if sink is not None:
            sink.close()
        if frames_file is not None:
            try:
                frames_handle.close()
            except OSError as exc:
                raise output_error(paths.frames, exc) from None
        timeline = builder.build()
        if paths.csv is not None:
            with staged.text(paths.csv) as handle:
                timeline.write_csv(handle)
        if paths.png is not None:
            staged.write(paths.png, render_png(timeline))
        if paths.paths():
            staged.write(paths.manifest, manifest_text(paths, staged, identity, shaping))  # renamed last
        staged.commit()
    return VideoResult(path=path, status="done", outputs=paths.paths(), duration_s=timeline.duration_s,
                       frames=decoded, analysed_frames=analysed, tracks=len(tracks),
                       elapsed_s=time.perf_counter() - started, timeline=timeline)


def _model_name(classifier: EmotionClassifier) -> str:
    """The emotion model as a failure names it: its name and, for one model, its file."""
    members = getattr(classifier, "models", ())
    where = f" ({members[0].path})" if len(members) == 1 and getattr(members[0], "path", None) else ""
    return f"emotion model {getattr(classifier, 'name', 'unknown')}{where}"


# --- batches ----------------------------------------------------------------------------------------------------


class BatchReporter(Protocol):
    """What run_batch tells its caller (the CLI shows a progress bar and a summary with it)."""

    def models_loaded(self, models: Models) -> None: ...

    def video_started(self, path: Path) -> ProgressCallback | None: ...

    def video_finished(self, result: VideoResult) -> None: ...


class SilentReporter:
    def models_loaded(self, models: Models) -> None:
        pass

    def video_started(self, path: Path) -> ProgressCallback | None:
        return None

    def video_finished(self, result: VideoResult) -> None:
        pass


def run_batch(paths: Sequence[Path], options: AnalysisOptions = AnalysisOptions(),
              outputs: OutputOptions = OutputOptions(), reporter: BatchReporter | None = None,
              models: Models | ModelsLoading | None = None) -> list[VideoResult]:
    """Process videos one after the other. A video that fails becomes a "failed" result (one-line error) and the
    others still run. Models load once, when the first video needs them (or, given a ModelsLoading, are waited for
    then): ModelError / DeviceError from loading propagate (nothing can run). KeyboardInterrupt propagates after the
    current video's temporaries are removed.
    """
    reporter = reporter or SilentReporter()
    results = []
    for path in paths:
        path = Path(path)
        if not outputs.needs_work(path, options):
            result = VideoResult(path=path, status="skipped", outputs=outputs.paths_for(path).paths())
        else:
            if models is None or isinstance(models, ModelsLoading):
                models = load_models(options) if models is None else models.result()
                reporter.models_loaded(models)
            callback = reporter.video_started(path)
            started = time.perf_counter()
            try:
                result = process_video(path, options, outputs, progress=callback, models=models)
            except Exception as exc:  # one video's failure must not stop the batch
                result = VideoResult(path=path, status="failed", error=one_line(exc),
                                     elapsed_s=time.perf_counter() - started, exception=exc)
        reporter.video_finished(result)
        results.append(result)
    return results


# --- the Python API ---------------------------------------------------------------------------------------------

_MODELS_CACHE: dict[tuple, Models] = {}


def _cached_models(options: AnalysisOptions) -> Models:
    key = (options.model, options.device, options.detector, options.min_face_px, options.detect_size_px)
    if key not in _MODELS_CACHE:
        _MODELS_CACHE.clear()  # keep one set of sessions alive at most
        _MODELS_CACHE[key] = load_models(options)
    return _MODELS_CACHE[key]


def analyze(path: Path | str, *, per_frame: bool = False, models: Models | None = None, **options) -> pd.DataFrame:
    """Analyse one video and return its timeline as a pandas DataFrame (nothing is written).

    Keyword options are AnalysisOptions fields (model, device, detector, min_face_px, every, sample_fps, ...).
    per_frame=True returns one row per face per analysed frame instead of the per-second timeline.
    Raises EmovidError subclasses (InputError, ModelError, DeviceError) with one-line messages.
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(AnalysisOptions)})
    if unknown:
        raise TypeError(f"analyze() got unknown options: {', '.join(unknown)}")
    analysis = AnalysisOptions(**options)
    models = models or _cached_models(analysis)
    frames: list[FrameFaces] = []
    result = process_video(path, analysis, NO_OUTPUTS, models=models, on_frame=frames.append if per_frame else None)
    if per_frame:
        from emovid.timeline import frames_dataframe

        return frames_dataframe(frames)
    return result.timeline.to_dataframe()
