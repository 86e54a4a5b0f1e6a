"""Emotion classification: the ONNX emotion models (single or ensemble) on face crops (emovid.crop).

The model contract (written by `training`, read here): input float32 [N,48,48,1] raw grayscale 0-255 with a
dynamic N, output float32 [N,7] probabilities in EMOTIONS order, preprocessing inside the graph; metadata
`emovid.labels` (JSON list) must equal EMOTIONS when present, `emovid.test_accuracy` picks the "best" model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emovid import EMOTIONS
from emovid.crop import CROP_SIZE
from emovid.errors import ModelError
from emovid.registry import (
    BEST,
    ENSEMBLE,
    INT8_SUFFIX,
    MODEL_CHOICES,
    SHIPPED,
    int8_twin,
    shipped_models,
    shipped_models_dir,
)
from emovid.runtime import Device, RuntimeInfo, SessionConfig, cpu_only, create_session

MAX_BATCH = 64  # faces per ONNX Runtime call (bounds memory for VGG16)


# --- model files and metadata -------------------------------------------------------------------------------------


def _varint(read) -> int | None:
    shift = result = 0
    while True:
        byte = read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("bad varint")


def _fields(data: bytes):
    """(field number, bytes) of the length-delimited fields of a small protobuf message."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = data[pos:pos + n]
        pos += n
        return chunk

    while pos < len(data):
        key = _varint(read)
        if key is None:
            return
        number, wire = key >> 3, key & 7
        if wire == 2:
            length = _varint(read) or 0
            yield number, read(length)
        elif wire == 0:
            _varint(read)
        else:
            read({1: 8, 5: 4}[wire])


def read_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's metadata_props without loading its graph (reads the top-level fields only).

    Raises ModelError when the file is missing or is not a protobuf ModelProto.
    """
    metadata: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            while True:
                key = _varint(f.read)
                if key is None:
                    return metadata
                number, wire = key >> 3, key & 7
                if wire == 0:
                    _varint(f.read)
                elif wire == 1:
                    f.seek(8, 1)
                elif wire == 5:
                    f.seek(4, 1)
                elif wire == 2:
                    length = _varint(f.read)
                    if length is None:
                        raise ValueError("truncated")
                    if number == 14:  # ModelProto.metadata_props: StringStringEntryProto {key = 1; value = 2}
                        entry = dict(_fields(f.read(length)))
                        metadata[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
                    else:
                        f.seek(length, 1)
                else:
                    raise ValueError(f"wire type {wire}")
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not an ONNX model ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _accuracy(metadata: dict[str, str]) -> float:
    try:
        value = float(metadata.get("emovid.test_accuracy", "nan"))
    except ValueError:
        return -math.inf
    return value if math.isfinite(value) else -math.inf


def best_shipped_model(models_dir: Path | None = None) -> tuple[str, Path]:
    """The shipped model with the highest emovid.test_accuracy (ties and unknowns: SHIPPED order)."""
    shipped = shipped_models(models_dir)
    if not shipped:
        raise ModelError(f"{models_dir or shipped_models_dir()}: no shipped emotion model found (expected "
                         f"{', '.join(f'{n}.onnx' for n in SHIPPED)}); pass --model PATH.onnx")
    scored = [(_accuracy(read_metadata(path)), -i, name) for i, (name, path) in enumerate(shipped.items())]
    name = max(scored)[2]
    return name, shipped[name]


# --- the classifier ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """One loaded ONNX emotion model."""

    name: str
    path: Path
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float | None:
        value = _accuracy(self.metadata)
        return value if math.isfinite(value) else None


def _dims(shape) -> list:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _check_contract(path: Path, session) -> tuple[str, dict[str, str]]:
    """Validate inputs/outputs/labels of a session against the contract; return (input name, metadata)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected_in = "one input float32 [N,48,48,1] and one output float32 [N,7] (N dynamic)"
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected {expected_in}, got {len(inputs)} inputs")
    spec = inputs[0]
    dims = _dims(spec.shape or [])
    if spec.type != "tensor(float)" or len(dims) != 4 or dims[1:] != [CROP_SIZE, CROP_SIZE, 1] or dims[0] is not None:
        raise ModelError(f"{path}: expected {expected_in}, got {spec.type} {list(spec.shape or [])}")
    out_dims = _dims(outputs[0].shape or []) if outputs else []
    if not outputs or outputs[0].type != "tensor(float)" or len(out_dims) != 2 or out_dims[1] not in (None, 7):
        got = f"{outputs[0].type} {list(outputs[0].shape or [])}" if outputs else "no output"
        raise ModelError(f"{path}: expected output float32 [N,7] probabilities, got {got}")
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    if "emovid.labels" in metadata:
        try:
            labels = tuple(json.loads(metadata["emovid.labels"]))
        except (ValueError, TypeError):
            labels = None
        if labels != EMOTIONS:
            raise ModelError(f"{path}: emovid.labels is {metadata['emovid.labels']}, expected {list(EMOTIONS)}")
    probe = np.zeros((2, CROP_SIZE, CROP_SIZE, 1), np.float32)
    probe[1] = 128.0
    try:
        result = np.asarray(session.run([outputs[0].name], {spec.name: probe})[0])
    except Exception as exc:  # onnxruntime raises untyped errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: fails on a [2,48,48,1] test batch ({first[:200]})") from None
    if result.shape != (2, len(EMOTIONS)):
        raise ModelError(f"{path}: expected output [N,7] probabilities, got shape {list(result.shape)} for N=2")
    if not (np.all(np.isfinite(result)) and np.all(result >= -1e-4) and np.allclose(result.sum(1), 1, atol=1e-2)):
        raise ModelError(f"{path}: outputs are not probabilities (rows must be >= 0 and sum to 1; softmax missing?)")
    return spec.name, metadata


