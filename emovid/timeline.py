"""The per-second timeline: mean emotion probabilities per track per second, as CSV, DataFrame and PNG.

Every second during which a decoded frame is shown has at least one row (second k covers [k, k+1); a frame is
shown from its timestamp until the next frame, for at most one frame period, the last one until the video's
duration; the last row is capped there). Seconds that no decoded frame reaches (a file cut short, a gap in the
timestamps, a header that claims more) have no row, so the rows are bounded by the frames decoded whatever a
header says. A second without faces has exactly one row with an empty track_id, frames 0 and empty probabilities.
Rows are sorted by second then track_id; floats are written with fixed decimals, so the same frames give
byte-identical CSV text. The last column, input_id, tells same-named videos apart (emovid.outputs.input_id). Text
cells that a spreadsheet would take for a formula (starting with = + - @, tab or CR) get a leading single quote.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from emovid import EMOTIONS
from emovid.faces import FrameFaces
from emovid.tables import Column, csv_cells, csv_text, write_csv_rows

PROB_DECIMALS = 4
TIME_DECIMALS = 3
TIMELINE_TABLE: tuple[Column, ...] = (
    Column("video", "str"), Column("track_id", "int"), Column("second", "int"),
    Column("start_s", "float", TIME_DECIMALS), Column("end_s", "float", TIME_DECIMALS), Column("frames", "int"),
    *(Column(label, "float", PROB_DECIMALS) for label in EMOTIONS), Column("dominant", "str"),
    Column("input_id", "str"),
)
FRAME_TABLE: tuple[Column, ...] = (
    Column("frame", "int"), Column("timestamp_s", "float", PROB_DECIMALS), Column("track_id", "int"),
    *(Column(name, "float", 1) for name in ("x1", "y1", "x2", "y2")), Column("confidence", "float", PROB_DECIMALS),
    *(Column(label, "float", PROB_DECIMALS) for label in EMOTIONS),
)
COLUMNS: tuple[str, ...] = tuple(c.name for c in TIMELINE_TABLE)
FRAME_COLUMNS: tuple[str, ...] = tuple(c.name for c in FRAME_TABLE)
_EPS_S = 1e-6  # timestamps like 25 * 0.04 land a hair below the second they belong to
_HOLD_S = 1.0  # how long a frame is taken as shown when the frame period is unknown


EMOTION_COLORS = {  # colours of the plot, one per emotion
    "angry": "#d62728", "disgust": "#8c8c00", "fear": "#9467bd", "happy": "#f2c12e", "sad": "#1f77b4",
    "surprise": "#ff7f0e", "neutral": "#a0a0a0",
}


def n_seconds(duration_s: float) -> int:
    """Seconds in the timeline of a video of `duration_s`: ceil(duration), ignoring float noise."""
    return max(0, math.ceil(round(float(duration_s), 6) - _EPS_S)) if duration_s > 0 else 0


def second_of(timestamp_s: float) -> int:
    return max(0, math.floor(float(timestamp_s) + _EPS_S))


@dataclass(frozen=True)
class TimelineRow:
    video: str
    track_id: int | None  # None: no face in this second
    second: int
    start_s: float
    end_s: float
    frames: int  # frames of this track in this second (0 for the no-face row)
    probs: tuple[float, ...] | None  # mean probabilities in EMOTIONS order; None for the no-face row
    input_id: str = ""  # emovid.outputs.input_id of the video's file

    @property
    def dominant(self) -> str | None:
        return None if self.probs is None else EMOTIONS[int(np.argmax(self.probs))]

    def values(self) -> tuple:
        """The row's typed values in TIMELINE_TABLE order (None where a cell is empty)."""
        probs = self.probs if self.probs is not None else (None,) * len(EMOTIONS)
        return (self.video, self.track_id, self.second, self.start_s, self.end_s, self.frames, *probs, self.dominant,
                self.input_id)

    def cells(self) -> list[str]:
        """The CSV cells, formatted deterministically."""
        return csv_cells(TIMELINE_TABLE, self.values())


