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

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from emovid import DEFAULT_CLASSIFY_EVERY, DEFAULT_EVERY, DEFAULT_FULL_SCAN_S, DEFAULT_SCAN_S, __version__
from emovid.registry import DETECTORS
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


Detector = StrEnum("Detector", {name.replace("-", "_"): name for name in DETECTORS})


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


Videos = Annotated[list[str], typer.Argument(
    metavar="VIDEO", show_default=False, help="Video files, folders or globs ('talks/**/*.mp4').")]
Out = Annotated[Path | None, typer.Option(
    "--out", "-o", file_okay=False, metavar="DIR", help="Output folder (created if needed; default: beside each "
                                                        "input).")]
Model = Annotated[str, typer.Option(
    "--model", "-m", metavar="MODEL",
    help="Emotion model: best, scratch, mobilenetv2, vgg16, <name>-int8, ensemble or PATH.onnx.")]
DeviceOpt = Annotated[Device, typer.Option(
    "--device", metavar="DEVICE", help="auto, cpu, cuda or tensorrt (auto: CUDA when it works, else the CPU).")]
DetectorOpt = Annotated[Detector, typer.Option(
    "--detector", metavar="NAME", help="Face detector: auto, centerface or centerface-int8 (auto: int8 on the CPU).")]
MinFace = Annotated[int, typer.Option("--min-face", metavar="PX", help="Ignore faces smaller than PX pixels.")]
DetectSize = Annotated[int, typer.Option(
    "--detect-size", metavar="PX", help="Longer side of the image the detector sees; smaller is faster, finds fewer "
                                        "small faces.")]
Every = Annotated[int, typer.Option(
    "--every", metavar="N", help="Run the face detector every N analysed frames; the tracker fills in between.")]
ScanEvery = Annotated[float, typer.Option(
    "--scan-every", metavar="S", help="Search the whole frame every S seconds, else only around tracked faces (0: "
                                      "always).")]
FullScanEvery = Annotated[float, typer.Option(
    "--full-scan-every", metavar="S", help="Make a whole-frame search full size every S seconds, half size between "
                                           "(0: always full).")]
ClassifyEvery = Annotated[int, typer.Option(
    "--classify-every", metavar="N", help="Classify each tracked face every N analysed frames; it keeps its emotion "
                                          "between.")]
Threads = Annotated[int, typer.Option(
    "--threads", metavar="N", help="ONNX Runtime threads per model on the CPU (0: one per core).")]
MaxMegapixels = Annotated[float, typer.Option(
    "--max-megapixels", metavar="MP", help="Fail videos with larger frames (memory grows with frame size).")]
FramingOpt = Annotated[Framing, typer.Option(
    "--framing", metavar="HOW", help="How a face is cut out: aligned (onto FER2013's faces) or box (a square).")]
ReidWindow = Annotated[float | None, typer.Option(
    "--reid-window", metavar="S", show_default=False,
    help="A person who comes back within S s keeps their id (default 60 with the reid extra; 0: off).")]
PerFrame = Annotated[bool, typer.Option(
    "--per-frame", help="Also write <stem>.frames.<format>: one row per face per analysed frame.")]
FormatOpt = Annotated[TableFormat, typer.Option(
    "--format", metavar="FORMAT", help="Tables as csv, jsonl or parquet (parquet needs the parquet extra).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Redo finished videos; replace output files emovid did not write.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only failures: no progress, no summary.")]
Ray = Annotated[str | None, typer.Option(
    "--ray", metavar="local|auto|HOST:PORT", help="Spread the videos over Ray workers, here (local) or on a cluster.")]
Workers = Annotated[int, typer.Option("--workers", metavar="N", help="With --ray: workers.")]
WorkerCpus = Annotated[float, typer.Option(
    "--worker-cpus", metavar="N", help="With --ray: CPUs (and ONNX Runtime threads) per worker.")]
WorkerGpus = Annotated[float, typer.Option(
    "--worker-gpus", metavar="F", help="With --ray: GPUs per worker (0.25: four share a GPU).")]
Shard = Annotated[str | None, typer.Option(
    "--shard", metavar="I/N", help="Process only the I-th of N slices of the inputs (job arrays).")]
Summary = Annotated[Path | None, typer.Option(
    "--summary", dir_okay=False, metavar="PATH", help="Also write one JSON record per video (.jsonl: one per line).")]
Csv = Annotated[str | None, typer.Option(
    "--csv", metavar="PATH|-", help="All inputs' rows in one CSV ('-': stdout); PNGs only with --out.")]
SampleFps = Annotated[float | None, typer.Option(
    "--sample-fps", metavar="F", help="Analyse F frames per second of video (default: every frame).")]

