"""The shipped models by name. Emotion models: `scratch`, `mobilenetv2`, `vgg16`, their int8 copies `<name>-int8`,
the `ensemble` of all of them and `best`. Face detectors: `centerface`, its int8 copy `centerface-int8` and `auto`.
Every command resolves model names here; nothing heavy is imported."""

from __future__ import annotations

from pathlib import Path

SHIPPED = ("scratch", "mobilenetv2", "vgg16")
INT8_SUFFIX = "-int8"  # <name>-int8.onnx: the int8 copy of a shipped model (training.quantize)
ENSEMBLE = "ensemble"
BEST = "best"
MODEL_CHOICES = (BEST, *SHIPPED, ENSEMBLE)
DETECTOR_AUTO = "auto"  # centerface-int8 on the CPU, centerface (float) on a GPU
DETECTORS = (DETECTOR_AUTO, "centerface", "centerface-int8")


def shipped_models_dir() -> Path:
    """emovid/models inside the installed package."""
    from importlib.resources import files

    return Path(str(files("emovid") / "models"))


def shipped_models(models_dir: Path | None = None) -> dict[str, Path]:
    """{name: path} of the shipped emotion models present, in SHIPPED order."""
    folder = models_dir or shipped_models_dir()
    return {name: folder / f"{name}.onnx" for name in SHIPPED if (folder / f"{name}.onnx").is_file()}


def int8_twin(name: str, models_dir: Path | None = None) -> Path | None:
    """The shipped int8 copy of shipped model `name` (emovid/models/<name>-int8.onnx), or None."""
    path = (models_dir or shipped_models_dir()) / f"{name}{INT8_SUFFIX}.onnx"
    return path if path.is_file() else None


def is_shipped_name(name: str) -> bool:
    """True for a shipped model's name or its int8 copy's (`scratch`, `scratch-int8`...)."""
    return name in SHIPPED or (name.endswith(INT8_SUFFIX) and name[:-len(INT8_SUFFIX)] in SHIPPED)


def shipped_path(name: str, models_dir: Path | None = None) -> Path:
    """Where shipped model `name` (is_shipped_name) lives; it may be missing (the caller says so its way)."""
    return (models_dir or shipped_models_dir()) / f"{name}.onnx"


def detector_path(name: str) -> Path:
    """The ONNX file of shipped face detector `name` (centerface or centerface-int8)."""
    return Path(__file__).resolve().parent / "models" / f"{name}.onnx"
