"""Tiny FER2013-format data for the training tests: images, labels and file writers (no fixtures here)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

SPLIT_SIZES = {"Training": 42, "PublicTest": 21, "PrivateTest": 21}
TINY_SCRATCH = {"widths": [8, 16], "dense": 16}
TINY_MOBILENET = {"alpha": 0.35}  # the default 48 -> 96 upsampling, the layout that matters for export


def make_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """uint8 [N,48,48] face-sized images: smooth random blobs plus a class-dependent gradient, so a few
    training steps give class-dependent, non-constant outputs."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 160, (len(labels), 6, 6))
    images = np.kron(coarse, np.ones((8, 8)))
    ramp = np.linspace(0.0, 1.0, 48)
    for i, label in enumerate(labels):
        angle = np.pi * label / 7
        images[i] += 90 * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
    images += rng.normal(0, 8, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def fer_text(labels, usages, images) -> str:
    lines = ["emotion,pixels,Usage"]
    for label, usage, image in zip(labels, usages, images, strict=True):
        lines.append(f"{int(label)},{' '.join(map(str, np.asarray(image).ravel().tolist()))},{usage}")
    return "\n".join(lines) + "\n"


def write_fer(path: Path, labels, usages, images) -> Path:
    text = fer_text(labels, usages, images)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def tiny_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    usages = np.array([s for s, n in SPLIT_SIZES.items() for _ in range(n)], dtype=object)
    labels = np.arange(len(usages)) % 7
    return labels, usages, make_images(labels, seed)


def train_tiny(arch: str, out_dir: Path, data: Path, resume: bool = False, log=lambda _: None, **overrides):
    """`training.train.train` with test-sized settings: float32, batch 14, one epoch, no warm-up."""
    from training.train import TrainConfig, train

    settings = {"epochs": 1, "batch_size": 14, "warmup_epochs": 0, "precision": "float32", **overrides}
    config = TrainConfig(arch=arch, data=str(data), out_dir=str(out_dir), **settings)
    return train(config, resume=resume, log=log)