# a command's parameter -> the option field it sets; the flag is the parameter's name (--min-face: min_face)
_ANALYSIS_FIELDS = {"model": "model", "device": "device", "detector": "detector", "min_face": "min_face_px",
                    "detect_size": "detect_size_px", "every": "every", "scan_every": "scan_every_s",
                    "full_scan_every": "full_scan_every_s", "classify_every": "classify_every",
                    "threads": "inference_threads", "framing": "framing", "max_megapixels": "max_megapixels",
                    "reid_window": "reid_window_s", "sample_fps": "sample_fps"}
_CLUSTER_FIELDS = {"ray": "address", "workers": "workers", "worker_cpus": "cpus_per_worker",
                   "worker_gpus": "gpus_per_worker"}


def _options(cls, fields: dict[str, str], params: dict):
    """cls built from a command's parameters. The class checks every value (in one place); a value out of its range
    is a usage error naming the option as typed."""
    values = {field: (params[name].value if isinstance(params[name], StrEnum) else params[name])
              for name, field in fields.items() if name in params}
    try:
        return cls(**values)
    except ValueError as exc:
        field, _, rest = str(exc).partition(" ")
        flag = next((f"--{name.replace('_', '-')}" for name, f in fields.items() if f == field), None)
        raise typer.BadParameter(rest if flag else str(exc), param_hint=flag) from None


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


TERMINATE_GRACE_S = 15.0  # how long the cleanup after SIGTERM/SIGHUP may take before the process ends anyway


def _on_signal(signum, frame) -> None:
    import signal
    import threading

    from emovid.errors import Terminated

    for other in (signal.SIGTERM, signal.SIGHUP):  # a second signal must not interrupt the cleanup
        signal.signal(other, signal.SIG_IGN)
    # A signal can land where raising leaves the cleanup stuck (a lock taken, a worker waited for); a service
    # manager's stop must still end the process, and the next run removes what it left.
    timer = threading.Timer(TERMINATE_GRACE_S, _terminate_now, args=(signum,))
    timer.daemon = True
    timer.start()
    raise Terminated(signum)


def _terminate_now(signum: int) -> None:
    import contextlib
    import signal

    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"terminated by {signal.Signals(signum).name} (the cleanup did not finish; the next run "
                         "into the same folder removes its temporary files)\n")
        sys.stderr.flush()
    os._exit(128 + signum)


def _run(params: dict, *, video: bool) -> None:
    """Run a command with its parameters (`params`: its locals()). Ctrl-C anywhere (importing, loading models,
    analysing, writing the summary) exits 130 with one line; SIGTERM and SIGHUP the same way with 143 and 129 (unless
    they were ignored when emovid started, as under nohup)."""
    import signal
    import threading

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _on_signal)
    try:
        _analyse(params, video=video)
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


def _analyse(params: dict, *, video: bool) -> None:
    # Before numpy's first import: OpenBLAS's spinning threads would take CPU at start-up, and emovid does no linear
    # algebra.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import traceback

    from emovid.errors import EmovidError, OutputError, printable
    from emovid.inputs import check_output_collisions, collect_inputs, input_problems
    from emovid.loading import ModelsLoading
    from emovid.options import AnalysisOptions, OutputOptions
    from emovid.outputs import atomic_text, prepare_dir, write_atomic
    from emovid.pipeline import run_batch

    videos, out, csv, shard, summary = (params.get(k) for k in ("videos", "out", "csv", "shard", "summary"))
    table_format, quiet, debug = params["table_format"], params["quiet"], params["debug"]
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
        if params["ray"] is not None:
            from emovid.cluster import ClusterOptions

            if csv is not None:
                raise typer.BadParameter("with --ray each video writes its own timeline CSV; leave out --csv",
                                         param_hint="--csv")
            cluster = _options(ClusterOptions, _CLUSTER_FIELDS, params)
        if csv == "-" and len(paths) != 1:
            raise typer.BadParameter(f"'-' (stdout) needs exactly one input video, got {len(paths)}",
                                     param_hint="--csv")
        if csv is not None and table_format != TableFormat.csv:
            raise typer.BadParameter("--csv writes CSV; use --out for other formats", param_hint="--format")
        from emovid.tables import check_format

        check_format(table_format.value)  # parquet without pyarrow fails here, before any analysis
        if csv not in (None, "-"):
            prepare_dir(Path(csv).parent)  # fail before the analysis, not after it
        options = _options(AnalysisOptions, _ANALYSIS_FIELDS, params)
        # --csv collects every input's rows into one file, so every input is analysed (no skipping); the PNGs are
        # written only where outputs were asked for (--out), not beside the inputs.
        outputs = OutputOptions(out_dir=out, video=video, csv=csv is None, png=csv is None or out is not None,
                                frames=params["per_frame"], overwrite=params["overwrite"], always=csv is not None,
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
    _run(locals(), video=True)


@app.command()
def timeline(
    videos: Videos,
    csv: Csv = None,
    sample_fps: SampleFps = None,
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
    _run(locals(), video=False)


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
