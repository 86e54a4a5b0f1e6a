"""The peer: the `fer` package (justinshenk/fer) analysing the same video, in its own virtual environment.

`fer==25.10.2` with `setuptools<81` and `opencv-contrib-python<5` (its model and Haar cascade ship in the wheel,
so it runs offline once installed) goes into a venv of its own (default /tmp/emovid-bench/fer-venv, about 8 GB
with TensorFlow and torch): it is never a dependency of emovid. `ensure_venv` creates it once with pip;
`run_peer` times one whole `fer` process on a video in its Haar mode (`FER(mtcnn=False)`, `Video.analyze` with
every frame analysed and nothing saved) and reports both the analysis-only speed and the whole-process speed.

`peer_emotion_model` converts fer's emotion model (mini-Xception, 64x64 input) to an ONNX file that follows
emovid's contract (48x48 0-255 in, 7 probabilities out; resizing and scaling inside the graph), with
TensorFlow + tf2onnx from emovid's `[train]` extra. The benchmarks use it only as a *trained* stand-in to measure
how faster paths change a timeline when no emovid model ships yet; it is never shipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS = ("fer==25.10.2", "setuptools<81", "opencv-contrib-python<5")

PEER_SCRIPT = r'''
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
started = time.perf_counter()
import cv2
from fer import FER, Video
imported = time.perf_counter()
detector = FER(mtcnn=False)
video = Video(sys.argv[1], outdir=sys.argv[2])
ready = time.perf_counter()
video.analyze(detector, display=False, save_frames=False, save_video=False, annotate_frames=False,
              zip_images=False)
done = time.perf_counter()
capture = cv2.VideoCapture(sys.argv[1])
frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
print(json.dumps({"frames": frames, "import_s": imported - started, "load_s": ready - imported,
                  "analyse_s": done - ready}))
'''


@dataclass(frozen=True)
class PeerVenv:
    python: Path | None
    reason: str  # why python is None ("" when it is available)
    version: str = ""


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip() and "is ignored: it is neither" not in line]
    return " / ".join(kept[-lines:])[:400]


def ensure_venv(folder: Path, log: Path, timeout_s: float = 3600) -> PeerVenv:
    """The peer's venv, created and filled with pip when missing. Never raises: failures come back as a reason."""
    python = folder / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('fer'))"]
    try:
        if python.is_file():
            done = subprocess.run(check, capture_output=True, text=True, timeout=600)
            if done.returncode == 0:
                return PeerVenv(python, "", done.stdout.strip())
        log.parent.mkdir(parents=True, exist_ok=True)
        if not python.is_file():
            venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        with open(log, "w") as out:
            done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                                   *REQUIREMENTS], stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
        if done.returncode != 0:
            return PeerVenv(None, f"pip install {' '.join(REQUIREMENTS)} failed: {_tail(log.read_text())}")
        done = subprocess.run(check, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return PeerVenv(None, f"fer does not import after installing: {_tail(done.stderr)}")
        return PeerVenv(python, "", done.stdout.strip())
    except (OSError, subprocess.SubprocessError) as exc:
        return PeerVenv(None, f"could not set up the peer venv in {folder}: {type(exc).__name__}: {exc}"[:400])


def peer_script(cache: Path) -> Path:
    path = cache / "fer_peer.py"
    if not path.is_file() or path.read_text() != PEER_SCRIPT:
        path.write_text(PEER_SCRIPT)
    return path


def parse_peer_output(stdout: str) -> dict[str, float]:
    """The JSON line the peer script prints last."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no result line in the peer's output: {stdout[-200:]!r}")


def peer_emotion_model(peer_python: Path, cache: Path) -> tuple[Path | None, str]:
    """fer's emotion model as an emovid-contract ONNX file (see the module docstring), or (None, reason)."""
    out = cache / "fer_mini_xception.onnx"
    if out.is_file():
        return out, ""
    found = subprocess.run([str(peer_python), "-c", "import fer, pathlib; "
                            "print(pathlib.Path(fer.__file__).parent / 'data' / 'emotion_model.hdf5')"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        return None, f"fer's model not found: {_tail(found.stderr)}"
    code = CONVERT_SCRIPT.format(source=found.stdout.strip(), out=str(out))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0 or not out.is_file():
        return None, f"conversion needs emovid's [train] extra (TensorFlow, tf2onnx): {_tail(done.stderr, 1)}"
    return out, ""


CONVERT_SCRIPT = r'''
import json, os
import keras, numpy as np, onnx, tensorflow as tf, tf2onnx
from emovid import EMOTIONS
model = keras.models.load_model({source!r}, compile=False)

@tf.function(input_signature=[tf.TensorSpec([None, 48, 48, 1], tf.float32, name="image")])
def serve(image):
    x = tf.image.resize(image, (64, 64), method="bilinear")
    return {{"probs": model((x / 255.0 - 0.5) * 2.0, training=False)}}

proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=17)
onnx.helper.set_model_props(proto, {{
    "emovid.contract": "1", "emovid.labels": json.dumps(list(EMOTIONS)), "emovid.arch": "fer-mini-xception",
    "emovid.input": "float32 [N,48,48,1] grayscale 0-255", "emovid.output": "float32 [N,7] probabilities"}})
temp = {out!r} + f".tmp-{{os.getpid()}}"
onnx.save(proto, temp)
os.replace(temp, {out!r})
'''
