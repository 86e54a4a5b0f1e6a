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
    from emovid.annotate import annotate
    from emovid.tables import open_table
    from emovid.timeline import FRAME_TABLE, TIMELINE_TABLE, TimelineBuilder, frame_values, render_png
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
    models = models or loading.load_models(options)
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
        frames_table = None
        frames_closing = stack.enter_context(ExitStack())  # closed before the commit, or with the rest on a failure
        if paths.frames is not None:
            frames_table = frames_closing.enter_context(open_table(staged, paths.frames, FRAME_TABLE,
                                                                   outputs.table_format))
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
                if frames_table is not None:
                    frames_table.write(frame_values(item.faces))
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
        frames_closing.close()  # the per-frame table is complete
        timeline = builder.build()
        if paths.csv is not None:
            with open_table(staged, paths.csv, TIMELINE_TABLE, outputs.table_format) as table:
                table.write(row.values() for row in timeline.rows)
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
