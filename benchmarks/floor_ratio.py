"""`emovid annotate` against the decode + encode floor, run in turn round after round on one clip, so that the VM's
drift falls on both alike (run_all.py measures the long clip once; this repeats it).

    python benchmarks/floor_ratio.py [--rounds 4] [--seconds 60] [--size 640x360]

Each round runs the floor in-process (levers.decode_encode: PyAV decode, emovid's VideoSink), the floor as a whole
process (Python and imports included, as run_all.py's), then `emovid annotate` (default path) as a whole process.
Prints every round and the medians: fps of each, and annotate's share of each floor (the target: at least 0.5), as the
ratio of the medians and as the median of each round's ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_inputs  # noqa: E402
import levers  # noqa: E402
import run_all  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0, help="clip length (one face)")
    parser.add_argument("--size", choices=["640x360", "1280x720"], default="640x360")
    parser.add_argument("--cache", type=Path, default=bench_inputs.DEFAULT_CACHE)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    size = run_all.SMALL if args.size == "640x360" else run_all.LARGE
    spec = bench_inputs.ClipSpec(size, 1, args.seconds)
    clip, n = bench_inputs.clip(spec, args.cache), spec.frame_count
    # the CPU kind decides the result (the int8 models gain much more with AVX-512 VNNI), so every run names it
    load = os.getloadavg()[0]
    print(f"{spec.label}, {n} frames, {args.rounds} rounds; CPU: {run_all.machine()['CPU']}; "
          f"load average at start {load:.2f}\n")
    print("| round | floor in-process (fps) | floor, whole process (fps) | annotate, whole process (fps) |")
    print("|---|---|---|---|")
    floor_s, floor_process_s, annotate_s = [], [], []
    with tempfile.TemporaryDirectory(prefix="emovid-floor-") as name:
        tmp = Path(name)
        for round_ in range(1, args.rounds + 1):
            wall, _, _ = levers.time_once(lambda: levers.decode_encode(clip, tmp))
            floor_s.append(wall)
            runs = {"floor process": run_all.run_process(run_all.floor_command_line(clip, tmp)),
                    "annotate": run_all.run_process(run_all.emovid_command_line("annotate", clip, "best", tmp / "out"))}
            for what, run in runs.items():
                if run.returncode != 0:
                    print(f"{what} failed (exit {run.returncode}): {run.stderr.strip()[-300:]}", file=sys.stderr)
                    return 1
            floor_process_s.append(runs["floor process"].wall_s)
            annotate_s.append(runs["annotate"].wall_s)
            print(f"| {round_} | {n / wall:.1f} | {n / floor_process_s[-1]:.1f} | {n / annotate_s[-1]:.1f} |",
                  flush=True)
    floor, floor_process, annotate = (statistics.median(x) for x in (floor_s, floor_process_s, annotate_s))
    print(f"| median | {n / floor:.1f} | {n / floor_process:.1f} | {n / annotate:.1f} |\n")
    for label, floors, whole in (("floor in-process", floor_s, floor), ("floor, both whole processes", floor_process_s,
                                                                         floor_process)):
        rounds = [f / a for f, a in zip(floors, annotate_s, strict=True)]
        # the ratio of the medians, and the median of each round's ratio (a round's runs are minutes apart at most,
        # so the VM's drift cancels within it)
        print(f"annotate / {label}: {whole / annotate:.2f}, median of the rounds {statistics.median(rounds):.2f} "
              f"(per round: {', '.join(f'{r:.2f}' for r in rounds)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