class EmotionClassifier:
    """One ONNX emotion model, or the ensemble (mean probabilities) of several.

    name: "scratch", "ensemble", a file stem...; labels: EMOTIONS; runtime: the provider really in use.
    """

    def __init__(self, name: str, members: Sequence[tuple[ModelInfo, object, str]], runtime: RuntimeInfo):
        if not members:
            raise ValueError("EmotionClassifier needs at least one model")
        self.name = name
        self.labels: tuple[str, ...] = EMOTIONS
        self.runtime = runtime
        self._members = tuple(members)

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        return tuple(info for info, _, _ in self._members)

    def describe(self) -> str:
        """e.g. "emotion model scratch (test accuracy 66.1%)" or "emotion model ensemble (scratch 66.1%, ...)"."""

        def accuracy(info: ModelInfo) -> str:
            return "test accuracy unknown" if info.test_accuracy is None else f"test accuracy {info.test_accuracy:.1%}"

        if len(self.models) == 1:
            return f"emotion model {self.name} ({accuracy(self.models[0])})"
        return f"emotion model {self.name} ({'; '.join(f'{m.name} {accuracy(m)}' for m in self.models)})"

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """float32 [N,7] probabilities for float32 [N,48,48,1] grayscale 0-255 crops (batched)."""
        crops = np.asarray(crops, dtype=np.float32)
        if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 1):
            raise ValueError(f"predict needs crops [N,48,48,1], got {crops.shape}")
        total = np.zeros((len(crops), len(self.labels)), np.float64)
        if len(crops) == 0:
            return total.astype(np.float32)
        crops = np.ascontiguousarray(crops)
        for info, session, input_name in self._members:
            for start in range(0, len(crops), MAX_BATCH):
                chunk = crops[start:start + MAX_BATCH]
                probs = np.asarray(session.run(None, {input_name: chunk})[0], dtype=np.float64)
                if probs.shape != (len(chunk), len(self.labels)):
                    raise ModelError(f"{info.path}: returned shape {list(probs.shape)}, expected [{len(chunk)},7]")
                total[start:start + len(chunk)] += probs
        return (total / len(self._members)).astype(np.float32)


