"""Score exported ONNX emotion models (and their ensemble) on one split of a FER2013-format file.

Runs on ONNX Runtime only: this module never imports TensorFlow, so `emovid evaluate` works without the
training extra. The ensemble is the mean of its members' probabilities, as `emovid` computes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training import EMOTIONS, TrainingError
from training.data import FerData, load_fer2013

BATCH_SIZE = 256
ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class ModelScore:
    """One model's results on one split. `confusion[i][j]` counts images of true class i predicted as j."""

    name: str
    path: str | None  # None for the ensemble
    accuracy: float
    per_class_recall: dict[str, float | None]  # None where the split has no image of that class
    confusion: list[list[int]]
    n_images: int
    members: list[str] = field(default_factory=list)  # the ensemble's models
    metadata: dict[str, str] = field(default_factory=dict)  # the model's emovid.* metadata


@dataclass(frozen=True)
class Evaluation:
    data: str
    data_sha256: str
    split: str
    n_images: int
    labels: list[str]
    models: list[ModelScore]

    def score(self, name: str) -> ModelScore:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def _ort():
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    return ort


def open_session(model: str | Path | bytes, optimize: bool = True):
    """A CPU InferenceSession for a model file (or serialized bytes); TrainingError if it cannot load.

    optimize=False runs the graph as written (no graph optimisation): an int8 QDQ model then computes its exact
    quantised arithmetic in float, as CPUs with VNNI do, instead of this CPU's fused int8 kernels."""
    ort = _ort()
    name = "<in-memory model>" if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes):
        if not Path(model).is_file():
            raise TrainingError(f"{model}: model file not found")
        model = str(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises untyped errors for corrupt files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingError(f"{name}: not a loadable ONNX model ({first[:200]})") from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1 or list(inputs[0].shape[1:]) != [48, 48, 1]:
        raise TrainingError(f"{name}: expected one input float32 [N,48,48,1], got "
                            f"{[(i.name, i.shape) for i in inputs]}")
    return session


def model_metadata(session) -> dict[str, str]:
    meta = session.get_modelmeta().custom_metadata_map
    return {k: v for k, v in sorted(meta.items()) if k.startswith("emovid.")}


def predict(session, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Probabilities `float32 [N,7]` for images `[N,48,48]` or `[N,48,48,1]` (grayscale 0-255), in batches."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    input_name = session.get_inputs()[0].name
    out = np.empty((len(images), len(EMOTIONS)), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch = np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32)
        probs = session.run(None, {input_name: batch})[0]
        if probs.shape != (len(batch), len(EMOTIONS)):
            raise TrainingError(f"model output has shape {probs.shape}; expected [N,{len(EMOTIONS)}]")
        out[start:start + len(batch)] = probs
    return out


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = len(EMOTIONS)) -> np.ndarray:
    """`int64 [n_classes, n_classes]`: rows are true classes, columns predictions."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def score(name: str, probs: np.ndarray, labels: np.ndarray, path: str | None = None,
          members: Sequence[str] = (), metadata: dict[str, str] | None = None) -> ModelScore:
    predicted = probs.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted)
    support = matrix.sum(axis=1)
    recall = {label: (float(matrix[i, i] / support[i]) if support[i] else None) for i, label in enumerate(EMOTIONS)}
    return ModelScore(
        name=name,
        path=path,
        accuracy=float(np.mean(predicted == labels)) if len(labels) else 0.0,
        per_class_recall=recall,
        confusion=matrix.tolist(),
        n_images=int(len(labels)),
        members=list(members),
        metadata=dict(metadata or {}),
    )


def evaluate(models: Sequence[tuple[str, str | Path]], data: str | Path | FerData, split: str = "PrivateTest",
             ensemble: bool = True, batch_size: int = BATCH_SIZE) -> Evaluation:
    """Score each `(name, onnx_path)` on `split`; with `ensemble` and two or more models, also their mean."""
    if not models:
        raise TrainingError("no models to evaluate")
    names = [name for name, _ in models]
    if len(set(names)) != len(names):
        raise TrainingError(f"model names must be unique, got {', '.join(names)}")
    sessions = [(name, str(path), open_session(path)) for name, path in models]  # fail before loading the data
    fer = data if isinstance(data, FerData) else load_fer2013(data)
    part = fer.split(split)
    if len(part) == 0:
        raise TrainingError(f"{fer.path}: no {split} rows")
    scores, all_probs = [], []
    for name, path, session in sessions:
        probs = predict(session, part.images, batch_size)
        all_probs.append(probs)
        scores.append(score(name, probs, part.labels, path=path, metadata=model_metadata(session)))
    if ensemble and len(sessions) >= 2:
        mean = np.mean(np.stack(all_probs), axis=0)
        scores.append(score(ENSEMBLE, mean, part.labels, members=names))
    return Evaluation(
        data=str(fer.path),
        data_sha256=fer.sha256,
        split=split,
        n_images=len(part),
        labels=list(EMOTIONS),
        models=scores,
    )


def save_confusion_png(evaluation: Evaluation, path: str | Path) -> Path:
    """One row-normalised confusion matrix per model (counts printed in the cells), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    n = len(evaluation.models)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 5.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, model in zip(axes.flat, evaluation.models, strict=False):
        counts = np.asarray(model.confusion, dtype=np.float64)
        norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(evaluation.labels)), evaluation.labels, rotation=45, ha="right")
        ax.set_yticks(range(len(evaluation.labels)), evaluation.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{model.name}: {model.accuracy:.1%} on {evaluation.split}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
