"""Video in and out with PyAV (FFmpeg): probe, a streaming frame reader, and an H.264 writer.

Reading
- `probe(path)` opens the file, checks it has a video stream and decodes its first frame (so a file that probes
  also decodes), and returns a `VideoInfo`. Every failure is an `InputError` whose message is one line,
  "<path>: <reason>". A still image (PNG, JPEG..., which FFmpeg would read as a one-frame video) is refused.
- `read_frames(path)` decodes one frame at a time (constant memory, FFmpeg's frame/slice threads) as BGR uint8
  with the container's rotation (phone videos) applied. `Frame.timestamp_s` is the frame's presentation time
  (pts * time_base) minus the video stream's start, so variable frame rate video keeps its real timing.
- Every file is opened as a local file (`file:` and its absolute path), never as a URL or FFmpeg protocol, whatever
  its name (`http:x.mp4`, `concat:a.mp4|b.mp4`).
- Damage inside a file: a packet that fails to decode is skipped (as ffmpeg does) and a read error ends the
  stream; every frame that decoded is yielded and the number of skipped packets is logged as a warning on
  the `emovid.video` logger. A file that ends well short of what its header declares (frames decoded under the
  frame count its index gives, or under the video stream's duration, by more than `_SHORT_FRACTION` and two
  frames; by more than a quarter and 2 s against a container's duration, which may be the audio's) raises
  `InputError` after its last frame: it was cut (a copy or upload stopped) or is damaged, and its results would
  be partial. A smaller shortfall is logged as a warning. A file in which no frame decodes at all raises
  `InputError`.
- Rotation: the display matrix's rotation is applied in multiples of 90 degrees (the angle is rounded to the
  nearest multiple); a mirroring display matrix is not applied.

Writing
- `VideoSink(path, info, audio_from)` encodes H.264 (libx264, yuv420p, preset veryfast, crf 20) into an MP4
  with one output frame per `write()` call (BGR to 4:2:0 by OpenCV, BT.601 limited range, as read_frames' to_bgr
  reads it, and the stream tagged so: players then use that matrix at every size, HD included), at `info.fps`
  (kept as a fraction: 29.97 stays 30000/1001), with each frame's pts taken from its `timestamp_s` (variable frame
  rate survives; equal or decreasing timestamps are nudged forward by one tick so no frame is ever dropped). The
  audio of `audio_from` is decoded and re-encoded to AAC, interleaved with the video as it is written.
- Odd sizes: H.264 with 4:2:0 chroma can only code even widths and heights (its cropping works in 2-pixel
  units), so an odd side is padded by one pixel that repeats the last row/column: a 641x359 input is written
  as 642x360 whose top-left 641x359 pixels are the input. Even sizes are written unchanged.
- On an exception inside the `with` block the partial file is removed. Output problems raise `OutputError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from emovid.errors import InputError, OutputError
from emovid.faces import Frame

log = logging.getLogger("emovid.video")

CRF = 20
PRESET = "veryfast"
_SMPTE170M = 6  # AVColorSpace of BT.601 (525 lines), the matrix OpenCV's BGR<->YUV 4:2:0 conversions use
_MPEG_RANGE = 1  # AVColorRange: limited (16-235), as OpenCV's 4:2:0 conversions
AUDIO_CODEC = "aac"
AUDIO_BIT_RATE = 128_000
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


_SHORT_FRACTION = 0.05  # of the declared length that may be missing before a file counts as cut short


def local(path: Path | str) -> str:
    """What av.open gets for a local file: FFmpeg's file protocol and the absolute path, so no name (http:..., a
    concat: list, a pipe:) is ever taken for a URL or another protocol."""
    import os

    return "file:" + os.path.abspath(os.fspath(path))


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    size_wh: tuple[int, int]  # displayed size (rotation applied)
    fps: float  # average frame rate, e.g. 30000/1001
    frame_count: int  # the container's count, else estimated from duration * fps
    duration_s: float
    rotation_deg: int  # clockwise rotation applied to decoded frames: 0, 90, 180 or 270
    has_audio: bool
    rate: Fraction = Fraction(0)  # fps as an exact fraction (what VideoSink writes); 0 when unknown
    start_s: float = 0.0  # the video stream's start in the container; Frame.timestamp_s is relative to it
    duration_from: str = "stream"  # where duration_s comes from: stream | container (may be the audio's) | frames


# --- errors -----------------------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """A short one-line reason for an FFmpeg/OS error, without the path that the caller adds itself."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:200]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a video file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({_reason(exc)})") from None
    if size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


