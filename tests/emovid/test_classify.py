"""The ONNX emotion classifier (tiny hand-built models; shipped ones when present)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_models import brightness_model, brightness_reference, constant_model, one_hot

from emovid import EMOTIONS
from emovid.classify import (
    MAX_BATCH,
    SHIPPED,
    EmotionClassifier,
    best_shipped_model,
    load_classifier,
    read_metadata,
    shipped_models,
    shipped_models_dir,
)
from emovid.errors import ModelError

# --- a model file -----------------------------------------------------------------------------------------------


def test_predict_matches_the_model_and_is_batched(tmp_path):
    classifier = load_classifier(brightness_model(tmp_path / "bright.onnx"), device="cpu")
    assert classifier.name == "bright" and classifier.labels == EMOTIONS
    assert classifier.runtime.provider == "CPUExecutionProvider"
    rng = np.random.default_rng(0)
    crops = rng.uniform(0, 255, (MAX_BATCH + 5, 48, 48, 1)).astype(np.float32)
    crops += np.linspace(-100, 100, len(crops), dtype=np.float32)[:, None, None, None]
    probs = classifier.predict(np.clip(crops, 0, 255))
    assert probs.shape == (MAX_BATCH + 5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, brightness_reference(np.clip(crops, 0, 255)), atol=1e-5)
    np.testing.assert_allclose(classifier.predict(np.clip(crops[3:4], 0, 255)), probs[3:4], atol=1e-6)
    assert classifier.predict(np.zeros((0, 48, 48, 1), np.float32)).shape == (0, 7)


def test_predict_rejects_wrong_crop_shapes(tmp_path):
    classifier = load_classifier(brightness_model(tmp_path / "bright.onnx"), device="cpu")
    with pytest.raises(ValueError, match="48,48,1"):
        classifier.predict(np.zeros((2, 48, 48), np.float32))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_shape": ("N", 64, 64, 1)}, r"expected one input float32 \[N,48,48,1\].*got tensor\(float\) \['N', 64"),
    ({"input_shape": ("N", 48, 48, 3)}, r"expected one input float32 \[N,48,48,1\]"),
    ({"input_shape": (1, 48, 48, 1)}, r"\(N dynamic\), got tensor\(float\) \[1, 48, 48, 1\]"),
    ({"input_shape": ("N", 48, 48)}, r"expected one input float32 \[N,48,48,1\]"),
])
def test_wrong_input_shape_is_a_model_error_naming_the_file(tmp_path, kwargs, message):
    path = constant_model(tmp_path / "bad_input.onnx", one_hot(3), **kwargs)
    with pytest.raises(ModelError, match=message) as info:
        load_classifier(path, device="cpu")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_wrong_output_width_is_a_model_error(tmp_path):
    path = constant_model(tmp_path / "five.onnx", [0.2] * 5, output_shape=("N", 5))
    with pytest.raises(ModelError, match=r"five.onnx: expected output float32 \[N,7\] probabilities, got"):
        load_classifier(path, device="cpu")


def test_unnamed_output_width_is_still_checked(tmp_path):
    path = constant_model(tmp_path / "five.onnx", [0.2] * 5, output_shape=("N", "K"))
    with pytest.raises(ModelError, match=r"five.onnx: expected output .*\[N,7\] probabilities, got"):
        load_classifier(path, device="cpu")


def test_logits_instead_of_probabilities_are_refused(tmp_path):
    path = constant_model(tmp_path / "logits.onnx", [2.0, -1.0, 0.5, 3.0, 0.0, 1.0, -2.0])
    with pytest.raises(ModelError, match="logits.onnx: outputs are not probabilities"):
        load_classifier(path, device="cpu")


def test_labels_metadata_must_be_the_fer2013_order(tmp_path):
    swapped = ["happy", "disgust", "fear", "angry", "sad", "surprise", "neutral"]
    path = constant_model(tmp_path / "swapped.onnx", one_hot(0), {"emovid.labels": str(swapped).replace("'", '"')})
    with pytest.raises(ModelError, match=r"swapped.onnx: emovid.labels is .*happy.*expected \['angry'"):
        load_classifier(path, device="cpu")


def test_a_model_without_emovid_metadata_loads(tmp_path):
    classifier = load_classifier(constant_model(tmp_path / "plain.onnx", one_hot(2), contract=False), device="cpu")
    np.testing.assert_allclose(classifier.predict(np.zeros((3, 48, 48, 1), np.float32)), [one_hot(2)] * 3, atol=1e-6)


def test_corrupt_and_missing_files_are_model_errors(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not an onnx model" * 10)
    with pytest.raises(ModelError, match="corrupt.onnx: not a loadable ONNX model"):
        load_classifier(corrupt, device="cpu")
    with pytest.raises(ModelError, match="missing.onnx: model file not found"):
        load_classifier(tmp_path / "missing.onnx", device="cpu")
    with pytest.raises(ModelError, match="--model resnet: expected best, scratch, mobilenetv2, vgg16, ensemble or"):
        load_classifier("resnet", device="cpu")


def test_read_metadata_matches_onnx(tmp_path):
    path = brightness_model(tmp_path / "bright.onnx", {"emovid.test_accuracy": "0.6123", "emovid.note": "é ü"})
    expected = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_metadata(path) == expected and expected["emovid.note"] == "é ü"
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x0f\xff\xff")
    with pytest.raises(ModelError, match="corrupt.onnx"):
        read_metadata(corrupt)


# --- shipped models: best / ensemble ----------------------------------------------------------------------------


@pytest.fixture
def models_dir(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "scratch.onnx", one_hot(0), {"emovid.test_accuracy": "0.6400"})
    constant_model(folder / "mobilenetv2.onnx", one_hot(3), {"emovid.test_accuracy": "0.6610"})
    constant_model(folder / "vgg16.onnx", one_hot(6), {"emovid.test_accuracy": "nan"})
    return folder


def test_best_is_the_shipped_model_with_the_highest_test_accuracy(models_dir):
    assert best_shipped_model(models_dir) == ("mobilenetv2", models_dir / "mobilenetv2.onnx")
    classifier = load_classifier("best", device="cpu", models_dir=models_dir)
    assert classifier.name == "mobilenetv2"
    assert "test accuracy 66.1%" in classifier.describe()
    np.testing.assert_allclose(classifier.predict(np.zeros((1, 48, 48, 1), np.float32))[0], one_hot(3), atol=1e-6)


def test_named_shipped_model(models_dir):
    classifier = load_classifier("vgg16", device="cpu", models_dir=models_dir)
    assert classifier.name == "vgg16" and "test accuracy unknown" in classifier.describe()


def test_ensemble_is_the_mean_of_the_shipped_models(models_dir):
    classifier = load_classifier("ensemble", device="cpu", models_dir=models_dir)
    assert isinstance(classifier, EmotionClassifier) and classifier.name == "ensemble"
    assert [m.name for m in classifier.models] == ["scratch", "mobilenetv2", "vgg16"]
    expected = np.mean([one_hot(0), one_hot(3), one_hot(6)], axis=0)
    np.testing.assert_allclose(classifier.predict(np.zeros((2, 48, 48, 1), np.float32)), [expected] * 2, atol=1e-6)


def test_missing_shipped_models_are_clear_model_errors(tmp_path, models_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no shipped emotion model found .* pass --model PATH.onnx"):
        load_classifier("best", models_dir=empty)
    (models_dir / "vgg16.onnx").unlink()
    (models_dir / "mobilenetv2.onnx").unlink()
    with pytest.raises(ModelError, match="the ensemble needs at least two shipped models"):
        load_classifier("ensemble", models_dir=models_dir)
    with pytest.raises(ModelError, match="vgg16.onnx: shipped model vgg16 not found; choose one of scratch"):
        load_classifier("vgg16", models_dir=models_dir)


@pytest.fixture
def with_int8(models_dir):
    constant_model(models_dir / "mobilenetv2-int8.onnx", one_hot(4), {"emovid.test_accuracy": "0.6590"})
    return models_dir


def test_best_on_the_cpu_is_the_int8_copy_of_the_best_model(with_int8):
    classifier = load_classifier("best", device="cpu", models_dir=with_int8)
    assert classifier.name == "mobilenetv2-int8" and classifier.models[0].path.name == "mobilenetv2-int8.onnx"
    assert "test accuracy 65.9%" in classifier.describe()
    np.testing.assert_allclose(classifier.predict(np.zeros((1, 48, 48, 1), np.float32))[0], one_hot(4), atol=1e-6)


def test_best_on_auto_without_a_usable_gpu_is_the_int8_copy(with_int8):
    classifier = load_classifier("best", device="auto", models_dir=with_int8)
    if classifier.runtime.provider != "CPUExecutionProvider":
        assert classifier.name == "mobilenetv2"  # a GPU runs the float model
    else:
        assert classifier.name == "mobilenetv2-int8"


def test_auto_without_a_gpu_driver_opens_only_the_int8_copy_on_the_cpu(with_int8, monkeypatch):
    """onnxruntime-gpu lists CUDA on machines without a GPU; without the driver `auto` must not try it (each failed
    CUDA session cost about 50 ms of start-up) and must not open the float model first."""
    import onnxruntime

    from emovid import runtime

    opened = []
    real = onnxruntime.InferenceSession

    def recording(path, sess_options=None, providers=None):
        opened.append((path.rsplit("/", 1)[-1], tuple(providers)))
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    monkeypatch.setattr(runtime, "gpu_driver_present", lambda: False)
    classifier = load_classifier("best", device="auto", models_dir=with_int8)
    assert classifier.name == "mobilenetv2-int8" and classifier.runtime.provider == "CPUExecutionProvider"
    assert opened == [("mobilenetv2-int8.onnx", ("CPUExecutionProvider",))]


def test_gpu_driver_present_is_whether_the_driver_library_loads(monkeypatch):
    import sys

    from emovid import runtime

    monkeypatch.setattr(runtime, "_DRIVER_LIBRARIES", {sys.platform: ("libemovid-no-such-driver.so.1",)})
    runtime.gpu_driver_present.cache_clear()
    assert runtime.gpu_driver_present() is False
    if sys.platform == "linux":
        monkeypatch.setattr(runtime, "_DRIVER_LIBRARIES", {"linux": ("libemovid-no-such-driver.so.1", "libc.so.6")})
        runtime.gpu_driver_present.cache_clear()
        assert runtime.gpu_driver_present() is True  # any library that loads stands in for libcuda here
    runtime.gpu_driver_present.cache_clear()


def test_int8_copies_of_other_models_are_not_picked_by_best(models_dir):
    constant_model(models_dir / "scratch-int8.onnx", one_hot(1), {"emovid.test_accuracy": "0.9000"})
    assert load_classifier("best", device="cpu", models_dir=models_dir).name == "mobilenetv2"
    named = load_classifier("scratch-int8", device="cpu", models_dir=models_dir)
    assert named.name == "scratch-int8" and "test accuracy 90.0%" in named.describe()


def test_a_missing_int8_copy_is_a_clear_model_error(models_dir):
    with pytest.raises(ModelError, match="vgg16-int8.onnx: shipped model vgg16-int8 not found; choose one of"):
        load_classifier("vgg16-int8", device="cpu", models_dir=models_dir)


def test_the_shipped_int8_models_keep_the_accuracy_rule():
    """An int8 copy ships only if it lost < 0.5 point of PrivateTest accuracy (training.quantize measured it)."""
    folder = shipped_models_dir()
    twins = sorted(p for p in folder.glob("*-int8.onnx") if p.stem.removesuffix("-int8") in SHIPPED)
    if not twins:
        pytest.skip("no int8 model ships")
    for twin in twins:
        meta = read_metadata(twin)
        assert float(meta["emovid.float_test_accuracy"]) - float(meta["emovid.test_accuracy"]) < 0.005, twin.name
        assert meta["emovid.quantized"].startswith("int8")
        probs = load_classifier(twin.stem, device="cpu").predict(np.full((2, 48, 48, 1), 120, np.float32))
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-3)


def test_the_shipped_models_when_present_meet_the_contract():
    shipped = shipped_models()
    if not shipped:
        pytest.skip("no shipped emotion models yet (emovid/models/*.onnx)")
    classifier = load_classifier("best", device="cpu")
    rng = np.random.default_rng(1)
    probs = classifier.predict(rng.uniform(0, 255, (3, 48, 48, 1)).astype(np.float32))
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-3)
