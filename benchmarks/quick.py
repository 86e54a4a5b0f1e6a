"""A few minutes' subset of run_all.py, for a machine that is quiet only briefly: on the 640x360 one-face clip
(10 s, or --seconds), the decode and decode+encode floor, whole-process `emovid timeline` / `annotate` fps for
the default and the other paths, and the `fer` peer (when its venv exists). Prints a markdown table; writes
nothing else.

    python benchmarks/quick.py [--runs 3] [--model best] [--no-peer] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_inputs  # noqa: E402
import levers  # noqa: E402
import peer  # noqa: E402
import run_all  # noqa: E402

FLOAT = ("--model", "scratch", "--detector", "centerface")  # the default path without the int8 models
EXACT = ("--every", "1", "--scan-every", "0", "--classify-every", "1")  # the whole frame and every face, every frame
BEFORE = ("--full-scan-every", "0")  # the previous default: every whole-frame scan at full size
PATHS = {  # command -> extra options measured beside the default
    "timeline": [(), FLOAT, EXACT, BEFORE, ("--every", "3", "--detect-size", "320"),
                 ("--sample-fps", "10", "--every", "2")],
    "annotate": [(), FLOAT, EXACT, BEFORE, ("--every", "3", "--detect-size", "320")],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="whole-process runs per measurement (median)")
    parser.add_argument("--model", default="best",
                        help="emotion model: best (the default path: on this CPU the int8 copy of the most accurate "
                             "shipped model), a shipped name or PATH.onnx; a stand-in when nothing ships")
    parser.add_argument("--cache", type=Path, default=bench_inputs.DEFAULT_CACHE)
    parser.add_argument("--no-peer", action="store_true", help="skip fer")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (10 or 60 are the usual ones)")
    args = parser.parse_args(argv)
    spec = bench_inputs.ClipSpec(run_all.SMALL, 1, args.seconds)
    clip, n = bench_inputs.clip(spec, args.cache), spec.frame_count
    model = args.model if run_all.shipped_models() or Path(args.model).is_file() \
        else bench_inputs.standin_model(args.cache)
    rows = []
    with tempfile.TemporaryDirectory(prefix="emovid-quick-") as name:
        tmp = Path(name)
        decode = levers.timed(lambda: levers.decode_only(clip), args.runs)[0]
        floor = levers.timed(lambda: levers.decode_encode(clip, tmp), args.runs)[0]
        rows.append(["decode only / decode + encode (in-process)", f"{decode.fps(n):.0f} / {floor.fps(n):.0f}", ""])
        for command, variants in PATHS.items():
            for extra in variants:
                measured = run_all.emovid_runs(command, clip, model, args.runs, tmp / "out", extra)
                label = f"emovid {command} {' '.join(extra) or '(default)'}"
                rows.append([label, f"{n / measured.wall_s:.1f}" if measured.ok else measured.error(),
                             f"{measured.cpu_s:.1f} s CPU, {measured.rss_mb:.0f} MB peak RSS"])
        venv = args.cache / "fer-venv" / "bin" / "python"
        if not args.no_peer and venv.is_file():
            script = peer.peer_script(args.cache)
            runs = [run_all.run_process([str(venv), str(script), str(clip), str(tmp / "fer")], cwd=tmp)
                    for _ in range(max(1, min(args.runs, 2)))]
            if all(r.returncode == 0 for r in runs):
                parsed = [peer.parse_peer_output(r.stdout) for r in runs]
                analyse = sorted(p["frames"] / p["analyse_s"] for p in parsed)[len(parsed) // 2]
                whole = sorted(p["frames"] / r.wall_s for p, r in zip(parsed, runs, strict=True))[len(parsed) // 2]
                rows.append(["fer (Haar): analysis only / whole process", f"{analyse:.1f} / {whole:.1f}", ""])
        elif not args.no_peer:
            rows.append(["fer", "skipped: run benchmarks/run_all.py once to build its venv", ""])
    print(f"{spec.label}, {n} frames, model {getattr(model, 'name', model)}, median of {args.runs} run(s); "
          f"load average {run_all.os.getloadavg()[0]:.1f}\n")
    print(run_all.table(["measure", "fps", "cost"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
