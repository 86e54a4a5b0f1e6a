"""The `emovid annotate` / `emovid timeline` commands through typer's CliRunner (fake detector, tiny model)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from emovid_fakes import FakeDetector, marker_script, synthetic_frames, write_video
from onnx_models import brightness_model
from typer.testing import CliRunner

from emovid import __version__, cli
from emovid.classify import load_classifier
from emovid.cli import app
from emovid.pipeline import Models
from emovid.video import probe

runner = CliRunner()
EXACT = ("--every", "1", "--scan-every", "0")  # the whole frame at every frame: faces found on their first frame


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return brightness_model(tmp_path_factory.mktemp("m") / "bright.onnx")


@pytest.fixture
def loaded(monkeypatch, model_path) -> list:
    """load_models() returns the scripted detector and the tiny model; records the options it got."""
    seen = []

    def fake_load_models(options):
        seen.append(options)
        return Models(detector=FakeDetector(marker_script), classifier=load_classifier(model_path, "cpu"))

    monkeypatch.setattr("emovid.loading.load_models", fake_load_models)
    return seen


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """A folder with two 25 fps 160x120 clips: a.mp4 (2 s, one face) and b.mp4 (1.2 s, faces from frame 10)."""
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "a.mp4", synthetic_frames(50, 25.0), 25)
    write_video(folder / "b.mp4", synthetic_frames(30, 25.0, lambda i: (0, 1) if i >= 10 else ()), 25)
    return folder


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"emovid {__version__}"


def test_help_lists_the_commands_and_the_cli_module_imports_nothing_heavy():
    result = invoke("--help")
    assert result.exit_code == 0 and "annotate" in result.stdout and "timeline" in result.stdout
    code = ("import sys, emovid.cli; heavy = {'numpy', 'cv2', 'av', 'onnxruntime', 'pandas', 'matplotlib', "
            "'tensorflow'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class Exited(Exception):
    """What the fake os._exit raises, with the code it got."""


class FlushRecorder(io.StringIO):
    def __init__(self, log: list[str], name: str, fails: bool = False):
        super().__init__()
        self.log, self.name, self.fails = log, name, fails

    def flush(self):
        self.log.append(self.name)
        if self.fails:
            raise BrokenPipeError(32, "Broken pipe")


def fake_os_exit(monkeypatch) -> list[str]:
    """os._exit raises Exited(code); sys.stdout and sys.stderr record their flushes (stdout's pipe is closed).
    Called in the test itself: pytest's output capture resets sys.stdout after a fixture's setup."""
    def os_exit(code):
        raise Exited(code)

    flushed: list[str] = []
    monkeypatch.setattr("os._exit", os_exit)
    monkeypatch.setattr(sys, "stdout", FlushRecorder(flushed, "stdout", fails=True))
    monkeypatch.setattr(sys, "stderr", FlushRecorder(flushed, "stderr"))
    return flushed


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (None, 0), (1, 1), (2, 2), (130, 130)])
def test_the_console_script_flushes_and_leaves_without_teardown(monkeypatch, code, expected):
    flushed = fake_os_exit(monkeypatch)
    with pytest.raises(Exited) as exited:
        cli._exit(code)
    assert exited.value.args == (expected,) and flushed == ["stdout", "stderr"]


def test_the_console_script_exits_normally_after_training_with_a_thread_running_or_a_message(monkeypatch):
    import threading
    import types

    flushed = fake_os_exit(monkeypatch)
    with pytest.raises(SystemExit) as exited:
        cli._exit("error: a message")
    assert exited.value.code == "error: a message"
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, args=(10,))
    worker.start()
    try:
        with pytest.raises(SystemExit) as exited:
            cli._exit(1)
        assert exited.value.code == 1
    finally:
        stop.set()
        worker.join()
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    with pytest.raises(SystemExit):
        cli._exit(0)
    assert flushed == []  # never reached the quick exit


def test_the_console_script_gives_the_command_s_exit_code_and_complete_output(videos, tmp_path):
    """`main()` as the installed `emovid` runs it (real models): the CSV on stdout is whole, the codes are kept."""
    def emovid(*args):
        code = "import sys; from emovid.cli import main; sys.argv = ['emovid', *sys.argv[1:]]; main()"
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)

    done = emovid("timeline", videos / "a.mp4", "--csv", "-")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["second"] for r in rows] == ["0", "1"] and done.stdout.endswith("\n")
    missing = emovid("timeline", tmp_path / "missing.mp4")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'missing.mp4'}: no such file or folder"
    assert emovid("--version").stdout.strip() == f"emovid {__version__}"


def test_no_inputs_found_is_a_usage_error(tmp_path):
    result = invoke("timeline", tmp_path / "missing.mp4")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.mp4'}: no such file or folder"
    assert "Traceback" not in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("annotate", tmp_path / "empty")
    assert result.exit_code == 2 and "no video files found" in result.stderr
    assert invoke("timeline").exit_code == 2  # no argument at all


def test_a_missing_model_file_is_a_usage_error(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"anything: the model is loaded before the first video is read")
    result = invoke("timeline", video, "--model", tmp_path / "nope.onnx")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.onnx'}: model file not found"


def test_timeline_writes_csv_and_png_into_out(tmp_path, videos, loaded):
    result = invoke("timeline", videos / "a.mp4", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == ["a.emovid.json", "a.timeline.csv", "a.timeline.png"]
    assert result.stdout == ""
    assert "ONNX Runtime: running on CPU (CPUExecutionProvider); emotion model bright" in result.stderr
    assert "emovid summary" in result.stderr and "done" in result.stderr
    rows = read_rows(tmp_path / "out" / "a.timeline.csv")
    assert [(r["second"], r["track_id"], r["frames"], r["dominant"]) for r in rows] == [("0", "1", "25", "happy"),
                                                                                      ("1", "1", "25", "happy")]


def test_outputs_go_beside_the_input_by_default(tmp_path, videos, loaded):
    clip = tmp_path / "c.mp4"
    clip.write_bytes((videos / "a.mp4").read_bytes())
    assert invoke("timeline", clip).exit_code == 0
    assert files_in(tmp_path) == ["c.emovid.json", "c.mp4", "c.timeline.csv", "c.timeline.png"]


def test_csv_to_stdout(tmp_path, videos, loaded):
    result = invoke("timeline", videos / "b.mp4", "--csv", "-", "--out", tmp_path / "out", *EXACT)
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == ["b.emovid.json", "b.timeline.png"]
    assert invoke("timeline", videos / "b.mp4", "--out", tmp_path / "files", *EXACT).exit_code == 0
    assert result.stdout == (tmp_path / "files" / "b.timeline.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["second"], r["track_id"], r["frames"]) for r in rows] == [("0", "1", "15"), ("0", "2", "15"),
                                                                       ("1", "1", "5"), ("1", "2", "5")]
    assert "emovid summary" in result.stderr


def test_csv_to_stdout_needs_one_input(videos, loaded):
    result = invoke("timeline", videos, "--csv", "-")
    assert result.exit_code == 2 and "needs exactly one input video, got 2" in result.output


def test_csv_path_collects_every_input(tmp_path, videos, loaded):
    result = invoke("timeline", videos, "--csv", tmp_path / "all.csv", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "all.csv")
    assert [r["video"] for r in rows] == ["a.mp4"] * 2 + ["b.mp4"] * 4
    assert files_in(tmp_path / "out") == ["a.emovid.json", "a.timeline.png", "b.emovid.json", "b.timeline.png"]


def test_complete_videos_are_skipped_unless_overwrite(tmp_path, videos, loaded):
    out = tmp_path / "out"
    assert invoke("timeline", videos, "--out", out).exit_code == 0
    written = (out / "a.timeline.csv").read_bytes()
    result = invoke("timeline", videos, "--out", out)
    assert result.exit_code == 0 and result.stderr.count("skipped") >= 2
    assert len(loaded) == 1  # nothing to do: the models were not loaded
    (out / "a.timeline.csv").write_text("marker")  # changed since emovid wrote it: never replaced silently
    result = invoke("timeline", videos, "--out", out)
    assert result.exit_code == 1 and "a.timeline.csv: exists and was not written by emovid" in result.stderr
    assert (out / "a.timeline.csv").read_text() == "marker" and "b.mp4: skipped" in result.stderr
    result = invoke("timeline", videos, "--out", out, "--overwrite")
    assert result.exit_code == 0 and (out / "a.timeline.csv").read_bytes() == written
    assert len(loaded) == 3


def test_the_analysis_commands_give_openblas_one_thread_unless_the_user_chose(tmp_path, videos, loaded, monkeypatch):
    """Set before numpy's first import in a real run (the CLI module imports nothing heavy: see the --help test)."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert invoke("timeline", videos, "--out", tmp_path / "a").exit_code == 0
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert invoke("annotate", videos, "--out", tmp_path / "b").exit_code == 0
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"


def test_numpy_is_first_imported_with_openblas_at_one_thread(videos):
    """In a real `emovid timeline` process, an import hook reports the setting when numpy is first imported."""
    code = ("import os, sys\n"
            "class Hook:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy':\n"
            "            print('numpy imported, OPENBLAS_NUM_THREADS =', os.environ.get('OPENBLAS_NUM_THREADS'),\n"
            "                  file=sys.stderr)\n"
            "sys.meta_path.insert(0, Hook())\n"
            "from emovid.cli import main\n"
            "sys.argv = ['emovid', *sys.argv[1:]]\n"
            "main()\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code, "timeline", str(videos / "a.mp4"), "--csv", "-"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "numpy imported, OPENBLAS_NUM_THREADS = 1" in done.stderr.splitlines()


def test_the_models_load_in_their_own_thread_while_the_command_starts(tmp_path, videos, monkeypatch, model_path):
    import threading

    threads = []

    def fake_load_models(options):
        threads.append(threading.current_thread().name)
        return Models(detector=FakeDetector(marker_script), classifier=load_classifier(model_path, "cpu"))

    monkeypatch.setattr("emovid.loading.load_models", fake_load_models)
    result = invoke("annotate", videos, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert threads == ["emovid-load-models"]  # once for the batch, not in the main thread


def test_a_failing_video_gives_exit_1_and_the_others_run(tmp_path, videos, loaded):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    result = invoke("timeline", broken, videos / "a.mp4", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert files_in(tmp_path / "out") == ["a.emovid.json", "a.timeline.csv", "a.timeline.png"]
    assert f"failed: {broken}: " in result.stderr and "1 of 2 video(s) failed" in result.stderr
    assert "Traceback" not in result.output
    debug = invoke("timeline", broken, "--out", tmp_path / "out", "--debug")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


def test_an_unwritable_output_folder_fails_the_videos(tmp_path, videos, loaded):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("timeline", videos / "a.mp4", "--out", blocker / "sub")
    assert result.exit_code == 1 and "cannot write to the output folder" in result.stderr


def test_annotate_writes_video_timeline_and_per_frame_rows(tmp_path, videos, loaded):
    result = invoke("annotate", videos / "b.mp4", "--out", tmp_path, "--per-frame", "--every", "2")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path) == ["b.annotated.mp4", "b.emovid.json", "b.frames.csv", "b.timeline.csv",
                                  "b.timeline.png"]
    info = probe(tmp_path / "b.annotated.mp4")
    assert info.frame_count == 30 and info.size_wh == (160, 120) and info.fps == pytest.approx(25.0)
    assert loaded[0].every == 2


def test_options_reach_the_pipeline(tmp_path, videos, loaded):
    result = invoke("timeline", videos / "a.mp4", "--out", tmp_path, "--sample-fps", "5", "--min-face", "24",
                    "--model", "ensemble", "--device", "cpu", "--classify-every", "3", "--full-scan-every", "4",
                    "--detect-size", "480", "--threads", "3")
    assert result.exit_code == 0, result.output
    options = loaded[0]
    assert options.inference_threads == 3
    assert (options.sample_fps, options.min_face_px, options.model, options.device) == (5.0, 24, "ensemble", "cpu")
    assert (options.classify_every, options.full_scan_every_s, options.coarse_side_px) == (3, 4.0, 240)
    rows = read_rows(tmp_path / "a.timeline.csv")
    assert [r["frames"] for r in rows] == ["5", "5"]


def test_ctrl_c_exits_130_and_leaves_no_temporaries(tmp_path, videos, monkeypatch, model_path):
    class Interrupting(FakeDetector):
        def detect(self, image_bgr, max_side=None):
            if self.calls >= 20:
                raise KeyboardInterrupt
            return super().detect(image_bgr, max_side)

    monkeypatch.setattr("emovid.loading.load_models", lambda options: Models(
        detector=Interrupting(marker_script), classifier=load_classifier(model_path, "cpu")))
    result = invoke("annotate", videos / "a.mp4", "--out", tmp_path / "out", "--per-frame", *EXACT)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert files_in(tmp_path / "out") == []


def test_an_unavailable_device_is_a_usage_error(tmp_path, monkeypatch):
    from emovid.errors import DeviceError

    def no_gpu(options):
        raise DeviceError("--device cuda: CUDAExecutionProvider could not start on this machine")

    monkeypatch.setattr("emovid.loading.load_models", no_gpu)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    result = invoke("annotate", video, "--device", "cuda")
    assert result.exit_code == 2 and result.stderr.startswith("error: --device cuda: CUDAExecutionProvider")
    assert invoke("annotate", video, "--device", "gpu").exit_code == 2  # not a choice
    assert invoke("annotate", video, "--every", "0").exit_code == 2
    assert invoke("timeline", video, "--classify-every", "0").exit_code == 2
    assert invoke("timeline", video, "--full-scan-every", "-1").exit_code == 2
    assert invoke("timeline", video, "--threads", "-1").exit_code == 2


def test_end_to_end_with_the_real_detector_and_tracker(face_video, model_path, tmp_path):
    """Real faces (tests/media.py), CenterFace and FaceTracker; the tiny model stands in for the emotion model.
    29.97 fps, 4.004 s: person 1 during [0, 2), person 2 during [1, 2), nobody during [2, 3), a face again from 3 s
    (a new id without re-identification: the gap is longer than 1 s); second 4 ([4, 4.004)) has no frame."""
    clip = face_video("people.mp4", fps=29.97, duration_s=4.0, audio=True, faces=[
        (0, 2, (20, 30, 60, 80)), (1, 2, (100, 30, 140, 80), 1), (3, float("inf"), (20, 30, 60, 80))])
    result = invoke("annotate", clip.path, "--model", model_path, "--out", tmp_path / "out", "--device", "cpu",
                    "--reid-window", "0")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "out" / "people.timeline.csv")
    assert [(r["second"], r["track_id"], r["frames"]) for r in rows] == [
        ("0", "1", "30"), ("1", "1", "30"), ("1", "2", "30"), ("2", "", "0"), ("3", "3", "30"), ("4", "", "0")]
    assert rows[-1]["end_s"] == "4.004"
    assert "; face detector centerface-int8" in result.stderr  # the CPU default
    exact = invoke("timeline", clip.path, "--model", model_path, "--out", tmp_path / "float", "--device", "cpu",
                   "--detector", "centerface", "--reid-window", "0")
    assert exact.exit_code == 0 and "; face detector centerface\n" in exact.stderr
    assert [(r["second"], r["track_id"], r["frames"]) for r in read_rows(tmp_path / "float" / "people.timeline.csv")] \
        == [(r["second"], r["track_id"], r["frames"]) for r in rows]
    source, annotated = probe(clip.path), probe(tmp_path / "out" / "people.annotated.mp4")
    assert annotated.frame_count == source.frame_count == 120
    assert (annotated.size_wh, annotated.fps, annotated.has_audio) == (source.size_wh, source.fps, True)


def test_an_internal_error_is_one_line_unless_debug(tmp_path, monkeypatch):
    def broken(options):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("emovid.loading.load_models", broken)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    result = invoke("timeline", video)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == "error: internal error: ZeroDivisionError: division by zero (--debug shows the " \
                                    "traceback)"
    assert isinstance(invoke("timeline", video, "--debug").exception, ZeroDivisionError)


def test_a_csv_path_that_cannot_be_written_fails_before_the_analysis(tmp_path, videos, loaded):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("timeline", videos, "--csv", blocker / "all.csv")
    assert result.exit_code == 2 and "cannot write to the output folder" in result.stderr and loaded == []
    assert invoke("timeline", videos, "--csv", tmp_path / "new" / "all.csv").exit_code == 0
    assert (tmp_path / "new" / "all.csv").is_file()


def test_both_commands_detect_every_third_frame_by_default(tmp_path, videos, loaded):
    """annotate and timeline share the default (the same video gives the same timeline from either command)."""
    assert invoke("timeline", videos / "b.mp4", "--out", tmp_path / "t").exit_code == 0
    assert invoke("annotate", videos / "b.mp4", "--out", tmp_path / "a").exit_code == 0
    defaults = [(o.every, o.scan_every_s, o.full_scan_every_s, o.classify_every, o.coarse_side_px,
                 o.inference_threads) for o in loaded]
    assert defaults == [(3, 0.5, 2.0, 2, 320, 0)] * 2
    assert (tmp_path / "t" / "b.timeline.csv").read_text() == (tmp_path / "a" / "b.timeline.csv").read_text()


def test_the_returning_person_gets_their_id_back_with_re_identification(face_video, model_path, tmp_path):
    pytest.importorskip("dlib")
    clip = face_video("back.mp4", fps=25, duration_s=4.0, faces=[(0, 1.5, (20, 30, 60, 80)), (3, 4, (20, 30, 60, 80))])
    result = invoke("timeline", clip.path, "--model", model_path, "--out", tmp_path / "out", "--device", "cpu",
                    "--reid-window", "30")
    assert result.exit_code == 0, result.output
    ids = {r["track_id"] for r in read_rows(tmp_path / "out" / "back.timeline.csv") if r["track_id"]}
    assert ids == {"1"}


def test_quiet_prints_only_failures(tmp_path, videos, loaded):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    result = invoke("timeline", videos / "a.mp4", bad, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all("bad.mp4" in line or "failed" in line for line in lines), lines
    assert "emovid summary" not in result.stderr and "ONNX Runtime" not in result.stderr
    assert (tmp_path / "out" / "a.timeline.csv").is_file()


def test_the_summary_is_one_plain_line_per_video_when_stderr_is_not_a_terminal(tmp_path, videos, loaded):
    result = invoke("timeline", videos / "a.mp4", "--out", tmp_path / "out")
    assert result.exit_code == 0
    summary = result.stderr[result.stderr.index("emovid summary"):].splitlines()
    assert summary[1].startswith("done    ") and "a.mp4" in summary[1] and "a.timeline.csv" in summary[1]
    assert not any(ch in result.stderr for ch in "┃│┏")  # no table borders in logs


@pytest.mark.parametrize("table_format", ["jsonl", "parquet"])
def test_the_tables_can_be_json_lines_or_parquet_with_the_csv_s_values(tmp_path, videos, loaded, table_format):
    import pandas as pd

    result = invoke("timeline", videos / "b.mp4", "--out", tmp_path / "csv", "--per-frame")
    assert result.exit_code == 0, result.output
    result = invoke("timeline", videos / "b.mp4", "--out", tmp_path / "other", "--per-frame", "--format", table_format)
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "other") == sorted(["b.emovid.json", f"b.frames.{table_format}", "b.timeline.png",
                                                   f"b.timeline.{table_format}"])
    read = (lambda p: pd.read_json(p, lines=True, precise_float=True)) if table_format == "jsonl" else pd.read_parquet
    for table in ("timeline", "frames"):
        expected = pd.read_csv(tmp_path / "csv" / f"b.{table}.csv")
        got = read(tmp_path / "other" / f"b.{table}.{table_format}")
        assert list(got.columns) == list(expected.columns)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    again = invoke("timeline", videos / "b.mp4", "--out", tmp_path / "other", "--per-frame", "--format", table_format)
    assert "skipped" in again.stderr  # the record lists the files of this format


def test_parquet_without_pyarrow_names_the_install_command(tmp_path, videos, loaded, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = invoke("timeline", videos / "a.mp4", "--out", tmp_path / "out", "--format", "parquet")
    assert result.exit_code == 2
    assert "pip install 'emovid[parquet]'" in result.stderr and not (tmp_path / "out").exists()
    assert invoke("timeline", videos / "a.mp4", "--csv", tmp_path / "x.csv", "--format", "jsonl").exit_code == 2


def test_a_jsonl_summary_has_one_record_per_line(tmp_path, videos, loaded):
    import json

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    summary = tmp_path / "summary.jsonl"
    result = invoke("timeline", videos / "a.mp4", bad, "--out", tmp_path / "out", "--summary", summary)
    assert result.exit_code == 1
    records = [json.loads(line) for line in summary.read_text().splitlines()]
    assert [(Path(r["video"]).name, r["status"]) for r in records] == [("a.mp4", "done"), ("bad.mp4", "failed")]
    assert records[0]["outputs"] and records[1]["reason"]


@pytest.mark.parametrize(("option", "value"), [("--threads", "999"), ("--scan-every", "nan"), ("--min-face", "-1"),
                                               ("--sample-fps", "0"), ("--detect-size", "16"), ("--reid-window", "-1"),
                                               ("--max-megapixels", "inf"), ("--workers", "0")])
def test_an_option_out_of_its_range_is_a_usage_error_naming_it(tmp_path, videos, loaded, option, value):
    extra = ["--ray", "local"] if option == "--workers" else []
    result = invoke("timeline", videos / "a.mp4", "--out", tmp_path / "out", option, value, *extra)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "must be" in result.stderr and "Traceback" not in result.stderr
    assert loaded == [] and not (tmp_path / "out").exists()
