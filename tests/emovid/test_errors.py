"""Bad input, faults and odd videos through the CLI (typer's CliRunner, the real CenterFace detector, a tiny ONNX
emotion model): every failure is one line naming the file and the reason, a failing video does not stop the batch
(exit 1), usage and setup errors exit 2, and no partial or temporary file is ever left in the output folder.

The corpus is generated in tmp_path (tests/media.py); nothing depends on the shipped emotion models.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import subprocess
import sys
import weakref
from pathlib import Path

import media
import numpy as np
import pytest
from emovid_fakes import FakeDetector
from onnx_models import brightness_model, constant_model, nan_on_faces_model, one_hot
from typer.testing import CliRunner

from emovid.classify import load_classifier
from emovid.cli import app
from emovid.errors import printable
from emovid.faces import Frame
from emovid.pipeline import AnalysisOptions, Models, analyse_frames
from emovid.video import probe

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
UNREADABLE = "not a readable video file ("


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def files_in(folder: Path) -> list[str]:
    """Every name in `folder`, hidden temporaries included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def failures(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("failed: ")]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def rows_of(path: Path) -> list[tuple[str, str, str]]:
    return [(r["second"], r["track_id"], r["frames"]) for r in read_rows(path)]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return brightness_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """One good 1 s video and every kind of bad input."""
    folder = tmp_path_factory.mktemp("corpus")
    files = media.bad_inputs(folder / "bad")
    files["good"] = media.make_face_video(folder / "good.mp4", duration_s=1.0).path
    files["no_videos"] = folder / "no videos"
    files["no_videos"].mkdir()
    (files["no_videos"] / "notes.txt").write_text("not a video")
    import cv2

    cv2.imwrite(str(folder / "picture.png"), media.face_image((160, 120), [(60, 30, 100, 80)]))
    files["png"] = folder / "picture.png"
    files["png_as_mp4"] = folder / "picture.mp4"
    files["png_as_mp4"].write_bytes(files["png"].read_bytes())
    return files


def timeline(model: Path, *args: str | Path):
    return invoke("timeline", *args, "--model", model, "--device", "cpu")


# --- bad inputs: one failed video, the other processed -----------------------------------------------------------

BAD = [
    ("missing", "no such file or folder"),
    ("no_videos", "no video files found (mp4/mov/mkv/avi/webm/m4v)"),
    ("folder", "no video files found (mp4/mov/mkv/avi/webm/m4v)"),  # a folder named .mp4 holding nothing
    ("empty", "empty file (0 bytes)"),
    ("random", UNREADABLE),
    ("truncated", UNREADABLE),  # cut at half its bytes: the index at the end of the MP4 is gone
    ("text", UNREADABLE),
    ("png", "a still image (png), not a video"),
    ("png_as_mp4", "a still image (png), not a video"),
    ("garbage_frames", "no decodable video frame"),
    ("audio_only", "no video stream"),
]


@pytest.mark.parametrize(("name", "reason"), BAD, ids=[name for name, _ in BAD])
def test_a_bad_input_fails_in_one_line_and_the_batch_goes_on(tmp_path, corpus, model, name, reason):
    bad, out = corpus[name], tmp_path / "out"
    result = timeline(model, bad, corpus["good"], "--out", out)
    assert result.exit_code == 1, result.output
    [line] = failures(result)
    assert line.startswith(f"failed: {bad}: {reason}")
    assert "1 of 2 video(s) failed" in result.stderr and "Traceback" not in result.output
    assert files_in(out) == ["good.emovid.json", "good.timeline.csv", "good.timeline.png"]  # the other video only
    assert rows_of(out / "good.timeline.csv") == [("0", "1", "25")]


@pytest.mark.parametrize("name", ["missing", "no_videos"])
def test_no_video_at_all_is_a_usage_error(tmp_path, corpus, model, name):
    result = timeline(model, corpus[name], "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {corpus[name]}: no ")
    assert not (tmp_path / "out").exists()


