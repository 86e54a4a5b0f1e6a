"""Export a trained Keras model to ONNX (the emovid model contract), checked before anything is written.

The path is `tf2onnx.convert.from_function` on a `tf.function` with an explicit input signature that calls
`model(x, training=False)`: SavedModel-based exports run MobileNetV2's nested BatchNorm in training mode
(see shared/STACK.md). Every export is checked on real images before it is written:
- parity: ONNX Runtime vs Keras, max abs difference <= `tolerance` (1e-4);
- batch invariance: an image's probabilities are the same alone and inside a batch of 16 (a BatchNorm left
  in training mode makes them depend on the batch mates).
A failed check raises TrainingError and writes nothing; the file is written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import ARCHS, EMOTIONS, TrainingError
from training.data import FerData, load_fer2013

OPSET = 17
IR_VERSION = 10  # onnx 1.23 writes IR 14; onnxruntime 1.31 loads at most 13
TOLERANCE = 1e-4
N_PARITY_IMAGES = 256
INVARIANCE_BATCH = 16
CONTRACT = {
    "emovid.contract": "1",
    "emovid.labels": json.dumps(list(EMOTIONS)),
    "emovid.input": "float32 [N,48,48,1] grayscale 0-255",
    "emovid.output": "float32 [N,7] probabilities",
}
UNKNOWN = "nan"  # accuracy not measured (no data file): still parses as a float


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float  # ONNX Runtime vs Keras on the parity images
    batch_max_abs_diff: float  # an image alone vs inside a batch of 16 (ONNX Runtime)
    n_parity_images: int
    val_accuracy: float | None  # PublicTest, ONNX Runtime
    test_accuracy: float | None  # PrivateTest, ONNX Runtime
    metadata: dict[str, str]


@contextmanager
def float32_policy() -> Iterator[None]:
    """Build under the float32 policy (models train under mixed_bfloat16; their variables are float32)."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def load_run_model(run_dir: str | Path, weights: str = "best.weights.h5"):
    """(float32 Keras model with the run's weights, its state.json as a dict) for a training run folder."""
    from training.models import build, load_weights

    run_dir = Path(run_dir)
    state_path, weights_path = run_dir / "state.json", run_dir / weights
    for needed in (state_path, weights_path):
        if not needed.is_file():
            raise TrainingError(f"{needed}: not found; is {run_dir} a training run folder with a finished epoch?")
    try:
        state = json.loads(state_path.read_text())
        config = state["config"]
        arch = config["arch"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"{state_path}: not a training state file ({type(exc).__name__}: {exc})") from exc
    with float32_policy():
        # The backbone's ImageNet weights are replaced by the run's own: never load them here.
        model = build(arch, weights=None, **config.get("model_kwargs", {}))
    load_weights(model, weights_path)  # strict: no layer left at its random start
    return model, state


def keras_predict(model, images: np.ndarray, tta_flip: bool = False, batch_size: int = 64) -> np.ndarray:
    """The Keras reference: `model(x, training=False)` in batches (averaged with the mirrored image if asked)."""
    images = _as_nhwc(images)
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        probs = np.asarray(model(batch, training=False), dtype=np.float32)
        if tta_flip:
            flipped = np.ascontiguousarray(batch[:, :, ::-1, :])
            probs = (probs + np.asarray(model(flipped, training=False), dtype=np.float32)) / 2
        out.append(probs)
    return np.concatenate(out, axis=0)


