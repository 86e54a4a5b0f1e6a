"""Nothing touches the network at run time: the whole pipeline runs with every socket refused, in this process
(typer's CliRunner) and in a fresh `python` whose sockets are refused before emovid is even imported."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import media
import pytest
from onnx_models import brightness_model
from typer.testing import CliRunner

from emovid.cli import app

REPO = Path(__file__).resolve().parents[2]

GUARD = """
import socket, sys

def _refuse(*args, **kwargs):
    sys.stderr.write("NETWORK ATTEMPT\\n")
    raise OSError("network access is disabled in this test")

class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        _refuse()

socket.socket = _NoSocket
socket.create_connection = socket.getaddrinfo = socket.gethostbyname = _refuse
"""


@pytest.fixture
def clip(tmp_path) -> tuple[Path, Path]:
    video = media.make_face_video(tmp_path / "clip.mp4", duration_s=1.0, audio=True).path
    return video, brightness_model(tmp_path / "tiny.onnx")


@pytest.fixture
def no_network(monkeypatch) -> list[tuple]:
    """Every way to open a connection raises; the attempts are recorded (in case something swallows the error)."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is disabled in this test")

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            refuse(*args)

    monkeypatch.setattr(socket, "socket", NoSocket)
    for name in ("create_connection", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)
    with pytest.raises(OSError):
        socket.create_connection(("example.com", 80))
    attempts.clear()
    return attempts


@pytest.mark.parametrize("command", ["annotate", "timeline"])
def test_the_cli_runs_with_sockets_disabled(tmp_path, clip, no_network, command):
    video, model = clip
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [command, str(video), "--model", str(model), "--out", str(out), "--per-frame"])
    assert result.exit_code == 0, result.output
    assert (out / "clip.timeline.csv").is_file() and (out / "clip.timeline.png").is_file()
    assert (out / "clip.annotated.mp4").is_file() == (command == "annotate")
    assert no_network == []


def test_a_fresh_process_never_opens_a_socket(tmp_path, clip):
    video, model = clip
    out = tmp_path / "out"
    code = GUARD + "from emovid.cli import main\nsys.argv[0] = 'emovid'\nmain()\n"
    done = subprocess.run([sys.executable, "-c", code, "annotate", str(video), "--model", str(model), "--out",
                           str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "NETWORK ATTEMPT" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["clip.annotated.mp4", "clip.emovid.json", "clip.timeline.csv",
                                                     "clip.timeline.png"]
