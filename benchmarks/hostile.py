"""Run emovid on a corpus of hostile inputs, each as a whole process, and print a table: case, exit code (and the one
expected), the files left in the output folder, wall time and the process's peak memory (ru_maxrss).

    python -m benchmarks.hostile [--work DIR] [--big] [--keep]

The corpus is generated (tests/media.py): a cut file, a header claiming 1e9 s, a frame at 1e6 s, names that look
like URLs, a 250-byte name, formula and terminal-escape names, a model returning NaN, options without bounds, an
8192x8192 clip, a user's own output file, same-named videos, SIGTERM mid-run and a failed --csv rerun. `--big` also
runs the 8192x8192 clip with the frame-size limit raised (about 2 GB). Uses the shipped models (the NaN case a tiny
generated one); the default device (CPU here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ROOT, test_helper


@dataclass
class Case:
    name: str
    args: list[str]
    expect: int
    out: Path
    cwd: Path | None = None
    signal_after_s: float | None = None  # send SIGTERM this long after the start
    before: object = None  # a callable run just before the process (set-up that depends on an earlier case)
    check: object = None  # a callable returning "" when the outcome is right, else what is wrong


def emovid(*args) -> list[str]:
    return [sys.executable, "-m", "emovid", *map(str, args)]


def run(case: Case, env: dict[str, str]) -> dict:
    if case.before is not None:
        case.before()
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(case.args, stdout=subprocess.DEVNULL, stderr=err, cwd=case.cwd, env=env)
        if case.signal_after_s is not None:
            time.sleep(case.signal_after_s)
            os.kill(proc.pid, signal.SIGTERM)  # not send_signal: it reaps a child that already ended
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    files = sorted(p.name for p in case.out.iterdir()) if case.out.is_dir() else []
    temporaries = [f for f in files if f.startswith(".") and ".tmp-" in f]
    problems = []
    if proc.returncode != case.expect:
        problems.append(f"exit {proc.returncode}, expected {case.expect}")
    if temporaries:
        problems.append(f"temporaries left: {temporaries}")
    if "Traceback" in stderr:
        problems.append("traceback")
    if "\x1b" in stderr:
        problems.append("raw escape on stderr")
    if case.check is not None:
        problems.append(case.check() or "")
    last = next((line for line in reversed(stderr.splitlines()) if line.startswith(("failed:", "error:",
                                                                                      "terminated"))), "")
    return {"case": case.name, "exit": proc.returncode, "expect": case.expect, "files": len(files),
            "time_s": elapsed, "peak_mb": usage.ru_maxrss / 1024, "ok": not any(problems),
            "note": "; ".join(p for p in problems if p) or last[:90]}


def make_corpus(work: Path) -> None:
    """The hostile files, in `work`/src (run in a child process, so the parent that measures stays small: a
    child's ru_maxrss starts from its parent's size at the fork)."""
    import numpy as np

    media = test_helper("media")
    src = work / "src"
    src.mkdir(parents=True)
    good = media.make_face_video(src / "good.mp4", duration_s=2.0, faststart=True).path
    cut = src / "cut.mp4"
    cut.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    media.write_lying_mkv(src / "lying.mkv", n_frames=50, claimed_s=1e9)
    image = media.face_image((160, 120), [(60, 30, 100, 80)])
    media.write_frames(src / "gap.mkv", [image] * 3, timestamps_s=[0.0, 0.04, 1e6],
                             container_format="matroska")
    names = src / "names"
    names.mkdir()
    for name in ("http:x.mp4", "concat:b.mp4|a.mp4", "=1+2.mp4", "\x1b]0;owned\x07\x1b[31mred.mp4",
                 "x" * 246 + ".mp4"):
        shutil.copy(good, names / name)
    for name in ("a.mp4", "b.mp4"):
        media.make_face_video(names / name, duration_s=3.0, faces=[])
    (names / "two\nlines.mp4").write_bytes(b"not a video" * 100)
    huge = src / "huge.mp4"
    media.write_frames(huge, [np.zeros((8192, 8192, 3), np.uint8)] * 2, fps=25)
    test_helper("onnx_models").nan_on_faces_model(src / "nan.onnx")
    own = src / "own"
    own.mkdir()
    shutil.copy(good, own / "talk.mp4")
    (own / "talk.annotated.mp4").write_bytes(b"the user's own video")
    twins = [src / "one" / "talk.mp4", src / "two" / "talk.mp4"]
    for twin, seconds in zip(twins, (1.0, 2.0), strict=True):
        twin.parent.mkdir()
        media.make_face_video(twin, duration_s=seconds)
    media.make_face_video(src / "long.mp4", duration_s=60.0)  # still running when SIGTERM comes


def corpus(work: Path, big: bool) -> list[Case]:
    src, names, own = work / "src", work / "src" / "names", work / "src" / "own"
    good, cut, lying, gap, huge = (src / n for n in ("good.mp4", "cut.mp4", "lying.mkv", "gap.mkv", "huge.mp4"))
    nan_model, long = src / "nan.onnx", src / "long.mp4"
    twins = [src / "one" / "talk.mp4", src / "two" / "talk.mp4"]

    def out(name: str) -> Path:
        return work / "out" / name

    combined = out("csv") / "all.csv"

    cases = [
        Case("good clip (baseline)", emovid("timeline", good, "--out", out("good")), 0, out("good")),
        Case("cut after a moov-first header", emovid("timeline", cut, "--out", out("cut")), 1, out("cut")),
        Case("header claims 1e9 s (mkv)", emovid("timeline", lying, "--out", out("lying")), 1, out("lying")),
        Case("one frame at t = 1e6 s", emovid("timeline", gap, "--out", out("gap")), 0, out("gap")),
        Case("http:x.mp4 (annotate)", emovid("annotate", "http:x.mp4", "--out", out("http")), 0, out("http"),
             cwd=names),
        Case("concat:b.mp4|a.mp4", emovid("timeline", "concat:b.mp4|a.mp4", "--out", out("concat")), 0,
             out("concat"), cwd=names,
             check=lambda: "" if (out("concat") / "concat:b.mp4|a.timeline.csv").read_text().count("\n") == 3
             else "read other files"),
        Case("250-byte name + a good one", emovid("timeline", names / ("x" * 246 + ".mp4"), good, "--out",
                                                  out("long")), 1, out("long")),
        Case("=1+2.mp4, escapes, newline", emovid("timeline", names / "=1+2.mp4",
                                                  names / "\x1b]0;owned\x07\x1b[31mred.mp4",
                                                  names / "two\nlines.mp4", "--out", out("names")), 1, out("names"),
             check=lambda: "" if "'=1+2.mp4" in (out("names") / "=1+2.timeline.csv").read_text()
             else "formula cell"),
        Case("model returns NaN for faces", emovid("timeline", good, "--model", nan_model, "--out", out("nan")), 1,
             out("nan")),
        Case("--threads 100000", emovid("timeline", good, "--threads", "100000", "--out", out("threads")), 2,
             out("threads")),
        Case("--scan-every nan", emovid("timeline", good, "--scan-every", "nan", "--out", out("nanopt")), 2,
             out("nanopt")),
        Case("--sample-fps 1e308", emovid("timeline", good, "--sample-fps", "1e308", "--out", out("big-opt")), 2,
             out("big-opt")),
        Case("8192x8192 clip (default limit)", emovid("timeline", huge, "--out", out("huge")), 1, out("huge")),
        Case("user's own talk.annotated.mp4", emovid("annotate", own / "talk.mp4"), 1, own,
             check=lambda: "" if (own / "talk.annotated.mp4").read_bytes() == b"the user's own video"
             else "replaced the user's file"),
        Case("same-named videos, one --out (1st)", emovid("timeline", twins[0], "--out", out("twins")), 0,
             out("twins")),
        Case("same-named videos, one --out (2nd)", emovid("timeline", twins[1], "--out", out("twins")), 0,
             out("twins"), check=lambda: "" if (out("twins") / "talk.timeline.csv").read_text().count("\n") == 3
             else "first video's rows kept"),
        Case("SIGTERM mid-video", emovid("annotate", long, "--out", out("term")), 143, out("term"),
             signal_after_s=1.5),
        Case("--csv (first run)", emovid("timeline", good, "--csv", combined), 0, out("csv"),
             before=lambda: out("csv").mkdir(parents=True, exist_ok=True)),
        Case("--csv rerun with a failure", emovid("timeline", cut, good, "--csv", combined), 1, out("csv"),
             check=lambda: "" if combined.read_text().count("\n") == 3 else "CSV replaced"),
    ]
    if big:
        cases.append(Case("8192x8192 clip, --max-megapixels 100", emovid("timeline", huge, "--max-megapixels", "100",
                                                                         "--out", out("huge-raised")), 0,
                          out("huge-raised")))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the corpus and outputs (default: a temporary one)")
    parser.add_argument("--big", action="store_true", help="also run the 8192x8192 clip with the limit raised")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--make-corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_corpus is not None:
        make_corpus(args.make_corpus)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="emovid-hostile-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    try:
        subprocess.run([sys.executable, "-m", "benchmarks.hostile", "--make-corpus", str(work)], check=True, cwd=ROOT)
        rows = []
        for case in corpus(work, args.big):
            rows.append(run(case, env))
            print(f"{case.name}: exit {rows[-1]['exit']}", file=sys.stderr)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("| case | exit (expected) | files in output folder | time (s) | peak memory (MB) | ok | note |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        note = r["note"].replace("|", "\\|").encode("unicode_escape").decode("ascii")
        case = r["case"].replace("|", "\\|")
        print(f"| {case} | {r['exit']} ({r['expect']}) | {r['files']} | {r['time_s']:.2f} | {r['peak_mb']:.0f} | "
              f"{'yes' if r['ok'] else 'NO'} | {note} |")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
