"""Train one architecture on a FER2013-format file: augmentation, class balancing, warm-up + cosine
learning rate, early stopping on PublicTest, best checkpoint kept, resumable after an interruption."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training import ARCHS, EMOTIONS, TrainingError
from training.data import FerData, load_fer2013, load_ferplus_votes

LABEL_MODES = ("fer2013", "ferplus-majority", "ferplus-soft")
AUGMENTATIONS = ("standard", "video")  # video adds what real footage does to faces: blur, sensor noise, occlusion


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    data: str
    out_dir: str
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: int = 2
    patience: int = 12
    label_smoothing: float = 0.1
    class_weight_power: float = 0.5  # weight = (n_max / n_class) ** power, renormalised to mean 1
    labels: str = "fer2013"
    ferplus: str | None = None
    ferplus_index: str | None = None
    weights: str | None = None  # transfer models: imagenet | none | PATH
    init_from: str | None = None  # warm start: all weights from a previous run of the same arch (best.weights.h5)
    precision: str = "mixed_bfloat16"  # for CPUs with AVX512-BF16; float32 is faster elsewhere
    augment: str = "standard"  # standard | video (see AUGMENTATIONS)
    seed: int = 1234
    limit: int | None = None  # use the first N training rows (tests, smoke runs)
    model_kwargs: dict = field(default_factory=dict)


@dataclass
class TrainState:
    """What --resume needs beyond the Keras checkpoint; written after every epoch."""

    epoch: int = 0
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    wall_s: float = 0.0
    finished: bool = False
    config: dict = field(default_factory=dict)
    data_sha256: str = ""


class Paths:
    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.last = self.root / "last.keras"
        self.best = self.root / "best.weights.h5"
        self.state = self.root / "state.json"
        self.history = self.root / "history.csv"
        self.plot = self.root / "history.png"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def class_weights(labels: np.ndarray, power: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    weights = (counts.max() / counts) ** power
    weights /= (weights * counts).sum() / counts.sum()  # mean weight over samples = 1
    return weights.astype(np.float32)


def training_targets(data: FerData, config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 [N,48,48,1], soft targets float32 [N,7], hard labels [N]) of the Training split."""
    split = data.split("Training")
    images, labels = split.images, split.labels
    targets = np.eye(len(EMOTIONS), dtype=np.float32)[labels]
    if config.labels != "fer2013":
        if config.labels not in LABEL_MODES:
            raise TrainingError(f"unknown --labels {config.labels!r}; expected one of {', '.join(LABEL_MODES)}")
        if not config.ferplus:
            raise TrainingError(f"--labels {config.labels} needs --ferplus FILE (fer2013new.csv)")
        votes = load_ferplus_votes(config.ferplus, len(data.labels), config.ferplus_index)[split.rows]
        keep = votes.sum(axis=1) > 0
        images, votes = images[keep], votes[keep]
        labels = votes.argmax(axis=1)
        if config.labels == "ferplus-majority":
            targets = np.eye(len(EMOTIONS), dtype=np.float32)[labels]
        else:
            targets = votes / votes.sum(axis=1, keepdims=True)
    if config.limit:
        images, targets, labels = images[: config.limit], targets[: config.limit], labels[: config.limit]
    return images[..., None], targets, labels


def _augmenter(seed: int, kind: str = "standard"):
    import keras

    if kind not in AUGMENTATIONS:
        raise TrainingError(f"unknown augmentation {kind!r}; expected one of {', '.join(AUGMENTATIONS)}")
    layers = keras.layers
    steps = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),  # +-15 degrees
        layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
        layers.RandomZoom((-0.15, 0.15), fill_mode="reflect", seed=seed + 3),
        layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 4),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 5),
    ]
    if kind == "video":
        steps.append(_video_degradation(seed + 6))
    return keras.Sequential(steps, name="augment")


