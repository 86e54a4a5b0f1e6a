"""Which videos a run processes: files, folders and globs on the command line, and outputs two inputs would share."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from emovid.errors import InputError
from emovid.outputs import is_output_name
from emovid.results import VideoResult

if TYPE_CHECKING:  # pragma: no cover
    from emovid.options import OutputOptions

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


# --- inputs -----------------------------------------------------------------------------------------------------


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not is_output_name(p.name))


def _no_videos(args: Sequence[str]) -> str:
    kinds = "/".join(e.lstrip(".") for e in VIDEO_EXTENSIONS)
    return f"{', '.join(args)}: no video files found ({kinds})"


def collect_inputs(args: Sequence[str | Path]) -> list[Path]:
    """Files, folders (their video files by extension, not recursive) and globs (`**` recurses) -> video paths in
    argument order, each once. InputError when an argument matches nothing."""
    found, missing, empty = find_inputs(args)
    if missing:
        raise InputError(f"{missing[0]}: no such file or folder")
    if empty:
        raise InputError(_no_videos(empty))
    return found


def input_problems(args: Sequence[str | Path]) -> tuple[list[Path], list[VideoResult]]:
    """(the videos of `args` as collect_inputs finds them, a "failed" result for each argument that matches nothing),
    so a batch can process the videos it found and report the rest."""
    found, missing, empty = find_inputs(args)
    failed = [VideoResult(path=Path(a), status="failed", error=f"{a}: no such file or folder") for a in missing]
    failed += [VideoResult(path=Path(a), status="failed", error=_no_videos([a])) for a in empty]
    return found, failed


def find_inputs(args: Sequence[str | Path]) -> tuple[list[Path], list[str], list[str]]:
    """(video paths in argument order, each once; arguments that do not exist; arguments without videos)."""
    found: list[Path] = []
    missing: list[str] = []
    empty: list[str] = []
    for arg in args:
        text = str(arg)
        path = Path(text).expanduser()
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = _videos_in(path)
        elif glob.has_magic(text):
            matches = []
            for hit in sorted(glob.glob(str(path), recursive=True)):
                hit_path = Path(hit)
                if hit_path.is_dir():
                    matches.extend(_videos_in(hit_path))
                elif hit_path.suffix.lower() in VIDEO_EXTENSIONS and not is_output_name(hit_path.name):
                    matches.append(hit_path)
        else:
            missing.append(text)
            continue
        if not matches:
            empty.append(text)
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), missing, empty


def check_output_collisions(paths: Sequence[Path], outputs: OutputOptions) -> None:
    """InputError when two inputs would write the same output file (same stem, same output folder)."""
    owner: dict[Path, Path] = {}
    for path in paths:
        for out in outputs.paths_for(path).paths():
            try:
                key = out.resolve()
            except OSError:  # e.g. a name too long: that video fails on its own later
                key = Path(os.path.abspath(out))
            if key in owner:
                raise InputError(f"{owner[key]} and {path} would both write {out}; process them in separate runs "
                                 "or with different --out folders")
            owner[key] = path
