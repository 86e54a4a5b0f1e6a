"""int8 copies of exported emotion models, kept only when they lose less than MAX_DROP of PrivateTest accuracy.

Static QDQ quantisation with onnxruntime.quantization: per-channel int8 weights using 7 of their 8 bits
(`reduce_range`), uint8 activations calibrated (MinMax) on `calibration` Training images chosen with a fixed seed.
Only Conv / MatMul / Gemm are quantised, so the preprocessing in the graph and the final Softmax stay float and the
output stays probabilities. The copy keeps the contract (input float32 [N,48,48,1] 0-255, output [N,7]) and the
source's metadata; its `emovid.test_accuracy` / `emovid.val_accuracy` are measured again on the int8 model, and
`emovid.quantized`, `emovid.float_test_accuracy` record what it was made from. No TensorFlow needed.

Why 7-bit weights: the same int8 model computes differently on different CPUs. With VNNI (AVX-512 VNNI, AVX-VNNI)
the products are summed exactly; with AVX2 alone ONNX Runtime sums pairs of uint8 x int8 products in int16 with
saturation, which full 8-bit weights overflow and 7-bit weights do not (docs/models.md has the measurements). So
every int8 copy is checked both ways (this CPU's kernels, and the graph run without optimisation, i.e. the exact
quantised arithmetic) and the lower accuracy is the one that counts.

    python -m training.quantize emovid/models/scratch.onnx --data fer2013.csv.gz --out emovid/models/scratch-int8.onnx
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import TrainingError
from training.data import FerData, load_fer2013

MAX_DROP = 0.005  # PrivateTest accuracy an int8 model may lose (0.5 point)
OP_TYPES = ("Conv", "MatMul", "Gemm")
CALIBRATION_IMAGES = 512
CALIBRATION_BATCH = 64


@dataclass(frozen=True)
class QuantizeResult:
    path: Path | None  # None: not written (the int8 model lost too much accuracy)
    float_accuracy: dict[str, float]  # split -> accuracy of the source model
    int8_accuracy: dict[str, float]

    @property
    def drop(self) -> float:
        """PrivateTest accuracy lost by the int8 model (negative: it gained)."""
        return self.float_accuracy["PrivateTest"] - self.int8_accuracy["PrivateTest"]


class _Calibration:
    """onnxruntime.quantization CalibrationDataReader over fixed batches."""

    def __init__(self, input_name: str, images: np.ndarray):
        self._batches = [{input_name: np.ascontiguousarray(images[i:i + CALIBRATION_BATCH], np.float32)}
                         for i in range(0, len(images), CALIBRATION_BATCH)]
        self._next = 0

    def get_next(self):
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return self._batches[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def calibration_images(data: FerData, n: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """float32 [n,48,48,1]: `n` Training images drawn with `seed` (never a test image)."""
    train = data.split("Training")
    if len(train) == 0:
        raise TrainingError(f"{data.path}: no Training rows to calibrate the int8 model with")
    pick = np.sort(np.random.default_rng(seed).choice(len(train), size=min(n, len(train)), replace=False))
    return train.images[pick][..., None].astype(np.float32)


def accuracies(model: str | Path | bytes, data: FerData, optimize: bool = True) -> dict[str, float]:
    """{split: accuracy} on PublicTest and PrivateTest (splits without rows are left out); optimize=False: with
    the graph as written (see training.evaluate.open_session)."""
    from training import evaluate

    session = evaluate.open_session(model, optimize=optimize)
    out = {}
    for split in ("PublicTest", "PrivateTest"):
        part = data.split(split)
        if len(part):
            out[split] = float(np.mean(evaluate.predict(session, part.images).argmax(axis=1) == part.labels))
    return out


def int8_accuracies(model: bytes, data: FerData) -> dict[str, float]:
    """The lower of the accuracies with this CPU's int8 kernels and with the exact quantised arithmetic, per split
    (see the module docstring: CPUs without VNNI compute int8 convolutions differently)."""
    kernels, exact = accuracies(model, data), accuracies(model, data, optimize=False)
    return {split: min(kernels[split], exact[split]) for split in kernels}


def quantize_int8(source: str | Path, out: str | Path, data: str | Path | FerData, max_drop: float = MAX_DROP,
                  calibration: int = CALIBRATION_IMAGES, seed: int = 0) -> QuantizeResult:
    """Write an int8 copy of `source` to `out` (atomically) when it loses less than `max_drop` PrivateTest accuracy;
    otherwise write nothing and return the measurements with path None. TrainingError for unusable inputs."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from training import evaluate
    from training.export import _write_atomic

    source, out = Path(source), Path(out)
    evaluate.open_session(source)  # a loadable emotion model, or a one-line TrainingError
    fer = data if isinstance(data, FerData) else load_fer2013(data)
    if len(fer.split("PrivateTest")) == 0:
        raise TrainingError(f"{fer.path}: no PrivateTest rows to check the int8 model on")
    original = onnx.load(str(source))
    input_name = original.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="emovid-int8-") as tmp:
        temp = Path(tmp) / "int8.onnx"
        quantize_static(str(source), str(temp), _Calibration(input_name, calibration_images(fer, calibration, seed)),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=list(OP_TYPES), reduce_range=True)
        model = onnx.load(str(temp))
    float_acc = accuracies(source, fer)
    int8_acc = int8_accuracies(model.SerializeToString(), fer)
    result = QuantizeResult(path=None, float_accuracy=float_acc, int8_accuracy=int8_acc)
    if not result.drop < max_drop:
        return result
    meta = {p.key: p.value for p in original.metadata_props}
    meta.update({
        "emovid.quantized": f"int8 static QDQ, per-channel, 7-bit weights (reduce_range), {'/'.join(OP_TYPES)}, "
                            f"MinMax calibration on {min(calibration, len(fer.split('Training')))} Training images "
                            f"(seed {seed}); test accuracy: the lower of this CPU's int8 kernels and exact "
                            "arithmetic",
        "emovid.float_test_accuracy": meta.get("emovid.test_accuracy", f"{float_acc['PrivateTest']:.4f}"),
        "emovid.test_accuracy": f"{int8_acc['PrivateTest']:.4f}",
        "emovid.val_accuracy": f"{int8_acc['PublicTest']:.4f}" if "PublicTest" in int8_acc else "nan",
    })
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, dict(sorted(meta.items())))
    onnx.checker.check_model(model)
    _write_atomic(model, out)
    return QuantizeResult(path=out, float_accuracy=float_acc, int8_accuracy=int8_acc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.quantize", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported float emotion model (.onnx)")
    parser.add_argument("--data", type=Path, required=True, help="FER2013-format CSV or CSV.gz (Training rows "
                        "calibrate, PrivateTest decides)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the int8 model")
    parser.add_argument("--max-drop", type=float, default=100 * MAX_DROP, help="points of PrivateTest accuracy "
                        "the int8 model may lose (default %(default)s)")
    parser.add_argument("--calibration", type=int, default=CALIBRATION_IMAGES, help="Training images to calibrate on")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's advice to pre-process, every run
    try:
        result = quantize_int8(args.model, args.out, args.data, max_drop=args.max_drop / 100,
                               calibration=args.calibration)
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split in result.float_accuracy:
        print(f"{split}: float {result.float_accuracy[split]:.2%} -> int8 {result.int8_accuracy[split]:.2%}")
    if result.path is None:
        print(f"error: the int8 model loses {100 * result.drop:.2f} points of PrivateTest accuracy (limit "
              f"{args.max_drop:g}); nothing written", file=sys.stderr)
        return 1
    print(f"wrote {result.path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
