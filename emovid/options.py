"""What a run analyses and writes: `AnalysisOptions` (the same for every video of a batch) and `OutputOptions`.

Every option's value is checked here, in `__post_init__`, once: the CLI, the Python API and Ray workers build these
objects and check nothing themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from emovid import DEFAULT_CLASSIFY_EVERY, DEFAULT_EVERY, DEFAULT_FULL_SCAN_S, DEFAULT_SCAN_S
from emovid.outputs import OutputPaths, input_identity, matching_outputs, output_paths
from emovid.tables import FORMATS


@dataclass(frozen=True)
class AnalysisOptions:
    """What is analysed and how (the same for every video of a batch)."""

    model: str = "best"  # best | scratch | mobilenetv2 | vgg16 | ensemble | PATH.onnx
    device: str = "auto"  # auto | cpu | cuda | tensorrt
    detector: str = "auto"  # auto (centerface-int8 on the CPU, centerface on a GPU) | centerface | centerface-int8
    min_face_px: int = 0  # ignore faces smaller than this (box side, pixels)
    detect_size_px: int = 640  # frames are shrunk to this longer side for the face detector (never enlarged)
    every: int = DEFAULT_EVERY  # run the detector every N analysed frames; the tracker predicts boxes in between
    classify_every: int = DEFAULT_CLASSIFY_EVERY  # classify each tracked face every N analysed frames; held between
    scan_every_s: float = DEFAULT_SCAN_S  # the whole frame this often; in between, around the tracked faces only
    full_scan_every_s: float = DEFAULT_FULL_SCAN_S  # scans at detect_size_px this often, at half of it in between
    sample_fps: float | None = None  # analyse this many frames per second of video (None: every frame)
    max_gap_s: float = 1.0  # a track survives this long without detections
    reid_window_s: float | None = None  # a person absent up to this long gets their id back (emovid.reid); 0: off;
    # None: DEFAULT_REID_WINDOW_S when the re-identification extra is installed, else off
    detect_cuts: bool = True  # end every track at a shot cut and scan the whole frame at once (emovid.cuts)
    batch_frames: int = 8  # frames whose faces are classified in one batch
    threaded: bool = True  # decode and encode in worker threads (emovid.stream); False: all in one
    inference_threads: int = 0  # ONNX Runtime's intra-op threads per model on the CPU; 0: its default (one per core)
    framing: str = "aligned"  # aligned (landmarks onto FER2013's) | box (a square of the detector's box); emovid.crop
    box_scale: float = 1.0  # the box framing's side, in multiples of the box's longer side
    max_megapixels: float = 36.0  # larger frames fail the video: memory grows with frame size (8K UHD fits)

    @property
    def coarse_side_px(self) -> int | None:
        """The detector's input size for the scans between full ones: half of detect_size_px; None (every scan
        full) when that is under the detector's 32 px minimum."""
        half = self.detect_size_px // 2
        return half if half >= 32 else None

    def __post_init__(self) -> None:
        def within(name: str, low: float, high: float, low_open: bool = False) -> None:
            value = getattr(self, name)
            if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
                bound = f"> {low:g}" if low_open else f">= {low:g}"
                raise ValueError(f"{name} must be {bound} and <= {high:g}, got {value}")

        within("every", 1, 1_000_000)
        within("classify_every", 1, 1_000_000)
        within("scan_every_s", 0, 86400)
        within("full_scan_every_s", 0, 86400)
        if self.sample_fps is not None:
            within("sample_fps", 0, 1000, low_open=True)
        within("min_face_px", 0, 100_000)
        within("detect_size_px", 32, 16384)
        within("batch_frames", 1, 4096)
        within("inference_threads", 0, 256)
        within("box_scale", 0.5, 4)
        within("max_megapixels", 0, 1000, low_open=True)
        if self.reid_window_s is not None:
            within("reid_window_s", 0, 1e9)
        if self.framing not in ("aligned", "box"):
            raise ValueError(f"framing must be aligned or box, got {self.framing!r}")

    @property
    def effective_reid_window_s(self) -> float:
        """The re-identification window in use: reid_window_s, or for None the default when the extra is
        installed (0 otherwise)."""
        if self.reid_window_s is not None:
            return self.reid_window_s
        from emovid.reid import DEFAULT_REID_WINDOW_S, reid_available

        return DEFAULT_REID_WINDOW_S if reid_available() else 0.0

    def shaping(self) -> dict:
        """The options that shape the results (recorded with the outputs; a rerun skips only on a match), with
        emovid's version; not those that only change speed or what is accepted."""
        from emovid import __version__

        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("threaded", "inference_threads", "batch_frames", "max_megapixels")}
        if self.model.lower().endswith(".onnx"):  # a model file retrained in place gives other results
            with contextlib.suppress(OSError):
                st = os.stat(self.model)
                fields["model_file"] = {"path": os.path.abspath(self.model), "size": st.st_size,
                                        "mtime_ns": st.st_mtime_ns}
        fields["reid_window_s"] = self.effective_reid_window_s  # installing the extra changes the default
        return {"emovid": __version__, **fields}


@dataclass(frozen=True)
class OutputOptions:
    """What is written where. Defaults: the timeline CSV and PNG beside the input."""

    out_dir: Path | None = None  # None: beside each input
    video: bool = False  # <stem>.annotated.mp4
    csv: bool = True  # <stem>.timeline.<table_format>
    png: bool = True  # <stem>.timeline.png
    frames: bool = False  # <stem>.frames.<table_format>
    table_format: str = "csv"  # csv, jsonl or parquet (emovid.tables)
    overwrite: bool = False  # False: skip a video whose outputs match their record; never replace others' files
    always: bool = False  # analyse every video even when its outputs match (--csv collects every input's rows)

    def __post_init__(self) -> None:
        if self.table_format not in FORMATS:
            raise ValueError(f"table_format must be one of {', '.join(FORMATS)}, got {self.table_format!r}")

    def paths_for(self, video_path: Path) -> OutputPaths:
        return output_paths(video_path, self.out_dir, video=self.video, csv=self.csv, png=self.png,
                            frames=self.frames, table_format=self.table_format)

    def needs_work(self, video_path: Path, options: AnalysisOptions | None = None) -> bool:
        """False when the video would be skipped: every wanted output is on disk as emovid recorded it for this
        input and these analysis options (default ones when None), and neither `overwrite` nor `always`."""
        if self.overwrite or self.always:
            return True
        shaping = (options or AnalysisOptions()).shaping()
        return not matching_outputs(self.paths_for(video_path), input_identity(video_path), shaping)


NO_OUTPUTS = OutputOptions(csv=False, png=False)
