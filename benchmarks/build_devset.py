"""Rebuild the labelled development set of real acted-emotion clips (see docs/devset.md).

    python -m benchmarks.build_devset --out ../devset MIRRORS/ali-vilab+dreamtalk \
        MIRRORS/jixinya+EAMM [MIRRORS/CheyneyComputerScience+CREMA-D ...]

Each argument is a bare git mirror (as the `fetch` tool leaves them, read at HEAD with `git`, or at another commit
as MIRROR@COMMIT) or a plain folder. Clips are recognised by their data set's file naming (RAVDESS, CREMA-D, MEAD)
plus a short table of known unnamed MEAD clips; git-lfs pointer stubs and files missing from a snapshot are skipped,
and a RAVDESS take is kept once (see `take` in main). Every clip is decoded with PyAV, scaled down to at most
640 px on the longer side, and re-encoded as silent H.264 mp4 (single-threaded x264, so reruns are identical).
Writes OUT/clips/<dataset>/<split>/<name>.mp4 and OUT/labels.csv, and prints the counts.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from emovid import EMOTIONS

COLUMNS = ["file", "emotion", "start_s", "end_s", "dataset", "actor", "split", "source", "licence"]
LICENCES = {
    "RAVDESS": "CC BY-NC-SA 4.0",
    "CREMA-D": "ODbL 1.0 (database) + DbCL 1.0 (contents)",
    "MEAD": "MEAD Terms of Use: non-commercial research only; no redistribution",
}
TEST_ACTORS = {"RAVDESS": {"05"}, "CREMA-D": {"1001"}, "MEAD": {"M030", "W009", "W011"}}
MAX_SIDE = 640

# RAVDESS: 01-01-03-02-01-01-05.mp4, or a padded face crop 01-01-03-02-01-01-05_facecroppad.avi
RAVDESS_RE = re.compile(r"(?:^|/)(0[12])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)(?:\.mp4|_facecroppad\.avi)$")
RAVDESS_EMO = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
               "07": "disgust", "08": "surprise"}
CREMA_RE = re.compile(r"(?:^|/)(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_([A-Z]{2})\.(?:flv|mp4)$")
CREMA_EMO = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
# MEAD: M030_front_angry_level3_001.mp4 (DreamTalk), M030_sad_3_001.mp4 (EAMM), M003_front_angry_level_3_001.mp4
MEAD_RE = re.compile(r"(?:^|/)([MW]\d{3})_(?:front_)?(ang|con|dis|fea|hap|neu|sad|sur)[a-z]*_(?:level_?)?(\d)_(\d{3})"
                     r"\.mp4$")
MEAD_EMO = {"ang": "angry", "dis": "disgust", "fea": "fear", "hap": "happy", "neu": "neutral", "sad": "sad",
            "sur": "surprise", "con": None}
# MEAD clips a repository keeps under an emotion name only; actors identified by eye (unknown ids get a tag).
KNOWN = {
    ("jixinya/EAMM", "test/video/disgusted.mp4"): ("MEAD", "disgust", "unk-m1"),
    ("jixinya/EAMM", "test/video/fear.mp4"): ("MEAD", "fear", "unk-w1"),
    ("jixinya/EAMM", "test/video/happy.mp4"): ("MEAD", "happy", "unk-m2"),
    ("jixinya/EAMM", "test/video/sad.mp4"): ("MEAD", "sad", "M030"),
    ("jixinya/EAMM", "test/video/surprised.mp4"): ("MEAD", "surprise", "unk-w1"),
}


class Source:
    """Files of one mirror: a bare git dir read at HEAD (or at COMMIT, given as PATH@COMMIT), or a plain folder."""

    def __init__(self, spec: str):
        path, at, rev = spec.rpartition("@") if "@" in spec else (spec, "", "HEAD")
        self.path = path = Path(path).resolve()
        self.bare = (path / "HEAD").is_file() and (path / "objects").is_dir()
        if at and not self.bare:
            raise SystemExit(f"{spec}: @COMMIT needs a git mirror")
        owner_repo = path.parent.name if path.name == "repo" else path.name
        self.repo = owner_repo.replace("+", "/", 1)
        self.commit = self._git("rev-parse", f"{rev}^{{commit}}").decode().strip() if self.bare else ""

    def _git(self, *args: str) -> bytes:
        return subprocess.run(["git", f"--git-dir={self.path}", *args], check=True, capture_output=True).stdout

    def files(self) -> list[tuple[str, int]]:
        if not self.bare:
            return sorted((p.relative_to(self.path).as_posix(), p.stat().st_size)
                          for p in self.path.rglob("*") if p.is_file())
        rows = self._git("ls-tree", "-r", "-l", "-z", self.commit).decode().split("\0")
        out = []
        for row in filter(None, rows):
            meta, name = row.split("\t", 1)
            size = meta.split()[3]
            out.append((name, int(size) if size.isdigit() else -1))  # -1: a blob the snapshot lacks
        return sorted(out)

    def read(self, name: str) -> bytes:
        if self.bare:
            return self._git("show", f"{self.commit}:{name}")
        return (self.path / name).read_bytes()

    def cite(self, name: str) -> str:
        return f"github:{self.repo}@{self.commit[:12]}:{name}" if self.bare else str(self.path / name)


def recognise(repo: str, name: str) -> tuple[str, str | None, str, str] | None:
    """(dataset, emotion or None to drop, actor, clip stem) for a clip file, else None."""
    if (repo, name) in KNOWN:
        dataset, emotion, actor = KNOWN[(repo, name)]
        return dataset, emotion, actor, f"{repo.split('/')[1]}_{Path(name).stem}"
    if m := RAVDESS_RE.search(name):
        return "RAVDESS", RAVDESS_EMO[m.group(3)], m.group(7), Path(name).stem
    if m := CREMA_RE.search(name):
        return "CREMA-D", CREMA_EMO[m.group(3)], m.group(1), Path(name).stem
    if m := MEAD_RE.search(name):
        return "MEAD", MEAD_EMO[m.group(2)], m.group(1), Path(name).stem
    return None


def convert(data: bytes, out: Path) -> tuple[int, int, int]:
    """Re-encode a clip as silent H.264 mp4, longer side <= MAX_SIDE. Returns (frames, width, height)."""
    with av.open(io.BytesIO(data)) as src:
        stream = src.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(stream)]
    if not frames:
        raise ValueError("no decodable video frames")
    h, w = frames[0].shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    tw, th = (int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w", format="mp4") as dst:
        enc = dst.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
        enc.width, enc.height, enc.pix_fmt = tw, th, "yuv420p"
        enc.options = {"crf": "18", "preset": "medium", "threads": "1"}
        if tw % 128:  # x264's MB-tree then reads uninitialised memory and reruns differ (seen on 224 px RAVDESS crops)
            enc.options = {**enc.options, "x264-params": "mbtree=0"}
        for img in frames:
            if img.shape[1] != tw or img.shape[0] != th:
                img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
            for packet in enc.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                dst.mux(packet)
        for packet in enc.encode():
            dst.mux(packet)
    return len(frames), tw, th


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.build_devset", description=__doc__.splitlines()[0])
    ap.add_argument("mirrors", nargs="+", help="bare git mirrors (MIRROR@COMMIT: at COMMIT) or plain folders")
    ap.add_argument("--out", type=Path, default=Path("../devset"))
    ap.add_argument("--calm-as-neutral", action="store_true", help="keep RAVDESS 'calm' clips, labelled neutral")
    args = ap.parse_args(argv)

    rows, skipped, seen = [], Counter(), set()
    for spec in args.mirrors:
        src = Source(spec)
        for name, size in src.files():
            hit = recognise(src.repo, name)
            if hit is None:
                continue
            dataset, emotion, actor, stem = hit
            if emotion == "calm" and args.calm_as_neutral:
                emotion = "neutral"
            if emotion not in EMOTIONS:
                skipped[f"{dataset}: label not in the 7 classes"] += 1
                continue
            if size < 0:
                skipped[f"{dataset}: missing from the snapshot"] += 1
                continue
            if size < 1024:  # a git-lfs pointer (or other stub), never a real clip
                skipped[f"{dataset}: git-lfs pointer / stub, no video"] += 1
                continue
            # One clip per take: RAVDESS has each take as audio-video (01-) and video-only (02-), and repositories
            # may add a face crop of it; the first in name order wins (the original before its crop, 01- before 02-).
            take = (dataset, stem[3:20] if dataset == "RAVDESS" else stem)
            if take in seen:
                skipped[f"{dataset}: another file of a take already kept"] += 1
                continue
            data = src.read(name)
            split = "test" if actor in TEST_ACTORS[dataset] else "dev"
            rel = Path("clips") / dataset / split / f"{stem}.mp4"
            try:
                n, w, h = convert(data, args.out / rel)
            except Exception as exc:  # noqa: BLE001 - report and go on
                skipped[f"{dataset}: undecodable ({type(exc).__name__})"] += 1
                continue
            seen.add(take)
            rows.append({"file": rel.as_posix(), "emotion": emotion, "start_s": "", "end_s": "", "dataset": dataset,
                         "actor": actor, "split": split, "source": src.cite(name), "licence": LICENCES[dataset]})
            print(f"  {rel}  {emotion:8s} {n:4d} frames {w}x{h}", file=sys.stderr)

    rows.sort(key=lambda r: r["file"])
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    print(f"{len(rows)} clips -> {args.out / 'labels.csv'}")
    for split in ("dev", "test"):
        sub = [r for r in rows if r["split"] == split]
        print(f"[{split}] {len(sub)} clips; actors: {sorted({(r['dataset'], r['actor']) for r in sub})}")
        for dataset in sorted({r["dataset"] for r in sub}):
            per = Counter(r["emotion"] for r in sub if r["dataset"] == dataset)
            print(f"  {dataset:8s} " + " ".join(f"{e}={per.get(e, 0)}" for e in EMOTIONS))
    for why, n in sorted(skipped.items()):
        print(f"skipped {n}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
