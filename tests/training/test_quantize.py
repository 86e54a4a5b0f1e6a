"""training.quantize: int8 copies that keep the contract and are written only under the accuracy rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
from onnx import TensorProto, helper

from training import TrainingError
from training.data import load_fer2013
from training.evaluate import open_session, predict
from training.quantize import calibration_images, main, quantize_int8

LABELS = '["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]'


def conv_model(path: Path) -> Path:
    """A small float CNN with the emovid contract: [N,48,48,1] 0-255 -> scale -> Conv -> Relu -> mean -> Gemm ->
    Softmax [N,7] (fixed random weights)."""
    rng = np.random.default_rng(0)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 48, 48, 1])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7])
    nodes = [
        helper.make_node("Mul", ["image", "inv255"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["conv"], kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [
        helper.make_tensor("inv255", TensorProto.FLOAT, [], [1 / 255]),
        helper.make_tensor("w", TensorProto.FLOAT, [8, 1, 3, 3], rng.normal(0, 1, 72).tolist()),
        helper.make_tensor("b", TensorProto.FLOAT, [8], rng.normal(0, 0.1, 8).tolist()),
        helper.make_tensor("dense_w", TensorProto.FLOAT, [8, 7], rng.normal(0, 3, 56).tolist()),
        helper.make_tensor("dense_b", TensorProto.FLOAT, [7], np.zeros(7).tolist()),
    ]
    model = helper.make_model(helper.make_graph(nodes, "tiny_cnn", [image], [probs], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # what this onnxruntime reads
    helper.set_model_props(model, {"emovid.labels": LABELS, "emovid.arch": "tiny", "emovid.test_accuracy": "0.1"})
    onnx.save(model, str(path))
    return path


def test_int8_copy_keeps_the_contract_and_records_what_it_measured(tmp_path, tiny_fer):
    source = conv_model(tmp_path / "tiny.onnx")
    out = tmp_path / "models" / "tiny-int8.onnx"
    result = quantize_int8(source, out, tiny_fer, max_drop=1.0, calibration=28)
    assert result.path == out and out.is_file()
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Softmax"} <= ops
    assert [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input] \
        == [("image", ["N", 48, 48, 1])]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["emovid.labels"] == LABELS and meta["emovid.arch"] == "tiny"
    assert meta["emovid.float_test_accuracy"] == "0.1"
    assert meta["emovid.test_accuracy"] == f"{result.int8_accuracy['PrivateTest']:.4f}"
    assert "28 Training images" in meta["emovid.quantized"]
    data = load_fer2013(tiny_fer)
    images = data.split("PrivateTest").images
    float_probs, int8_probs = predict(open_session(source), images), predict(open_session(out), images)
    np.testing.assert_allclose(int8_probs.sum(axis=1), 1, atol=1e-4)  # Softmax stayed float
    assert np.abs(int8_probs - float_probs).max() < 0.1  # close to the float model, not equal to it
    labels = data.split("PrivateTest").labels
    accuracy = float(np.mean(int8_probs.argmax(axis=1) == labels))
    exact = float(np.mean(predict(open_session(out, optimize=False), images).argmax(axis=1) == labels))
    assert result.int8_accuracy["PrivateTest"] == pytest.approx(min(accuracy, exact))  # the lower one counts


def test_int8_weights_use_7_bits_so_cpus_without_vnni_do_not_saturate(tmp_path, tiny_fer):
    out = quantize_int8(conv_model(tmp_path / "tiny.onnx"), tmp_path / "tiny-int8.onnx", tiny_fer, max_drop=1.0,
                        calibration=28).path
    model = onnx.load(str(out))
    weights = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == TensorProto.INT8]
    assert weights and all(np.abs(w.astype(np.int16)).max() <= 64 for w in weights)
    assert "7-bit weights" in {p.key: p.value for p in model.metadata_props}["emovid.quantized"]


def test_an_int8_copy_that_loses_too_much_is_not_written(tmp_path, tiny_fer, capsys):
    source = conv_model(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny-int8.onnx"
    result = quantize_int8(source, out, tiny_fer, max_drop=-1.0)  # no model can gain 100 points
    assert result.path is None and not out.exists()
    assert main([str(source), "--data", str(tiny_fer), "--out", str(out), "--max-drop", "-100"]) == 1
    assert "nothing written" in capsys.readouterr().err and not out.exists()


def test_calibration_uses_training_rows_only_and_is_seeded(tiny_fer):
    data = load_fer2013(tiny_fer)
    images = calibration_images(data, n=10, seed=3)
    assert images.shape == (10, 48, 48, 1) and images.dtype == np.float32
    train = data.split("Training").images.astype(np.float32)
    assert all(any(np.array_equal(img[..., 0], t) for t in train) for img in images)
    np.testing.assert_array_equal(images, calibration_images(data, n=10, seed=3))
    assert len(calibration_images(data, n=1000)) == len(train)


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_fer, fer_writer):
    with pytest.raises(TrainingError, match="model file not found"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "x.onnx", tiny_fer)
    source = conv_model(tmp_path / "tiny.onnx")
    labels = np.arange(14) % 7
    no_test = fer_writer("train_only.csv", labels, np.array(["Training"] * 14, object),
                         np.zeros((14, 48, 48), np.uint8))
    with pytest.raises(TrainingError, match="no PrivateTest rows"):
        quantize_int8(source, tmp_path / "x.onnx", no_test)
    assert not (tmp_path / "x.onnx").exists()
