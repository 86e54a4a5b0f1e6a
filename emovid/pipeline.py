"""The pipeline's wiring: one video (`process_video`), a batch (`run_batch`) and the notebook API (`analyze`).

probe -> read_frames -> analyse_frames (emovid.analysis: detect / track / crop / classify) -> annotate + VideoSink
(annotate only) -> timeline and table files, written all or none (emovid.outputs). Decoding runs ahead and encoding
behind in threads (emovid.stream) without changing what a stage does. The options (emovid.options), inputs
(emovid.inputs), models (emovid.loading) and results (emovid.results) are re-exported here as the public API.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from emovid import loading
from emovid.analysis import AnalysedFrame, analyse_frames
from emovid.errors import InputError, ModelError, OutputError
from emovid.faces import Faces, FrameFaces
from emovid.inputs import VIDEO_EXTENSIONS, check_output_collisions, collect_inputs, find_inputs, input_problems
from emovid.loading import Models, ModelsLoading, cached_models, load_models
from emovid.options import NO_OUTPUTS, AnalysisOptions, OutputOptions
from emovid.outputs import (
    Staged,
    check_names,
    foreign_outputs,
    input_id,
    input_identity,
    manifest_text,
    matching_outputs,
    prepare_dir,
)
from emovid.results import VideoResult, one_line

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from emovid.classify import EmotionClassifier

__all__ = [
    "NO_OUTPUTS", "VIDEO_EXTENSIONS", "AnalysedFrame", "AnalysisOptions", "BatchReporter", "Models", "ModelsLoading",
    "OutputOptions", "ProgressCallback", "SilentReporter", "VideoResult", "analyse_frames", "analyze",
    "check_output_collisions", "collect_inputs", "find_inputs", "input_problems", "load_models", "one_line",
    "process_video", "run_batch",
]

ProgressCallback = Callable[[int, int], None]  # (frames decoded so far, expected frame count)


def process_video(path: Path | str, options: AnalysisOptions = AnalysisOptions(),
                  outputs: OutputOptions = OutputOptions(), progress: ProgressCallback | None = None,
                  models: Models | None = None, on_frame: Callable[[FrameFaces], None] | None = None) -> VideoResult:
    """Analyse one video and write its outputs and their record (emovid.outputs: all or none, at the end).

    Skips (status "skipped") when every wanted output matches its record for this input and these options, and not
    `outputs.overwrite` / `outputs.always`. Raises EmovidError subclasses for problems the user can fix (InputError
    for an undecodable or cut file, OutputError for an output emovid did not write, ModelError for an emotion model
    that returns NaN...).
    """
    from emovid.timeline import TimelineBuilder
    from emovid.video import read_frames

    path = Path(path)
    started = time.perf_counter()
    prepared = _prepare(path, options, outputs)
    if isinstance(prepared, VideoResult):
        return prepared
    paths, identity, shaping, info = prepared
    models = models or loading.load_models(options)
    builder = TimelineBuilder(path.name, info.duration_s, frame_period_s=1.0 / info.fps, input_id=input_id(path))
    tracks: set[int] = set()
    decoded = analysed = 0
    total = max(int(info.frame_count), 0)
    if progress is not None:
        progress(0, total)
    with ExitStack() as stack:
        staged = stack.enter_context(Staged())  # exits last: removes the temporaries unless committed
        sinks = stack.enter_context(_Sinks(staged, path, info, paths, options, outputs.table_format,
                                           models.classifier.labels))
        frames = read_frames(path, info)
        if options.threaded:  # decode ahead of the analysis
            from emovid.stream import Prefetch

            frames = stack.enter_context(Prefetch(frames, maxsize=sinks.depth, name="emovid-decode"))
        for item in analyse_frames(frames, models, options, keep_images=sinks.sink is not None):
            decoded += 1
            builder.saw(item.timestamp_s)
            if item.faces is not None:
                _check_probabilities(path, item, models.classifier)
                analysed += 1
                builder.add(item.faces)
                tracks.update(int(t) for t in item.faces.faces.track_id if t >= 0)
                if on_frame is not None:
                    on_frame(item.faces)
            sinks.write(item)
            if progress is not None:
                progress(decoded, max(total, decoded))
        if decoded == 0:
            raise InputError(f"{path}: no frames could be decoded")
        sinks.close()  # every output is finished before any is renamed (Staged.commit): all or none
        timeline = builder.build()
        _stage_timeline(staged, paths, timeline, outputs.table_format)
        if paths.paths():
            staged.write(paths.manifest, manifest_text(paths, staged, identity, shaping))  # renamed last
        staged.commit()
    return VideoResult(path=path, status="done", outputs=paths.paths(), duration_s=timeline.duration_s,
                       frames=decoded, analysed_frames=analysed, tracks=len(tracks),
                       elapsed_s=time.perf_counter() - started, timeline=timeline)


def _prepare(path: Path, options: AnalysisOptions, outputs: OutputOptions):
    """(output paths, input identity, shaping options, VideoInfo) of a video to process, or its "skipped" result.
    OutputError for an output emovid did not write, InputError for an unreadable or too large video."""
    from emovid.video import probe

    paths = outputs.paths_for(path)
    identity, shaping = input_identity(path), options.shaping()
    if not (outputs.overwrite or outputs.always) and matching_outputs(paths, identity, shaping):
        return VideoResult(path=path, status="skipped", outputs=paths.paths())
    foreign = [] if outputs.overwrite else foreign_outputs(paths)
    if foreign:
        raise OutputError(f"{foreign[0]}: exists and was not written by emovid (or was changed since); --overwrite "
                          "replaces it")
    info = probe(path, max_megapixels=options.max_megapixels)
    width, height = info.size_wh  # as decoded (a header may say otherwise)
    if width * height > options.max_megapixels * 1e6:
        raise InputError(f"{path}: frames of {width}x{height} are over --max-megapixels {options.max_megapixels:g} "
                         "(memory grows with frame size; raise it to analyse this video)")
    if paths.paths():
        prepare_dir(paths.paths()[0].parent)
        check_names(paths)
    return paths, identity, shaping, info


class _Sinks:
    """Where a video's analysed frames go besides the timeline: the annotated video (drawn here, encoded in a thread
    when threaded) and the per-frame table, all staged. `close()` finishes them in order; leaving the `with` block
    without it (a failure) stops and closes them."""

    def __init__(self, staged: Staged, path: Path, info, paths, options: AnalysisOptions, table_format: str,
                 labels: Sequence[str]):
        from emovid.stream import queue_size
        from emovid.tables import open_table
        from emovid.timeline import FRAME_TABLE
        from emovid.video import VideoSink

        self.labels = labels
        self.depth = queue_size(info.size_wh[0] * info.size_wh[1] * 3)
        self._stack = ExitStack()
        self.sink = self.table = self._writer = None
        self._encode = None
        if paths.video is not None:
            self.sink = self._stack.enter_context(VideoSink(staged.temp(paths.video), info,
                                                            audio_from=path if info.has_audio else None))
            self._encode = self._write_video
            if options.threaded:
                from emovid.stream import BackgroundWriter

                # Only the encoder in its thread: libx264 sets the pace, and drawing there too kept its frame threads
                # waiting for the next frame.
                self._writer = self._stack.enter_context(BackgroundWriter(self._write_video, maxsize=self.depth,
                                                                          name="emovid-encode"))
                self._encode = self._writer.submit
        if paths.frames is not None:
            self.table = self._stack.enter_context(open_table(staged, paths.frames, FRAME_TABLE, table_format))

    def _write_video(self, drawn: tuple[np.ndarray, float]) -> None:
        self.sink.write(*drawn)

    def write(self, item: AnalysedFrame) -> None:
        from emovid.annotate import annotate
        from emovid.timeline import frame_values

        if self.table is not None and item.faces is not None:
            self.table.write(frame_values(item.faces))
        if self._encode is not None:
            faces = item.faces.faces if item.faces is not None else Faces.empty()
            self._encode((annotate(item.image, faces, self.labels), item.timestamp_s))

    def close(self) -> None:
        """Finish the per-frame table, then the frames still queued for encoding, then the video."""
        self._stack.close()

    def __enter__(self) -> _Sinks:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)


def _stage_timeline(staged: Staged, paths, timeline, table_format: str) -> None:
    """The timeline table and PNG, staged."""
    from emovid.tables import open_table
    from emovid.timeline import TIMELINE_TABLE, render_png

    if paths.csv is not None:
        with open_table(staged, paths.csv, TIMELINE_TABLE, table_format) as table:
            table.write(row.values() for row in timeline.rows)
    if paths.png is not None:
        staged.write(paths.png, render_png(timeline))


def _check_probabilities(path: Path, item: AnalysedFrame, classifier: EmotionClassifier) -> None:
    """ModelError when the model returned NaN or infinite probabilities (dropping those faces would report "no
    face")."""
    probs = item.faces.faces.probs
    if len(probs) and not np.isfinite(probs).all():
        raise ModelError(f"{path}: {_model_name(classifier)} returned NaN or infinite probabilities for a face at "
                         f"{item.timestamp_s:.3f} s")


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
                models = loading.load_models(options) if models is None else models.result()
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
    models = models or cached_models(analysis)
    frames: list[FrameFaces] = []
    result = process_video(path, analysis, NO_OUTPUTS, models=models, on_frame=frames.append if per_frame else None)
    if per_frame:
        from emovid.timeline import frames_dataframe

        return frames_dataframe(frames)
    return result.timeline.to_dataframe()
