"""Output files: naming (`<stem>.annotated.mp4`, `<stem>.timeline.csv`, ...), the record of what emovid wrote
(`<stem>.emovid.json`), and atomic, all-or-none writes.

- Every output is written to a short hidden temporary name in its folder (`.<name, cut to 64 bytes>.tmp-<pid>-
  <random><suffix>`) that its writer holds an exclusive `flock` on. `Staged` renames a video's temporaries
  together once all are complete: each is fsynced, an output it replaces is kept under a temporary name until
  every rename succeeded, and a failed rename puts back what was there before (all or none); the folder is fsynced
  after the renames. Any exception or signal removes the temporaries.
- Temporaries left by a killed process (SIGKILL, power loss) are removed the next time an output is written to
  their folder: only those whose lock is free, so a writer in another PID namespace or on another host that shares
  the lock (NFS) keeps its files. Where the filesystem has no locks, only temporaries untouched for a day go.
- The record (`<stem>.emovid.json`, committed last, with the outputs) lists each output's size and mtime with the
  identity of the input (path, size, mtime) and the options that shaped it. A video is skipped only when every
  wanted output matches its record for this input and these options; an existing output that the record does not
  list as it is on disk was not written by emovid (or was changed since) and is never replaced without --overwrite.
- OS errors become one-line `OutputError`s naming the final output (never its temporary name).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from emovid.errors import OutputError
from emovid.tables import FORMATS as TABLE_FORMATS

try:
    import fcntl
except ImportError:  # pragma: no cover (not POSIX: no locks; the age threshold alone protects temporaries)
    fcntl = None

SUFFIXES = {
    "video": ".annotated.mp4",
    "csv": ".timeline.csv",
    "png": ".timeline.png",
    "frames": ".frames.csv",
}
MANIFEST_SUFFIX = ".emovid.json"
TEMP_MARK = ".tmp-"
TEMP_NAME_BYTES = 64  # of the output's name kept in its temporary's name, so a temporary is never over NAME_MAX
STALE_AGE_S = 86400.0  # without locks, a temporary untouched this long belongs to no running writer
_TEMP_RE = re.compile(r"^\..*\.tmp-(\d+)(?:-[0-9a-f]{8})?(\.[A-Za-z0-9]{1,16})?$", re.DOTALL)


@dataclass(frozen=True)
class OutputPaths:
    """Where one video's outputs go; None for an output that is not wanted. `manifest` is the record of them."""

    video: Path | None = None
    csv: Path | None = None  # the timeline table, in whichever format
    png: Path | None = None
    frames: Path | None = None
    manifest: Path | None = None

    def paths(self) -> tuple[Path, ...]:
        """The wanted outputs (not the record)."""
        return tuple(p for p in (getattr(self, f.name) for f in fields(self) if f.name != "manifest")
                     if p is not None)

    def complete(self) -> bool:
        """True when every wanted output exists (and at least one is wanted)."""
        paths = self.paths()
        return bool(paths) and all(_is_file(p) for p in paths)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the filesystem: no such output
        return False


def output_paths(video_path: Path, out_dir: Path | None = None, *, video: bool = False, csv: bool = True,
                 png: bool = True, frames: bool = False, table_format: str = "csv") -> OutputPaths:
    """Outputs named after the input's stem, in `out_dir` (None: beside the input); the timeline and per-frame
    tables end in `.<table_format>`."""
    video_path = Path(video_path)
    folder = Path(out_dir) if out_dir is not None else video_path.parent
    stem = video_path.stem

    def path(kind: str, wanted: bool) -> Path | None:
        suffix = SUFFIXES[kind]
        if kind in ("csv", "frames"):
            suffix = suffix.removesuffix(".csv") + "." + table_format
        return folder / f"{stem}{suffix}" if wanted else None

    wanted = video or csv or png or frames
    return OutputPaths(video=path("video", video), csv=path("csv", csv), png=path("png", png),
                       frames=path("frames", frames), manifest=folder / f"{stem}{MANIFEST_SUFFIX}" if wanted else None)


