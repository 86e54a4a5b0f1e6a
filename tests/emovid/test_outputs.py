"""Output naming, the skip-if-complete check and atomic writes (no temporaries left on failure or Ctrl-C)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from emovid.errors import OutputError
from emovid.outputs import (
    Staged,
    atomic_output,
    atomic_text,
    foreign_outputs,
    input_id,
    input_identity,
    is_output_name,
    manifest_text,
    matching_outputs,
    output_paths,
    prepare_dir,
    remove_stale_temporaries,
    temp_path,
    write_atomic,
)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_names_come_from_the_input_stem(tmp_path):
    paths = output_paths(Path("/videos/party.take2.mov"), tmp_path / "out", video=True, frames=True)
    assert paths.video == tmp_path / "out" / "party.take2.annotated.mp4"
    assert paths.csv == tmp_path / "out" / "party.take2.timeline.csv"
    assert paths.png == tmp_path / "out" / "party.take2.timeline.png"
    assert paths.frames == tmp_path / "out" / "party.take2.frames.csv"
    beside = output_paths(Path("/videos/clip.mp4"), png=False)
    assert beside.paths() == (Path("/videos/clip.timeline.csv"),)


def test_complete_only_when_every_wanted_output_exists(tmp_path):
    paths = output_paths(tmp_path / "clip.mp4", tmp_path, video=True)
    assert not paths.complete()
    paths.csv.write_text("x")
    paths.png.write_bytes(b"x")
    assert not paths.complete()
    paths.video.write_bytes(b"x")
    assert paths.complete()
    assert not output_paths(tmp_path / "clip.mp4", tmp_path, csv=False, png=False).complete()  # nothing wanted


def test_output_names_are_recognised():
    assert is_output_name("clip.annotated.mp4") and is_output_name(".clip.annotated.mp4.tmp-12.mp4")
    assert not is_output_name("clip.mp4") and not is_output_name(".hidden.mp4")


def test_atomic_write_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "a.timeline.csv"
    target.write_text("old")
    write_atomic(target, "new,text\n")
    assert target.read_text() == "new,text\n" and listing(tmp_path) == ["a.timeline.csv"]


def test_temp_name_is_hidden_in_the_same_folder_with_the_same_suffix(tmp_path):
    temp = temp_path(tmp_path / "clip.annotated.mp4")
    assert temp.parent == tmp_path and temp.suffix == ".mp4"
    assert re.fullmatch(rf"\.clip\.annotated\.mp4\.tmp-{os.getpid()}-[0-9a-f]{{8}}\.mp4", temp.name)
    long = temp_path(tmp_path / ("é" * 120 + ".annotated.mp4"))  # 254 bytes: fits, and so must its temporary
    assert len(long.name.encode()) <= 100 and long.name.startswith("." + "é" * 32 + ".tmp-")


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failure_removes_the_temporary_and_keeps_the_old_output(tmp_path, error):
    target = tmp_path / "clip.annotated.mp4"
    target.write_bytes(b"previous")
    with pytest.raises(type(error)), atomic_output(target) as temp:
        temp.write_bytes(b"half")
        raise error
    assert listing(tmp_path) == ["clip.annotated.mp4"] and target.read_bytes() == b"previous"


def test_atomic_text_streams_lines(tmp_path):
    target = tmp_path / "clip.frames.csv"
    with atomic_text(target) as handle:
        handle.write("a,b\n")
        assert not target.exists()
    assert target.read_bytes() == b"a,b\n"
    with pytest.raises(KeyboardInterrupt), atomic_text(target) as handle:
        handle.write("c,d\n")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"a,b\n" and listing(tmp_path) == ["clip.frames.csv"]


def test_nothing_written_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="nothing was written"), atomic_output(tmp_path / "x.csv"):
        pass


def test_prepare_dir_creates_folders(tmp_path):
    assert prepare_dir(tmp_path / "a" / "b").is_dir()
    assert listing(tmp_path / "a" / "b") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_folder_is_an_output_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"ro: cannot write to the output folder \(Permission denied\)"):
            prepare_dir(folder)
    finally:
        folder.chmod(0o700)


def test_an_output_folder_that_is_a_file_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file/sub: cannot write to the output folder") as info:
        prepare_dir(blocker / "sub")
    assert "\n" not in str(info.value)
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(blocker / "x.csv", "data")


def test_a_failed_rename_puts_back_what_the_earlier_renames_replaced(tmp_path):
    """All or none: the third output cannot be renamed (a folder holds its name), so the first gets its earlier
    content back, the second (new) is removed, and no temporary is left."""
    first, second, third = tmp_path / "x.annotated.mp4", tmp_path / "x.timeline.csv", tmp_path / "x.timeline.png"
    first.write_bytes(b"earlier video")
    third.mkdir()
    with pytest.raises(OutputError, match=r"x.timeline.png: cannot write \(Is a directory\)"), Staged() as staged:
        staged.write(first, b"new video")
        staged.write(second, "new csv")
        staged.write(third, b"new png")
        staged.commit()
    assert first.read_bytes() == b"earlier video" and listing(tmp_path) == ["x.annotated.mp4", "x.timeline.png"]


def test_outputs_are_fsynced_before_their_rename_and_the_folder_after(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with Staged() as staged:
        csv_temp = staged.temp(tmp_path / "a.timeline.csv")
        csv_temp.write_text("x")
        png_temp = staged.temp(tmp_path / "a.timeline.png")
        png_temp.write_bytes(b"x")
        staged.commit()
    assert events == [("fsync", str(csv_temp)), ("fsync", str(png_temp)),
                      ("replace", str(tmp_path / "a.timeline.csv")), ("replace", str(tmp_path / "a.timeline.png")),
                      ("fsync", str(tmp_path))]


def test_a_temporary_being_written_survives_a_sweep_whatever_its_pid(tmp_path):
    """The sweep goes by the writer's lock, not by kill(pid, 0): a live writer's temporary stays even when its pid
    means nothing here (another PID namespace or host), and a free one goes even when its pid is alive."""
    with Staged() as staged:
        temp = staged.temp(tmp_path / "a.timeline.csv")
        temp.write_text("being written")
        renamed = temp.with_name(".a.timeline.csv.tmp-999999999-0badc0de.csv")
        os.link(temp, renamed)  # the same locked file under a pid that does not exist here
        free = tmp_path / f".b.timeline.csv.tmp-{os.getppid()}-00000000.csv"  # a live pid, nobody's lock
        free.write_text("left by a killed run")
        removed = remove_stale_temporaries(tmp_path, force=True)
        assert removed == [free] and temp.exists() and renamed.exists()
        renamed.unlink()
        staged.commit()
    assert listing(tmp_path) == ["a.timeline.csv"]


def test_the_record_matches_only_the_same_input_and_options(tmp_path):
    clip = tmp_path / "talk.mp4"
    clip.write_bytes(b"video")
    paths = output_paths(clip, tmp_path / "out", png=False)
    (tmp_path / "out").mkdir()
    identity, shaping = input_identity(clip), {"every": 3}
    with Staged() as staged:
        staged.write(paths.csv, "rows")
        staged.write(paths.manifest, manifest_text(paths, staged, identity, shaping))
        staged.commit()
    assert matching_outputs(paths, identity, shaping) and foreign_outputs(paths) == []
    assert not matching_outputs(paths, identity, {"every": 1})
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "talk.mp4").write_bytes(b"video")
    assert not matching_outputs(paths, input_identity(other / "talk.mp4"), shaping)  # same name, another file
    paths.csv.write_text("edited")
    assert not matching_outputs(paths, identity, shaping) and foreign_outputs(paths) == [paths.csv]


def test_input_id_follows_the_content_not_the_path(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    big = os.urandom(3 << 20)
    (tmp_path / "a" / "talk.mp4").write_bytes(big)
    (tmp_path / "b" / "talk.mp4").write_bytes(big[:-1] + bytes([big[-1] ^ 1]))  # the last byte differs
    (tmp_path / "copy.mp4").write_bytes(big)
    ids = [input_id(p) for p in (tmp_path / "a" / "talk.mp4", tmp_path / "b" / "talk.mp4", tmp_path / "copy.mp4")]
    assert ids[0] == ids[2] != ids[1] and all(re.fullmatch("[0-9a-f]{12}", i) for i in ids)
