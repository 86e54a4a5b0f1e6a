"""Console reporting for the CLI (all on stderr): a rich progress bar per video, and the summary table. Names are
shown with control characters escaped (emovid.errors.printable): a file name cannot drive the terminal."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from emovid.errors import printable
from emovid.pipeline import Models, ProgressCallback, VideoResult


class FpsColumn(ProgressColumn):
    """Frames per second of processing."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} fps" if speed else "      fps", style="progress.data.speed")


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


class ConsoleReporter:
    """A BatchReporter that shows one progress bar per video (frames, fps, ETA); use as a context manager."""

    def __init__(self, console: Console | None = None):
        self.console = console or stderr_console()
        self._progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), FpsColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(), console=self.console, transient=False,
        )
        self._tasks: dict[Path, TaskID] = {}
        self._started = False

    def __enter__(self) -> ConsoleReporter:
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self._progress.stop()

    def models_loaded(self, models: Models) -> None:
        self.console.print(Text(printable(models.describe())), soft_wrap=True)  # one line, however narrow the terminal

    def video_started(self, path: Path) -> ProgressCallback:
        if not self._started:  # started with the first video, so runs that process nothing print no bars
            self._progress.start()
            self._started = True
        task = self._progress.add_task(printable(path.name), total=None)
        self._tasks[path] = task

        def update(done: int, total: int) -> None:
            self._progress.update(task, completed=done, total=total or None)

        return update

    def video_finished(self, result: VideoResult) -> None:
        task = self._tasks.get(result.path)
        if result.status == "skipped":
            line = f"{printable(str(result.path))}: skipped (outputs exist; --overwrite redoes them)"
            self._progress.console.print(Text(line), soft_wrap=True)
        elif result.status == "failed":
            if task is not None:
                self._progress.update(task, description=f"{printable(result.path.name)} (failed)")
            self._progress.console.print(Text.assemble(("failed ", "red"), failure_line(result)), soft_wrap=True)
        elif task is not None:
            self._progress.update(task, total=result.frames, completed=result.frames)


class BatchProgress:
    """One progress bar for a whole batch (videos done of total, frames per second across every worker) and a line
    per skipped or failed video; for batches whose videos run elsewhere (Ray workers)."""

    def __init__(self, console: Console, total: int):
        self.console = console
        self._progress = Progress(TextColumn("videos"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[fps]}"), TimeElapsedColumn(), console=console)
        self._task = self._progress.add_task("videos", total=total, fps="")
        self._frames = 0
        self._started = time.perf_counter()

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def video_finished(self, result: VideoResult) -> None:
        self._frames += result.frames
        elapsed = time.perf_counter() - self._started
        fps = f"{self._frames / elapsed:.1f} fps" if elapsed > 0 and self._frames else ""
        self._progress.update(self._task, advance=1, fps=fps)
        where = f" on {printable(result.node)}" if result.node else ""
        if result.status == "skipped":
            line = f"{printable(str(result.path))}: skipped (outputs exist; --overwrite redoes them)"
            self._progress.console.print(Text(line), soft_wrap=True)
        elif result.status == "failed":
            self._progress.console.print(Text.assemble(("failed ", "red"), failure_line(result) + where),
                                         soft_wrap=True)


class QuietReporter:
    """A BatchReporter that shows nothing (--quiet: the CLI prints the failures at the end)."""

    def __enter__(self) -> QuietReporter:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def models_loaded(self, models: Models) -> None:
        pass

    def video_started(self, path: Path) -> None:
        return None

    def video_finished(self, result: VideoResult) -> None:
        pass


QuietProgress = QuietReporter  # the same nothing for batches on Ray


def summary_lines(results: list[VideoResult]) -> list[str]:
    """The summary as plain lines, one per video (for logs, where a table would wrap mid-word)."""
    lines = ["emovid summary"]
    for r in results:
        detail = reason(r) if r.status == "failed" else ", ".join(p.name for p in r.outputs) or "-"
        people = f"people {r.tracks}" if r.status == "done" else "people -"
        speed = f"{r.fps:.1f} fps" if r.fps else "- fps"
        node = f"  node {r.node}" if r.node else ""
        lines.append(printable(f"{r.status:<7} {r.path}  {_duration(r.duration_s)}  {people}  {speed}  {detail}{node}"))
    return lines


def summary_records(results: list[VideoResult]) -> list[dict]:
    """One JSON-ready record per video, for --summary (what a batch is analysed from afterwards)."""
    return [{"video": str(r.path), "status": r.status, "reason": reason(r) if r.status == "failed" else None,
             "duration_s": r.duration_s, "frames": r.frames, "analysed_frames": r.analysed_frames,
             "people": r.tracks if r.status == "done" else None, "fps": r.fps, "elapsed_s": round(r.elapsed_s, 3),
             "node": r.node, "runtime": r.runtime, "outputs": [str(p) for p in r.outputs]} for r in results]


def reason(result: VideoResult) -> str:
    """A failure's one-line reason without the leading "<video path>: " (the summary names the video)."""
    error = result.error or ""
    for prefix in (f"{result.path}: ", f"{' '.join(str(result.path).split())}: "):  # one_line() folds whitespace
        if error.startswith(prefix):
            return error[len(prefix):]
    return error


def failure_line(result: VideoResult) -> str:
    """"<video>: <reason>" on one line, control characters escaped."""
    return printable(f"{result.path}: {reason(result)}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"


def summary_table(results: list[VideoResult]) -> Table:
    """video, duration, people (distinct track ids: with re-identification a person who comes back counts once,
    without it once per return), processing speed, status, output names (or a failure's reason)."""
    table = Table(title="emovid summary", title_justify="left")
    table.add_column("video", overflow="fold")
    table.add_column("duration", justify="right")
    table.add_column("people (ids)", justify="right")
    table.add_column("speed (fps)", justify="right")
    table.add_column("status")
    table.add_column("outputs / reason", overflow="fold")
    nodes = any(r.node for r in results)
    if nodes:
        table.add_column("node")
    styles = {"done": "green", "skipped": "yellow", "failed": "red"}
    for r in results:
        detail = reason(r) if r.status == "failed" else ", ".join(p.name for p in r.outputs) or "-"
        cells = [Text(printable(str(r.path))), _duration(r.duration_s), str(r.tracks) if r.status == "done" else "-",
                 f"{r.fps:.1f}" if r.fps else "-", Text(r.status, style=styles[r.status]), Text(printable(detail))]
        table.add_row(*cells, *([Text(printable(r.node or "-"))] if nodes else []))
    return table