@dataclass(frozen=True)
class Timeline:
    """The timeline of one video."""

    video: str  # the input's file name (the CSV's `video` column)
    duration_s: float
    rows: tuple[TimelineRow, ...]

    @property
    def track_ids(self) -> tuple[int, ...]:
        return tuple(sorted({r.track_id for r in self.rows if r.track_id is not None}))

    def to_csv(self, header: bool = True) -> str:
        return csv_text(TIMELINE_TABLE, (row.values() for row in self.rows), header=header)

    def write_csv(self, handle, header: bool = True) -> None:
        """The CSV text of to_csv() written row by row to an open text file."""
        write_csv_rows(handle, COLUMNS if header else None, (row.cells() for row in self.rows))

    def to_dataframe(self):
        """A pandas DataFrame with COLUMNS (track_id nullable Int64, probabilities NaN on no-face rows)."""
        import pandas as pd

        data = {
            "video": [r.video for r in self.rows],
            "track_id": pd.array([r.track_id for r in self.rows], dtype="Int64"),
            "second": np.array([r.second for r in self.rows], dtype=np.int64),
            "start_s": np.array([r.start_s for r in self.rows], dtype=np.float64),
            "end_s": np.array([r.end_s for r in self.rows], dtype=np.float64),
            "frames": np.array([r.frames for r in self.rows], dtype=np.int64),
        }
        probs = np.array([r.probs if r.probs is not None else [np.nan] * len(EMOTIONS) for r in self.rows],
                         dtype=np.float64).reshape(-1, len(EMOTIONS))
        for k, label in enumerate(EMOTIONS):
            data[label] = probs[:, k]
        data["dominant"] = pd.array([r.dominant for r in self.rows], dtype="string")
        data["input_id"] = [r.input_id for r in self.rows]
        return pd.DataFrame(data, columns=list(COLUMNS))


def timelines_csv(timelines: Iterable[Timeline], handle=None) -> str | None:
    """Several videos' timelines in one CSV (one header): written row by row to `handle`, or returned as text."""
    if handle is None:
        buffer = io.StringIO()
        timelines_csv(timelines, buffer)
        return buffer.getvalue()
    write_csv_rows(handle, COLUMNS, [])
    for timeline in timelines:
        timeline.write_csv(handle, header=False)
    return None


class TimelineBuilder:
    """Accumulates classified faces frame by frame (constant memory per track-second), then builds a Timeline.

    `saw(timestamp_s)` is told every decoded frame (analysed or not; `add` tells it too): the seconds during which
    those frames are shown are the timeline's seconds. A frame is shown until the next one, for at most
    `frame_period_s` (default one second), the last one until `duration_s` within that bound. Faces without a track
    id (-1) or without probabilities (NaN) are not counted.
    """

    def __init__(self, video: str, duration_s: float, n_labels: int = len(EMOTIONS),
                 frame_period_s: float | None = None, input_id: str = ""):
        self.video = video
        self.duration_s = float(duration_s)
        self.input_id = input_id
        hold = _HOLD_S if frame_period_s is None or not math.isfinite(frame_period_s) else float(frame_period_s)
        self._hold_s = min(max(hold, 0.0), 10.0)  # a header's frame rate bounds nothing: ten seconds at most
        self._sums: dict[tuple[int, int], np.ndarray] = {}
        self._counts: dict[tuple[int, int], int] = {}
        self._seconds: set[int] = set()
        self._last_s: float | None = None
        self._n_labels = n_labels

    def _shown(self, start_s: float, end_s: float) -> None:
        """Marks the seconds that [start_s, end_s) reaches (and start_s's own)."""
        first = second_of(start_s)
        self._seconds.add(first)
        last = math.ceil(end_s - _EPS_S) - 1 if math.isfinite(end_s) else first
        self._seconds.update(range(first + 1, max(first, last) + 1))

    def saw(self, timestamp_s: float) -> None:
        timestamp_s = float(timestamp_s)
        if not math.isfinite(timestamp_s):
            return
        last = self._last_s
        if last is not None and timestamp_s > last:
            self._shown(last, min(timestamp_s, last + self._hold_s))
        if last is None or timestamp_s > last:
            self._last_s = timestamp_s
        self._seconds.add(second_of(timestamp_s))

    def add(self, frame: FrameFaces) -> None:
        second = second_of(frame.timestamp_s)
        self.saw(frame.timestamp_s)
        faces = frame.faces
        for i in range(len(faces)):
            track_id = int(faces.track_id[i])
            probs = faces.probs[i]
            if track_id < 0 or not np.all(np.isfinite(probs)):
                continue
            key = (second, track_id)
            if key not in self._sums:
                self._sums[key] = np.zeros(self._n_labels, np.float64)
                self._counts[key] = 0
            self._sums[key] += np.clip(probs.astype(np.float64), 0.0, 1.0)
            self._counts[key] += 1

    def end_s(self) -> float:
        """Where the timeline ends: the video's duration, or the end of the last decoded frame when the duration
        claims more (or no frame was seen: the duration)."""
        if self._last_s is None:
            return self.duration_s
        if self.duration_s > self._last_s:
            return min(self.duration_s, self._last_s + self._hold_s)
        return self.duration_s

    def build(self) -> Timeline:
        end = self.end_s()
        if self._last_s is not None:
            self._shown(self._last_s, end)
            seconds = set(self._seconds)
        else:  # nothing seen: the seconds of the duration
            seconds = set(range(n_seconds(end)))
        by_second: dict[int, list[int]] = {}
        for second, track_id in self._sums:
            by_second.setdefault(second, []).append(track_id)
            seconds.add(second)
        rows = []
        for second in sorted(seconds):
            start = float(second)
            row_end = min(second + 1.0, end) if end > second else second + 1.0
            tracks = sorted(by_second.get(second, []))
            if not tracks:
                rows.append(TimelineRow(self.video, None, second, start, row_end, 0, None, self.input_id))
            for track_id in tracks:
                key = (second, track_id)
                mean = self._sums[key] / self._counts[key]
                rows.append(TimelineRow(self.video, track_id, second, start, row_end, self._counts[key],
                                        tuple(float(p) for p in mean), self.input_id))
        return Timeline(video=self.video, duration_s=end, rows=tuple(rows))


