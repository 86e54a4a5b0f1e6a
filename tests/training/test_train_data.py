"""FER2013 loader: formats, split selection, one-line errors naming the line; FER+ votes join."""

from __future__ import annotations

import numpy as np
import pytest
from fer_tiny import fer_text, make_images, tiny_arrays

from training import TrainingError
from training.data import load_fer2013, load_ferplus_votes
from training.train import TrainConfig, training_targets


def test_csv_and_gz_load_the_same(fer_writer):
    labels, usages, images = tiny_arrays()
    plain = load_fer2013(fer_writer("a.csv", labels, usages, images))
    packed = load_fer2013(fer_writer("a.csv.gz", labels, usages, images))
    for data in (plain, packed):
        assert data.images.shape == (84, 48, 48) and data.images.dtype == np.uint8
        np.testing.assert_array_equal(data.images, images)
        np.testing.assert_array_equal(data.labels, labels)
    assert plain.sha256 != packed.sha256  # the hash is of the file's bytes
    test = plain.split("PrivateTest")
    assert len(test) == 21
    np.testing.assert_array_equal(test.rows, np.arange(63, 84))
    np.testing.assert_array_equal(test.images, images[63:])


def _broken(tmp_path, row: str, header: str = "emotion,pixels,Usage"):
    """A file whose third data row (line 4) is `row`."""
    labels, usages, images = tiny_arrays()
    lines = fer_text(labels[:5], usages[:5], images[:5]).splitlines()
    lines[0] = header
    lines[3] = row
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


PIXELS = " ".join(["7"] * 2304)


@pytest.mark.parametrize(
    ("row", "line", "words"),
    [
        ("0," + " ".join(["7"] * 2303) + ",Training", 4, "2304 pixel values, got 2303"),
        ("7," + PIXELS + ",Training", 4, "emotion label '7'"),
        ("3," + PIXELS + ",Validation", 4, "unknown Usage 'Validation'"),
        ("3," + PIXELS.replace("7", "x", 1) + ",Training", 4, "integers"),
        ("3," + PIXELS.replace("7", "256", 1) + ",Training", 4, "0-255"),
    ],
)
def test_malformed_rows_name_the_line(tmp_path, row, line, words):
    path = _broken(tmp_path, row)
    with pytest.raises(TrainingError) as err:
        load_fer2013(path)
    message = str(err.value)
    assert f"{path}: line {line}:" in message and words in message
    assert "\n" not in message


def test_missing_column_and_missing_file(tmp_path):
    path = _broken(tmp_path, "0," + PIXELS + ",Training", header="emotion,pixels,Split")
    with pytest.raises(TrainingError, match=r"line 1: missing column\(s\) Usage"):
        load_fer2013(path)
    with pytest.raises(TrainingError, match="no such file"):
        load_fer2013(tmp_path / "nope.csv")


def _ferplus(tmp_path, n: int):
    """FER+ votes in the original file's order (fer2013new.csv columns), one row more than the rebuilt file."""
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    rows = []
    for i in range(n + 1):
        votes = [0] * 10
        votes[(i % 7)] = 6  # column i % 7 of neutral..fear gets the majority
        votes[(i + 1) % 7] = 4
        if i == 2:
            votes = [0] * 9 + [10]  # not a face
        rows.append(f"Training,fer{i:07d}.png," + ",".join(map(str, votes)))
    votes_path = tmp_path / "fer2013new.csv"
    votes_path.write_text(header + "\n" + "\n".join(rows) + "\n")
    # the rebuilt file left out original row 1: rebuilt row k is original row k (k < 1) or k + 1
    index_path = tmp_path / "index.csv"
    index_path.write_text("orig_row\n" + "\n".join(str(k if k < 1 else k + 1) for k in range(n)) + "\n")
    return votes_path, index_path


def test_ferplus_votes_join_through_the_index(tmp_path):
    votes_path, index_path = _ferplus(tmp_path, 14)
    votes = load_ferplus_votes(votes_path, 14, index_path)
    assert votes.shape == (14, 7) and votes.dtype == np.float32
    # FER+ column order neutral, happiness, surprise, sadness, anger, disgust, fear -> FER2013 index
    fer_index = {0: 6, 1: 3, 2: 5, 3: 4, 4: 0, 5: 1, 6: 2}
    for k in range(14):
        orig = k if k < 1 else k + 1
        if orig == 2:
            assert votes[k].sum() == 0  # "not a face" rows get no votes
            continue
        assert votes[k, fer_index[orig % 7]] == 6 and votes[k, fer_index[(orig + 1) % 7]] == 4
    with pytest.raises(TrainingError, match="pass the index file"):
        load_ferplus_votes(votes_path, 14)


def test_ferplus_training_targets(tmp_path, fer_writer):
    labels = np.arange(14) % 7
    data_path = fer_writer("d.csv", labels, ["Training"] * 10 + ["PublicTest"] * 4, make_images(labels, 1))
    votes_path, index_path = _ferplus(tmp_path, 14)
    data = load_fer2013(data_path)
    base = {"arch": "scratch", "data": str(data_path), "out_dir": str(tmp_path)}
    soft = TrainConfig(**base, labels="ferplus-soft", ferplus=str(votes_path), ferplus_index=str(index_path))
    images, targets, hard = training_targets(data, soft)
    assert len(images) == 9  # 10 Training rows, one of them "not a face"
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.unique(targets), [0.0, 0.4, 0.6], rtol=1e-6)
    majority = TrainConfig(**base, labels="ferplus-majority", ferplus=str(votes_path), ferplus_index=str(index_path))
    _, one_hot, hard2 = training_targets(data, majority)
    np.testing.assert_array_equal(one_hot.argmax(axis=1), hard2)
    np.testing.assert_array_equal(hard, hard2)
    with pytest.raises(TrainingError, match="needs --ferplus"):
        training_targets(data, TrainConfig(**base, labels="ferplus-soft"))