def _as_nhwc(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (48, 48, 1) or len(images) == 0:
        raise TrainingError(f"parity images must be [N,48,48] or [N,48,48,1] with N >= 1, got {images.shape}")
    return np.ascontiguousarray(images, dtype=np.float32)


def to_onnx(model, tta_flip: bool = False, opset: int = OPSET):
    """The ONNX ModelProto of `model` (input `image` float32 [N,48,48,1], output `probs` float32 [N,7])."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec([None, 48, 48, 1], tf.float32, name="image")]

    @tf.function(input_signature=spec, autograph=False)
    def serve(image):
        if not tta_flip:
            return {"probs": model(image, training=False)}
        # One pass over [x; mirrored x] keeps a single copy of the weights in the graph.
        both = model(tf.concat([image, tf.reverse(image, axis=[2])], axis=0), training=False)
        n = tf.shape(image)[0]
        return {"probs": (both[:n] + both[n:]) / 2.0}

    import logging

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    proto.ir_version = IR_VERSION
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    canonical_names(proto.graph)
    return proto


def canonical_names(graph) -> None:
    """Rename nodes, weights and intermediate tensors by their position in the graph.

    tf2onnx and Keras name them with process-wide counters (`scratch_1/...__46`), so the same model exported
    twice in one process would differ in bytes; after this it does not. Graph inputs and outputs keep
    their names."""
    graph.doc_string = ""  # "converted from b'__inference_serve_362'": a counter too
    keep = {v.name for v in (*graph.input, *graph.output)}
    mapping: dict[str, str] = {}
    for i, init in enumerate(graph.initializer):
        mapping[init.name] = f"w{i}"
    for node in graph.node:
        if any(attr.g.node or attr.graphs for attr in node.attribute):
            raise TrainingError(f"unexpected subgraph in {node.op_type} node; cannot canonicalise names")
        for name in node.output:
            if name and name not in keep and name not in mapping:
                mapping[name] = f"t{len(mapping)}"

    def rename(name: str) -> str:
        return mapping.get(name, name)

    for init in graph.initializer:
        init.name = rename(init.name)
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{i}"
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for value in graph.value_info:
        value.name = rename(value.name)


def check_parity(reference: np.ndarray, onnx_probs: np.ndarray, tolerance: float = TOLERANCE) -> float:
    """Max abs difference between Keras and ONNX Runtime; TrainingError above `tolerance`."""
    if reference.shape != onnx_probs.shape:
        raise TrainingError(f"ONNX output shape {onnx_probs.shape} differs from Keras {reference.shape}")
    diff = float(np.max(np.abs(reference.astype(np.float64) - onnx_probs.astype(np.float64))))
    if not np.isfinite(diff) or diff > tolerance:
        raise TrainingError(f"ONNX export differs from Keras by {diff:.3g} (> {tolerance:g}); nothing written")
    return diff


def check_batch_invariance(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                           tolerance: float = TOLERANCE, batch: int = INVARIANCE_BATCH) -> float:
    """Each of the first `batch` images scored alone vs inside one batch; TrainingError if they differ.

    A BatchNorm running in training mode (batch statistics) makes an image's output depend on its batch mates.
    """
    images = _as_nhwc(images)
    picked = images[np.arange(batch) % len(images)]
    together = predict(picked)
    alone = np.concatenate([predict(picked[i:i + 1]) for i in range(len(picked))], axis=0)
    diff = float(np.max(np.abs(together.astype(np.float64) - alone.astype(np.float64))))
    if not np.isfinite(diff) or diff > tolerance:
        raise TrainingError(f"an image's output changes with its batch mates by {diff:.3g} (> {tolerance:g}): "
                            "a layer runs in training mode; nothing written")
    return diff


def versions() -> dict[str, str]:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _write_atomic(proto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(proto.SerializeToString())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_model(model, path: str | Path, parity_images: np.ndarray, metadata: dict[str, str] | None = None,
                 tta_flip: bool = False, opset: int = OPSET, tolerance: float = TOLERANCE,
                 accuracy_data: FerData | None = None) -> ExportResult:
    """Convert `model` (built under the float32 policy), check it, add the metadata and write it atomically.

    `metadata` adds/overrides `emovid.*` keys (arch, params, train_data_sha256, trained_on...); with
    `accuracy_data`, PublicTest/PrivateTest accuracies are measured on the exported model with ONNX Runtime.
    """
    import onnx

    from training import evaluate

    path = Path(path)
    images = _as_nhwc(parity_images)
    proto = to_onnx(model, tta_flip=tta_flip, opset=opset)
    session = evaluate.open_session(proto.SerializeToString())
    reference = keras_predict(model, images, tta_flip=tta_flip)
    max_diff = check_parity(reference, evaluate.predict(session, images), tolerance)
    batch_diff = check_batch_invariance(lambda x: evaluate.predict(session, x), images, tolerance)

    accuracies: dict[str, float | None] = {"PublicTest": None, "PrivateTest": None}
    if accuracy_data is not None:
        for split in accuracies:
            part = accuracy_data.split(split)
            if len(part):
                probs = evaluate.predict(session, part.images)
                accuracies[split] = float(np.mean(probs.argmax(axis=1) == part.labels))

    def fmt(value: float | None) -> str:
        return UNKNOWN if value is None else f"{value:.4f}"

    meta = {
        **CONTRACT,
        "emovid.arch": getattr(model, "name", "unknown"),
        "emovid.params": str(int(model.count_params())),
        "emovid.val_accuracy": fmt(accuracies["PublicTest"]),
        "emovid.test_accuracy": fmt(accuracies["PrivateTest"]),
        "emovid.train_data_sha256": "",
        "emovid.trained_on": "",
        "emovid.tta_flip": "1" if tta_flip else "0",
        "emovid.versions": json.dumps({**versions(), "opset": str(opset)}, sort_keys=True),
        **(metadata or {}),
    }
    bad = [k for k, v in meta.items() if not (isinstance(k, str) and isinstance(v, str))]
    if bad:
        raise TrainingError(f"metadata values must be strings: {', '.join(map(str, bad))}")
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, dict(sorted(meta.items())))
    onnx.checker.check_model(proto)
    _write_atomic(proto, path)
    return ExportResult(path=path, max_abs_diff=max_diff, batch_max_abs_diff=batch_diff,
                        n_parity_images=len(images), val_accuracy=accuracies["PublicTest"],
                        test_accuracy=accuracies["PrivateTest"], metadata=meta)


def parity_images_from(data: FerData, n: int = N_PARITY_IMAGES) -> np.ndarray:
    """`n` PublicTest images spread evenly over the split (all of them when there are fewer)."""
    part = data.split("PublicTest")
    if len(part) == 0:
        raise TrainingError(f"{data.path}: no PublicTest rows for the parity check")
    index = np.unique(np.linspace(0, len(part) - 1, min(n, len(part))).round().astype(np.int64))
    return part.images[index]


def describe_training(state: dict) -> str:
    """`emovid.trained_on`: data, labels, epochs, wall time and precision of the run."""
    config = state.get("config", {})
    minutes = float(state.get("wall_s", 0.0)) / 60.0
    return (f"{Path(str(config.get('data', '?'))).name} Training split, labels {config.get('labels', 'fer2013')}; "
            f"weights of epoch {state.get('best_epoch', '?')} (best PublicTest) of {state.get('epoch', '?')} trained, "
            f"{minutes:.0f} min, {config.get('precision', '?')}, seed {config.get('seed', '?')}; "
            f"exported on {platform.system()} {platform.machine()} with {os.cpu_count()} CPU cores")


def export_run(run_dir: str | Path, path: str | Path, data: str | Path | FerData | None = None,
               parity_images: np.ndarray | None = None, tta_flip: bool = False, arch: str | None = None,
               opset: int = OPSET, tolerance: float = TOLERANCE, log: Callable[[str], None] = lambda _: None,
               ) -> ExportResult:
    """Export a training run folder (`state.json` + `best.weights.h5`) to an emovid ONNX model.

    With `data` (the FER2013-format file), parity uses its PublicTest images and the metadata gets the
    PublicTest (val) and PrivateTest (test) accuracies measured with ONNX Runtime; without it, pass
    `parity_images` and the accuracies are recorded as "nan".
    """
    if arch is not None and arch not in ARCHS:
        raise TrainingError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    fer = load_fer2013(data) if isinstance(data, str | Path) else data
    if parity_images is None:
        if fer is None:
            raise TrainingError("export needs real images for the parity check: pass a data file")
        parity_images = parity_images_from(fer)
    model, state = load_run_model(run_dir)
    run_arch = state["config"]["arch"]
    if arch is not None and run_arch != arch:
        raise TrainingError(f"{run_dir}: holds a {run_arch} run, not {arch}")
    data_sha = str(state.get("data_sha256", ""))
    if fer is not None and data_sha and fer.sha256 != data_sha:
        log(f"warning: {fer.path} is not the file {run_arch} was trained on (sha256 differs)")
    metadata = {
        "emovid.arch": run_arch,
        "emovid.train_data_sha256": data_sha,
        "emovid.trained_on": describe_training(state),
    }
    result = export_model(model, path, parity_images, metadata=metadata, tta_flip=tta_flip, opset=opset,
                          tolerance=tolerance, accuracy_data=fer)
    log(f"{run_arch}: wrote {result.path} (Keras vs ONNX max diff {result.max_abs_diff:.2g}, batch invariance "
        f"{result.batch_max_abs_diff:.2g}; PublicTest {result.metadata['emovid.val_accuracy']}, "
        f"PrivateTest {result.metadata['emovid.test_accuracy']})")
    return result