# --- per-frame rows ---------------------------------------------------------------------------------------------


def frame_values(frame: FrameFaces) -> list[tuple]:
    """Typed rows (FRAME_TABLE order) of one analysed frame: one per face, or one with empty face values when the
    frame has none (so every analysed frame appears)."""
    head = (frame.index, frame.timestamp_s)
    faces = frame.faces
    if len(faces) == 0:
        return [head + (None,) * (len(FRAME_TABLE) - 2)]
    rows = []
    for i in range(len(faces)):
        track_id = int(faces.track_id[i])
        rows.append(head + (None if track_id < 0 else track_id, *(float(v) for v in faces.xyxy[i]),
                            float(faces.confidence[i]), *(float(p) for p in faces.probs[i])))
    return rows


def frame_rows(frame: FrameFaces) -> list[list[str]]:
    """CSV cells of one analysed frame for `<stem>.frames.csv` (frame_values, formatted)."""
    return [csv_cells(FRAME_TABLE, row) for row in frame_values(frame)]


def frames_csv(frames: Iterable[FrameFaces], header: bool = True) -> str:
    return csv_text(FRAME_TABLE, (row for f in frames for row in frame_values(f)), header=header)


def frames_dataframe(frames: Iterable[FrameFaces]):
    """The per-frame table as a pandas DataFrame (FRAME_COLUMNS; values rounded as in the CSV)."""
    import pandas as pd

    return pd.read_csv(io.StringIO(frames_csv(frames)), dtype={"track_id": "Int64"})


# --- plot -------------------------------------------------------------------------------------------------------


PNG_WIDTH_PX = 1000
_PANEL_PX, _TOP_PX, _BOTTOM_PX, _LEFT_PX, _RIGHT_PX = 140, 70, 50, 96, 20
_TICK_SCALE = 0.35  # the probability ticks (0, 0.5, 1) left of each panel
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_INK, _GRID = (40, 40, 40), (200, 200, 200)


def _bgr(hex_color: str) -> tuple[int, int, int]:
    value = int(hex_color.lstrip("#"), 16)
    return value & 0xFF, (value >> 8) & 0xFF, value >> 16


