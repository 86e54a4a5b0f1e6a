"""Model builders. Every model takes `float32 [N,48,48,1]` raw grayscale 0-255 and returns
`float32 [N,7]` probabilities in FER2013 label order; resizing, channel replication and
normalisation live inside the graph, so the ONNX contract is the same for all three."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from training import ARCHS, EMOTIONS, TrainingError

INPUT_SHAPE = (48, 48, 1)
N_CLASSES = len(EMOTIONS)


def _keras():
    import keras

    return keras


def _conv_bn(x, filters: int, name: str):
    layers = _keras().layers
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build_scratch(widths: tuple[int, ...] = (32, 64, 128, 256), dense: int = 256, dropout: float = 0.4,
                  input_shape: tuple[int, int, int] = INPUT_SHAPE):
    """A VGG-style CNN designed for 48x48 faces: blocks of two 3x3 conv+BN+ReLU, max-pool, dropout."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    for i, filters in enumerate(widths):
        x = _conv_bn(x, filters, f"b{i}a")
        x = _conv_bn(x, filters, f"b{i}b")
        x = layers.MaxPooling2D(2, name=f"b{i}_pool")(x)
        x = layers.Dropout(0.1 + 0.1 * i / max(len(widths) - 1, 1), name=f"b{i}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(dense, use_bias=False, name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    x = layers.Activation("relu", name="fc_relu")(x)
    x = layers.Dropout(dropout, name="fc_drop")(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="scratch")


def _resolve_weights(weights: str | None) -> tuple[str | None, Path | None]:
    """`imagenet`, `none`/None, or a local .h5/.weights.h5 path -> (keras weights arg, local path)."""
    if weights is None or weights.lower() == "none":
        return None, None
    if weights == "imagenet":
        return "imagenet", None
    path = Path(weights)
    if not path.is_file():
        raise TrainingError(f"weights file {path} not found; pass --weights imagenet, none or a local .h5 file")
    return None, path


def _backbone(factory: Callable, weights: str | None, **kwargs):
    keras_weights, local = _resolve_weights(weights)
    try:
        backbone = factory(include_top=False, weights=keras_weights, **kwargs)
    except Exception as exc:  # keras raises plain Exception types on failed downloads
        if keras_weights == "imagenet":
            raise TrainingError(
                "could not load ImageNet weights (offline?): download the Keras 'notop' .h5 file on a "
                f"machine online and pass --weights PATH ({type(exc).__name__})"
            ) from exc
        raise
    if local is not None:
        backbone.load_weights(str(local))
    return backbone


def _gray_to_rgb(x):
    return _keras().layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])


def build_mobilenetv2(weights: str | None = None, upsample: int = 2, alpha: float = 1.0,
                      dropout: float = 0.3, bn_momentum: float = 0.9,
                      input_shape: tuple[int, int, int] = INPUT_SHAPE):
    """MobileNetV2 backbone at 96x96 (48x48 upsampled bilinearly inside the graph).

    UpSampling2D, not Resizing: Keras 3.15's Resizing calls later layers in training mode.
    `bn_momentum`: Keras builds MobileNetV2's BatchNorm layers with momentum 0.999, so their moving statistics
    trail the weights by ~1000 steps; trained from random weights on FER2013 (449 steps per epoch) the model then
    predicted one class for 6 epochs in inference mode while training accuracy rose. 0.9 tracks within ~10 steps."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)  # MobileNetV2 expects [-1, 1]
    if upsample > 1:
        x = layers.UpSampling2D(upsample, interpolation="bilinear", name="upsample")(x)
    x = _gray_to_rgb(x)
    side = input_shape[0] * upsample
    backbone = _backbone(keras.applications.MobileNetV2, weights, input_shape=(side, side, 3), alpha=alpha)
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = bn_momentum
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="head_drop")(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="mobilenetv2")


def build_vgg16(weights: str | None = None, dense: int = 512, dropout: float = 0.5, batchnorm: bool = True,
                input_shape: tuple[int, int, int] = INPUT_SHAPE):
    """VGG16 backbone at 48x48 with Caffe-style mean subtraction (what VGG16's ImageNet weights expect).

    `batchnorm`: a BatchNormalization after each of the 13 conv+ReLU layers. VGG16 has none, and from random
    weights (all this machine can use) its 13 plain layers learn slowly; the conv layers are Keras' own, so
    ImageNet or local weights still load into them."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = _gray_to_rgb(inputs)
    # keras.applications.vgg16.preprocess_input ("caffe"): BGR order, ImageNet mean subtracted, no scaling;
    # the three channels are equal here, so only the means matter. Rescaling, not Normalization: tf2onnx turns
    # Normalization's mean and variance tensors into extra graph inputs.
    x = layers.Rescaling(1.0, offset=[-103.939, -116.779, -123.68], name="caffe_mean")(x)
    backbone = _backbone(keras.applications.VGG16, weights, input_shape=(input_shape[0], input_shape[1], 3))
    if batchnorm:
        for layer in backbone.layers[1:]:  # the same layer objects (and weights), with BatchNorm between
            x = layer(x)
            if isinstance(layer, layers.Conv2D):
                x = layers.BatchNormalization(momentum=0.9, name=f"{layer.name}_bn")(x)
    else:
        x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(dense, activation="relu", name="fc")(x)
    x = layers.Dropout(dropout, name="fc_drop")(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="vgg16")


def load_weights(model, path: Path) -> None:
    """Load every weight of `model` from a Keras weights file, or raise TrainingError naming the file.

    Strict: Keras only warns ("Skipping ...") when some layers find no weights in the file and leaves them at
    their random initial values; that is an error here too."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(path))
            skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)]
            if skipped:
                raise ValueError(skipped[0])
        except (ValueError, KeyError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrainingError(f"{path}: does not fit this {model.name} model ({first[:200]})") from None


def build(arch: str, weights: str | None = None, **kwargs):
    """Build one of ARCHS; `weights` applies to the transfer models only."""
    if arch == "scratch":
        return build_scratch(**kwargs)
    if arch == "mobilenetv2":
        return build_mobilenetv2(weights=weights, **kwargs)
    if arch == "vgg16":
        return build_vgg16(weights=weights, **kwargs)
    raise TrainingError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