def is_output_name(name: str) -> bool:
    """True for names emovid writes (so a folder scan does not take an annotated video for an input)."""
    tables = tuple(f"{kind}.{fmt}" for kind in (".timeline", ".frames") for fmt in TABLE_FORMATS)
    return (name.startswith(".") and TEMP_MARK in name or name.endswith(MANIFEST_SUFFIX)
            or any(name.endswith(s) for s in (*SUFFIXES.values(), *tables)))


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def prepare_dir(folder: Path) -> Path:
    """Create `folder` if needed and check that files can be created in it; OutputError (one line) otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = _mkstemp(folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write to the output folder ({_reason(exc)})") from None
    return folder


def check_names(paths: OutputPaths) -> None:
    """OutputError for an output (or record) name longer than its folder allows, before any work is done."""
    for path in (*paths.paths(), paths.manifest):
        if path is None:
            continue
        try:
            limit = os.pathconf(path.parent, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            limit = 255
        if len(os.fsencode(path.name)) > limit:
            raise OutputError(f"{path}: cannot write (File name too long: {len(os.fsencode(path.name))} bytes, the "
                              f"folder allows {limit})")


def _mkstemp(folder: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=".emovid-write-test-", dir=folder)


def _short(name: str, limit: int = TEMP_NAME_BYTES) -> str:
    """`name` cut to at most `limit` UTF-8 bytes (never inside a character)."""
    return name.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


def temp_path(final: Path) -> Path:
    """`.<name cut to 64 bytes>.tmp-<pid>-<8 hex><suffix>` beside `final` (same folder, so os.replace is atomic;
    same suffix, so writers that pick a format from the extension still do; short, so a name that fits fits)."""
    final = Path(final)
    suffix = final.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,16}", final.suffix) else ""
    return final.with_name(f".{_short(final.name)}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _remove(path: Path) -> None:
    """Best effort: a cleanup must not hide the error that caused it."""
    with contextlib.suppress(OSError):
        path.unlink()


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _try_lock(fd: int) -> bool | None:
    """True: locked; False: another open file holds the lock; None: this filesystem has no locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _create_locked(temp: Path, final: Path) -> int:
    """Create `temp` and hold its lock (the returned descriptor) until it is renamed or removed. A sweep that took
    the file between its creation and the lock removed it: then it is created again."""
    for _ in range(5):
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise output_error(final, exc) from None
        locked = _try_lock(fd)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(temp))
        except OSError:
            same = False
        if same or locked is None:
            return fd
        _close(fd)
    raise OutputError(f"{final}: cannot write (its temporary file keeps being removed)")


def _temp_pid(name: str) -> int | None:
    """The pid in a `temp_path` name, None for any other name."""
    match = _TEMP_RE.match(name)
    return int(match.group(1)) if match else None


def _stale(path: Path) -> bool:
    """True when no running writer holds `path` (its lock is free, or without locks it is a day old); the file is
    removed while its lock is held, so a writer that locks it afterwards sees that it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        locked = _try_lock(fd)
        if locked is False:
            return False
        if locked is None and time.time() - os.fstat(fd).st_mtime < STALE_AGE_S:
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        _close(fd)


_swept: set[Path] = set()


def remove_stale_temporaries(folder: Path, force: bool = False) -> list[Path]:
    """Remove the temporaries in `folder` that no running writer holds (left by a killed process or a power loss);
    those being written (by any process, in any PID namespace, on any host sharing the lock) are kept. Each folder
    is swept once per process unless `force`."""
    folder = Path(folder)
    try:
        key = folder.resolve()
    except OSError:
        return []
    if key in _swept and not force:
        return []
    _swept.add(key)
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if _temp_pid(entry.name) is not None and entry.is_file(follow_symlinks=False) and _stale(Path(entry.path)):
                removed.append(Path(entry.path))
    return removed


def output_error(final: Path, exc: OSError) -> OutputError:
    """The one-line OutputError for an OS error while writing `final`."""
    return OutputError(f"{final}: cannot write ({_reason(exc)})")


def _fsync_file(path: Path, final: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise output_error(final, exc) from None
    try:
        os.fsync(fd)
    except OSError as exc:
        raise output_error(final, exc) from None
    finally:
        _close(fd)


def _fsync_dir(folder: Path) -> None:
    """Makes the renames durable; some filesystems cannot sync a folder (they need not)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            _close(fd)


