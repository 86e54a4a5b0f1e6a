"""Two emovid option sets compared as whole processes, run in turn (A, B, A, B, ...) so that this VM's drift in
speed (±25 % within an hour) falls on both alike: the comparison to trust when two paths differ by less than that.

    python benchmarks/ab.py --a="--full-scan-every 0" --b="" [--runs 7] [--seconds 10] [--command timeline annotate]

    # two versions of the code, same options: a checkout of the old commit as side A
    git worktree add /tmp/emovid-old <commit>
    python benchmarks/ab.py --a-source /tmp/emovid-old --command annotate --runs 16

Prints, per command, the median wall time, fps and CPU seconds of each side over --runs alternating pairs, the
B/A speed ratio, and in how many of the pairs B was the faster. Clips as run_all.py builds them (640x360, 1 face).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_inputs  # noqa: E402
import run_all  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="", help="options of side A (one string; empty: the defaults)")
    parser.add_argument("--b", default="", help="options of side B (one string; empty: the defaults)")
    parser.add_argument("--runs", type=int, default=7, help="alternating pairs per command")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (640x360, one face)")
    parser.add_argument("--command", nargs="+", default=["timeline", "annotate"], choices=["timeline", "annotate"])
    parser.add_argument("--a-source", type=Path, help="a checkout whose emovid package side A runs instead of the "
                        "installed one (put first on PYTHONPATH; same virtual environment)")
    parser.add_argument("--b-source", type=Path, help="the same for side B")
    parser.add_argument("--model", default="best", help="emotion model (default: best, the default path)")
    parser.add_argument("--cache", type=Path, default=bench_inputs.DEFAULT_CACHE)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    spec = bench_inputs.ClipSpec(run_all.SMALL, 1, args.seconds)
    clip, n = bench_inputs.clip(spec, args.cache), spec.frame_count
    sides = {"A": tuple(shlex.split(args.a)), "B": tuple(shlex.split(args.b))}
    envs, names = {}, {}
    for side, source in (("A", args.a_source), ("B", args.b_source)):
        names[side] = getattr(args, side.lower()) or "(defaults)"
        envs[side] = None
        if source is not None:
            if not (source / "emovid" / "__init__.py").is_file():
                parser.error(f"--{side.lower()}-source {source}: no emovid package there")
            envs[side] = {**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(source.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])}
            names[side] += f" from {source}"
    print(f"{spec.label}, {n} frames, model {args.model}, {args.runs} alternating pairs; CPU: "
          f"{run_all.machine()['CPU']}; load average {os.getloadavg()[0]:.1f}; A = {names['A']}, B = {names['B']}\n")
    print("| command | A: wall s / fps / CPU s | B: wall s / fps / CPU s | B / A speed | pairs where B was faster |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="emovid-ab-") as name:
        for command in args.command:
            runs: dict[str, list] = {"A": [], "B": []}
            for _ in range(args.runs):
                for side, extra in sides.items():
                    measured = run_all.emovid_runs(command, clip, args.model, 1, Path(name) / side, extra,
                                                   env=envs[side])
                    if not measured.ok:
                        print(f"{command} {side}: {measured.error()}", file=sys.stderr)
                        return 1
                    runs[side].append(measured.runs[0])
            wall = {side: statistics.median(r.wall_s for r in rs) for side, rs in runs.items()}
            cpu = {side: statistics.median(r.cpu_s for r in rs) for side, rs in runs.items()}
            b_faster = sum(b.wall_s < a.wall_s for a, b in zip(runs["A"], runs["B"], strict=True))
            cells = [f"{wall[s]:.2f} / {n / wall[s]:.1f} / {cpu[s]:.2f}" for s in ("A", "B")]
            print(f"| {command} | {cells[0]} | {cells[1]} | {wall['A'] / wall['B']:.2f} | {b_faster} of {args.runs} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