def _text(image: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.45, align: str = "left") -> None:
    import cv2

    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = {"left": xy[0], "center": xy[0] - w // 2, "right": xy[0] - w}[align]
    cv2.putText(image, text, (x, xy[1] + h // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, _INK, 1, cv2.LINE_AA)


def _text_w(text: str, scale: float) -> int:
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]


def track_label(track_id: int) -> list[tuple[str, float, int]]:
    """The lines that name a panel's person, left of its probability ticks: (text, font scale, left x px). Each line
    is shrunk until it ends left of the widest tick label, so long ids never run into the ticks."""
    right = _LEFT_PX - 6 - max(_text_w(t, _TICK_SCALE) for t in ("0", "0.5", "1")) - 6
    lines = []
    for text in ("person", f"#{track_id}"):
        scale = 0.42
        while scale > 0.25 and 8 + _text_w(text, scale) > right:
            scale -= 0.02
        lines.append((text, scale, 8))
    return lines


def render_png(timeline: Timeline, max_tracks: int = 8) -> bytes:
    """PNG bytes: one stacked-area panel per person (track id; emotion probabilities per second, bottom to top in
    EMOTIONS order), those with the most frames first when there are more than `max_tracks`, shown in id order.
    Drawn with OpenCV (no plotting library to import: the chart costs milliseconds, not half a second)."""
    import cv2

    seconds = max((r.second for r in timeline.rows), default=-1) + 1
    frames_per_track: dict[int, int] = {}
    for row in timeline.rows:
        if row.track_id is not None:
            frames_per_track[row.track_id] = frames_per_track.get(row.track_id, 0) + row.frames
    ranked = sorted(frames_per_track, key=lambda t: (-frames_per_track[t], t))
    shown = sorted(ranked[:max_tracks])
    n_panels = max(1, len(shown))
    height = _TOP_PX + n_panels * _PANEL_PX + _BOTTOM_PX
    image = np.full((height, PNG_WIDTH_PX, 3), 255, np.uint8)
    title = f"{timeline.video}: emotions per second"
    if len(ranked) > len(shown):
        title += f" ({len(shown)} of {len(ranked)} people, those with the most frames)"
    _text(image, title, (PNG_WIDTH_PX // 2, 16), 0.55, "center")
    slot = (PNG_WIDTH_PX - 2 * _LEFT_PX) // len(EMOTIONS)
    for k, emotion in enumerate(EMOTIONS):  # legend
        x = _LEFT_PX + k * slot
        cv2.rectangle(image, (x, 38), (x + 14, 50), _bgr(EMOTION_COLORS[emotion]), -1)
        _text(image, emotion, (x + 20, 44))
    end_s = max(min(float(timeline.duration_s), float(seconds)), 1e-9) if seconds else 1.0
    plot_w = PNG_WIDTH_PX - _LEFT_PX - _RIGHT_PX

    def x_of(t_s: float) -> int:
        return _LEFT_PX + int(round(plot_w * min(t_s, end_s) / end_s))

    colors = [_bgr(EMOTION_COLORS[e]) for e in EMOTIONS]
    plot_h = _PANEL_PX - 24
    for panel in range(n_panels):
        top = _TOP_PX + panel * _PANEL_PX + 8
        bottom = top + plot_h
        if shown:
            track_id = shown[panel]
            for row in timeline.rows:
                if row.track_id != track_id or row.probs is None:
                    continue
                x0, x1 = x_of(row.second), x_of(row.second + 1)
                level = 0.0
                for probability, color in zip(row.probs, colors, strict=True):
                    y0 = bottom - int(round(plot_h * min(level + float(probability), 1.0)))
                    y1 = bottom - int(round(plot_h * level))
                    if y1 > y0 and x1 > x0:
                        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), color, -1)
                    level += float(probability)
            for k, (text, scale, x) in enumerate(track_label(track_id)):
                _text(image, text, (x, (top + bottom) // 2 + (k * 2 - 1) * 9), scale)
        else:
            _text(image, "no faces found", ((_LEFT_PX + PNG_WIDTH_PX - _RIGHT_PX) // 2, (top + bottom) // 2), 0.5,
                  "center")
        cv2.rectangle(image, (_LEFT_PX, top), (_LEFT_PX + plot_w, bottom), _INK, 1)
        for fraction in (0.0, 0.5, 1.0):
            y = bottom - int(round(plot_h * fraction))
            _text(image, f"{fraction:g}", (_LEFT_PX - 6, y), _TICK_SCALE, "right")
    axis_y = _TOP_PX + n_panels * _PANEL_PX - 16
    if seconds:
        step = next((s for s in _TICK_STEPS_S if end_s / s <= 12), max(_TICK_STEPS_S[-1], math.ceil(end_s / 12)))
        for tick in range(0, int(end_s) + 1, step):
            x = x_of(tick)
            cv2.line(image, (x, axis_y), (x, axis_y + 5), _INK, 1)
            _text(image, str(tick), (x, axis_y + 14), 0.38, "center")
    _text(image, "time (s)", (_LEFT_PX + plot_w // 2, height - 14), 0.45, "center")
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 6])  # ~half the default size
    if not ok:  # pragma: no cover (OpenCV always encodes a uint8 BGR image)
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()
