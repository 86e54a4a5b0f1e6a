"""Batch throughput: one process against `--ray local` with 1 and 2 workers, on the same batch of real-size clips.

    python -m benchmarks.cluster [--videos 8] [--seconds 10] [--command timeline]

Each configuration runs the whole batch as one `emovid` process into a fresh output folder (clips from
benchmarks/common.py: 640x360, one face, 29.97 fps, copied under distinct names). Prints wall time, videos per
minute and frames per second for each, Ray's fixed cost (a one-frame batch on Ray minus the same in one process),
and a projection for K machines from the measured per-worker throughput. Needs the `ray` extra.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ClipSpec, clip


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--command", default="timeline", choices=["timeline", "annotate"])
    args = parser.parse_args()

    spec = ClipSpec((640, 360), 1, args.seconds)
    source = clip(spec)
    emovid = [sys.executable, "-m", "emovid", args.command]
    with tempfile.TemporaryDirectory(prefix="emovid-cluster-") as tmp:
        batch = Path(tmp) / "batch"
        batch.mkdir()
        for i in range(args.videos):
            shutil.copy(source, batch / f"clip{i:02d}.mp4")
        tiny = Path(tmp) / "tiny"
        tiny.mkdir()
        shutil.copy(clip(ClipSpec((640, 360), 1, 0.1)), tiny / "tiny.mp4")
        frames = args.videos * spec.frame_count
        print(f"{args.videos} clips of {spec.label} ({frames} frames); {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f}; command {args.command}")
        configs = [("1 process", []), ("--ray local --workers 1", ["--ray", "local", "--workers", "1"]),
                   ("--ray local --workers 2", ["--ray", "local", "--workers", "2"])]
        rows = []
        for name, extra in configs:
            out = Path(tmp) / f"out-{len(rows)}"
            wall = timed([*emovid, str(batch), "--out", str(out), *extra])
            rows.append((name, wall))
            print(f"  {name}: {wall:.1f} s", flush=True)
        single_tiny = timed([*emovid, str(tiny), "--out", str(Path(tmp) / "tiny-1")])
        ray_tiny = timed([*emovid, str(tiny), "--out", str(Path(tmp) / "tiny-2"), "--ray", "local", "--workers", "1"])

    print("\n| configuration | wall s | videos / min | frames / s |")
    print("|---|---|---|---|")
    for name, wall in rows:
        print(f"| {name} | {wall:.1f} | {60 * args.videos / wall:.1f} | {frames / wall:.0f} |")
    overhead = ray_tiny - single_tiny
    print(f"\nRay's fixed cost (start, workers loading models, shutdown): {overhead:.1f} s "
          f"({ray_tiny:.1f} s on Ray vs {single_tiny:.1f} s in one process for a 3-frame batch)")
    per_worker = 60 * args.videos / max(rows[1][1] - overhead, 1e-6)
    print(f"per-worker throughput without that cost: {per_worker:.1f} videos / min of {args.seconds:g} s clips")
    print("projection (assumes the inputs and outputs on storage every machine reads at this speed, one worker per "
          "2 cores as measured here, and workers that do not slow each other down across machines):")
    for machines in (1, 4, 16, 64):
        print(f"  {machines} machine(s) of 2 cores: about {machines * per_worker:.0f} videos / min, "
              f"{machines * per_worker * args.seconds / 60:.0f} minutes of video per minute")


if __name__ == "__main__":
    main()
