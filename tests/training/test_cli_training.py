"""The train / export-onnx / evaluate commands: exit codes, one-line errors, the missing-extra message."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import typer
from fer_tiny import tiny_arrays
from onnx_models import brightness_model, constant_model
from typer.testing import CliRunner

import emovid.cli_training as cli_training

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    cli_training.register(app)
    return app


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("command", ["train", "export-onnx"])
def test_missing_training_extra_prints_the_install_command(app, monkeypatch, tiny_fer, tmp_path, command):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    args = {"train": ["train", "--arch", "scratch", "--data", str(tiny_fer), "--out", str(tmp_path / "run")],
            "export-onnx": ["export-onnx", "--runs", str(tmp_path), "--data", str(tiny_fer), "--out",
                            str(tmp_path / "models")]}[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert "pip install 'emovid[train]'" in line and "tensorflow" in line
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_broken_training_install_prints_the_install_command(app, scratch_run, tiny_fer, tmp_path, monkeypatch):
    import training.export

    def broken(*args, **kwargs):
        raise ImportError("libtensorflow_framework.so.2: cannot open shared object file", name="tensorflow")

    monkeypatch.setattr(training.export, "export_run", broken)
    result = runner.invoke(app, ["export-onnx", "--runs", str(scratch_run.parent), "--data", str(tiny_fer),
                                 "--out", str(tmp_path), "--model", "scratch"])
    assert result.exit_code == 2 and "pip install 'emovid[train]'" in one_line(result.stderr)


def test_error_is_one_line_on_the_real_stderr(tmp_path):
    """In a real process (TensorFlow's C++ logging writes to fd 2, which CliRunner does not capture)."""
    import subprocess
    from pathlib import Path

    broken = tmp_path / "broken.csv"
    broken.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    code = ("import typer, emovid.cli_training as c\napp = typer.Typer()\nc.register(app)\n"
            f"app(['train', '--arch', 'scratch', '--data', {str(broken)!r}, '--out', {str(tmp_path / 'r')!r}])\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == f"error: {broken}: line 2: expected 2304 pixel values, got 3"


def test_train_on_a_broken_file_exits_1_with_one_line(app, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("emotion,pixels\n0,1 2 3\n")
    result = runner.invoke(app, ["train", "--arch", "scratch", "--data", str(broken), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert str(broken) in line and "line 1: missing column(s) Usage" in line


@pytest.mark.parametrize(
    "extra",
    [["--labels", "ferplus-soft"], ["--weights", "imagenet"], ["--arch", "resnet"], ["--epochs", "0"],
     ["--upsample", "1"], ["--learning-rate", "0"]],
)
def test_train_usage_errors_exit_2(app, tiny_fer, tmp_path, extra):
    args = ["train", "--arch", "scratch", "--data", str(tiny_fer), "--out", str(tmp_path / "r"), *extra]
    assert runner.invoke(app, args).exit_code == 2
    assert not (tmp_path / "r").exists()


def test_train_tiny_run(app, tiny_fer, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--arch", "scratch", "--data", str(tiny_fer), "--out", str(out), "--epochs", "1",
            "--batch-size", "14", "--limit", "14", "--precision", "float32", "--seed", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "scratch epoch 1/1" in result.stdout
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and state["config"]["seed"] == 7 and state["config"]["limit"] == 14


def test_train_learning_rate_and_upsample_reach_the_run(app, tiny_fer, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--arch", "mobilenetv2", "--data", str(tiny_fer), "--out", str(out), "--epochs", "1",
            "--batch-size", "14", "--limit", "14", "--precision", "float32", "--upsample", "1",
            "--learning-rate", "5e-4", "--augment", "video"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "state.json").read_text())["config"]
    assert config["model_kwargs"] == {"upsample": 1} and config["learning_rate"] == 5e-4
    assert config["augment"] == "video"


def test_export_onnx(app, scratch_run, tiny_fer, tmp_path):
    out = tmp_path / "models"
    result = runner.invoke(app, ["export-onnx", "--runs", str(scratch_run.parent), "--data", str(tiny_fer),
                                 "--out", str(out), "--model", "scratch"])
    assert result.exit_code == 0, result.output
    assert "scratch: wrote" in result.stdout and sorted(p.name for p in out.iterdir()) == ["scratch.onnx"]

    # all three by default: the missing runs are reported before anything is written
    result = runner.invoke(app, ["export-onnx", "--runs", str(scratch_run.parent), "--data", str(tiny_fer),
                                 "--out", str(tmp_path / "all")])
    assert result.exit_code == 1
    assert "mobilenetv2" in one_line(result.stderr) and not (tmp_path / "all").exists()


@pytest.fixture
def fake_models(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    brightness_model(folder / "scratch.onnx")
    constant_model(folder / "vgg16.onnx", [0.01] * 6 + [0.94])
    return folder


def test_evaluate_table_json_and_png(app, fake_models, fer_writer, tmp_path, monkeypatch):
    labels, usages, images = tiny_arrays()
    data = fer_writer("d.csv", labels, usages, images)
    monkeypatch.setattr(cli_training, "shipped_models_dir", lambda: fake_models)

    result = runner.invoke(app, ["evaluate", "--data", str(data)])  # default: every shipped model + ensemble
    assert result.exit_code == 0, result.output
    for word in ("PrivateTest", "scratch", "vgg16", "ensemble: mean of the probabilities of scratch, vgg16", "neutral"):
        assert word in result.stdout

    png = tmp_path / "cm.png"
    result = runner.invoke(app, ["evaluate", "--data", str(data), "--model", "vgg16", "--model",
                                 str(fake_models / "scratch.onnx"), "--split", "PublicTest", "--json",
                                 "--confusion-png", str(png)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "PublicTest" and [m["name"] for m in report["models"]] == ["vgg16", "scratch"]
    assert report["models"][0]["accuracy"] == pytest.approx(3 / 21)  # always neutral: 3 of the 21 are
    assert png.read_bytes()[:4] == b"\x89PNG"

    result = runner.invoke(app, ["evaluate", "--data", str(data), "--model", "ensemble", "--json"])
    assert [m["name"] for m in json.loads(result.stdout)["models"]] == ["scratch", "vgg16", "ensemble"]

    # an int8 copy is evaluated by name, and is not part of the default list
    constant_model(fake_models / "scratch-int8.onnx", [0.94] + [0.01] * 6)
    result = runner.invoke(app, ["evaluate", "--data", str(data), "--model", "scratch-int8", "--json"])
    report = json.loads(result.stdout)
    assert [m["name"] for m in report["models"]] == ["scratch-int8"]
    assert report["models"][0]["accuracy"] == pytest.approx(3 / 21)  # always angry
    result = runner.invoke(app, ["evaluate", "--data", str(data), "--json"])
    assert [m["name"] for m in json.loads(result.stdout)["models"]] == ["scratch", "vgg16", "ensemble"]


def test_evaluate_errors(app, fake_models, tiny_fer, tmp_path, monkeypatch):
    monkeypatch.setattr(cli_training, "shipped_models_dir", lambda: tmp_path / "empty")
    assert runner.invoke(app, ["evaluate", "--data", str(tiny_fer)]).exit_code == 2  # nothing shipped
    assert runner.invoke(app, ["evaluate", "--data", str(tiny_fer), "--model", "mobilenetv2"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--data", str(tiny_fer), "--model", "resnet"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--data", str(tiny_fer), "--model", "vgg16-int8"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--data", str(tiny_fer), "--split", "Valid"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--data", str(tmp_path / "no.csv")]).exit_code == 2

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    result = runner.invoke(app, ["evaluate", "--data", str(tiny_fer), "--model", str(junk)])
    assert result.exit_code == 1 and "junk.onnx: not a loadable ONNX model" in one_line(result.stderr)

    shutil.copy(fake_models / "scratch.onnx", tmp_path / "scratch.onnx")
    broken = tmp_path / "broken.csv"
    broken.write_text("emotion,pixels,Usage\n9,1,PrivateTest\n")
    result = runner.invoke(app, ["evaluate", "--data", str(broken), "--model", str(tmp_path / "scratch.onnx")])
    assert result.exit_code == 1 and "line 2" in one_line(result.stderr)


def test_registered_on_the_emovid_app():
    cli = pytest.importorskip("emovid.cli", reason="emovid/cli.py is not written yet")
    for command in ("train", "export-onnx", "evaluate"):
        result = runner.invoke(cli.app, [command, "--help"])
        assert result.exit_code == 0, result.output