def _video_degradation(seed: int):
    """A Keras layer that degrades a batch of 0-255 faces as real footage does: focus and motion blur, small
    faces upscaled, sensor noise, a hand or microphone over part of the face. Batch-wide tensor ops, so it costs
    little next to the model, unlike Keras' per-image blur and erasing layers."""
    import keras
    import tensorflow as tf

    class VideoDegradation(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.generator = keras.random.SeedGenerator(seed)
            g = np.exp(-0.5 * np.arange(-1, 2) ** 2)
            kernel = np.outer(g, g) / np.outer(g, g).sum()
            self.kernel = tf.constant(kernel[:, :, None, None], tf.float32)

        def call(self, images, training=None):
            if not training:
                return images
            x = tf.cast(images, tf.float32)
            n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]

            def uniform(shape, low=0.0, high=1.0):
                return keras.random.uniform(shape, low, high, seed=self.generator)

            blurred = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT"), self.kernel, 1, "VALID")
            amount = uniform((n, 1, 1, 1))
            x = x + amount * (blurred - x)
            side = tf.cast(uniform((), 16.0, 40.0), tf.int32)  # one size per batch: a resize per image is slow
            small = tf.image.resize(tf.image.resize(x, [side, side], "area"), [h, w], "bilinear")
            x = tf.where(uniform((n, 1, 1, 1)) < 0.3, small, x)
            x = x + keras.random.normal(tf.shape(x), stddev=0.025 * 255.0, seed=self.generator)
            area = uniform((n, 1, 1, 1), 0.02, 0.12) * (h * w)
            aspect = tf.exp(uniform((n, 1, 1, 1), -0.7, 0.7))
            half_h, half_w = tf.sqrt(area * aspect) / 2, tf.sqrt(area / aspect) / 2
            cy, cx = uniform((n, 1, 1, 1), 0.0, float(h)), uniform((n, 1, 1, 1), 0.0, float(w))
            rows = tf.range(h, dtype=tf.float32)[None, :, None, None]
            cols = tf.range(w, dtype=tf.float32)[None, None, :, None]
            patch = (tf.abs(rows - cy) < half_h) & (tf.abs(cols - cx) < half_w) & (uniform((n, 1, 1, 1)) < 0.25)
            x = tf.where(patch, uniform((n, 1, 1, 1), 0.0, 255.0), x)
            return tf.clip_by_value(x, 0.0, 255.0)

    return VideoDegradation(name="video_degradation")


