"""Hand-built ONNX emotion models whose outputs are known in advance, shared by the emovid and training tests
(no TensorFlow, built in milliseconds). Both packages see them only as ONNX files, as they see real models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the contract's order
CONTRACT = {
    "emovid.contract": "1",
    "emovid.labels": json.dumps(list(LABELS)),
    "emovid.input": "float32 [N,48,48,1] grayscale 0-255",
    "emovid.output": "float32 [N,7] probabilities",
}
# brightness model: class k for an image whose mean brightness is near CENTERS[k]
CENTERS = 18.0 + 36.0 * np.arange(7)
TEMPERATURE = 36.0**2  # about 0.56 confident at a centre


def _save(graph, path: Path, metadata: dict[str, str]) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 10
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def _io(input_shape=("N", 48, 48, 1), output_shape=("N", 7)):
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, list(input_shape))
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, list(output_shape))
    return image, probs


def brightness_model(path: Path, metadata: dict[str, str] | None = None) -> Path:
    """probs = softmax(-(mean brightness - CENTERS)^2 / TEMPERATURE)."""
    image, probs = _io()
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape_n1"], ["mean"]),
        helper.make_node("Sub", ["mean", "centers"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["sq"]),
        helper.make_node("Mul", ["sq", "scale"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [
        helper.make_tensor("shape_n1", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("centers", TensorProto.FLOAT, [7], CENTERS.tolist()),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [-1.0 / TEMPERATURE]),
    ]
    graph = helper.make_graph(nodes, "brightness", [image], [probs], inits)
    return _save(graph, path, {**CONTRACT, "emovid.arch": "brightness", **(metadata or {})})


def brightness_reference(images: np.ndarray) -> np.ndarray:
    """What brightness_model computes, in numpy (float64)."""
    mean = images.reshape(len(images), -1).astype(np.float64).mean(axis=1)
    logits = -((mean[:, None] - CENTERS[None, :]) ** 2) / TEMPERATURE
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def constant_model(path: Path, probabilities, metadata: dict[str, str] | None = None, *,
                   input_shape=("N", 48, 48, 1), output_shape=("N", 7), contract: bool = True) -> Path:
    """The same output row for every image (any shapes, for contract tests)."""
    probabilities = [float(p) for p in probabilities]
    image, probs = _io(input_shape, output_shape)
    nodes = [
        helper.make_node("Shape", ["image"], ["shape"], start=0, end=1),
        helper.make_node("Concat", ["shape", "width"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["q", "out_shape"], ["probs"]),
    ]
    inits = [
        helper.make_tensor("width", TensorProto.INT64, [1], [len(probabilities)]),
        helper.make_tensor("q", TensorProto.FLOAT, [len(probabilities)], probabilities),
    ]
    graph = helper.make_graph(nodes, "constant", [image], [probs], inits)
    return _save(graph, path, {**(CONTRACT if contract else {}), "emovid.arch": "constant", **(metadata or {})})


def one_hot(k: int, high: float = 0.94) -> list[float]:
    low = (1 - high) / 6
    return [high if i == k else low for i in range(7)]


def nan_on_faces_model(path: Path) -> Path:
    """Like brightness_model for flat images (the loader's test batch, all 0 and all 128), NaN for any image whose
    pixels vary (every real face crop): probs + sqrt(-variance)."""
    image, probs = _io()
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Sub", ["image", "mean4"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["sq4"]),
        helper.make_node("ReduceMean", ["sq4"], ["var4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["var4", "shape_n1"], ["var"]),
        helper.make_node("Neg", ["var"], ["neg"]),
        helper.make_node("Sqrt", ["neg"], ["nan_or_zero"]),
        helper.make_node("Reshape", ["mean4", "shape_n1"], ["mean"]),
        helper.make_node("Sub", ["mean", "centers"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["sq"]),
        helper.make_node("Mul", ["sq", "scale"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["soft"], axis=1),
        helper.make_node("Add", ["soft", "nan_or_zero"], ["probs"]),
    ]
    inits = [
        helper.make_tensor("shape_n1", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("centers", TensorProto.FLOAT, [7], CENTERS.tolist()),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [-1.0 / TEMPERATURE]),
    ]
    graph = helper.make_graph(nodes, "nan_on_faces", [image], [probs], inits)
    return _save(graph, path, {**CONTRACT, "emovid.arch": "nan-on-faces"})
