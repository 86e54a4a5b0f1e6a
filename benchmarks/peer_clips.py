"""The peer (`fer`, Haar mode) on the labelled clips of the development set (see docs/devset.md).

    python -m benchmarks.peer_clips ../devset/labels.csv [--fer-python FER_VENV/bin/python] \
        [--out ../devset/fer_results.json] [--stride 1]

Runs one `fer` process (in its own venv, as run_all.py's peer; never a dependency of emovid) over every clip
in labels.csv, within start_s..end_s when given: `FER(mtcnn=False).detect_emotions(frame)` on every `--stride`-th
decoded frame, keeps the largest face of each frame, and averages its 7 probabilities over the clip (frames without
a face add nothing). Writes {clip key: {"probs": [7 floats], "frames": n, "frames_with_face": m}} to --out, with the
probabilities in emovid's order (angry, disgust, fear, happy, sad, surprise, neutral; fer's own order, checked by
name). Then prints clip-level accuracy (argmax of the mean probabilities vs the label) per split, data set and
class; a clip with no face counts as wrong. `--report-only` re-prints the accuracy from an existing --out.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ensure_peer_venv

WORKER = r'''
import csv, json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cv2
from fer import FER
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
labels, root, out, stride = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
detector = FER(mtcnn=False)
results = {}
with open(labels, newline="") as fh:
    rows = list(csv.DictReader(fh))
for i, row in enumerate(rows):
    capture = cv2.VideoCapture(os.path.join(root, row["file"]))
    start = float(row["start_s"]) if row.get("start_s") else None
    end = float(row["end_s"]) if row.get("end_s") else None
    if start:
        capture.set(cv2.CAP_PROP_POS_MSEC, start * 1000.0)
    sums, frames, with_face, index = [0.0] * 7, 0, 0, -1
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        t = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if end is not None and t > end:
            break
        index += 1
        if index % stride:
            continue
        frames += 1
        faces = detector.detect_emotions(frame)
        if not faces:
            continue
        best = max(faces, key=lambda f: f["box"][2] * f["box"][3])
        with_face += 1
        for k, name in enumerate(EMOTIONS):
            sums[k] += float(best["emotions"][name])
    capture.release()
    probs = [s / with_face for s in sums] if with_face else [0.0] * 7
    key = row["file"]
    if start is not None or end is not None:  # emovid.video_eval's clip key: file@start-end
        key += "@" + ("" if start is None else f"{start:g}") + "-" + ("" if end is None else f"{end:g}")
    results[key] = {"probs": probs, "frames": frames, "frames_with_face": with_face}
    print(f"[{i + 1}/{len(rows)}] {row['file']}: {with_face}/{frames} frames with a face", file=sys.stderr, flush=True)
with open(out, "w") as fh:
    json.dump(results, fh, indent=1, sort_keys=True)
'''


def run_fer(labels: Path, fer_python: Path, out: Path, stride: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "fer_clips_worker.py"
        script.write_text(WORKER)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        subprocess.run([str(fer_python), str(script), str(labels), str(labels.parent), str(out), str(stride)],
                       check=True, env=env)


def report(labels: Path, results: Path) -> None:
    """Clip accuracy of the peer per split, by data set and by class (emovid.video_eval's scoring)."""
    from emovid import EMOTIONS
    from emovid.video_eval import read_labels, read_peer, score_clips

    probs = read_peer(results)
    for split in sorted({clip.extra.get("split", "") for clip in read_labels(labels)}):
        score = score_clips("fer", read_labels(labels, {"split": split}), probs, "dataset")
        print(f"[{split}] fer (Haar) clip accuracy: {score.correct}/{score.n_clips} = {score.accuracy:.1%}   "
              f"(clips with no face: {score.no_face})")
        for dataset, (correct, n) in score.groups.items():
            print(f"    dataset={dataset:10s} {correct}/{n}")
        for i, emotion in enumerate(EMOTIONS):
            if emotion in score.truths:
                print(f"    class={emotion:12s} {score.confusion[i, i]}/{score.truths.count(emotion)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peer_clips", description=__doc__.splitlines()[0])
    ap.add_argument("labels", type=Path)
    ap.add_argument("--fer-python", type=Path, default=None,
                    help="python of a fer venv (default: the one run_all.py uses, created when missing)")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default: next to labels.csv)")
    ap.add_argument("--stride", type=int, default=1, help="analyse every n-th frame")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    labels = args.labels.resolve()
    out = args.out or labels.parent / "fer_results.json"
    if not args.report_only:
        fer_python = args.fer_python
        if fer_python is None:
            peer = ensure_peer_venv()
            if peer.python is None:
                raise SystemExit(f"error: {peer.reason}")
            fer_python = peer.python
        run_fer(labels, fer_python, out, max(1, args.stride))
    report(labels, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