def _datasets(images, targets, labels, val_images, val_labels, config: TrainConfig):
    import tensorflow as tf

    weights = class_weights(labels, config.class_weight_power)[labels]
    augment = _augmenter(config.seed, config.augment)
    train = (
        tf.data.Dataset.from_tensor_slices((images, targets, weights))
        .shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .map(lambda x, y, w: (augment(tf.cast(x, tf.float32), training=True), y, w),
             num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val_targets = np.eye(len(EMOTIONS), dtype=np.float32)[val_labels]
    val = (
        tf.data.Dataset.from_tensor_slices((val_images[..., None].astype(np.float32), val_targets))
        .batch(256)
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, val


def _compile(model, config: TrainConfig, steps_per_epoch: int):
    import keras

    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(config.warmup_epochs * steps_per_epoch, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10,
        decay_steps=total - warmup,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
        alpha=0.01,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def _warm_start(model, path: Path) -> None:
    """Load every weight of `model` from a previous run (its folder or a weights file; same architecture)."""
    from training.models import load_weights

    if path.is_dir():
        path = Paths(path).best
    if not path.exists():
        raise TrainingError(f"--init-from: {path} not found; pass a run folder or its best.weights.h5")
    try:
        load_weights(model, path)
    except TrainingError as exc:
        raise TrainingError(f"--init-from: {exc}") from None


def plot_history(history_csv: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.read_csv(history_csv)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(frame["epoch"], frame["loss"], label="train")
    ax_loss.plot(frame["epoch"], frame["val_loss"], label="PublicTest")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(frame["epoch"], frame["accuracy"], label="train (augmented)")
    ax_acc.plot(frame["epoch"], frame["val_accuracy"], label="PublicTest")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png)


def train(config: TrainConfig, resume: bool = False, log=print, data: FerData | None = None) -> TrainState:
    """Train `config.arch`; with `resume`, continue from `out_dir/last.keras` if it is there."""
    if config.arch not in ARCHS:
        raise TrainingError(f"unknown architecture {config.arch!r}; expected one of {', '.join(ARCHS)}")
    import keras

    from training.models import build

    paths = Paths(config.out_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else load_fer2013(config.data)
    images, targets, labels = training_targets(data, config)
    val = data.split("PublicTest")
    if len(images) == 0 or len(val) == 0:
        raise TrainingError(f"{config.data}: needs Training and PublicTest rows")

    keras.mixed_precision.set_global_policy(config.precision)
    state = TrainState(config=asdict(config), data_sha256=data.sha256)
    if resume and paths.last.exists() and paths.state.exists():
        state = TrainState(**json.loads(paths.state.read_text()))
        if state.finished:
            log(f"{config.arch}: already finished ({state.epoch} epochs, "
                f"best PublicTest {state.best_val_accuracy:.4f})")
            return state
        model = keras.models.load_model(paths.last)
        log(f"{config.arch}: resuming after epoch {state.epoch} (best PublicTest {state.best_val_accuracy:.4f})")
    else:
        if resume:
            log(f"{config.arch}: nothing to resume in {paths.root}; starting fresh")
        for stale in (paths.last, paths.best, paths.state, paths.history):
            stale.unlink(missing_ok=True)
        keras.utils.set_random_seed(config.seed)
        model = build(config.arch, weights=config.weights, **config.model_kwargs)
        if config.init_from:
            _warm_start(model, Path(config.init_from))
            log(f"{config.arch}: warm start from {config.init_from}")
        steps = int(np.ceil(len(images) / config.batch_size))
        _compile(model, config, steps)
        log(f"{config.arch}: {model.count_params():,} parameters, {len(images)} training images, "
            f"{len(val)} PublicTest images, {config.epochs} epochs, {config.precision}")

    # Reseeding per epoch keeps a resumed run on the same shuffles and augmentations as an uninterrupted one.
    for epoch in range(state.epoch, config.epochs):
        keras.utils.set_random_seed(config.seed + epoch)
        train_ds, val_ds = _datasets(images, targets, labels, val.images, val.labels, config)
        start = time.monotonic()
        history = model.fit(train_ds, validation_data=val_ds, epochs=1, verbose=0)
        seconds = time.monotonic() - start
        metrics = {k: float(v[-1]) for k, v in history.history.items()}
        state.epoch = epoch + 1
        state.wall_s += seconds
        improved = metrics["val_accuracy"] > state.best_val_accuracy
        if improved:
            state.best_val_accuracy, state.best_epoch = metrics["val_accuracy"], state.epoch
            state.epochs_without_improvement = 0
            model.save_weights(paths.best.with_name(".best.tmp.weights.h5"))
            paths.best.with_name(".best.tmp.weights.h5").replace(paths.best)
        else:
            state.epochs_without_improvement += 1
        new_file = not paths.history.exists()
        with open(paths.history, "a") as handle:
            if new_file:
                handle.write("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n")
            handle.write(f"{state.epoch},{metrics['loss']:.5f},{metrics['accuracy']:.5f},"
                         f"{metrics['val_loss']:.5f},{metrics['val_accuracy']:.5f},{seconds:.1f}\n")
        stop = state.epochs_without_improvement >= config.patience
        state.finished = stop or state.epoch >= config.epochs
        tmp_model = paths.last.with_name(".last.tmp.keras")
        model.save(tmp_model)
        tmp_model.replace(paths.last)
        _atomic_write_text(paths.state, json.dumps(asdict(state), indent=2))
        log(f"{config.arch} epoch {state.epoch}/{config.epochs}: loss {metrics['loss']:.4f} "
            f"acc {metrics['accuracy']:.4f} val_loss {metrics['val_loss']:.4f} val_acc {metrics['val_accuracy']:.4f}"
            f"{' *' if improved else ''} ({seconds:.0f} s)")
        if stop:
            log(f"{config.arch}: early stop, no PublicTest improvement for {config.patience} epochs")
            break
    plot_history(paths.history, paths.plot)
    state.finished = True
    _atomic_write_text(paths.state, json.dumps(asdict(state), indent=2))
    log(f"{config.arch}: done, best PublicTest accuracy {state.best_val_accuracy:.4f} at epoch {state.best_epoch}, "
        f"{state.wall_s / 60:.1f} min")
    return state
