"""evaluate: accuracy, recall and confusion matrices equal to what is counted by hand; no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_models import CENTERS, brightness_model, brightness_reference, constant_model

from training import EMOTIONS, TrainingError
from training.evaluate import evaluate, open_session, predict, save_confusion_png

# PrivateTest: the brightness model predicts PREDICTED; the true labels are LABELS.
PREDICTED = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6]
LABELS = [0, 1, 2, 3, 4, 5, 6, 1, 1, 2, 6, 6, 6, 6]
NEUTRAL_HEAVY = [0.01] * 6 + [0.94]


@pytest.fixture
def known(tmp_path, fer_writer):
    """A file whose PrivateTest answers are known, plus a brightness model and an always-neutral model."""
    brightness = np.array([CENTERS[k] for k in PREDICTED] + [CENTERS[3]] * 3)
    images = np.broadcast_to(brightness[:, None, None], (len(brightness), 48, 48)).round().astype(np.uint8)
    labels = LABELS + [3, 3, 0]  # PublicTest: two of three right
    usages = ["PrivateTest"] * 14 + ["PublicTest"] * 3
    data = fer_writer("known.csv", labels, usages, images)
    return data, brightness_model(tmp_path / "bright.onnx"), constant_model(tmp_path / "neutral.onnx", NEUTRAL_HEAVY)


def test_accuracy_recall_and_confusion_by_hand(known):
    data, bright, neutral = known
    result = evaluate([("bright", bright), ("neutral", neutral)], data)
    assert (result.split, result.n_images, result.labels) == ("PrivateTest", 14, list(EMOTIONS))

    b = result.score("bright")
    assert b.accuracy == pytest.approx(10 / 14, abs=1e-12)
    assert b.per_class_recall == {"angry": 1.0, "disgust": pytest.approx(2 / 3), "fear": 1.0, "happy": 1.0,
                                  "sad": 1.0, "surprise": 1.0, "neutral": pytest.approx(2 / 5)}
    expected = np.zeros((7, 7), int)
    for true, pred in zip(LABELS, PREDICTED, strict=True):
        expected[true, pred] += 1
    assert b.confusion == expected.tolist() and b.metadata["emovid.arch"] == "brightness"

    n = result.score("neutral")
    assert n.accuracy == pytest.approx(5 / 14, abs=1e-12)
    assert n.per_class_recall["neutral"] == 1.0 and n.per_class_recall["angry"] == 0.0

    # The brightness model is only ~0.56 confident, so the mean with the 0.94-neutral model always says neutral.
    e = result.score("ensemble")
    assert e.members == ["bright", "neutral"] and e.path is None
    assert e.accuracy == pytest.approx(5 / 14, abs=1e-12)
    assert np.asarray(e.confusion)[:, 6].sum() == 14

    public = evaluate([("bright", bright)], data, split="PublicTest")
    assert public.score("bright").accuracy == pytest.approx(2 / 3)
    assert [m.name for m in public.models] == ["bright"]  # no ensemble of one
    assert public.score("bright").per_class_recall["fear"] is None  # no fear image in that split


def test_batched_prediction_matches_numpy(known):
    data, bright, _ = known
    images = np.random.default_rng(0).uniform(0, 255, (300, 48, 48)).astype(np.uint8)
    probs = predict(open_session(bright), images, batch_size=256)  # 256 + 44
    np.testing.assert_allclose(probs, brightness_reference(images), atol=1e-5)


def test_json_and_png(known, tmp_path):
    data, bright, neutral = known
    result = evaluate([("bright", bright), ("neutral", neutral)], data)
    loaded = json.loads(result.to_json())
    assert [m["name"] for m in loaded["models"]] == ["bright", "neutral", "ensemble"]
    assert loaded["models"][0]["accuracy"] == pytest.approx(10 / 14)
    assert loaded["data_sha256"] == result.data_sha256 and len(result.data_sha256) == 64
    png = save_confusion_png(result, tmp_path / "plots" / "confusion.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in png.parent.iterdir()) == ["confusion.png"]


def test_model_errors(known, tmp_path):
    data, bright, _ = known
    with pytest.raises(TrainingError, match="model file not found"):
        evaluate([("x", tmp_path / "missing.onnx")], data)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(TrainingError, match="junk.onnx: not a loadable ONNX model"):
        evaluate([("junk", junk)], data)
    with pytest.raises(TrainingError, match="unique"):
        evaluate([("a", bright), ("a", bright)], data)
    with pytest.raises(TrainingError, match="unknown split"):
        evaluate([("a", bright)], data, split="Validation")


def test_evaluate_never_imports_tensorflow(known):
    data, bright, neutral = known
    code = (
        "import sys, typer\n"
        "from typer.testing import CliRunner\n"
        "from emovid.cli_training import register\n"
        "app = typer.Typer()\n"
        "register(app)\n"
        f"r = CliRunner().invoke(app, ['evaluate', '--data', {str(data)!r}, '--model', {str(bright)!r},"
        f" '--model', {str(neutral)!r}, '--model', 'ensemble', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "import json; assert json.loads(r.stdout)['models'][2]['name'] == 'ensemble'\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