class Staged:
    """One video's outputs, each written to its own locked temporary and renamed together by `commit()`, all or
    none. Leaving the `with` block without a commit (an exception, Ctrl-C, a signal) removes the temporaries.

        with Staged() as staged:
            write(staged.temp(paths.csv)); ...
            staged.commit()
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path, int]] = []  # (temporary, final, lock descriptor)

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        names = [(str(temp), str(final)) for temp, final, _ in self._staged]
        self.discard()
        if isinstance(exc, OutputError):  # a writer that names the file it writes: name the output instead
            text = str(exc)
            for temp, final in names:
                text = text.replace(temp, final)
            if text != str(exc):
                raise OutputError(text) from None

    def temp(self, final: Path) -> Path:
        """A new temporary for `final` (created empty, locked); renamed onto `final` by commit()."""
        final = Path(final)
        remove_stale_temporaries(final.parent)
        temp = temp_path(final)
        fd = _create_locked(temp, final)
        self._staged.append((temp, final, fd))
        return temp

    def write(self, final: Path, data: bytes | str) -> Path:
        _write(self.temp(final), Path(final), data)
        return Path(final)

    @contextlib.contextmanager
    def text(self, final: Path) -> Iterator:
        """An open text file (UTF-8, '\\n' newlines) staged for `final`, closed at the end of the block."""
        final = Path(final)
        temp = self.temp(final)
        try:
            handle = open(temp, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
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

    def stat(self, final: Path) -> os.stat_result:
        """The staged temporary of `final`, as its output will be once renamed (renames keep size and mtime)."""
        for temp, staged_final, _ in self._staged:
            if staged_final == Path(final):
                try:
                    return os.stat(temp)
                except OSError as exc:
                    raise output_error(final, exc) from None
        raise KeyError(final)

    def commit(self) -> None:
        """fsync every temporary, then rename each onto its output; when one rename fails, the outputs already
        renamed get their earlier content back (or are removed) and OutputError names the one that failed."""
        staged = self._staged
        for temp, final, _ in staged:
            try:
                empty = os.stat(temp).st_size == 0
            except OSError:
                empty = True
            if empty:
                raise OutputError(f"{final}: nothing was written")
            _fsync_file(temp, final)
        backups: list[tuple[Path, Path | None, int | None]] = []  # (final, its earlier content, that one's lock)
        try:
            for temp, final, _ in staged:
                backup, backup_fd = _keep(final)
                backups.append((final, backup, backup_fd))
                try:
                    os.replace(temp, final)
                except OSError as exc:
                    backups.pop()
                    _release(backup, backup_fd)
                    raise output_error(final, exc) from None
        except BaseException:
            for final, backup, backup_fd in reversed(backups):
                if backup is not None:
                    with contextlib.suppress(OSError):
                        os.replace(backup, final)
                else:
                    _remove(final)
                _release(backup, backup_fd)
            raise
        for _, backup, backup_fd in backups:
            _release(backup, backup_fd)
        for folder in {final.parent for _, final, _ in staged}:
            _fsync_dir(folder)
        for _, _, fd in staged:
            _close(fd)
        self._staged = []

    def discard(self) -> None:
        for temp, _, fd in self._staged:
            _remove(temp)
            _close(fd)
        self._staged = []


def _keep(final: Path) -> tuple[Path | None, int | None]:
    """A locked second name for the file at `final` (a hard link), so a failed commit can put it back; (None, None)
    when there is nothing there. OutputError when `final` is not a regular file (a folder cannot be replaced)."""
    try:
        fd = os.open(final, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if os.path.lexists(final) and not os.path.isfile(final):
            raise OutputError(f"{final}: cannot write (not a regular file: {_reason(exc)})") from None
        raise output_error(final, exc) from None
    import stat

    if not stat.S_ISREG(os.fstat(fd).st_mode):
        _close(fd)
        raise OutputError(f"{final}: cannot write (Is a directory)" if final.is_dir()
                          else f"{final}: cannot write (not a regular file)")
    _try_lock(fd)
    backup = temp_path(final)
    try:
        os.link(final, backup)
    except OSError:  # no hard links here: a failed commit cannot restore this one
        _close(fd)
        return None, None
    return backup, fd


def _release(backup: Path | None, fd: int | None) -> None:
    if backup is not None:
        _remove(backup)
    _close(fd)


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `final`, on any exception (KeyboardInterrupt too)
    it is removed and the exception propagates. A `final` that cannot be replaced raises OutputError."""
    final = Path(final)
    with Staged() as staged:
        yield staged.temp(final)
        staged.commit()


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


