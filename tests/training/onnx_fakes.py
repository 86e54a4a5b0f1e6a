"""Hand-built ONNX models with outputs known in advance, for evaluate/CLI tests (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

CENTERS = 18.0 + 36.0 * np.arange(7)  # brightness that each class of the brightness model is centred on


def _save(graph, path: Path, metadata: dict[str, str]) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 10
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _io():
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 48, 48, 1])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7])
    return image, probs


def brightness_model(path: Path, temperature: float = 36.0 ** 2) -> Path:
    """probs = softmax(-(mean brightness - CENTERS)^2 / temperature): class k for an image at CENTERS[k]
    (about 0.56 confident there with the default temperature)."""
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
        helper.make_tensor("scale", TensorProto.FLOAT, [], [-1.0 / temperature]),
    ]
    graph = helper.make_graph(nodes, "brightness", [image], [probs], inits)
    return _save(graph, path, {"emovid.contract": "1", "emovid.arch": "brightness", "emovid.params": "0"})


def constant_model(path: Path, probabilities) -> Path:
    """The same probabilities for every image."""
    image, probs = _io()
    nodes = [
        helper.make_node("Shape", ["image"], ["shape"], start=0, end=1),
        helper.make_node("Concat", ["shape", "seven"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["q", "out_shape"], ["probs"]),
    ]
    inits = [
        helper.make_tensor("seven", TensorProto.INT64, [1], [7]),
        helper.make_tensor("q", TensorProto.FLOAT, [7], list(probabilities)),
    ]
    graph = helper.make_graph(nodes, "constant", [image], [probs], inits)
    return _save(graph, path, {"emovid.contract": "1", "emovid.arch": "constant", "emovid.params": "7"})


def brightness_model_reference(images: np.ndarray, temperature: float = 36.0 ** 2) -> np.ndarray:
    mean = images.reshape(len(images), -1).astype(np.float64).mean(axis=1)
    logits = -((mean[:, None] - CENTERS[None, :]) ** 2) / temperature
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
