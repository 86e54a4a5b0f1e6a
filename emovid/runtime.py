"""ONNX Runtime sessions on the best available execution provider, with a tested CPU fallback."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from emovid.errors import DeviceError, ModelError

log = logging.getLogger("emovid.runtime")


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    tensorrt = "tensorrt"


_PROVIDERS = {
    Device.cpu: ["CPUExecutionProvider"],
    Device.cuda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    Device.tensorrt: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_SHORT = {"TensorrtExecutionProvider": "TensorRT", "CUDAExecutionProvider": "CUDA", "CPUExecutionProvider": "CPU"}


@dataclass(frozen=True)
class RuntimeInfo:
    provider: str  # e.g. "CUDAExecutionProvider"
    device: Device

    def describe(self) -> str:
        return f"ONNX Runtime: running on {_SHORT.get(self.provider, self.provider)} ({self.provider})"


def _ort():
    import onnxruntime as ort

    # 4 = fatal only: a CUDA provider that cannot load logs an error before falling back, which is expected
    # on CPU-only machines; create_session reports the provider really in use instead.
    ort.set_default_logger_severity(4)
    return ort


def cuda_offered() -> bool:
    """Whether CUDA is worth trying: this onnxruntime build lists the CUDA provider and the NVIDIA driver library
    loads (onnxruntime-gpu lists CUDA on machines without a GPU too; it may still fail to start)."""
    return "CUDAExecutionProvider" in _ort().get_available_providers() and gpu_driver_present()


_DRIVER_LIBRARIES = {"win32": ("nvcuda.dll",), "linux": ("libcuda.so.1", "libcuda.so")}


@functools.cache
def gpu_driver_present() -> bool:
    """Whether the NVIDIA driver's CUDA library (libcuda / nvcuda.dll) loads. Without it neither the CUDA nor the
    TensorRT provider can start, so `auto` goes straight to the CPU: trying CUDA first costs time per model at every
    start on machines with onnxruntime-gpu and no GPU."""
    import ctypes

    for name in _DRIVER_LIBRARIES.get(sys.platform, ()):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def cpu_only(device: Device | str) -> bool:
    """True when `device` can only mean the CPU (cpu, or auto where onnxruntime offers no CUDA)."""
    device = Device(device)
    return device is Device.cpu or (device is Device.auto and not cuda_offered())


SessionConfig = Callable[[object], None]  # called with an onnxruntime.SessionOptions to change it in place


def session_options(intra_op_threads: int = 0, spinning: bool = False, session_config: SessionConfig | None = None):
    """All graph optimisations; `intra_op_threads` 0 = ONNX Runtime's default (one per physical core).

    `spinning=False` (emovid's default) stops idle intra-op threads from busy-waiting for the next run: the
    pipeline decodes and encodes in other threads between two inference calls, and spinning threads took
    their cores. `session_config`, when given, is called last with the SessionOptions, so it can change any ONNX
    Runtime setting, emovid's included (e.g. `lambda o: o.add_session_config_entry(key, value)`); it is how the
    benchmarks try settings emovid does not expose, and it reaches every session through `session_config` of
    create_session, CenterFaceDetector, load_classifier and pipeline.load_models.
    """
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.log_severity_level = 4
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if session_config is not None:
        session_config(options)
    return options


def create_session(model_path: str | Path, device: Device | str = Device.auto, intra_op_threads: int = 0,
                   session_config: SessionConfig | None = None):
    """Create an InferenceSession and report which provider actually runs it.

    `auto` tries CUDA when onnxruntime offers it and keeps it only if the session really uses it
    (onnxruntime-gpu lists CUDA even on machines without a GPU). `cuda`/`tensorrt` on a machine that
    cannot run them raise DeviceError; `cpu` never touches the GPU.
    """
    ort = _ort()
    device = Device(device)
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    available = set(ort.get_available_providers())
    if device is Device.auto:
        wanted = _PROVIDERS[Device.cuda] if cuda_offered() else _PROVIDERS[Device.cpu]
    else:
        wanted = _PROVIDERS[device]
        if wanted[0] not in available:
            raise DeviceError(f"--device {device.value}: this onnxruntime build has no {wanted[0]} "
                              f"(available: {', '.join(sorted(available))})")
    # onnxruntime print()s a multi-line "EP Error" banner when a GPU provider fails to start and it falls back to the
    # CPU: caught on its way to stdout. Only then: redirect_stdout swaps sys.stdout for every thread, and emovid
    # loads its models in a thread while the main one goes on (pipeline.ModelsLoading).
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed) if wanted != _PROVIDERS[Device.cpu] else contextlib.nullcontext():
            options = session_options(intra_op_threads, session_config=session_config)
            session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable ONNX model ({first[:200]})") from exc
    finally:
        if printed.getvalue().strip():
            log.debug("%s: onnxruntime said: %s", path, " ".join(printed.getvalue().split()))
    used = session.get_providers()[0]
    if device in (Device.cuda, Device.tensorrt) and used != wanted[0]:
        raise DeviceError(f"--device {device.value}: {wanted[0]} could not start on this machine "
                          "(no GPU, or CUDA/cuDNN libraries missing); use --device cpu or auto")
    return session, RuntimeInfo(provider=used, device=device)
