"""The `emovid` command line: `annotate` and `timeline` (plus the training commands when that module exists).

Thin: parse options, call emovid.pipeline, map errors to exit codes. Heavy modules (numpy, cv2, av,
onnxruntime, pandas) are imported inside the command bodies so `emovid --help` is instant.
Exit codes: 0 every video done or skipped; 1 some video failed, or some argument matched no video while others
did (the summary lists each with its reason; the other videos are processed); 2 usage or setup error, nothing
processed (no video in any argument, bad option: out of its range, nan or inf; a model that is missing, corrupt or
breaks the contract, `--device cuda`/`tensorrt` on a machine that cannot run it); 130 interrupted (Ctrl-C), 143
SIGTERM, 129 SIGHUP (temporary files are removed, and a rerun skips the videos whose outputs are complete). Every
failure is one line naming the file and the reason (`--debug` adds tracebacks); names are printed with control
characters escaped. Everything but `--csv -` data goes to stderr.
"""

from __future__ import annotations

import math
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from emovid import DEFAULT_CLASSIFY_EVERY, DEFAULT_EVERY, DEFAULT_FULL_SCAN_S, DEFAULT_SCAN_S, __version__
from emovid.runtime import Device

app = typer.Typer(
    name="emovid",
    help="Emotion recognition for videos: detect and track faces, classify their emotions (FER2013's 7), "
         "write an annotated video and a per-second timeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Framing(StrEnum):
    aligned = "aligned"
    box = "box"


class TableFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class Detector(StrEnum):
    auto = "auto"
    centerface = "centerface"
    centerface_int8 = "centerface-int8"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emovid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Emotion recognition for videos."""


def _finite(value: float | None) -> float | None:
    """Click's ranges let nan and inf through (every comparison with nan is false)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


Videos = Annotated[list[str], typer.Argument(
    metavar="VIDEO", show_default=False,
    help="Video files, folders (their .mp4 .mov .mkv .avi .webm .m4v files) or globs ('clips/**/*.mp4').")]
Out = Annotated[Path | None, typer.Option(
    "--out", "-o", file_okay=False, metavar="DIR",
    help="Output folder (created if needed). Default: beside each input.")]
Model = Annotated[str, typer.Option(
    "--model", "-m", metavar="MODEL",
    help="Emotion model: best (the shipped model with the highest test accuracy; its int8 copy on the CPU), "
         "scratch, mobilenetv2, vgg16, scratch-int8, ensemble (mean of the shipped models) or PATH.onnx.")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Execution device (auto: CUDA when it works, else CPU).")]
DetectorOpt = Annotated[Detector, typer.Option(
    "--detector", help="Face detector: auto = centerface-int8 on the CPU (faster, about as accurate), centerface "
                       "(float) on a GPU.")]
MinFace = Annotated[int, typer.Option("--min-face", min=0, max=100_000, metavar="PX",
                                      help="Ignore faces smaller than PX pixels.")]
DetectSize = Annotated[int, typer.Option(
    "--detect-size", min=32, max=16384, metavar="PX",
    help="Longer side of the image the face detector sees (frames are shrunk to it). Smaller is faster but "
         "misses small faces: at 320 a face needs about 32 px in a 640x360 frame.")]
Every = Annotated[int, typer.Option(
    "--every", min=1, max=1_000_000, metavar="N",
    help=f"Run the face detector every N analysed frames; the tracker carries the boxes in between (default "
         f"{DEFAULT_EVERY}).")]
ScanEvery = Annotated[float, typer.Option(
    "--scan-every", min=0.0, max=86400.0, callback=_finite, metavar="S",
    help=f"Search the whole frame for faces every S seconds (default {DEFAULT_SCAN_S:g}: a face that enters is "
         "found within S s, a small one within --full-scan-every); in between, the detector looks only around the "
         "faces it tracks (several times faster). 0: the whole frame at every detection; --every 1 --scan-every 0 "
         "--classify-every 1 is the exact path (docs/performance.md: what the defaults change in the timeline).")]
FullScanEvery = Annotated[float, typer.Option(
    "--full-scan-every", min=0.0, max=86400.0, callback=_finite, metavar="S",
    help=f"Of those whole-frame searches, look at the detector's full size (--detect-size) every S seconds "
         f"(default {DEFAULT_FULL_SCAN_S:g}) and at half of it in between (about a third of the time; finds faces at "
         "least twice the smallest a full search finds, so a small face that enters is found within S s). 0: "
         "every search at full size.")]
ClassifyEvery = Annotated[int, typer.Option(
    "--classify-every", min=1, max=1_000_000, metavar="N",
    help=f"Classify each tracked face's emotion every N analysed frames; in between it keeps its last emotion "
         f"(default {DEFAULT_CLASSIFY_EVERY}: 15 times a second at 29.97 fps). 1: every frame, as the exact path.")]
Threads = Annotated[int, typer.Option(
    "--threads", min=0, max=256, metavar="N",
    help="ONNX Runtime threads per model on the CPU, at most 256 (default 0: its own choice, one per core).")]
MaxMegapixels = Annotated[float, typer.Option(
    "--max-megapixels", min=0.01, max=1000.0, callback=_finite, metavar="MP",
    help="Fail videos whose frames are larger (default 36: 8K UHD fits); memory grows with frame size (timeline: "
         "about 1 GB at 8192x8192, 67 megapixels).")]
FramingOpt = Annotated[Framing, typer.Option(
    "--framing", help="How a face is cut out for the emotion model: aligned (its eyes, nose and mouth moved to where "
                      "FER2013's faces have them) or box (a square of the detector's box).")]
ReidWindow = Annotated[float | None, typer.Option(
    "--reid-window", min=0.0, metavar="S", show_default=False,
    help="Give a person who comes back within S seconds (after leaving the picture, or after a cut) their id back, "
         "recognised by face (dlib's face embedding: pip install 'emovid[reid]'). Default: 60 when that is "
         "installed, else off. 0: off (a returning face gets a new id).")]
PerFrame = Annotated[bool, typer.Option(
    "--per-frame", help="Also write <stem>.frames.<format> (one row per face per analysed frame).")]
FormatOpt = Annotated[TableFormat, typer.Option(
    "--format", help="File format of the timeline and per-frame tables (parquet needs pip install "
                     "'emovid[parquet]').")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Redo videos whose outputs already exist, and replace output files emovid did not write.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only failures: no progress, no summary.")]
Ray = Annotated[str | None, typer.Option(
    "--ray", metavar="local|auto|HOST:PORT",
    help="Spread the videos over Ray workers: local starts Ray on this machine, auto or HOST:PORT joins a cluster "
         "(needs pip install 'emovid[ray]').")]
Workers = Annotated[int, typer.Option("--workers", min=1, max=4096, metavar="N", help="With --ray: workers.")]
WorkerCpus = Annotated[float, typer.Option(
    "--worker-cpus", min=0.01, max=1024, metavar="N", help="With --ray: CPUs (and ONNX Runtime threads) per worker.")]
WorkerGpus = Annotated[float, typer.Option(
    "--worker-gpus", min=0.0, max=64, metavar="F", help="With --ray: GPUs per worker (0.25: four share a GPU).")]
Shard = Annotated[str | None, typer.Option(
    "--shard", metavar="I/N", help="Process only the I-th of N slices of the input list (job arrays; the N slices "
                                   "cover every video once).")]
Summary = Annotated[Path | None, typer.Option(
    "--summary", dir_okay=False, metavar="PATH",
    help="Also write one JSON record per video (status, reason, duration, frames, people, speed, node, outputs); "
         "a PATH ending in .jsonl gets one record per line.")]


def _logging(debug: bool) -> None:
    """emovid's log messages (e.g. damaged packets skipped) on stderr with names escaped: warnings, or down to
    DEBUG with --debug."""
    import logging

    from emovid.errors import printable

    class StderrHandler(logging.Handler):  # sys.stderr as it is at each message (test runners swap it)
        def emit(self, record: logging.LogRecord) -> None:
            sys.stderr.write(printable(self.format(record)) + "\n")

    logger = logging.getLogger("emovid")
    handler = next((h for h in logger.handlers if type(h).__name__ == "StderrHandler"), None)
    if handler is None:
        handler = StderrHandler()
        logger.addHandler(handler)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)


def _fail_usage(message: str) -> typer.Exit:
    from emovid.errors import printable

    typer.echo(f"error: {printable(' '.join(message.split()))}", err=True)
    return typer.Exit(2)


def _on_signal(signum, frame) -> None:
    import signal

    from emovid.errors import Terminated

    for other in (signal.SIGTERM, signal.SIGHUP):  # a second signal must not interrupt the cleanup
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


def _run(videos: list[str], **options) -> None:
    """Ctrl-C anywhere (importing, loading models, analysing, writing the summary) exits 130 with one line; SIGTERM
    and SIGHUP the same way with 143 and 129 (unless they were ignored when emovid started, as under nohup)."""
    import signal
    import threading

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _on_signal)
    try:
        _analyse(videos, **options)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", None)
        if signum is None:
            typer.echo("interrupted (unfinished outputs removed)", err=True)
            raise typer.Exit(130) from None
        typer.echo(f"terminated by {signal.Signals(signum).name} (unfinished outputs removed)", err=True)
        raise typer.Exit(128 + signum) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _analyse(videos: list[str], *, out: Path | None, model: str, device: Device, detector: Detector, min_face: int,
             every: int, scan_every: float, full_scan_every: float, classify_every: int, per_frame: bool,
             overwrite: bool, debug: bool, threads: int = 0, framing: Framing = Framing.aligned,
             video: bool,
             csv: str | None = None, ray: str | None = None, workers: int = 2, worker_cpus: float = 1.0,
             worker_gpus: float = 0.0, shard: str | None = None, summary: Path | None = None,
             sample_fps: float | None = None, detect_size: int = 640, max_megapixels: float = 36.0,
             reid_window: float | None = None, quiet: bool = False,
             table_format: TableFormat = TableFormat.csv) -> None:
    # Before numpy's first import: OpenBLAS's spinning threads would take CPU at start-up, and emovid does no linear
    # algebra.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import traceback

    from emovid.errors import EmovidError, OutputError, printable
    from emovid.outputs import atomic_text, prepare_dir, write_atomic
    from emovid.pipeline import (
        AnalysisOptions,
        ModelsLoading,
        OutputOptions,
        check_output_collisions,
        collect_inputs,
        input_problems,
        run_batch,
    )

    _logging(debug)
    try:
        paths, unmatched = input_problems(videos)  # arguments matching nothing fail; the others still run
        if not paths:
            collect_inputs(videos)  # raises the usage error (no video at all)
        cluster = None
        if shard is not None:
            from emovid.cluster import parse_shard
            from emovid.cluster import shard as slice_of

            try:
                paths = slice_of(paths, *parse_shard(shard))
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--shard") from None
        if ray is not None:
            from emovid.cluster import ClusterOptions

            if csv is not None:
                raise typer.BadParameter("with --ray each video writes its own timeline CSV; leave out --csv",
                                         param_hint="--csv")
            cluster = ClusterOptions(address=ray, workers=workers, cpus_per_worker=worker_cpus,
                                     gpus_per_worker=worker_gpus)
        if csv == "-" and len(paths) != 1:
            raise typer.BadParameter(f"'-' (stdout) needs exactly one input video, got {len(paths)}",
                                     param_hint="--csv")
        if csv is not None and table_format != TableFormat.csv:
            raise typer.BadParameter("--csv writes CSV; use --out for other formats", param_hint="--format")
        from emovid.tables import check_format

        check_format(table_format.value)  # parquet without pyarrow fails here, before any analysis
        if csv not in (None, "-"):
            prepare_dir(Path(csv).parent)  # fail before the analysis, not after it
        options = AnalysisOptions(model=model, device=device.value, detector=detector.value, min_face_px=min_face,
                                  every=every, scan_every_s=scan_every, full_scan_every_s=full_scan_every,
                                  classify_every=classify_every, inference_threads=threads,
                                  sample_fps=sample_fps, framing=framing.value,
                                  detect_size_px=detect_size, max_megapixels=max_megapixels,
                                  reid_window_s=reid_window)
        # --csv collects every input's rows into one file, so every input is analysed (no skipping); the PNGs are
        # written only where outputs were asked for (--out), not beside the inputs.
        outputs = OutputOptions(out_dir=out, video=video, csv=csv is None, png=csv is None or out is not None,
                                frames=per_frame, overwrite=overwrite, always=csv is not None,
                                table_format=table_format.value)
        check_output_collisions(paths, outputs)
        # The models load in a thread (ONNX Runtime builds its sessions without the GIL) while this one imports
        # the console, video and drawing modules, so a short run waits for neither alone.
        loading = (ModelsLoading(options) if cluster is None and any(outputs.needs_work(p, options) for p in paths)
                   else None)
        from emovid.progress import ConsoleReporter, stderr_console
        from emovid.timeline import timelines_csv

        if loading is not None:
            import av  # noqa: F401  (emovid.video's decoder and encoder)
            import cv2  # noqa: F401  (frame conversion, drawing)
        console = stderr_console()
        if cluster is not None:
            from emovid.cluster import run_on_ray
            from emovid.progress import BatchProgress, QuietProgress

            with (QuietProgress() if quiet else BatchProgress(console, len(paths))) as progress:
                for result in unmatched:
                    progress.video_finished(result)
                results = unmatched + run_on_ray(paths, options, outputs, cluster, on_result=progress.video_finished)
        else:
            from emovid.progress import QuietReporter

            with (QuietReporter() if quiet else ConsoleReporter(console)) as reporter:
                for result in unmatched:
                    reporter.video_finished(result)
                results = unmatched + run_batch(paths, options, outputs, reporter=reporter, models=loading)
    except EmovidError as exc:  # nothing could run: no inputs, model or device unavailable
        if debug:
            traceback.print_exc()
        raise _fail_usage(str(exc)) from None
    except (typer.BadParameter, typer.Exit):
        raise
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        from emovid.pipeline import one_line

        typer.echo(f"error: internal error: {printable(one_line(exc))} (--debug shows the traceback)", err=True)
        raise typer.Exit(1) from None

    csv_path = csv_kept = None
    failed = [r for r in results if r.status == "failed"]
    if csv is not None:
        done = [r.timeline for r in results if r.status == "done" and r.timeline is not None]
        if csv == "-":
            timelines_csv(done, sys.stdout)
            sys.stdout.flush()
        elif failed and (not done or Path(csv).exists()):
            csv_kept = Path(csv)  # a run with failures never replaces earlier results
        else:
            try:
                with atomic_text(Path(csv)) as handle:
                    timelines_csv(done, handle)
                csv_path = Path(csv)
            except OutputError as exc:
                typer.echo(f"error: {printable(str(exc))}", err=True)
                raise typer.Exit(1) from None

    from rich.text import Text

    from emovid.progress import failure_line, summary_lines, summary_records, summary_table

    if summary is not None:
        import json

        try:
            records = summary_records(results)
            if summary.suffix.lower() == ".jsonl":
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            else:
                text = json.dumps(records, indent=1) + "\n"
            write_atomic(summary, text)
        except OutputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    if quiet:
        pass
    elif console.is_terminal:
        console.print(summary_table(results))
    else:  # logs: one plain line per video, not a table wrapped at 80 columns
        for line in summary_lines(results):
            console.print(Text(line), soft_wrap=True)
    where = f"in {printable(str(out))}" if out is not None else "beside each input"
    if not quiet and any(r.status == "done" for r in results) and (csv is None or out is not None):
        console.print(f"outputs are {where}", highlight=False, markup=False)
    if csv_path is not None and not quiet:
        console.print(f"timeline CSV of {len(done)} video(s): {printable(str(csv_path))}", highlight=False,
                      markup=False)
    if csv_kept is not None:
        what = "kept as it was" if csv_kept.exists() else "not written"
        console.print(f"timeline CSV {printable(str(csv_kept))}: {what} (some videos failed)", highlight=False,
                      markup=False, soft_wrap=True)
    for r in failed:
        if debug and r.exception is not None:
            console.print("".join(traceback.format_exception(r.exception)), highlight=False, markup=False)
        typer.echo(f"failed: {failure_line(r)}", err=True)
    if failed:
        typer.echo(f"{len(failed)} of {len(results)} video(s) failed", err=True)
        raise typer.Exit(1)


@app.command()
def annotate(
    videos: Videos,
    out: Out = None,
    model: Model = "best",
    device: DeviceOpt = Device.auto,
    detector: DetectorOpt = Detector.auto,
    min_face: MinFace = 0,
    every: Every = DEFAULT_EVERY,
    scan_every: ScanEvery = DEFAULT_SCAN_S,
    full_scan_every: FullScanEvery = DEFAULT_FULL_SCAN_S,
    classify_every: ClassifyEvery = DEFAULT_CLASSIFY_EVERY,
    detect_size: DetectSize = 640,
    threads: Threads = 0,
    framing: FramingOpt = Framing.aligned,
    max_megapixels: MaxMegapixels = 36.0,
    reid_window: ReidWindow = None,
    per_frame: PerFrame = False,
    table_format: FormatOpt = TableFormat.csv,
    overwrite: Overwrite = False,
    ray: Ray = None,
    workers: Workers = 2,
    worker_cpus: WorkerCpus = 1.0,
    worker_gpus: WorkerGpus = 0.0,
    shard: Shard = None,
    summary: Summary = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write <stem>.annotated.mp4 (boxes, track ids, emotions; audio kept) plus the timeline CSV and PNG.

    Examples:

    emovid annotate talk.mp4 --out results/

    emovid annotate 'talks/**/*.mp4' --out results/ --quiet

    emovid annotate talks/ --out results/ --ray local --workers 2
    """
    _run(videos, out=out, model=model, device=device, detector=detector, min_face=min_face, every=every,
         scan_every=scan_every, full_scan_every=full_scan_every, classify_every=classify_every, per_frame=per_frame,
         overwrite=overwrite, debug=debug, threads=threads, framing=framing,
         video=True, ray=ray, workers=workers, worker_cpus=worker_cpus, worker_gpus=worker_gpus, shard=shard,
         summary=summary, detect_size=detect_size, max_megapixels=max_megapixels,
         reid_window=reid_window, quiet=quiet, table_format=table_format)


@app.command()
def timeline(
    videos: Videos,
    csv: Annotated[str | None, typer.Option(
        "--csv", metavar="PATH|-",
        help="Write the timeline CSV of all inputs to PATH ('-': stdout, one input only) instead of "
             "<stem>.timeline.csv; every input is then analysed, and PNGs are written only with --out. A run in "
             "which some video fails never replaces an existing PATH.")] = None,
    sample_fps: Annotated[float | None, typer.Option(
        "--sample-fps", min=0.01, max=1000.0, callback=_finite, metavar="F",
        help="Analyse F frames per second of video (default: every frame).")]
    = None,
    out: Out = None,
    model: Model = "best",
    device: DeviceOpt = Device.auto,
    detector: DetectorOpt = Detector.auto,
    min_face: MinFace = 0,
    every: Every = DEFAULT_EVERY,
    scan_every: ScanEvery = DEFAULT_SCAN_S,
    full_scan_every: FullScanEvery = DEFAULT_FULL_SCAN_S,
    classify_every: ClassifyEvery = DEFAULT_CLASSIFY_EVERY,
    detect_size: DetectSize = 640,
    threads: Threads = 0,
    framing: FramingOpt = Framing.aligned,
    max_megapixels: MaxMegapixels = 36.0,
    reid_window: ReidWindow = None,
    per_frame: PerFrame = False,
    table_format: FormatOpt = TableFormat.csv,
    overwrite: Overwrite = False,
    ray: Ray = None,
    workers: Workers = 2,
    worker_cpus: WorkerCpus = 1.0,
    worker_gpus: WorkerGpus = 0.0,
    shard: Shard = None,
    summary: Summary = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write <stem>.timeline.csv (mean emotion probabilities per person per second) and <stem>.timeline.png,
    without rendering video.

    Examples:

    emovid timeline talk.mp4 --csv -

    emovid timeline talks/ --out results/ --sample-fps 5

    emovid timeline talks/ --out results/ --shard 2/8 --summary results/summary-2.json
    """
    _run(videos, out=out, model=model, device=device, detector=detector, min_face=min_face, every=every,
         scan_every=scan_every, full_scan_every=full_scan_every, classify_every=classify_every, per_frame=per_frame,
         overwrite=overwrite, debug=debug, threads=threads, framing=framing,
         video=False, csv=csv, ray=ray, workers=workers, worker_cpus=worker_cpus, worker_gpus=worker_gpus,
         shard=shard, summary=summary, sample_fps=sample_fps, detect_size=detect_size, max_megapixels=max_megapixels,
         reid_window=reid_window, quiet=quiet, table_format=table_format)


try:
    from emovid.cli_training import register as _register_training
except ModuleNotFoundError as _exc:  # the training commands' module is optional while it is being written
    if _exc.name != "emovid.cli_training":
        raise
else:
    _register_training(app)


def main() -> None:
    """The `emovid` console script: the app, then a quick exit (see _exit)."""
    try:
        app(prog_name="emovid")
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _exit(code: int | str | None) -> None:
    """Flush stdout and stderr and end the process without the interpreter's teardown (freeing numpy's, OpenCV's,
    PyAV's and ONNX Runtime's modules and sessions is a fixed cost of every run). Every
    output is complete by then: written to a temporary file, closed and renamed. The normal exit after the training
    commands (TensorFlow imported), while some other thread still runs, or for a message as exit code."""
    import contextlib
    import threading

    if (not isinstance(code, int | None) or "tensorflow" in sys.modules
            or any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread())):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`--csv - | head`): nothing can reach it
            stream.flush()
    os._exit(code or 0)
