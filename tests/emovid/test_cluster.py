"""Many videos at once: --shard slices, and a local Ray instance with 2 workers (the real models, real faces)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import media
import pytest
from typer.testing import CliRunner

from emovid.cli import app
from emovid.cluster import ClusterOptions, parse_shard, run_on_ray, shard
from emovid.pipeline import AnalysisOptions, OutputOptions, run_batch

ray = pytest.importorskip("ray")


# --- shards -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_videos, count", [(0, 1), (1, 3), (7, 3), (8, 8), (10, 4)])
def test_the_slices_cover_the_batch_exactly_once(n_videos, count):
    paths = [Path(f"v{i}.mp4") for i in range(n_videos)]
    slices = [shard(paths, i, count) for i in range(1, count + 1)]
    flat = [p for s in slices for p in s]
    assert sorted(flat) == sorted(paths) and len(flat) == len(set(flat))
    assert max(map(len, slices)) - min(map(len, slices)) <= 1  # balanced


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "1/0", "-1/2"])
def test_bad_shards_are_rejected(text):
    with pytest.raises(ValueError, match="I/N"):
        parse_shard(text)


def test_cli_shard_processes_its_slice_only(tmp_path):
    videos = [media.make_face_video(tmp_path / f"v{i}.mp4", duration_s=0.2).path for i in range(3)]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["timeline", *map(str, videos), "--out", str(out), "--shard", "2/2",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.csv")) == ["v1.timeline.csv"]
    assert CliRunner().invoke(app, ["timeline", str(videos[0]), "--shard", "3/2"]).exit_code == 2


# --- Ray --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> list[Path]:
    """Four real talking-face clips: the carphone clip, two shifted copies, and one four times as long."""
    folder = tmp_path_factory.mktemp("batch")
    frames = media.carphone_frames()
    videos = [media.write_frames(folder / "a.mp4", frames, fps=media.Fraction(30000, 1001))]
    videos.append(media.write_frames(folder / "b.mp4", frames[30:] + frames[:30], fps=25))
    videos.append(media.write_frames(folder / "c.mp4", frames[::-1], fps=30))
    videos.append(media.write_frames(folder / "long.mp4", frames * 4, fps=25))
    return videos


OPTIONS = AnalysisOptions(device="cpu")


def csv_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.timeline.csv"))}


@pytest.fixture(scope="module")
def reference(batch, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("single")
    results = run_batch(batch, OPTIONS, OutputOptions(out_dir=out, png=False))
    assert [r.status for r in results] == ["done"] * len(batch)
    return csv_bytes(out)


def test_two_local_workers_write_the_same_csvs_as_one_process(batch, reference, tmp_path):
    out = tmp_path / "out"
    results = run_on_ray(batch, OPTIONS, OutputOptions(out_dir=out, png=False), ClusterOptions(workers=2))
    assert [r.status for r in results] == ["done"] * len(batch)
    assert csv_bytes(out) == reference
    assert all(r.node and r.runtime and "CPU" in r.runtime for r in results)
    # a rerun skips everything (nothing dispatched, Ray not even started)
    again = run_on_ray(batch, OPTIONS, OutputOptions(out_dir=out, png=False), ClusterOptions(workers=2))
    assert [r.status for r in again] == ["skipped"] * len(batch)


def _worker_pids() -> list[int]:
    """Processes running a Ray worker's task (Ray titles them `ray::_Worker.process`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ray::_Worker.process" in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker through /proc")
def test_a_worker_killed_mid_video_is_replaced_and_its_video_redone(tmp_path):
    """A video long enough (about 10 s of work) that the kill lands while the worker writes it. Ray runs in the
    main thread, as in the CLI (starting Ray from another thread can hang); a daemon thread does the killing."""
    long_video = [media.write_frames(tmp_path / "long.mp4", media.carphone_frames() * 15, fps=25)]
    single = tmp_path / "single"
    assert [r.status for r in run_batch(long_video, OPTIONS, OutputOptions(out_dir=single, png=False))] == ["done"]
    out = tmp_path / "out"
    killed: list[int] = []
    stop = threading.Event()

    def kill_the_worker_mid_video() -> None:
        while not stop.is_set():
            pids = _worker_pids()
            if pids and list(out.glob(".*tmp*")):  # the worker is writing its annotated video: mid-video
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.05)

    threading.Thread(target=kill_the_worker_mid_video, daemon=True).start()
    try:
        results = run_on_ray(long_video, OPTIONS, OutputOptions(out_dir=out, png=False, video=True),
                             ClusterOptions(workers=1))
    finally:
        stop.set()
    assert [r.status for r in results] == ["done"]
    assert csv_bytes(out) == csv_bytes(single)
    assert killed, "the Ray worker process was not found in /proc while it wrote the video"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_bad_video_fails_once_and_the_others_finish(batch, reference, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    out = tmp_path / "out"
    summary = tmp_path / "summary.json"
    args = ["timeline", str(batch[0]), str(bad), str(batch[1]), "--out", str(out), "--ray", "local", "--workers", "2",
            "--device", "cpu", "--summary", str(summary)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.output.count("bad.mp4:") >= 1
    records = json.loads(summary.read_text())
    assert [r["status"] for r in records] == ["done", "failed", "done"]
    assert records[1]["reason"] and records[0]["node"] and records[0]["people"] == 1
    assert csv_bytes(out) == {k: reference[k] for k in ("a.timeline.csv", "b.timeline.csv")}


def test_ray_and_csv_together_is_a_usage_error(batch, tmp_path):
    result = CliRunner().invoke(app, ["timeline", str(batch[0]), "--ray", "local", "--csv", str(tmp_path / "x.csv")])
    assert result.exit_code == 2


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A test run started in the background inherits SIGINT ignored, and
    Python keeps an ignored SIGINT ignored, so the signal would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_cancels_the_cluster_work_and_leaves_no_temporaries(batch, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    long_video = [p for p in batch if p.name == "long.mp4"][0]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "emovid", "annotate", str(long_video), "--out", str(out),
                                "--ray", "local", "--workers", "1", "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not list(out.glob(".*tmp*")):
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_without_ray_the_option_names_the_install_command(tmp_path, monkeypatch):
    import sys

    video = media.make_face_video(tmp_path / "v.mp4", duration_s=0.2).path
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = CliRunner().invoke(app, ["timeline", str(video), "--out", str(tmp_path / "out"), "--ray", "local"])
    assert result.exit_code == 2
    assert "pip install 'emovid[ray]'" in result.output and "Traceback" not in result.output


def test_ctrl_c_during_ray_s_own_calls_is_kept_for_the_dispatch_loop():
    from emovid.cluster import _Interrupt

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # a run started in the background ignores it
    try:
        interrupt = _Interrupt()
        os.kill(os.getpid(), signal.SIGINT)  # lands while "Ray" runs: only noted
        time.sleep(0.05)
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        with pytest.raises(KeyboardInterrupt):  # still pending when the loop has ended
            interrupt.restore()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)
