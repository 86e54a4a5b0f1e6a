"""Accuracy on labelled video: labels files, the main face of a clip, scores computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from emovid_fakes import FakeDetector, marker_script, synthetic_frames, write_video
from onnx_models import brightness_model
from typer.testing import CliRunner

from emovid import EMOTIONS
from emovid.classify import load_classifier
from emovid.cli import app
from emovid.errors import InputError
from emovid.pipeline import AnalysisOptions, Models
from emovid.video_eval import predict_clips, read_labels, read_peer, score_clips

FPS = 10.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    classifier = load_classifier(brightness_model(tmp_path_factory.mktemp("m") / "bright.onnx"), device="cpu")
    return Models(detector=FakeDetector(marker_script), classifier=classifier)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """happy.mp4: face 0 (the brightness model says happy); sad.mp4: face 1 (sad); empty.mp4: no face;
    switch.mp4: face 0 for 1 s, then face 1 for 2 s."""
    folder = tmp_path_factory.mktemp("clips")
    write_video(folder / "happy.mp4", synthetic_frames(20, FPS, lambda i: (0,)), FPS)
    write_video(folder / "sad.mp4", synthetic_frames(20, FPS, lambda i: (1,)), FPS)
    write_video(folder / "empty.mp4", synthetic_frames(20, FPS, lambda i: ()), FPS)
    write_video(folder / "switch.mp4", synthetic_frames(30, FPS, lambda i: (0,) if i < 10 else (1,)), FPS)
    return folder


def write_labels(folder, rows: list[str], header: str = "file,emotion,start_s,end_s,dataset") -> str:
    path = folder / "labels.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_clip_accuracy_recall_and_confusion_match_a_hand_count(clips, models):
    labels = write_labels(clips, [
        "happy.mp4,happy,,,a",  # right
        "happy.mp4,sad,,,a",  # wrong: predicted happy
        "sad.mp4,sad,,,b",  # right
        "empty.mp4,neutral,,,b",  # no face: wrong
    ])
    chosen = read_labels(labels)
    options = AnalysisOptions(threaded=False)
    probs = predict_clips(chosen, models, options)
    assert probs["empty.mp4"] is None
    score = score_clips("bright", chosen, probs, group_by="dataset")
    assert (score.correct, score.n_clips, score.no_face) == (2, 4, 1)
    assert score.accuracy == 0.5
    recall = score.recall()
    assert recall["happy"] == 1.0 and recall["sad"] == 0.5 and recall["neutral"] == 0.0 and recall["angry"] is None
    happy, sad = EMOTIONS.index("happy"), EMOTIONS.index("sad")
    assert score.confusion[happy, happy] == 1 and score.confusion[sad, happy] == 1 and score.confusion[sad, sad] == 1
    assert score.confusion.sum() == 3  # the clip without a face is in no cell
    assert score.groups == {"a": (1, 2), "b": (1, 2)}


def test_the_main_face_is_the_one_seen_longest_in_the_labelled_part(clips, models):
    labels = write_labels(clips, ["switch.mp4,sad,,,x", "switch.mp4,happy,0,1.0,x", "switch.mp4,sad,1.0,,x"])
    chosen = read_labels(labels)
    probs = predict_clips(chosen, models, AnalysisOptions(threaded=False))
    assert [c.key for c in chosen] == ["switch.mp4", "switch.mp4@0-1", "switch.mp4@1-"]
    assert [EMOTIONS[int(np.argmax(probs[c.key]))] for c in chosen] == ["sad", "happy", "sad"]


def test_peer_results_are_scored_like_a_model(clips, tmp_path):
    labels = write_labels(clips, ["happy.mp4,happy,,,a", "sad.mp4,sad,,,a", "empty.mp4,fear,,,a"])
    peer = tmp_path / "fer.json"
    peer.write_text(json.dumps({"happy.mp4": {"probs": [0, 0, 0, 0.9, 0.1, 0, 0]},
                                "sad.mp4": {"probs": [0.6, 0, 0, 0, 0.4, 0, 0]}}))
    score = score_clips("fer", read_labels(labels), read_peer(peer))
    assert (score.correct, score.no_face) == (1, 1)  # empty.mp4 is missing from the peer's file


@pytest.mark.parametrize("text, message", [
    ("clip,emotion\nx.mp4,happy\n", "needs columns file,emotion"),
    ("file,emotion\nx.mp4,joy\n", "line 2: unknown emotion 'joy'"),
    ("file,emotion,start_s,end_s\nx.mp4,happy,2,1\n", "line 2: end_s (1) must be after start_s (2)"),
    ("file,emotion,start_s\nx.mp4,happy,soon\n", "line 2: start_s must be a number"),
    ("file,emotion,start_s\nx.mp4,happy,nan\n", "line 2: start_s must be a finite number"),
    ("file,emotion\n", "no labelled clips"),
    ("file,emotion\nx.mp4,happy,extra\n", "line 2: expected 2 fields"),
])
def test_bad_labels_files_are_one_line_input_errors(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        read_labels(path)
    assert "\n" not in str(caught.value)


def test_rows_can_be_selected_by_a_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,emotion,split\na.mp4,happy,dev\nb.mp4,sad,test\n")
    assert [c.file for c in read_labels(path, {"split": "test"})] == ["b.mp4"]
    with pytest.raises(InputError, match="no column 'actor'"):
        read_labels(path, {"actor": "1"})


def test_cli_bad_labels_file_is_one_line_and_exit_1(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,emotion\nx.mp4,joy\n")
    result = CliRunner().invoke(app, ["evaluate", "--videos", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown emotion 'joy'" in lines[0]


def test_cli_needs_data_or_videos_but_not_both(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,emotion\nx.mp4,happy\n")
    assert CliRunner().invoke(app, ["evaluate"]).exit_code == 2
    assert CliRunner().invoke(app, ["evaluate", "--videos", str(path), "--data", str(path)]).exit_code == 2