def _open(path: Path):
    """(container, its first video stream) or InputError."""
    import av

    _check_file(path)
    try:
        container = av.open(local(path), "r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable video file ({_reason(exc)})") from None
    # a cover picture (music files) is a one-frame "video" stream: not a video
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        container.close()
        raise InputError(f"{path}: no video stream")
    fmt = container.format.name or ""
    if fmt.endswith("_pipe") or fmt == "image2":  # FFmpeg reads a PNG/JPEG... as a one-frame "video"
        kind = streams[0].codec_context.name or fmt.removesuffix("_pipe")
        container.close()
        raise InputError(f"{path}: a still image ({kind}), not a video")
    return container, streams[0]


# --- probing ----------------------------------------------------------------------------------------------------


def _rate(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0 and math.isfinite(float(rate)) and float(rate) < 1000:
            return Fraction(rate)
    return None


def _clockwise(rotation_ccw: float) -> int:
    """PyAV's frame.rotation (counter-clockwise, -180..180) -> the clockwise turn that displays the frame."""
    return int(round(-rotation_ccw / 90.0)) % 4 * 90


def _rotate(image: np.ndarray, rotation_deg: int) -> np.ndarray:
    if rotation_deg == 0:
        return image
    import cv2

    codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    return cv2.rotate(image, codes[rotation_deg])


_BT601_OR_UNSPECIFIED = (2, 5, 6)  # AVColorSpace: unspecified, BT470BG, SMPTE170M
_LIMITED_OR_UNSPECIFIED = (0, 1)  # AVColorRange: unspecified, MPEG (16-235)


def to_bgr(frame) -> np.ndarray:
    """A decoded PyAV frame as BGR uint8 [H,W,3]. The common case (8-bit 4:2:0, BT.601 or unspecified matrix,
    limited range, even size) is converted by OpenCV, faster than swscale and the same conversion (BT.601, limited
    range) within rounding; everything else goes through swscale."""
    if (frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0
            and getattr(frame, "colorspace", None) in _BT601_OR_UNSPECIFIED
            and getattr(frame, "color_range", None) in _LIMITED_OR_UNSPECIFIED):
        import cv2

        planes = frame.to_ndarray()  # [H*3/2, W]: Y, then U and V
        if planes.shape == (frame.height * 3 // 2, frame.width):
            return cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def _frames_of(container, stream, path: Path) -> Iterator:
    """Decoded frames of `stream` in presentation order; damaged packets are skipped, read errors end it."""
    import av

    skipped = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except (av.FFmpegError, OSError) as exc:
            log.warning("%s: reading stopped early (%s)", path, _reason(exc))
            break
        try:
            frames = packet.decode()
        except (av.FFmpegError, ValueError) as exc:
            skipped += 1
            if skipped == 1:
                log.debug("%s: damaged packet skipped (%s)", path, _reason(exc))
            continue
        yield from frames
    if skipped:
        log.warning("%s: %d damaged video packet(s) skipped", path, skipped)


def probe(path: Path | str, max_megapixels: float | None = None) -> VideoInfo:
    """Read a video's properties and decode its first frame; InputError ("<path>: <reason>") otherwise, or when
    the header's frame size is over `max_megapixels` (checked before any frame is decoded)."""
    path = Path(path)
    container, stream = _open(path)
    try:
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if max_megapixels is not None and width * height > max_megapixels * 1e6:
            raise InputError(f"{path}: frames of {width}x{height} are over --max-megapixels {max_megapixels:g} "
                             "(memory grows with frame size; raise it to analyse this video)")
        stream.thread_type = "AUTO"
        first = next(iter(_frames_of(container, stream, path)), None)
        if first is None:
            raise InputError(f"{path}: no decodable video frame")
        rotation_deg = _clockwise(first.rotation)
        width, height = first.width, first.height
        if rotation_deg in (90, 270):
            width, height = height, width
        time_base = stream.time_base or Fraction(1, 1)
        rate = _rate(stream)
        duration_from = "stream"
        if stream.duration is not None and stream.duration > 0:
            duration_s = float(stream.duration * time_base)
        elif container.duration is not None and container.duration > 0:
            duration_s, duration_from = container.duration / 1_000_000, "container"
        else:
            duration_s, duration_from = 0.0, "frames"
        frame_count = int(stream.frames or 0)
        if rate is None:
            rate = Fraction(frame_count / duration_s).limit_denominator(1001) if frame_count and duration_s else None
        if rate is None or rate <= 0:
            rate = Fraction(30)  # nothing in the file says: assume 30 (timestamps still come from the pts)
        if frame_count <= 0:
            frame_count = max(1, round(duration_s * float(rate)))
        if duration_s <= 0:
            duration_s = frame_count / float(rate)
        start_s = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
        return VideoInfo(path=path, size_wh=(int(width), int(height)), fps=float(rate), frame_count=frame_count,
                         duration_s=duration_s, rotation_deg=rotation_deg, has_audio=bool(container.streams.audio),
                         rate=rate, start_s=start_s, duration_from=duration_from)
    finally:
        container.close()


def read_frames(path: Path | str, info: VideoInfo | None = None) -> Iterator[Frame]:
    """Decode frames one at a time: BGR uint8 [H,W,3], rotation applied, timestamp_s from the pts.

    `info` (from `probe`) saves a second probe. Raises InputError before the first frame for unreadable files.
    """
    path = Path(path)
    info = info or probe(path)
    container, stream = _open(path)
    try:
        stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 1)
        start = stream.start_time
        origin = None
        step = 1.0 / info.fps
        last_s = None
        index = 0
        for frame in _frames_of(container, stream, path):
            if frame.pts is not None:
                if origin is None:  # the stream's start, or an earlier first frame (no negative times)
                    origin = frame.pts if start is None else min(start, frame.pts)
                timestamp_s = float((frame.pts - origin) * time_base)
            else:  # no timestamps in the file (rare): the previous one plus a frame period
                timestamp_s = 0.0 if last_s is None else last_s + step
            last_s = timestamp_s
            image = _rotate(to_bgr(frame), info.rotation_deg)
            yield Frame(index=index, timestamp_s=timestamp_s, image=image)
            index += 1
        if index == 0:
            raise InputError(f"{path}: no decodable video frame")
        _check_length(path, info, index, last_s + step if last_s is not None else 0.0, int(stream.frames or 0))
    finally:
        container.close()


def _check_length(path: Path, info: VideoInfo, frames: int, end_s: float, declared_frames: int) -> None:
    """InputError when the frames decoded fall well short of what the header declares (see the module docstring);
    a warning for a smaller shortfall."""
    if declared_frames and frames < declared_frames:
        if declared_frames - frames > max(2, _SHORT_FRACTION * declared_frames):
            raise InputError(f"{path}: the file ends early: {frames} of {declared_frames} frames decoded (cut short "
                             "or damaged)")
        log.warning("%s: the file ends early: %d of %d frames decoded (truncated?)", path, frames, declared_frames)
        return
    if declared_frames or info.duration_from == "frames" or not math.isfinite(info.duration_s):
        return
    missing_s = info.duration_s - end_s
    if info.duration_from == "stream":
        allowed_s = max(2.0 / info.fps, _SHORT_FRACTION * info.duration_s)
    else:
        allowed_s = max(2.0, 0.25 * info.duration_s)
    if missing_s > allowed_s:
        raise InputError(f"{path}: the file ends early: frames up to {end_s:.3f} s of the {info.duration_s:.3f} s its "
                         "header declares (cut short or damaged)")


# --- writing ----------------------------------------------------------------------------------------------------


def _even(n: int) -> int:
    return n + (n % 2)


def _time_base(rate: Fraction) -> Fraction:
    """1/(rate numerator x k), so each frame lasts a whole number of ticks and ticks are <= 1 ms."""
    k = max(1, math.ceil(1000 / rate.numerator))
    return Fraction(1, rate.numerator * k)


class _AudioCopy:
    """Decodes the first audio stream of a file and re-encodes it to AAC, in step with the video."""

    def __init__(self, source: Path, output, start_s: float):
        import av

        self.path = source
        self.input = av.open(local(source), "r", metadata_errors="ignore")
        try:
            if not self.input.streams.audio:
                raise InputError(f"{source}: no audio stream")
            self.stream_in = self.input.streams.audio[0]
            codec = self.stream_in.codec_context
            if codec is None:
                raise InputError(f"{source}: the audio codec cannot be decoded")
            self.stream_in.thread_type = "AUTO"
            rate = codec.sample_rate if codec.sample_rate in _AAC_RATES else 48000
            layout = "mono" if codec.channels == 1 else "stereo"  # more channels are mixed down to two
        except BaseException:
            self.input.close()
            raise
        self.stream_out = output.add_stream(AUDIO_CODEC, rate=rate, layout=layout)
        self.stream_out.bit_rate = AUDIO_BIT_RATE
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self.output = output
        self.rate = rate
        self.start_s = start_s
        self.samples = 0  # written so far (output clock)
        self.frames = _frames_of(self.input, self.stream_in, source)
        self.done = False

    def _push(self, frame) -> None:
        for out in self.resampler.resample(frame):
            out.pts = self.samples
            out.time_base = Fraction(1, self.rate)
            self.samples += out.samples
            self.output.mux(self.stream_out.encode(out))

    def pump(self, until_s: float | None) -> None:
        """Encode source audio up to `until_s` seconds of output time (None: all of it)."""
        import av

        while not self.done and (until_s is None or self.samples / self.rate < until_s):
            try:
                frame = next(self.frames)
            except StopIteration:
                self.done = True
                break
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: audio stopped early (%s)", self.path, _reason(exc))
                self.done = True
                break
            if frame.pts is not None and frame.time_base is not None:
                # keep A/V sync when the audio starts before/after the video stream's start
                start = float(frame.pts * frame.time_base) - self.start_s
                if self.samples == 0 and start + frame.samples / frame.sample_rate <= 0:
                    continue  # entirely before the video's first frame
                if self.samples == 0 and start > 0.0005:
                    self._silence(start)
            frame.pts = None
            self._push(frame)

    def _silence(self, seconds: float) -> None:
        import av

        n = int(round(seconds * self.rate))
        layout = self.stream_out.codec_context.layout.name
        channels = self.stream_out.codec_context.channels
        silent = av.AudioFrame.from_ndarray(np.zeros((channels, n), np.float32), format="fltp", layout=layout)
        silent.sample_rate = self.rate
        self._push(silent)

    def close(self) -> None:
        self.pump(None)
        self._push(None)
        self.output.mux(self.stream_out.encode(None))
        self.input.close()

    def abort(self) -> None:
        self.input.close()


def _yuv420p_frame(i420: np.ndarray, size_wh: tuple[int, int]):
    """A PyAV yuv420p VideoFrame from OpenCV's I420 layout ([H*3/2, W]: Y, then U, then V; even W and H), its planes
    copied in place (a third faster than VideoFrame.from_ndarray)."""
    import av

    w, h = size_wh
    frame = av.VideoFrame(w, h, "yuv420p")
    flat = i420.reshape(-1)
    start = 0
    for plane, (plane_h, plane_w) in zip(frame.planes, ((h, w), (h // 2, w // 2), (h // 2, w // 2)), strict=True):
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows[:plane_h, :plane_w] = flat[start:start + plane_h * plane_w].reshape(plane_h, plane_w)
        start += plane_h * plane_w
    return frame


class VideoSink:
    """Writes BGR frames as H.264 (yuv420p) MP4 at the input's size and frame rate, with the input's audio.

    with VideoSink(temp_path, info, audio_from=info.path if info.has_audio else None) as sink:
        for frame in frames:
            sink.write(image, frame.timestamp_s)
    """

    def __init__(self, path: Path | str, info: VideoInfo, audio_from: Path | str | None = None):
        self.path = Path(path)
        self.info = info
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.rate = info.rate if info.rate > 0 else Fraction(info.fps).limit_denominator(1001)
        self.time_base = _time_base(self.rate)
        self.size_wh = info.size_wh
        self.coded_wh = (_even(info.size_wh[0]), _even(info.size_wh[1]))
        self.frames_written = 0
        self._last_pts: int | None = None
        self._container = None
        self._stream = None
        self._audio: _AudioCopy | None = None
        self._finished = False

    def __enter__(self) -> VideoSink:
        import av

        fmt = None if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "mp4"
        try:
            self._container = av.open(local(self.path), "w", format=fmt, options={"movflags": "+faststart"})
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot write ({_reason(exc)})") from None
        try:
            stream = self._container.add_stream("libx264", rate=self.rate)
            stream.width, stream.height = self.coded_wh
            stream.pix_fmt = "yuv420p"
            stream.time_base = self.time_base
            stream.codec_context.time_base = self.time_base
            stream.options = {"preset": PRESET, "crf": str(CRF)}
            # the matrix and range write() converts with (an untagged HD stream would be shown as BT.709)
            stream.codec_context.colorspace = _SMPTE170M
            stream.codec_context.color_range = _MPEG_RANGE
            self._stream = stream
            if self.audio_from is not None:
                try:
                    self._audio = _AudioCopy(self.audio_from, self._container, self.info.start_s)
                except (av.FFmpegError, OSError, InputError) as exc:  # the video is still worth writing
                    log.warning("%s: written without audio (%s)", self.path, _reason(exc))
            try:
                self._container.start_encoding()  # opens the file: an unwritable path fails here, not later
            except (av.FFmpegError, OSError) as exc:
                raise OutputError(f"{self.path}: cannot write ({_reason(exc)})") from None
        except BaseException:
            self._abort()
            raise
        return self

    def write(self, image_bgr: np.ndarray, timestamp_s: float) -> None:
        import av

        if self._stream is None:
            raise RuntimeError("VideoSink.write() outside its with-block")
        image = np.asarray(image_bgr)
        w, h = self.size_wh
        if image.dtype != np.uint8 or image.shape != (h, w, 3):
            raise ValueError(f"VideoSink expects uint8 images of shape {(h, w, 3)}, got {image.dtype} {image.shape}")
        if self.coded_wh != self.size_wh:
            image = np.pad(image, ((0, self.coded_wh[1] - h), (0, self.coded_wh[0] - w), (0, 0)), mode="edge")
        pts = int(round(timestamp_s / self.time_base)) if math.isfinite(timestamp_s) else 0
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        import cv2

        # OpenCV's BGR -> I420 (BT.601, limited range): faster than swscale's (which libx264's bgr24 input
        # would go through) and equal to it within one code value on real frames; the stream is tagged to match
        frame = _yuv420p_frame(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2YUV_I420), self.coded_wh)
        frame.pts = pts
        frame.time_base = self.time_base
        try:
            self._container.mux(self._stream.encode(frame))
            if self._audio is not None:
                self._audio.pump(float(pts * self.time_base) + 1.0)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot write ({_reason(exc)})") from None
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        self.close()

    def close(self) -> None:
        """Flush the encoder and finish the file now (OutputError, and the partial file removed, when that fails),
        e.g. before other outputs are committed; the end of the with-block then has nothing left to do."""
        import av

        if self._finished:
            return
        self._finished = True
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.close()
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            self._abort()
            raise OutputError(f"{self.path}: cannot write ({_reason(exc)})") from None
        finally:
            self._stream = None

    def _abort(self) -> None:
        """Close everything without raising and remove the partial file."""
        for closer in (getattr(self._audio, "abort", None), getattr(self._container, "close", None)):
            if closer is not None:
                with contextlib.suppress(Exception):  # cleanup must not hide the error that caused it
                    closer()
        self._stream = None
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
