"""Each builder at its default settings: float32 [N,48,48,1] 0-255 in, float32 [N,7] probabilities out."""

from __future__ import annotations

import numpy as np
import pytest
from fer_tiny import make_images

from training import TrainingError
from training.export import float32_policy
from training.models import build


@pytest.mark.parametrize("arch", ["scratch", "mobilenetv2", "vgg16"])
def test_builder_outputs_probabilities(arch):
    images = make_images(np.arange(3), seed=2)[..., None].astype(np.float32)
    with float32_policy():
        model = build(arch)  # transfer models without ImageNet weights (none can be downloaded here)
    probs = np.asarray(model(images, training=False))
    assert model.input_shape == (None, 48, 48, 1)
    assert probs.shape == (3, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs >= 0).all()


def test_unknown_arch_and_missing_weights(tmp_path):
    with pytest.raises(TrainingError, match="unknown architecture"):
        build("resnet")
    with pytest.raises(TrainingError, match="not found"):
        build("vgg16", weights=str(tmp_path / "vgg16_notop.h5"))


def test_mobilenetv2_batchnorm_statistics_follow_training():
    """Keras' MobileNetV2 BatchNorm momentum 0.999 left a from-scratch model predicting one class for epochs."""
    import keras

    with float32_policy():
        model = build("mobilenetv2", upsample=1)
    norms = [layer for layer in model.get_layer("mobilenetv2_1.00_48").layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and {layer.momentum for layer in norms} == {0.9}


def test_vgg16_has_batchnorm_after_each_keras_conv_layer():
    import keras

    with float32_policy():
        model = build("vgg16")
        plain = build("vgg16", batchnorm=False)
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(convs) == 13 and convs[0] == "block1_conv1" and norms == [f"{name}_bn" for name in convs]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    assert model.count_params() - plain.count_params() == 4 * sum(  # gamma, beta, moving mean and variance
        layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
