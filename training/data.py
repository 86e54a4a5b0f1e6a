"""Read FER2013-format files (`emotion,pixels,Usage`, .csv or .csv.gz) and optional FER+ votes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import EMOTIONS, TrainingError

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIDE = 48
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
REQUIRED_COLUMNS = ("emotion", "pixels", "Usage")
# FER+ vote columns, mapped onto the FER2013 label order; contempt, unknown and NF are dropped.
FERPLUS_TO_FER = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")


@dataclass(frozen=True)
class FerSplit:
    """Images `uint8 [N,48,48]` and labels `int64 [N]` (FER2013 order) of one split."""

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray  # 0-based data row of each image in the source file

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class FerData:
    path: Path
    sha256: str
    images: np.ndarray  # uint8 [N,48,48]
    labels: np.ndarray  # int64 [N]
    usage: np.ndarray  # object [N] of str

    def split(self, name: str) -> FerSplit:
        if name not in SPLITS:
            raise TrainingError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        mask = self.usage == name
        rows = np.flatnonzero(mask)
        return FerSplit(self.images[mask], self.labels[mask], rows)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fail(path: Path, line: int | None, message: str) -> TrainingError:
    where = f"{path}: line {line}: " if line is not None else f"{path}: "
    return TrainingError(where + message)


def load_fer2013(path: str | Path) -> FerData:
    """Load a FER2013-format file; a malformed one raises TrainingError naming the line.

    Line numbers count the header as line 1, so data row i (0-based) is line i + 2.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except (UnicodeDecodeError, pd.errors.ParserError, EOFError, OSError, ValueError) as exc:
        raise _fail(path, None, f"not a readable FER2013 csv ({type(exc).__name__}: {exc})".splitlines()[0]) from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise _fail(path, 1, f"missing column(s) {', '.join(missing)}; expected header emotion,pixels,Usage")
    if len(frame) == 0:
        raise _fail(path, None, "no data rows")

    emotion = frame["emotion"].str.strip()
    bad = ~emotion.isin([str(i) for i in range(len(EMOTIONS))])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(path, i + 2, f"emotion label {emotion.iloc[i]!r} is not an integer in 0-6")
    usage = frame["Usage"].str.strip()
    bad = ~usage.isin(SPLITS)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(path, i + 2, f"unknown Usage {usage.iloc[i]!r}; expected one of {', '.join(SPLITS)}")

    pixels = frame["pixels"].str.strip()
    counts = pixels.str.split().str.len().fillna(0).astype(int).to_numpy()
    bad_rows = np.flatnonzero(counts != N_PIXELS)
    if bad_rows.size:
        i = int(bad_rows[0])
        raise _fail(path, i + 2, f"expected {N_PIXELS} pixel values, got {counts[i]}")
    try:
        flat = np.array(" ".join(pixels.tolist()).split(), dtype=np.int64)
    except ValueError:
        flat = None
    if flat is None or flat.min() < 0 or flat.max() > 255:
        for i, text in enumerate(pixels.tolist()):
            try:
                values = np.array(text.split(), dtype=np.int64)
            except ValueError:
                raise _fail(path, i + 2, "pixel values must be integers") from None
            if values.min() < 0 or values.max() > 255:
                raise _fail(path, i + 2, "pixel values must lie in 0-255")
    images = flat.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return FerData(
        path=path,
        sha256=file_sha256(path),
        images=images,
        labels=emotion.astype(np.int64).to_numpy(),
        usage=usage.to_numpy(dtype=object),
    )


def load_ferplus_votes(
    votes_path: str | Path, n_rows: int, index_path: str | Path | None = None
) -> np.ndarray:
    """FER+ votes for each row of a FER2013 file, as `float32 [n_rows, 7]` in FER2013 label order.

    Joined by `index_path` (a csv with an `orig_row` column, one line per FER2013 row) when given,
    else by row order, which needs the FER+ file to have exactly `n_rows` rows. Rows whose votes are
    mostly contempt / unknown / not-a-face get all-zero votes, so callers can drop them.
    """
    import pandas as pd

    votes_path = Path(votes_path)
    if not votes_path.is_file():
        raise TrainingError(f"{votes_path}: no such file")
    frame = pd.read_csv(votes_path)
    missing = [c for c in (*FERPLUS_TO_FER, "contempt", "unknown", "NF") if c not in frame.columns]
    if missing:
        raise _fail(votes_path, 1, f"missing FER+ column(s) {', '.join(missing)}")
    if index_path is not None:
        index = pd.read_csv(index_path)
        if "orig_row" not in index.columns or len(index) != n_rows:
            raise _fail(Path(index_path), None, f"needs an orig_row column and {n_rows} rows")
        frame = frame.iloc[index["orig_row"].to_numpy()]
    elif len(frame) != n_rows:
        raise _fail(votes_path, None, f"has {len(frame)} rows but the FER2013 file has {n_rows}; pass the index file")
    votes = frame[list(FERPLUS_TO_FER)].to_numpy(dtype=np.float32)
    other = frame[["contempt", "unknown", "NF"]].to_numpy(dtype=np.float32).sum(axis=1)
    votes[votes.sum(axis=1) <= other] = 0.0
    return votes