def _open(name: str, path: Path, device: Device | str, intra_op_threads: int = 0,
          session_config: SessionConfig | None = None) -> tuple[tuple[ModelInfo, object, str], RuntimeInfo]:
    session, runtime = create_session(path, device, intra_op_threads=intra_op_threads, session_config=session_config)
    input_name, metadata = _check_contract(path, session)
    return (ModelInfo(name=name, path=path, metadata=metadata), session, input_name), runtime


def _single(name: str, path: Path, device: Device | str, intra_op_threads: int = 0,
            session_config: SessionConfig | None = None) -> EmotionClassifier:
    member, runtime = _open(name, path, device, intra_op_threads, session_config)
    return EmotionClassifier(name, [member], runtime)


def load_classifier(model: str | Path = BEST, device: Device | str = Device.auto,
                    models_dir: Path | None = None, intra_op_threads: int = 0,
                    session_config: SessionConfig | None = None) -> EmotionClassifier:
    """Load an emotion model: best | scratch | mobilenetv2 | vgg16 | ensemble | <shipped>-int8 | PATH.onnx.

    best = the shipped model with the highest emovid.test_accuracy, and on the CPU its int8 copy when one ships
    (faster there, and kept only if it lost < 0.5 point of PrivateTest accuracy; GPUs get the float model);
    ensemble = mean of every shipped model (at least two). `intra_op_threads`: ONNX Runtime's threads per model on
    the CPU (0: its default, one per core); `session_config`: see emovid.runtime.session_options. Raises ModelError
    (one line, naming the file and what was expected) or DeviceError.
    """
    spec = str(model)
    folder = models_dir or shipped_models_dir()
    if spec == BEST:
        name, path = best_shipped_model(folder)
        twin = int8_twin(name, folder)
        if twin is not None and cpu_only(device):
            return _single(f"{name}{INT8_SUFFIX}", twin, device, intra_op_threads, session_config)
        classifier = _single(name, path, device, intra_op_threads, session_config)
        if twin is not None and classifier.runtime.provider == "CPUExecutionProvider":  # CUDA listed, not usable
            return _single(f"{name}{INT8_SUFFIX}", twin, device, intra_op_threads, session_config)
        return classifier
    if spec.endswith(INT8_SUFFIX) and spec[:-len(INT8_SUFFIX)] in SHIPPED:
        twin = int8_twin(spec[:-len(INT8_SUFFIX)], folder)
        if twin is None:
            raise ModelError(f"{folder / (spec + '.onnx')}: shipped model {spec} not found; choose one of "
                             f"{', '.join(shipped_models(folder)) or 'none shipped'} or pass --model PATH.onnx")
        return _single(spec, twin, device, intra_op_threads, session_config)
    if spec == ENSEMBLE:
        shipped = shipped_models(folder)
        if len(shipped) < 2:
            raise ModelError(f"{folder}: the ensemble needs at least two shipped models "
                             f"({', '.join(f'{n}.onnx' for n in SHIPPED)}), found {len(shipped)}")
        chosen = list(shipped.items())
        name = ENSEMBLE
    elif spec in SHIPPED:
        path = folder / f"{spec}.onnx"
        if not path.is_file():
            raise ModelError(f"{path}: shipped model {spec} not found; choose one of "
                             f"{', '.join(shipped_models(folder)) or 'none shipped'} or pass --model PATH.onnx")
        name, chosen = spec, [(spec, path)]
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            if path.suffix.lower() != ".onnx":
                raise ModelError(f"--model {spec}: expected {', '.join(MODEL_CHOICES)} or a PATH.onnx file")
            raise ModelError(f"{path}: model file not found")
        name, chosen = path.stem, [(path.stem, path)]
    members, runtimes = [], []
    for member_name, member_path in chosen:
        member, runtime = _open(member_name, member_path, device, intra_op_threads, session_config)
        members.append(member)
        runtimes.append(runtime)
    return EmotionClassifier(name, members, runtimes[0])
