"""A few training steps per architecture on tiny data, and --resume after an interruption."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fer_tiny import TINY_SCRATCH, train_tiny

from training import TrainingError
from training.export import load_run_model


def _history(run):
    lines = (run / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds"
    return [line.split(",") for line in lines[1:]]


def _check_run(run, epochs: int):
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == epochs and state["finished"]
    assert [row[0] for row in _history(run)] == [str(e) for e in range(1, epochs + 1)]
    for name in ("last.keras", "best.weights.h5", "history.png"):
        assert (run / name).is_file()
    assert not list(run.glob(".*tmp*"))
    model, _ = load_run_model(run)  # the best weights load into a float32 rebuild
    probs = np.asarray(model(np.full((2, 48, 48, 1), 128.0, np.float32), training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_scratch_trains(scratch_run):
    _check_run(scratch_run, epochs=2)


@pytest.mark.slow  # the session's MobileNetV2 run: ~30 s of graph tracing on 2 cores, shared with test_export
def test_mobilenetv2_trains(mobilenet_run):
    _check_run(mobilenet_run, epochs=1)


def test_vgg16_trains_and_exports_with_one_input(tmp_path, tiny_fer):
    import onnxruntime as ort

    from training.export import export_run

    state = train_tiny("vgg16", tmp_path / "vgg16", tiny_fer, model_kwargs={"dense": 16}, limit=14)
    assert state.epoch == 1
    _check_run(tmp_path / "vgg16", epochs=1)
    # a Normalization layer for the Caffe means once became two extra graph inputs in tf2onnx
    out = tmp_path / "vgg16.onnx"
    result = export_run(tmp_path / "vgg16", out, data=tiny_fer, arch="vgg16")
    assert result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("image", ["N", 48, 48, 1])]


class Interrupt(Exception):
    pass


def test_resume_continues_after_an_interruption(tmp_path, tiny_fer):
    run = tmp_path / "scratch"

    def stop_after_first_epoch(message: str) -> None:
        if "epoch 1/3" in message:  # logged after epoch 1's checkpoint and state are written
            raise Interrupt

    with pytest.raises(Interrupt):
        train_tiny("scratch", run, tiny_fer, epochs=3, model_kwargs=TINY_SCRATCH, log=stop_after_first_epoch)
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 1 and not state["finished"]
    assert len(_history(run)) == 1

    logged = []
    state = train_tiny("scratch", run, tiny_fer, epochs=3, model_kwargs=TINY_SCRATCH, resume=True,
                       log=logged.append)
    assert logged[0].startswith("scratch: resuming after epoch 1")
    assert any("epoch 2/3" in m for m in logged) and not any("epoch 1/3" in m for m in logged)
    assert state.epoch == 3 and state.finished
    _check_run(run, epochs=3)  # history appended: epochs 1, 2, 3

    logged.clear()
    train_tiny("scratch", run, tiny_fer, epochs=3, model_kwargs=TINY_SCRATCH, resume=True, log=logged.append)
    assert "already finished" in logged[0]


def test_train_needs_both_splits(tmp_path, fer_writer):
    from fer_tiny import make_images

    labels = np.arange(7)
    path = fer_writer("train_only.csv", labels, ["Training"] * 7, make_images(labels, 3))
    with pytest.raises(TrainingError, match="needs Training and PublicTest rows"):
        train_tiny("scratch", tmp_path / "run", path, model_kwargs=TINY_SCRATCH)


def test_warm_start_loads_every_weight_of_a_previous_run(scratch_run, tmp_path):
    from training.export import float32_policy
    from training.models import build
    from training.train import _warm_start

    reference, _ = load_run_model(scratch_run)
    with float32_policy():
        model = build("scratch", **TINY_SCRATCH)
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights(), strict=True))
    _warm_start(model, scratch_run)  # a run folder means its best.weights.h5
    for mine, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)

    with pytest.raises(TrainingError, match="not found"):
        _warm_start(model, tmp_path / "nothing.weights.h5")
    with float32_policy():
        other = build("scratch", widths=(4, 8), dense=8)
    with pytest.raises(TrainingError, match="does not fit"):
        _warm_start(other, scratch_run)
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not an HDF5 file")
    with pytest.raises(TrainingError, match=r"^--init-from: .*garbage.weights.h5: does not fit"):
        _warm_start(model, garbage)


def test_warm_started_run_records_its_start(scratch_run, tmp_path, tiny_fer):
    logged = []
    train_tiny("scratch", tmp_path / "again", tiny_fer, model_kwargs=TINY_SCRATCH, init_from=str(scratch_run),
               log=logged.append)
    assert logged[0] == f"scratch: warm start from {scratch_run}"
    state = json.loads((tmp_path / "again" / "state.json").read_text())
    assert state["config"]["init_from"] == str(scratch_run) and state["epoch"] == 1


def test_video_augmentation_adds_noise_and_occlusion_and_keeps_the_contract():
    from training.train import _augmenter

    flat = np.full((16, 48, 48, 1), 128.0, np.float32)  # geometry, contrast and brightness keep it flat
    standard = np.asarray(_augmenter(3, "standard")(flat, training=True))
    video = np.asarray(_augmenter(3, "video")(flat, training=True))
    assert video.shape == standard.shape == (16, 48, 48, 1)
    assert np.all(np.isfinite(video))
    assert standard.std(axis=(1, 2, 3)).max() < 0.5
    assert video.std(axis=(1, 2, 3)).min() > 2.0  # noise on every image
    with pytest.raises(TrainingError, match="unknown augmentation"):
        _augmenter(3, "jpeg")
