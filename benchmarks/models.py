"""CPU cost of the shipped emotion models: parameters, file size, ms per face at batch 1 and 64.

    python -m benchmarks.models [--models-dir DIR | MODEL.onnx ...] [--repeats 30] [--threads 0]

Prints a markdown table. Times are the median over `--repeats` runs after two warm-up runs, on ONNX Runtime's
CPU provider, with random 48x48 faces; "ms/face @64" is one batch of 64 divided by 64.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import table
from emovid.classify import shipped_models, shipped_models_dir


def median_ms(session, images: np.ndarray, repeats: int) -> float:
    name = session.get_inputs()[0].name
    for _ in range(2):
        session.run(None, {name: images})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {name: images})
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def benchmark(path: Path, repeats: int, threads: int) -> dict[str, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48, 1)).astype(np.float32)
    params = meta.get("emovid.params", "")
    return {
        "model": path.stem,
        "params": f"{int(params) / 1e6:.2f} M" if params.isdigit() else "?",
        "file": f"{path.stat().st_size / 1e6:.1f} MB",
        "ms/face @1": f"{median_ms(session, faces[:1], repeats):.2f}",
        "ms/face @64": f"{median_ms(session, faces, repeats) / 64:.2f}",
        "PublicTest": meta.get("emovid.val_accuracy", "?"),
        "PrivateTest": meta.get("emovid.test_accuracy", "?"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="ONNX files (default: the shipped models)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = its default)")
    args = parser.parse_args(argv)
    paths = list(args.models) or list(shipped_models(args.models_dir).values())
    if not paths:
        print(f"no emotion models in {args.models_dir or shipped_models_dir()}", file=sys.stderr)
        return 1
    import onnxruntime as ort

    rows = [benchmark(p, args.repeats, args.threads) for p in paths]
    print(f"onnxruntime {ort.__version__} CPUExecutionProvider, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, threads={args.threads or 'default'}, median of {args.repeats}\n")
    print(table(list(rows[0]), [list(row.values()) for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