@contextlib.contextmanager
def atomic_text(final: Path) -> Iterator:
    """An open text file (UTF-8, '\\n' newlines) whose content replaces `final` atomically when the block ends."""
    with Staged() as staged:
        with staged.text(final) as handle:
            yield handle
        staged.commit()


# --- the record of what emovid wrote ------------------------------------------------------------------------------


def input_identity(path: Path) -> dict:
    """What identifies an input: its absolute path, size and modification time (OutputError-free: an input that
    cannot be stat'ed fails when it is opened)."""
    path = Path(path)
    absolute = os.path.abspath(path)
    try:
        st = os.stat(path)
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime_ns = -1, -1
    return {"path": absolute, "size": size, "mtime_ns": mtime_ns}


ID_SAMPLE_BYTES = 1 << 20


def input_id(path: Path) -> str:
    """A short id of an input's content (the CSV's `input_id` column): a hash of its size and of its first and last
    MiB, so same-named videos from different folders get different ids while a copy of a file, wherever it lies,
    gets the same one (the CSV stays byte-identical). The path's hash when the file cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest.update(str(size).encode() + b"\0" + handle.read(ID_SAMPLE_BYTES))
            if size > ID_SAMPLE_BYTES:
                handle.seek(max(ID_SAMPLE_BYTES, size - ID_SAMPLE_BYTES))
                digest.update(handle.read(ID_SAMPLE_BYTES))
    except OSError:
        digest = hashlib.sha256(b"path\0" + os.fsencode(os.path.abspath(path)))
    return digest.hexdigest()[:12]


def read_manifest(path: Path | None) -> dict | None:
    """The record at `path`: {"outputs": {name: entry}}; None when there is none, or it is not emovid's."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(1 << 20))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "emovid" or not isinstance(data.get("outputs"), dict):
        return None
    return data


def _matches_disk(path: Path, entry) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns


def matching_outputs(paths: OutputPaths, identity: dict, shaping: dict) -> bool:
    """True when every wanted output is on disk as the record lists it, from this input and these options."""
    wanted = paths.paths()
    record = read_manifest(paths.manifest)
    if not wanted or record is None:
        return False
    for path in wanted:
        entry = record["outputs"].get(path.name)
        if not (_matches_disk(path, entry) and entry.get("input") == identity and entry.get("options") == shaping):
            return False
    return True


def foreign_outputs(paths: OutputPaths) -> list[Path]:
    """The wanted outputs that exist but that the record does not list as they are on disk: not written by emovid,
    or changed since (never replaced without --overwrite). A record file that is not emovid's counts too."""
    record = read_manifest(paths.manifest)
    foreign = []
    if record is None and paths.manifest is not None and os.path.lexists(paths.manifest):
        foreign.append(paths.manifest)
    entries = record["outputs"] if record is not None else {}
    for path in paths.paths():
        if os.path.lexists(path) and not _matches_disk(path, entries.get(path.name)):
            foreign.append(path)
    return foreign


def manifest_text(paths: OutputPaths, staged: Staged, identity: dict, shaping: dict) -> str:
    """The new record: the staged outputs (size and mtime as they will be once renamed) with this input and these
    options, plus the entries of the earlier record whose outputs are still on disk as listed and not replaced."""
    record = read_manifest(paths.manifest)
    outputs = {}
    if record is not None:
        for name, entry in record["outputs"].items():
            if isinstance(name, str) and "/" not in name and _matches_disk(paths.manifest.parent / name, entry):
                outputs[name] = entry
    for path in paths.paths():
        st = staged.stat(path)
        outputs[path.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "input": identity,
                              "options": shaping}
    data = {"written_by": "emovid", "outputs": dict(sorted(outputs.items()))}
    return json.dumps(data, indent=1, ensure_ascii=True) + "\n"
