"""Output files: naming (`<stem>.annotated.mp4`, `<stem>.timeline.csv`, ...), the skip-if-complete check,
and atomic writes (a temporary name in the output folder, renamed with os.replace once complete, removed on any
exception or Ctrl-C), so an output either exists complete or not at all. `write_staged` defers the rename to the
end of an ExitStack, so one video's outputs are all written before any of them is renamed. Temporaries left by a
killed process (SIGKILL, power loss) are removed the next time an output is written to their folder. OS errors
become one-line `OutputError`s naming the final output (never its temporary name).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from emovid.errors import OutputError

SUFFIXES = {
    "video": ".annotated.mp4",
    "csv": ".timeline.csv",
    "png": ".timeline.png",
    "frames": ".frames.csv",
}
TEMP_MARK = ".tmp-"


@dataclass(frozen=True)
class OutputPaths:
    """Where one video's outputs go; None for an output that is not wanted."""

    video: Path | None = None
    csv: Path | None = None
    png: Path | None = None
    frames: Path | None = None

    def paths(self) -> tuple[Path, ...]:
        return tuple(p for p in (getattr(self, f.name) for f in fields(self)) if p is not None)

    def complete(self) -> bool:
        """True when every wanted output exists (and at least one is wanted)."""
        paths = self.paths()
        return bool(paths) and all(p.is_file() for p in paths)


def output_paths(video_path: Path, out_dir: Path | None = None, *, video: bool = False, csv: bool = True,
                 png: bool = True, frames: bool = False) -> OutputPaths:
    """Outputs named after the input's stem, in `out_dir` (None: beside the input)."""
    video_path = Path(video_path)
    folder = Path(out_dir) if out_dir is not None else video_path.parent
    stem = video_path.stem

    def path(kind: str, wanted: bool) -> Path | None:
        return folder / f"{stem}{SUFFIXES[kind]}" if wanted else None

    return OutputPaths(video=path("video", video), csv=path("csv", csv), png=path("png", png),
                       frames=path("frames", frames))


def is_output_name(name: str) -> bool:
    """True for names emovid writes (so a folder scan does not take an annotated video for an input)."""
    return name.startswith(".") and TEMP_MARK in name or any(name.endswith(s) for s in SUFFIXES.values())


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def prepare_dir(folder: Path) -> Path:
    """Create `folder` if needed and check that files can be created in it; OutputError (one line) otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".emovid-write-test-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write to the output folder ({_reason(exc)})") from None
    return folder


def temp_path(final: Path) -> Path:
    """`.<name>.tmp-<pid><suffix>` beside `final` (same folder, so os.replace is atomic; same suffix, so writers
    that pick a format from the extension still do)."""
    final = Path(final)
    return final.with_name(f".{final.name}{TEMP_MARK}{os.getpid()}{final.suffix}")


def _remove(path: Path) -> None:
    """Best effort: a cleanup must not hide the error that caused it."""
    with contextlib.suppress(OSError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def _temp_pid(name: str) -> int | None:
    """The pid in a `temp_path` name (`.<name>.tmp-<pid><suffix>`), None for any other name."""
    base, mark, rest = name.rpartition(TEMP_MARK)
    digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
    if not (mark and base.startswith(".") and digits and rest[len(digits):] == Path(base[1:]).suffix):
        return None
    return int(digits)


_swept: set[Path] = set()


def remove_stale_temporaries(folder: Path, force: bool = False) -> list[Path]:
    """Remove the temporaries in `folder` left by processes that no longer run (killed, power loss); those of a
    process still running (another emovid writing to the same folder) are kept. Each folder is swept once per
    process unless `force`."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _swept and not force:
        return []
    _swept.add(key)
    removed = []
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            pid = _temp_pid(path.name)
            if pid is not None and pid != os.getpid() and not _alive(pid):
                _remove(path)
                removed.append(path)
    return removed


def output_error(final: Path, exc: OSError) -> OutputError:
    """The one-line OutputError for an OS error while writing `final`."""
    return OutputError(f"{final}: cannot write ({_reason(exc)})")


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `final`, on any exception (KeyboardInterrupt too)
    it is removed and the exception propagates. A `final` that cannot be replaced raises OutputError."""
    final = Path(final)
    temp = temp_path(final)
    remove_stale_temporaries(final.parent)  # leftovers of killed runs
    _remove(temp)  # a leftover of an earlier process with the same pid
    try:
        yield temp
        if not temp.is_file():
            raise OutputError(f"{final}: nothing was written")
        try:
            os.replace(temp, final)
        except OSError as exc:
            raise output_error(final, exc) from None
    except OutputError as exc:
        _remove(temp)
        if str(temp) in str(exc):  # a writer that names the file it writes: name the output instead
            raise OutputError(str(exc).replace(str(temp), str(final))) from None
        raise
    except BaseException:
        _remove(temp)
        raise


def write_atomic(final: Path, data: bytes | str) -> Path:
    """Write bytes (or UTF-8 text, newlines kept as given) to `final` atomically; OutputError on OS errors."""
    with atomic_output(final) as temp:
        _write(temp, final, data)
    return Path(final)


def _write(temp: Path, final: Path, data: bytes | str) -> None:
    try:
        with open(temp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as exc:
        raise output_error(final, exc) from None


def write_staged(stack: contextlib.ExitStack, final: Path, data: bytes | str) -> Path:
    """Write `data` to a temporary of `final` now; it replaces `final` when `stack` closes without an exception
    and is removed otherwise. So the outputs of one video are renamed together, once all of them are written."""
    _write(stack.enter_context(atomic_output(final)), Path(final), data)
    return Path(final)


@contextlib.contextmanager
def atomic_text(final: Path) -> Iterator:
    """An open text file (UTF-8, '\\n' newlines) whose content replaces `final` atomically when the block ends."""
    with atomic_output(final) as temp:
        try:
            handle = open(temp, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by the with below)
        except OSError as exc:
            raise output_error(final, exc) from None
        try:
            yield handle
        except BaseException:
            with contextlib.suppress(OSError):
                handle.close()
            raise
        try:
            handle.close()  # flushes: a full disk shows here
        except OSError as exc:
            raise output_error(final, exc) from None
