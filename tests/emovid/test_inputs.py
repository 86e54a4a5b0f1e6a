"""Inputs: files, folders and globs, missing ones, and inputs that would write the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from emovid.errors import InputError
from emovid.inputs import check_output_collisions, collect_inputs
from emovid.options import OutputOptions


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_inputs_from_files_folders_and_globs(tmp_path):
    a = touch(tmp_path / "clips" / "a.mp4")
    b = touch(tmp_path / "clips" / "B.MOV")
    touch(tmp_path / "clips" / "a.annotated.mp4")  # an output of an earlier run: not an input
    touch(tmp_path / "clips" / "notes.txt")
    c = touch(tmp_path / "clips" / "sub" / "c.webm")
    d = touch(tmp_path / "d.avi")
    assert collect_inputs([tmp_path / "clips"]) == [b, a]
    assert collect_inputs([str(tmp_path / "clips" / "**" / "*.webm"), d, str(a)]) == [c, d, a]
    assert collect_inputs([str(tmp_path / "clips" / "*")]) == [b, a, c]  # a matched folder is searched
    assert collect_inputs([a, tmp_path / "clips"]) == [a, b]  # each input once


def test_missing_inputs_are_input_errors(tmp_path):
    touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(InputError, match="nope.mp4: no such file or folder"):
        collect_inputs([tmp_path / "nope.mp4"])
    with pytest.raises(InputError, match=r"empty, .*\*.mkv: no video files found \(mp4/mov/mkv/avi/webm/m4v\)"):
        collect_inputs([tmp_path / "empty", str(tmp_path / "*.mkv")])


def test_inputs_that_would_write_the_same_outputs_are_refused(tmp_path):
    a, b = touch(tmp_path / "x" / "clip.mp4"), touch(tmp_path / "y" / "clip.mp4")
    check_output_collisions([a, b], OutputOptions())  # beside each input: fine
    with pytest.raises(InputError, match=r"clip.mp4 and .*clip.mp4 would both write .*clip.timeline.csv"):
        check_output_collisions([a, b], OutputOptions(out_dir=tmp_path / "out"))
