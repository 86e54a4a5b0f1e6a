"""Keras -> ONNX export: parity with Keras on images, batch invariance, metadata, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from training import EMOTIONS, TrainingError
from training import evaluate as ev
from training.data import file_sha256, load_fer2013
from training.export import (
    check_batch_invariance,
    export_model,
    export_run,
    keras_predict,
    load_run_model,
    parity_images_from,
)

CONTRACT_KEYS = {"emovid.contract", "emovid.labels", "emovid.input", "emovid.output", "emovid.arch", "emovid.params",
                 "emovid.val_accuracy", "emovid.test_accuracy", "emovid.train_data_sha256", "emovid.trained_on",
                 "emovid.versions"}


def test_export_run_parity_metadata_and_accuracies(scratch_run, tiny_fer, tmp_path):
    out = tmp_path / "models" / "scratch.onnx"
    result = export_run(scratch_run, out, data=tiny_fer, arch="scratch")
    assert result.max_abs_diff <= 1e-4 and result.batch_max_abs_diff <= 1e-4
    assert out.is_file() and sorted(p.name for p in out.parent.iterdir()) == ["scratch.onnx"]

    proto = onnx.load(str(out))
    assert proto.ir_version == 10
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert set(meta) >= CONTRACT_KEYS
    assert meta["emovid.contract"] == "1"
    assert json.loads(meta["emovid.labels"]) == list(EMOTIONS)
    assert meta["emovid.input"] == "float32 [N,48,48,1] grayscale 0-255"
    assert meta["emovid.output"] == "float32 [N,7] probabilities"
    assert meta["emovid.arch"] == "scratch"
    model, _ = load_run_model(scratch_run)
    assert meta["emovid.params"] == str(model.count_params())
    assert meta["emovid.train_data_sha256"] == file_sha256(tiny_fer)
    assert "tiny_fer2013.csv" in meta["emovid.trained_on"] and "2 trained" in meta["emovid.trained_on"]
    assert {"tensorflow", "keras", "tf2onnx", "onnx"} <= set(json.loads(meta["emovid.versions"]))

    # the stored accuracies are what ONNX Runtime measures on the written file
    session = ev.open_session(out)
    assert ev.model_metadata(session) == meta
    data = load_fer2013(tiny_fer)
    for split, key in (("PublicTest", "emovid.val_accuracy"), ("PrivateTest", "emovid.test_accuracy")):
        part = data.split(split)
        accuracy = float(np.mean(ev.predict(session, part.images).argmax(axis=1) == part.labels))
        assert meta[key] == f"{accuracy:.4f}"

    # dynamic batch, contract names and shapes
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.shape == ["N", 48, 48, 1] and inp.type == "tensor(float)" and outp.shape == ["N", 7]
    images = data.split("PrivateTest").images[..., None].astype(np.float32)
    for n in (1, 5, 21):
        probs = session.run(None, {inp.name: images[:n]})[0]
        assert probs.shape == (n, 7)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(session.run(None, {inp.name: images})[0], keras_predict(model, images), atol=1e-4)


def test_tta_flip_averages_the_mirror_image(scratch_run, tiny_fer, tmp_path):
    images = parity_images_from(load_fer2013(tiny_fer))
    plain = export_run(scratch_run, tmp_path / "plain.onnx", parity_images=images)
    flip = export_run(scratch_run, tmp_path / "flip.onnx", parity_images=images, tta_flip=True)
    assert plain.metadata["emovid.val_accuracy"] == "nan"  # no data file: accuracy not measured
    assert (plain.metadata["emovid.tta_flip"], flip.metadata["emovid.tta_flip"]) == ("0", "1")
    assert flip.max_abs_diff <= 1e-4
    f_plain, f_flip = ev.open_session(plain.path), ev.open_session(flip.path)
    expected = (ev.predict(f_plain, images) + ev.predict(f_plain, images[:, :, ::-1])) / 2
    np.testing.assert_allclose(ev.predict(f_flip, images), expected, atol=1e-6)
    # the mirrored pass shares the weights: the file is not twice as big
    assert flip.path.stat().st_size < 1.1 * plain.path.stat().st_size
    # same run, same bytes (tf2onnx's process-wide name counters are renamed away)
    again = export_run(scratch_run, tmp_path / "again.onnx", parity_images=images)
    assert again.path.read_bytes() == plain.path.read_bytes()


def test_failed_parity_writes_nothing(scratch_run, tiny_fer, tmp_path, monkeypatch):
    import training.export as export

    real = export.keras_predict
    monkeypatch.setattr(export, "keras_predict", lambda *a, **k: real(*a, **k) + 1e-3)
    out = tmp_path / "out" / "scratch.onnx"
    with pytest.raises(TrainingError, match="differs from Keras by 0.001"):
        export_run(scratch_run, out, data=tiny_fer)
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_batch_invariance_check_catches_batch_statistics():
    images = np.random.default_rng(0).uniform(0, 255, (16, 48, 48, 1)).astype(np.float32)

    def per_image(x):
        return np.tile(x.mean(axis=(1, 2, 3))[:, None], (1, 7))

    def batch_normalised(x):  # what a BatchNorm in training mode does
        return per_image(x) - per_image(x).mean(axis=0)

    assert check_batch_invariance(per_image, images) == 0.0
    with pytest.raises(TrainingError, match="batch mates"):
        check_batch_invariance(batch_normalised, images)


def test_run_errors(tmp_path, scratch_run):
    with pytest.raises(TrainingError, match="state.json: not found"):
        export_run(tmp_path, tmp_path / "x.onnx", parity_images=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(TrainingError, match="holds a scratch run, not vgg16"):
        export_run(scratch_run, tmp_path / "x.onnx", parity_images=np.zeros((2, 48, 48), np.uint8), arch="vgg16")
    with pytest.raises(TrainingError, match="needs real images"):
        export_run(scratch_run, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def _bn_layers(layer):
    import keras

    for sub in getattr(layer, "layers", []):
        if isinstance(sub, keras.layers.BatchNormalization):
            yield sub
        else:
            yield from _bn_layers(sub)


@pytest.mark.slow
def test_mobilenetv2_output_does_not_depend_on_batch_mates(mobilenet_run, tiny_fer, tmp_path):
    """After a few steps a MobileNetV2's BatchNorm moving averages are still at their start values and every
    image gets ~1/7 (STACK.md), which would make any check pass. Set them from real images first (one
    training-mode pass at momentum 0), so outputs differ per image and a training-mode BatchNorm would show."""
    data = load_fer2013(tiny_fer)
    model, _ = load_run_model(mobilenet_run)
    train_images = data.split("Training").images[..., None].astype(np.float32)
    layers = list(_bn_layers(model))
    assert len(layers) > 30  # the nested backbone's BatchNorms are reached
    for layer in layers:
        layer.momentum = 0.0
    model(train_images, training=True)
    for layer in layers:
        layer.momentum = 0.99

    images = data.split("PublicTest").images[:16, ..., None].astype(np.float32)
    # the check has teeth: in training mode an image's output does depend on its batch mates
    # (these calls also nudge the moving averages, so the reference outputs are computed after them)
    import keras

    dropout = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    for layer in dropout:
        layer.rate = 0.0  # so that only BatchNorm differs between the two calls
    trap = np.asarray(model(images, training=True))[:1] - np.asarray(model(images[:1], training=True))
    assert np.abs(trap).max() > 1e-2
    together = keras_predict(model, images)
    assert together.std(axis=0).max() > 0.02  # non-trivial outputs
    alone = np.concatenate([keras_predict(model, images[i:i + 1]) for i in range(16)])
    np.testing.assert_allclose(alone, together, atol=1e-5)

    result = export_model(model, tmp_path / "mobilenetv2.onnx", images,
                          metadata={"emovid.arch": "mobilenetv2"})
    assert result.max_abs_diff <= 1e-4 and result.batch_max_abs_diff <= 1e-5
    session = ev.open_session(result.path)
    onnx_alone = np.concatenate([ev.predict(session, images[i:i + 1]) for i in range(16)])
    np.testing.assert_allclose(onnx_alone, ev.predict(session, images), atol=1e-5)
    np.testing.assert_allclose(ev.predict(session, images), together, atol=1e-4)
