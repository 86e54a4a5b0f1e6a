"""Video in/out: probe values, streaming decode with exact timestamps, rotation, the H.264 sink, bad inputs."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import media
import numpy as np
import pytest

from emovid.errors import InputError, OutputError
from emovid.video import VideoSink, probe, read_frames, to_bgr

NTSC = Fraction(30000, 1001)


def marked(size_wh=(64, 48), n=1) -> list[np.ndarray]:
    """Images with a red block at the top-left and a green one at the bottom-left (orientation and BGR order)."""
    w, h = size_wh
    images = []
    for i in range(n):
        image = media.background(size_wh, "plain")
        image[h // 2:h // 2 + 4, :] = (40 * i) % 256  # frames differ
        image[:8, :12] = (0, 0, 255)
        image[h - 8:, :12] = (0, 255, 0)
        images.append(image)
    return images


def assert_marked(image: np.ndarray) -> None:
    """Red top-left, green bottom-left: the picture is upright and in BGR order."""
    assert np.abs(image[2:6, 2:10].reshape(-1, 3).mean(0) - (0, 0, 255)).max() < 30
    assert np.abs(image[-6:-2, 2:10].reshape(-1, 3).mean(0) - (0, 255, 0)).max() < 30
    assert np.abs(image[2:6, -10:-2].reshape(-1, 3).mean(0) - 128).max() < 30


def stream_facts(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        facts = {"codec": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
                 "size": (video.width, video.height), "rate": video.average_rate,
                 "audio": audio.codec_context.name if audio else None,
                 "audio_s": float(audio.duration * audio.time_base) if audio and audio.duration else None}
    return facts


@pytest.mark.parametrize("fps", [NTSC, 25])
def test_probe_and_read_frames_give_exact_rate_count_size_and_timestamps(face_video, fps):
    truth = face_video(fps=fps, duration_s=1.0)
    info = probe(truth.path)
    assert info.fps == pytest.approx(float(fps), rel=1e-9) and info.rate == Fraction(fps)
    assert info.frame_count == truth.frame_count == round(float(fps))
    assert info.size_wh == (160, 120) and info.rotation_deg == 0 and not info.has_audio
    assert info.duration_s == pytest.approx(truth.frame_count / float(fps), abs=1e-3)
    frames = list(read_frames(truth.path, info))
    assert [f.index for f in frames] == list(range(truth.frame_count))
    assert [f.timestamp_s for f in frames] == pytest.approx(list(truth.timestamps_s), abs=1e-6)
    assert all(f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8 for f in frames)


def test_frames_are_bgr(tmp_path):
    path = media.write_frames(tmp_path / "m.mp4", marked(n=2))
    assert_marked(next(read_frames(path)).image)


@pytest.mark.parametrize("pix_fmt, size_wh, fast", [("yuv420p", (160, 120), True), ("yuv444p", (160, 120), False),
                                                   ("yuv444p", (161, 121), False)])
def test_frames_are_converted_like_swscale_does(tmp_path, pix_fmt, size_wh, fast):
    """4:2:0 BT.601 frames go through OpenCV (within rounding of swscale); other formats through swscale itself."""
    path = media.write_frames(tmp_path / "c.mp4", [media.face_image(size_wh, [(40, 30, 90, 90)])], pix_fmt=pix_fmt)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        ours, swscale = to_bgr(frame), frame.to_ndarray(format="bgr24")
    assert ours.shape == (size_wh[1], size_wh[0], 3) and ours.dtype == np.uint8
    difference = np.abs(ours.astype(np.int16) - swscale)
    if fast:
        assert 0 < difference.mean() < 2 and difference.max() <= 4  # not swscale's output, but the same colours
    else:
        assert difference.max() == 0


def test_variable_frame_rate_timestamps_come_from_the_pts(tmp_path):
    times = [0.0, 0.04, 0.08, 0.2, 0.5, 0.52, 0.54, 1.0]
    path = media.write_frames(tmp_path / "vfr.mp4", marked(n=len(times)), fps=25, timestamps_s=times)
    assert [f.timestamp_s for f in read_frames(path)] == pytest.approx(times, abs=1e-6)


@pytest.mark.parametrize("rotation_deg", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotation_deg):
    displayed = marked((64, 48), n=2)
    path = media.write_frames(tmp_path / "rot.mp4", displayed, rotation_deg=rotation_deg)
    with av.open(str(path)) as container:  # stored sideways, as a phone does
        stored = next(container.decode(video=0))
        assert (stored.width, stored.height) == ((48, 64) if rotation_deg in (90, 270) else (64, 48))
    info = probe(path)
    assert info.rotation_deg == rotation_deg and info.size_wh == (64, 48)
    frames = list(read_frames(path, info))
    assert len(frames) == 2 and frames[0].image.shape == (48, 64, 3)
    assert_marked(frames[0].image)
    assert np.abs(frames[1].image.astype(int) - displayed[1]).mean() < 6  # yuv420p round trip: a few levels


def test_a_frame_generator_is_lazy_and_can_be_abandoned(face_video):
    truth = face_video(duration_s=1.0)
    frames = read_frames(truth.path)
    first = next(frames)
    assert first.index == 0
    frames.close()  # closes the container


def write_all(path, frames, info, audio_from=None):
    with VideoSink(path, info, audio_from=audio_from) as sink:
        for frame in frames:
            sink.write(frame.image, frame.timestamp_s)
    return path


@pytest.mark.parametrize("fps", [NTSC, 25])
def test_sink_writes_h264_yuv420p_with_same_frames_rate_size_and_audio(tmp_path, face_video, fps):
    truth = face_video(fps=fps, duration_s=1.2, audio=True)
    info = probe(truth.path)
    assert info.has_audio
    out = write_all(tmp_path / "out.mp4", read_frames(truth.path, info), info, audio_from=truth.path)
    facts = stream_facts(out)
    assert (facts["codec"], facts["pix_fmt"], facts["size"]) == ("h264", "yuv420p", (160, 120))
    assert facts["rate"] == Fraction(fps)  # exact: 29.97 stays 30000/1001
    assert facts["audio"] == "aac" and facts["audio_s"] == pytest.approx(1.2, abs=0.1)
    again = probe(out)
    assert again.frame_count == info.frame_count == truth.frame_count == round(1.2 * float(fps))
    decoded = list(read_frames(out))
    assert len(decoded) == truth.frame_count
    assert [f.timestamp_s for f in decoded] == pytest.approx(list(truth.timestamps_s), abs=1e-6)
    original = list(read_frames(truth.path))
    assert np.abs(decoded[20].image.astype(int) - original[20].image).mean() < 6


def test_sink_writes_bt601_limited_range_and_tags_it_at_hd_sizes_too(tmp_path):
    """write() converts with OpenCV's BT.601 limited-range matrix, so the stream must say so (untagged HD would be
    shown as BT.709 by players), and pure colours come back through read_frames within a few code values."""
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (40, 160, 220), (128, 128, 128)]
    image = np.zeros((720, 1280, 3), np.uint8)
    for i, colour in enumerate(colours):
        image[:, i * 256:(i + 1) * 256] = colour
    info = probe(media.write_frames(tmp_path / "in.mp4", [image]))
    with VideoSink(tmp_path / "out.mp4", info) as sink:
        sink.write(image, 0.0)
    with av.open(str(tmp_path / "out.mp4")) as container:
        frame = next(container.decode(video=0))
        assert (frame.colorspace, frame.color_range) == (6, 1)  # SMPTE 170M (BT.601), MPEG (limited) range
    back = next(read_frames(tmp_path / "out.mp4")).image.astype(int)
    for i, colour in enumerate(colours):
        patch = back[100:620, i * 256 + 32:(i + 1) * 256 - 32].reshape(-1, 3).mean(0)
        assert np.abs(patch - colour).max() < 4, (colour, patch)


def test_sink_keeps_variable_frame_rate_timing(tmp_path):
    times = [0.0, 0.1, 0.15, 0.6, 0.62]
    source = media.write_frames(tmp_path / "vfr.mp4", marked(n=len(times)), timestamps_s=times)
    out = write_all(tmp_path / "out.mp4", read_frames(source), probe(source))
    assert [f.timestamp_s for f in read_frames(out)] == pytest.approx(times, abs=1e-3)


def test_sink_never_drops_frames_with_equal_timestamps(tmp_path):
    info = probe(media.write_frames(tmp_path / "in.mp4", marked(n=1)))
    with VideoSink(tmp_path / "out.mp4", info) as sink:
        for _ in range(3):
            sink.write(marked()[0], 0.0)
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 3


def test_odd_sizes_are_padded_by_one_pixel(tmp_path):
    images = marked((641, 359), n=3)
    source = media.write_frames(tmp_path / "odd.mp4", images, pix_fmt="yuv444p")  # 4:4:4 can code odd sizes
    info = probe(source)
    assert info.size_wh == (641, 359)
    out = write_all(tmp_path / "out.mp4", read_frames(source, info), info)
    again = probe(out)
    assert again.size_wh == (642, 360) and again.frame_count == 3
    frame = next(read_frames(out)).image
    assert np.abs(frame[:359, :641].astype(int) - next(read_frames(source)).image).mean() < 6
    assert np.abs(frame[359].astype(int) - frame[358]).mean() < 8  # the padding repeats the edge


def test_sink_output_is_deterministic(tmp_path, face_video):
    truth = face_video(duration_s=0.5, audio=True)
    info = probe(truth.path)
    a = write_all(tmp_path / "a.mp4", read_frames(truth.path, info), info, audio_from=truth.path)
    b = write_all(tmp_path / "b.mp4", read_frames(truth.path, info), info, audio_from=truth.path)
    assert a.read_bytes() == b.read_bytes()


def test_sink_removes_its_file_when_the_block_fails(tmp_path, face_video):
    truth = face_video(duration_s=0.5)
    info = probe(truth.path)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoSink(out, info) as sink:
        for frame in read_frames(truth.path, info):
            sink.write(frame.image, frame.timestamp_s)
        raise RuntimeError("boom")
    assert not out.exists()


def test_sink_checks_image_size_and_output_folder(tmp_path, face_video):
    info = probe(face_video(duration_s=0.2).path)
    with pytest.raises(ValueError, match="shape"), VideoSink(tmp_path / "out.mp4", info) as sink:
        sink.write(np.zeros((10, 10, 3), np.uint8), 0.0)
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(OutputError, match="cannot write"):
        VideoSink(tmp_path / "no" / "such" / "folder.mp4", info).__enter__()


@pytest.mark.parametrize("name", ["missing", "folder", "empty", "random", "text", "truncated", "audio_only",
                                  "garbage_frames"])
def test_bad_inputs_raise_one_line_input_errors(bad_inputs, name):
    path = bad_inputs[name]
    for call in (lambda: probe(path), lambda: list(read_frames(path))):
        with pytest.raises(InputError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 300


def test_a_cut_file_yields_the_frames_that_decode_then_fails(tmp_path, face_video):
    truth = face_video(duration_s=2.0, faststart=True)  # index first: a cut file still opens
    data = truth.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 8 // 10])
    info = probe(cut)
    assert info.frame_count == 50  # the index still lists every frame
    frames = []
    with pytest.raises(InputError, match=r"cut.mp4: the file ends early: \d+ of 50 frames decoded \(cut short"):
        for frame in read_frames(cut, info):
            frames.append(frame)
    assert 10 < len(frames) < 50
    assert [f.timestamp_s for f in frames] == pytest.approx(list(truth.timestamps_s[:len(frames)]), abs=1e-6)


def test_rotated_input_is_written_upright_without_rotation_metadata(tmp_path):
    source = media.write_frames(tmp_path / "phone.mp4", marked((64, 48), n=3), rotation_deg=90)
    info = probe(source)
    out = write_all(tmp_path / "out.mp4", read_frames(source, info), info)
    again = probe(out)
    assert again.rotation_deg == 0 and again.size_wh == (64, 48) and again.frame_count == 3
    assert_marked(next(read_frames(out)).image)


def test_video_starting_late_in_its_container_starts_at_zero(tmp_path):
    times = [0.5, 0.54, 0.58, 0.62]
    source = media.write_frames(tmp_path / "late.mp4", marked(n=4), timestamps_s=times, audio=True)
    info = probe(source)
    assert info.start_s == pytest.approx(0.5)
    assert [f.timestamp_s for f in read_frames(source, info)] == pytest.approx([0.0, 0.04, 0.08, 0.12], abs=1e-6)


def test_a_file_truncated_while_it_is_read_fails(tmp_path, face_video):
    """The index (at the end) was read when the file was opened; then the file shrinks under the reader (an upload
    replaced, a disk cleaned): fewer frames than the index lists, so the read fails instead of ending quietly."""
    truth = face_video(duration_s=4.0)
    info = probe(truth.path)
    frames = read_frames(truth.path, info)
    assert [next(frames).index for _ in range(3)] == [0, 1, 2]
    os.truncate(truth.path, truth.path.stat().st_size // 3)
    with pytest.raises(InputError, match=r"the file ends early: \d+ of 100 frames decoded \(cut short or damaged\)"):
        for _ in frames:
            pass