def test_the_whole_corpus_in_one_batch(tmp_path, corpus, model):
    bad = [corpus[name] for name, _ in BAD if name != "png"]  # picture.png and picture.mp4 would share outputs
    result = timeline(model, *bad[:5], corpus["good"], *bad[5:], "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert [line.split(": ")[1] for line in failures(result)] == [str(p) for p in bad]
    assert f"{len(bad)} of {len(bad) + 1} video(s) failed" in result.stderr
    assert files_in(tmp_path / "out") == ["good.emovid.json", "good.timeline.csv", "good.timeline.png"]


# --- nothing lost, nothing wrong with exit 0 -----------------------------------------------------------------------


def test_a_cut_video_fails_writes_nothing_and_is_not_skipped_on_a_rerun(tmp_path, model):
    """Cut after its index (moov first): the frames that decode are far fewer than the index lists, so the video
    fails (no "no face" rows for the seconds never decoded), and a rerun tries it again."""
    clip = media.make_face_video(tmp_path / "full.mp4", duration_s=2.0, faststart=True).path
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:clip.stat().st_size // 2])
    out = tmp_path / "out"
    for _ in range(2):
        result = timeline(model, cut, "--out", out)
        assert result.exit_code == 1, result.output
        [line] = failures(result)
        assert re.fullmatch(rf"failed: {re.escape(str(cut))}: the file ends early: \d+ of 50 frames decoded \(cut "
                            r"short or damaged\)", line)
        assert files_in(out) == [] and "skipped" not in result.stderr


def test_a_header_claiming_a_billion_seconds_fails_quickly(tmp_path, model):
    """2 s of frames in a Matroska file whose header claims 1e9 s: the timeline was built for the header's length
    (5 GB); now rows follow the decoded frames and the video fails as cut short or damaged."""
    lying = media.write_lying_mkv(tmp_path / "lying.mkv", n_frames=50, claimed_s=1e9)
    result = timeline(model, lying, "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert failures(result) == [f"failed: {lying}: the file ends early: frames up to 2.000 s of the "
                                "1000000000.000 s its header declares (cut short or damaged)"]
    assert files_in(tmp_path / "out") == []


def test_a_frame_at_a_million_seconds_gives_two_rows_not_a_million(tmp_path, model):
    image = media.face_image((160, 120), [(60, 30, 100, 80)])
    gap = media.write_frames(tmp_path / "gap.mkv", [image] * 3, timestamps_s=[0.0, 0.04, 1e6],
                             container_format="matroska")  # MP4's 32-bit sample durations cannot hold the gap
    result = timeline(model, gap, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "out" / "gap.timeline.csv")
    assert [(r["second"], r["end_s"]) for r in rows] == [("0", "1.000"), ("1000000", "1000000.040")]


def test_a_model_that_returns_nan_for_faces_fails_the_video_naming_the_model(tmp_path, corpus):
    """The model passes the loader's check (flat test images) and returns NaN for every real face: the video fails
    instead of reporting every second as "no face"."""
    nan_model = nan_on_faces_model(tmp_path / "nan.onnx")
    result = invoke("timeline", corpus["good"], "--model", nan_model, "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    [line] = failures(result)
    assert line.startswith(f"failed: {corpus['good']}: emotion model nan ({nan_model}) returned NaN or infinite "
                           "probabilities for a face at ")
    assert files_in(tmp_path / "out") == []


def test_a_failed_csv_rerun_keeps_the_earlier_csv(tmp_path, corpus, model):
    combined = tmp_path / "all.csv"
    assert timeline(model, corpus["good"], "--csv", combined).exit_code == 0
    before = combined.read_bytes()
    rerun = timeline(model, corpus["random"], corpus["good"], "--csv", combined)
    assert rerun.exit_code == 1
    assert combined.read_bytes() == before and f"timeline CSV {combined}: kept as it was" in rerun.stderr
    only_bad = timeline(model, corpus["random"], "--csv", tmp_path / "new.csv")
    assert only_bad.exit_code == 1 and not (tmp_path / "new.csv").exists()  # no header-only file


def test_csv_to_stdout_writes_no_png_beside_the_input(tmp_path, corpus, model):
    folder = tmp_path / "in"
    folder.mkdir()
    clip = folder / "talk.mp4"
    clip.write_bytes(corpus["good"].read_bytes())
    result = timeline(model, clip, "--csv", "-")
    assert result.exit_code == 0, result.output
    assert files_in(folder) == ["talk.mp4"]
    assert [(r["second"], r["frames"]) for r in csv.DictReader(io.StringIO(result.stdout))] == [("0", "25")]


def test_the_commit_is_all_or_none_when_the_video_cannot_be_renamed(tmp_path, corpus, model):
    """talk.annotated.mp4 is a folder: nothing of talk.mp4 is renamed (not the CSV and PNG alone)."""
    out = tmp_path / "out"
    (out / "good.annotated.mp4").mkdir(parents=True)
    result = invoke("annotate", corpus["good"], "--model", model, "--device", "cpu", "--out", out, "--overwrite")
    assert result.exit_code == 1
    [line] = failures(result)
    assert line.startswith(f"failed: {corpus['good']}: {out / 'good.annotated.mp4'}: cannot write (")
    assert files_in(out) == ["good.annotated.mp4"]


# --- hostile names and inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["http:x.mp4", "concat:b.mp4|a.mp4", "pipe:0.mp4", "file:c.mp4"])
def test_names_that_look_like_urls_are_read_and_written_as_local_files(tmp_path, corpus, model, name, monkeypatch):
    """A URL would be looked up (http:), concatenate other files (concat:) or read stdin (pipe:); a.mp4 and b.mp4
    are 2 s clips, so reading them instead would give two seconds of rows."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).write_bytes(corpus["good"].read_bytes())
    for other in ("a.mp4", "b.mp4", "c.mp4", "x.mp4"):
        media.make_face_video(folder / other, duration_s=2.0, faces=[])
    monkeypatch.chdir(folder)  # relative names, as typed
    out = tmp_path / "out"
    result = invoke("annotate", name, "--model", model, "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    stem = Path(name).stem
    assert rows_of(out / f"{stem}.timeline.csv") == [("0", "1", "25")]
    assert probe(out / f"{stem}.annotated.mp4").frame_count == 25


def test_a_name_too_long_for_its_outputs_fails_alone_and_names_that_fit_work(tmp_path, corpus, model):
    folder = tmp_path / "in"
    folder.mkdir()
    too_long = folder / ("x" * 246 + ".mp4")  # its outputs would need 258-260 bytes
    fits = folder / ("y" * 236 + ".mp4")  # y...y.annotated.mp4 is 250 bytes: fits, and so must its temporary
    for path in (too_long, fits):
        path.write_bytes(corpus["good"].read_bytes())
    out = tmp_path / "out"
    result = invoke("annotate", too_long, fits, "--model", model, "--device", "cpu", "--out", out)
    assert result.exit_code == 1, result.output
    [line] = failures(result)
    assert line.startswith(f"failed: {too_long}: {out / too_long.stem}.") and "File name too long" in line
    assert "internal error" not in result.stderr
    assert files_in(out) == sorted(f"{fits.stem}{suffix}" for suffix in (".annotated.mp4", ".emovid.json",
                                                                          ".timeline.csv", ".timeline.png"))


def test_names_with_terminal_escapes_newlines_and_formulas(tmp_path, corpus, model):
    folder = tmp_path / "in"
    folder.mkdir()
    formula, newline = folder / "=1+2.mp4", folder / "two\nlines.mp4"
    escapes = folder / "\x1b]0;owned\x07\x1b[31mred.mp4"
    formula.write_bytes(corpus["good"].read_bytes())
    escapes.write_bytes(corpus["good"].read_bytes())
    newline.write_bytes(b"not a video" * 100)
    out = tmp_path / "out"
    result = timeline(model, formula, escapes, newline, "--out", out)
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr  # nothing raw reaches the terminal
    assert "\\x1b]0;owned\\x07\\x1b[31mred.mp4" in result.stderr  # shown escaped instead
    [line] = failures(result)
    assert line.startswith(f"failed: {folder}/two\\nlines.mp4: {UNREADABLE}")
    assert printable(str(newline)) in line
    rows = read_rows(out / "=1+2.timeline.csv")
    assert [r["video"] for r in rows] == ["'=1+2.mp4"]  # a spreadsheet shows it as text
    assert len(rows[0]["input_id"]) == 12


@pytest.mark.parametrize("args", [
    ("--threads", "100000"), ("--scan-every", "nan"), ("--scan-every", "inf"), ("--full-scan-every", "1e308"),
    ("--sample-fps", "nan"), ("--sample-fps", "inf"), ("--sample-fps", "1e308"), ("--max-megapixels", "nan"),
    ("--every", "10000000000"), ("--classify-every", "10000000000"), ("--min-face", "10000000000"),
    ("--detect-size", "100000"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else a)
def test_options_out_of_range_nan_or_inf_are_usage_errors(tmp_path, corpus, model, args):
    result = timeline(model, corpus["good"], *args, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert args[0] in result.output and not (tmp_path / "out").exists()


def test_frames_over_the_megapixel_limit_fail_unless_it_is_raised(tmp_path, model):
    image = media.face_image((800, 600), [(300, 200, 420, 340)], background_kind="plain")
    big = media.write_frames(tmp_path / "big.mp4", [image] * 2, fps=25)
    result = timeline(model, big, "--out", tmp_path / "out", "--max-megapixels", "0.4")
    assert result.exit_code == 1
    assert failures(result) == [f"failed: {big}: frames of 800x600 are over --max-megapixels 0.4 (memory grows with "
                                "frame size; raise it to analyse this video)"]
    assert timeline(model, big, "--out", tmp_path / "out", "--max-megapixels", "0.5").exit_code == 0


# --- odd but valid videos: exit 0 -------------------------------------------------------------------------------


def test_a_video_without_faces_gives_empty_track_rows(tmp_path, model):
    clip = media.make_face_video(tmp_path / "nobody.mp4", duration_s=2.0, faces=[])
    result = timeline(model, clip.path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "out" / "nobody.timeline.csv")
    assert [(r["second"], r["track_id"], r["frames"], r["happy"], r["dominant"]) for r in rows] == [
        ("0", "", "0", "", ""), ("1", "", "0", "", "")]


def test_a_one_frame_video(tmp_path, model):
    clip = media.make_face_video(tmp_path / "one.mp4", duration_s=0.04)
    assert clip.frame_count == 1
    result = invoke("annotate", clip.path, "--model", model, "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert rows_of(tmp_path / "out" / "one.timeline.csv") == [("0", "1", "1")]
    assert probe(tmp_path / "out" / "one.annotated.mp4").frame_count == 1


def test_a_portrait_video_with_rotation_metadata_is_analysed_upright(tmp_path, model):
    clip = media.make_face_video(tmp_path / "phone.mp4", size_wh=(120, 160), duration_s=1.0, rotation_deg=90,
                                 faces=[(0, 9, (30, 50, 90, 120))])
    result = invoke("annotate", clip.path, "--model", model, "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert rows_of(tmp_path / "out" / "phone.timeline.csv") == [("0", "1", "25")]  # found: the face was upright
    written = probe(tmp_path / "out" / "phone.annotated.mp4")
    assert (written.size_wh, written.rotation_deg, written.frame_count) == ((120, 160), 0, 25)


def test_odd_frame_sizes(tmp_path, model):
    image = media.face_image((641, 359), [(250, 100, 350, 220)], background_kind="plain")
    path = media.write_frames(tmp_path / "odd.mp4", [image] * 5, fps=10, pix_fmt="yuv444p")
    assert probe(path).size_wh == (641, 359)
    result = invoke("annotate", path, "--model", model, "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert rows_of(tmp_path / "out" / "odd.timeline.csv") == [("0", "1", "5")]
    written = probe(tmp_path / "out" / "odd.annotated.mp4")
    assert (written.size_wh, written.frame_count) == ((642, 360), 5)  # H.264 4:2:0 needs even sides


def test_variable_frame_rate(tmp_path, model):
    image = media.face_image((160, 120), [(60, 30, 100, 80)])
    times = [0.0, 0.1, 0.15, 0.9, 1.0, 1.7]
    path = media.write_frames(tmp_path / "vfr.mp4", [image] * len(times), timestamps_s=times)
    result = timeline(model, path, "--out", tmp_path / "out", "--per-frame")
    assert result.exit_code == 0, result.output
    assert rows_of(tmp_path / "out" / "vfr.timeline.csv") == [("0", "1", "4"), ("1", "1", "2")]
    assert [r["timestamp_s"] for r in read_rows(tmp_path / "out" / "vfr.frames.csv")] == [
        f"{t:.4f}" for t in times]


def test_spaces_and_non_ascii_in_names(tmp_path, corpus, model):
    folder = tmp_path / "mes vidéos ✓"
    folder.mkdir()
    clip = folder / "ünïcode — clip é.mp4"
    clip.write_bytes(corpus["good"].read_bytes())
    out = tmp_path / "sortie à plat" / "sub dir"
    result = timeline(model, folder, "--out", out)
    assert result.exit_code == 0, result.output
    stem = "ünïcode — clip é"
    assert files_in(out) == [f"{stem}.emovid.json", f"{stem}.timeline.csv", f"{stem}.timeline.png"]
    assert {r["video"] for r in read_rows(out / "ünïcode — clip é.timeline.csv")} == {"ünïcode — clip é.mp4"}


def test_4k_frames(tmp_path, model):
    image = media.face_image((3840, 2160), [(1500, 700, 2100, 1500)], background_kind="plain")
    path = media.write_frames(tmp_path / "uhd.mp4", [image, image], fps=25)
    result = timeline(model, path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert rows_of(tmp_path / "out" / "uhd.timeline.csv") == [("0", "1", "2")]


def test_frames_are_not_accumulated(model):
    """Memory stays bounded: however long the video, only a batch of 4K frames is alive at any time."""
    alive: list[weakref.ref] = []
    most_alive = 0

    def script(image):
        nonlocal most_alive
        alive.append(weakref.ref(image))
        most_alive = max(most_alive, sum(ref() is not None for ref in alive))
        return [(1500.0, 700.0, 2100.0, 1500.0)]

    def frames(n):
        for i in range(n):
            yield Frame(index=i, timestamp_s=i / 25, image=np.zeros((2160, 3840, 3), np.uint8))  # lazy pages

    models = Models(detector=FakeDetector(script), classifier=load_classifier(model, "cpu"))
    options = AnalysisOptions(batch_frames=4, every=1, full_scan_every_s=0)  # one detector call per frame
    n = 0
    for item in analyse_frames(frames(40), models, options):
        assert item.image is None  # not kept unless asked for
        n += 1
    assert n == 40 and len(alive) == 40
    assert most_alive <= options.batch_frames + 2


def test_the_same_input_gives_byte_identical_outputs(tmp_path, corpus, model):
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "a"]
    for i, out in enumerate(runs):
        extra = ["--overwrite"] if i == 2 else []
        assert timeline(model, corpus["good"], "--out", out, "--per-frame", *extra).exit_code == 0
        if i == 0:
            first = {name: (out / name).read_bytes() for name in files_in(out) if name != "good.emovid.json"}
    assert sorted(first) == ["good.frames.csv", "good.timeline.csv", "good.timeline.png"]
    for out in runs[1:]:  # the record (good.emovid.json) holds the outputs' times: not compared
        assert {name: (out / name).read_bytes() for name in files_in(out) if name != "good.emovid.json"} == first


# --- outputs that cannot be written -----------------------------------------------------------------------------


def test_an_output_folder_that_cannot_be_created(tmp_path, corpus, model):
    blocker = tmp_path / "a file"
    blocker.write_text("x")  # a folder below a regular file cannot exist, even for root
    out = blocker / "sub"
    result = timeline(model, corpus["good"], "--out", out)
    assert result.exit_code == 1
    assert failures(result) == [f"failed: {corpus['good']}: {out}: cannot write to the output folder "
                                "(Not a directory)"]
    assert blocker.read_text() == "x"


def test_an_output_name_taken_by_a_folder(tmp_path, corpus, model):
    out = tmp_path / "out"
    (out / "good.timeline.png").mkdir(parents=True)  # os.replace cannot put a file there, even for root
    other = tmp_path / "other.mp4"
    other.write_bytes(corpus["good"].read_bytes())
    result = timeline(model, corpus["good"], other, "--out", out)
    assert result.exit_code == 1
    assert failures(result) == [f"failed: {corpus['good']}: {out / 'good.timeline.png'}: exists and was not written "
                                "by emovid (or was changed since); --overwrite replaces it"]
    result = timeline(model, corpus["good"], other, "--out", out, "--overwrite")  # tries to replace it
    assert result.exit_code == 1
    [line] = failures(result)
    assert line.startswith(f"failed: {corpus['good']}: {out / 'good.timeline.png'}: cannot write (")
    assert files_in(out) == ["good.timeline.png", "other.emovid.json", "other.timeline.csv",
                             "other.timeline.png"]  # no csv alone


class FullDisk:
    """A fake disk for emovid.outputs: files in `folder` may hold `capacity` bytes in all; a write beyond it
    writes what fits, then fails with ENOSPC, as a full disk does. Removing files frees their space."""

    def __init__(self, folder: Path, capacity: int):
        self.folder, self.capacity, self.refused = folder, capacity, 0

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def open(self, path, mode="r", encoding=None, newline=None):
        disk = self

        class Raw(io.FileIO):
            def write(self, data) -> int:
                data = memoryview(data).cast("B")
                room = disk.capacity - disk.used()
                if len(data) > room:
                    disk.refused += 1
                    super().write(data[:max(room, 0)])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                return super().write(data)

        buffered = io.BufferedWriter(Raw(path, mode.replace("b", "").replace("t", "")))
        if "b" in mode:
            return buffered
        return io.TextIOWrapper(buffered, encoding=encoding, newline=newline)


def test_a_full_disk_midway_fails_that_video_only(tmp_path, model, monkeypatch):
    long = media.make_face_video(tmp_path / "long.mp4", duration_s=6.0,
                                 faces=[(0, 9, (20, 30, 60, 80)), (0, 9, (100, 30, 140, 80), 1)]).path
    short = media.make_face_video(tmp_path / "short.mp4", duration_s=0.04).path
    out = tmp_path / "out"
    out.mkdir()
    disk = FullDisk(out, capacity=20_000)  # long.frames.csv alone needs more; short's three outputs fit
    monkeypatch.setattr("emovid.outputs.open", disk.open, raising=False)
    result = timeline(model, long, short, "--out", out, "--per-frame")
    assert result.exit_code == 1, result.output
    assert failures(result) == [f"failed: {long}: {out / 'long.frames.csv'}: cannot write (No space left on device)"]
    assert disk.refused >= 1
    assert files_in(out) == ["short.emovid.json", "short.frames.csv", "short.timeline.csv", "short.timeline.png"]
    assert rows_of(out / "short.timeline.csv") == [("0", "1", "1")]


def test_a_file_size_limit_hit_while_encoding_fails_that_video_only(tmp_path, corpus):
    """A real write error from FFmpeg: the child process may not write files over 100 kB (RLIMIT_FSIZE, which
    binds root too); the annotated video of random noise needs more, the good video's outputs do not."""
    model = brightness_model(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(0)
    noisy = media.write_frames(tmp_path / "noisy.mp4", [rng.integers(0, 255, (120, 160, 3), np.uint8)
                                                       for _ in range(20)], fps=10)
    out = tmp_path / "out"
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY)); "
            "from emovid.cli import main; sys.argv[0] = 'emovid'; main()")
    done = subprocess.run([sys.executable, "-c", code, "annotate", str(noisy), str(corpus["good"]), "--model",
                           str(model), "--device", "cpu", "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("failed: ")]
    assert failed == [f"failed: {noisy}: {out / 'noisy.annotated.mp4'}: cannot write (File too large)"]
    assert files_in(out) == ["good.annotated.mp4", "good.emovid.json", "good.timeline.csv", "good.timeline.png"]
    assert probe(out / "good.annotated.mp4").frame_count == 25


# --- models and devices: setup errors, exit 2, nothing written ---------------------------------------------------


def test_a_corrupt_model(tmp_path, corpus):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07" + os.urandom(500))
    result = invoke("timeline", corpus["good"], "--model", path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: not a loadable ONNX model (")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("shapes", "got"), [
    ({"input_shape": ("N", 64, 64, 3)}, "input float32 [N,48,48,1] and one output float32 [N,7] (N dynamic), got "
                                        "tensor(float) ['N', 64, 64, 3]"),
    ({"output_shape": ("N", 5)}, "output float32 [N,7] probabilities, got tensor(float) ['N', 5]"),
])
def test_a_model_with_the_wrong_shapes(tmp_path, corpus, shapes, got):
    path = constant_model(tmp_path / "wrong.onnx", [0.2] * 5 if "output_shape" in shapes else one_hot(3), **shapes)
    result = invoke("timeline", corpus["good"], "--model", path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: expected ") and line.endswith(got)
    assert not (tmp_path / "out").exists()


def test_device_cuda_without_cuda_in_onnxruntime(tmp_path, corpus, model, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    result = invoke("timeline", corpus["good"], "--model", model, "--device", "cuda", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: --device cuda: this onnxruntime build has no CUDAExecutionProvider "
                                          "(available: CPUExecutionProvider)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_device_cuda_on_a_machine_without_a_gpu(tmp_path, corpus, model, device, monkeypatch):
    import logging

    from emovid.errors import DeviceError
    from emovid.runtime import create_session

    try:
        create_session(model, device)
    except DeviceError:
        pass
    else:
        pytest.skip(f"{device} works on this machine")
    monkeypatch.setattr(logging.getLogger("emovid"), "handlers", [])  # as without --debug (an earlier test used it)
    result = invoke("timeline", corpus["good"], "--model", model, "--device", device, "--out", tmp_path / "out")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()  # onnxruntime's multi-line "EP Error" banner is not shown
    assert line.startswith(f"error: --device {device}: ") and "use --device cpu or auto" in line
    assert result.stdout == "" and not (tmp_path / "out").exists()
