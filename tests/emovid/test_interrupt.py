"""Ctrl-C: `python -m emovid` in a subprocess gets SIGINT in the middle of a video. It exits 130 with one line,
leaves no partial or temporary file, and a rerun skips the finished video and completes the interrupted one."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import media
import pytest
from onnx_models import brightness_model

from emovid.video import probe

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 120  # generous upper bounds for a loaded machine; nothing asserts on timing
LONG_S = 30  # the interrupted video: long enough to be caught mid-way on a fast machine


def default_sigint() -> None:
    """In the child: SIGINT back to its default. A test run started in the background (`pytest &` in a script)
    inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored, so the signal would never arrive."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # nohup would leave SIGHUP ignored too
        signal.signal(signum, signal.SIG_DFL)


def emovid(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "emovid", *(str(a) for a in args)]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed or removed meanwhile
        return 0


def signal_when(args: list[str], signum: int, ready) -> tuple[int, str, str]:
    """Start `args`, send `signum` once `ready(proc)` is true, and return (exit code, stdout, stderr)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
                            preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + WAIT_S
        while not ready(proc):
            assert proc.poll() is None, f"finished before it could be signalled: {proc.communicate()}"
            assert time.monotonic() < deadline, "never got ready to be signalled"
            time.sleep(0.02)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("clips")
    short = media.make_face_video(folder / "short.mp4", duration_s=0.4).path
    long = media.make_face_video(folder / "long.mp4", duration_s=float(LONG_S)).path  # 25 fps
    return short, long, brightness_model(folder / "tiny.onnx")


@pytest.mark.parametrize(("command", "started", "outputs"), [
    (["timeline", "--per-frame"], ".long.frames.csv.tmp-", ("emovid.json", "frames.csv", "timeline.csv",
                                                           "timeline.png")),
    (["annotate"], ".long.annotated.mp4.tmp-", ("annotated.mp4", "emovid.json", "timeline.csv", "timeline.png")),
], ids=["timeline", "annotate"])
def test_sigint_mid_video_exits_130_cleanly_and_a_rerun_resumes(tmp_path, clips, command, started, outputs):
    short, long, model = clips
    out = tmp_path / "out"
    args = emovid(*command, short, long, "--model", model, "--device", "cpu", "--out", out)
    # the long video's first output is open: the short one is done and the long one is being analysed
    code, stdout, stderr = signal_when(args, signal.SIGINT,
                                       lambda _: any(name.startswith(started) for name in files_in(out)))
    assert code == 130, stderr
    assert stderr.splitlines()[-1] == "interrupted (unfinished outputs removed)"
    assert "Traceback" not in stderr and stdout == ""
    done_short = [f"short.{suffix}" for suffix in outputs]
    assert files_in(out) == sorted(done_short)  # nothing of long.mp4, no temporaries
    before = {name: (out / name).read_bytes() for name in done_short}

    rerun = subprocess.run(args, capture_output=True, text=True, env=environment(), timeout=WAIT_S)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{short}: skipped (outputs exist; --overwrite redoes them)" in rerun.stderr
    assert files_in(out) == sorted(done_short + [f"long.{suffix}" for suffix in outputs])
    assert {name: (out / name).read_bytes() for name in done_short} == before
    with open(out / "long.timeline.csv", newline="") as f:
        rows = [(r["second"], r["track_id"], r["frames"]) for r in csv.DictReader(f)]
    assert rows == [(str(s), "1", "25") for s in range(LONG_S)]  # the whole video, from its start
    if "annotated.mp4" in outputs:
        assert probe(out / "long.annotated.mp4").frame_count == 25 * LONG_S


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_mid_video_exit_cleanly_like_ctrl_c(tmp_path, clips, signum, code):
    short, long, model = clips
    out = tmp_path / "out"
    args = emovid("timeline", short, long, "--per-frame", "--model", model, "--device", "cpu", "--out", out)
    # the long video's per-frame table has rows on disk: its analysis is under way, past its start-up
    returncode, stdout, stderr = signal_when(args, signum, lambda _: any(
        name.startswith(".long.frames.csv.tmp-") and size_of(out / name) > 0 for name in files_in(out)))
    assert returncode == code, stderr
    assert stderr.splitlines()[-1] == f"terminated by {signal.Signals(signum).name} (unfinished outputs removed)"
    assert "Traceback" not in stderr and stdout == ""
    assert files_in(out) == ["short.emovid.json", "short.frames.csv", "short.timeline.csv",
                             "short.timeline.png"]  # no temporaries


def test_a_cleanup_stuck_after_sigterm_still_ends_the_process_with_143():
    """A signal can land where the cleanup it starts cannot finish; the process must end anyway, and say so."""
    code = """
import signal, sys, threading, time
import emovid.cli as cli
cli.TERMINATE_GRACE_S = 0.5
signal.signal(signal.SIGTERM, cli._on_signal)
stuck = threading.Lock()
stuck.acquire()
print("ready", flush=True)
try:
    time.sleep(60)
finally:
    stuck.acquire()  # a cleanup that never finishes
"""
    returncode, _, stderr = signal_when([sys.executable, "-c", code], signal.SIGTERM,
                                        lambda proc: proc.stdout.readline().strip() == "ready")
    assert returncode == 143, stderr
    assert stderr.strip() == ("terminated by SIGTERM (the cleanup did not finish; the next run into the same folder "
                              "removes its temporary files)")


def test_ctrl_c_before_the_analysis_is_exit_130_too(tmp_path, clips, monkeypatch):
    """Ctrl-C while the command sets up (imports, console, inputs) is one line and exit 130, not "Aborted!"."""
    from typer.testing import CliRunner

    from emovid.cli import app

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("emovid.progress.stderr_console", interrupted)
    short, _, model = clips
    result = CliRunner().invoke(app, ["timeline", str(short), "--model", str(model), "--out", str(tmp_path / "out")])
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["interrupted (unfinished outputs removed)"]
    assert files_in(tmp_path / "out") == []


def test_temporaries_of_a_killed_run_are_removed_by_the_next_one(tmp_path, clips):
    """SIGKILL (or a power cut) leaves temporaries behind: the next run into that folder removes those whose lock is
    free, keeps those another process holds (another emovid writing there, whatever its pid: in another PID
    namespace or on another host the pid means nothing here), and completes."""
    from typer.testing import CliRunner

    from emovid.cli import app

    short, _, model = clips
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    leftovers = [out / f".short.timeline.csv.tmp-{dead}-0badc0de.csv", out / f".short.annotated.mp4.tmp-{dead}.mp4",
                 out / f".other.timeline.png.tmp-{os.getpid()}-00000000.png"]  # a live pid, but nobody's lock
    for path in leftovers:
        path.write_bytes(b"partial")
    running = out / f".other.timeline.csv.tmp-{dead}-12345678.csv"  # a dead pid here, held by a live writer
    running.write_bytes(b"being written")
    unrelated = out / "notes.tmp-1.txt"
    unrelated.write_text("mine")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(running)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = CliRunner().invoke(app, ["timeline", str(short), "--model", str(model), "--out", str(out)])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0, result.output
    assert files_in(out) == sorted([running.name, unrelated.name, "short.emovid.json", "short.timeline.csv",
                                    "short.timeline.png"])
    assert running.read_bytes() == b"being written"


HOLD_LOCK = ("import fcntl, sys, time; f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', "
             "flush=True); time.sleep(120)")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
