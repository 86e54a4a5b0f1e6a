"""Console reporting for the CLI (all on stderr): a rich progress bar per video, and the summary table."""

from __future__ import annotations

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
        self.console.print(Text(models.describe()), soft_wrap=True)  # one line, however narrow the terminal

    def video_started(self, path: Path) -> ProgressCallback:
        if not self._started:  # started with the first video, so runs that process nothing print no bars
            self._progress.start()
            self._started = True
        task = self._progress.add_task(path.name, total=None)
        self._tasks[path] = task

        def update(done: int, total: int) -> None:
            self._progress.update(task, completed=done, total=total or None)

        return update

    def video_finished(self, result: VideoResult) -> None:
        task = self._tasks.get(result.path)
        if result.status == "skipped":
            self._progress.console.print(Text(f"{result.path}: skipped (outputs exist; --overwrite redoes them)"),
                                         soft_wrap=True)
        elif result.status == "failed":
            if task is not None:
                self._progress.update(task, description=f"{result.path.name} (failed)")
            self._progress.console.print(Text.assemble(("failed ", "red"), failure_line(result)), soft_wrap=True)
        elif task is not None:
            self._progress.update(task, total=result.frames, completed=result.frames)


def reason(result: VideoResult) -> str:
    """A failure's one-line reason without the leading "<video path>: " (the summary names the video)."""
    error = result.error or ""
    prefix = f"{result.path}: "
    return error[len(prefix):] if error.startswith(prefix) else error


def failure_line(result: VideoResult) -> str:
    return f"{result.path}: {reason(result)}"


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
    styles = {"done": "green", "skipped": "yellow", "failed": "red"}
    for r in results:
        detail = reason(r) if r.status == "failed" else ", ".join(p.name for p in r.outputs) or "-"
        table.add_row(Text(str(r.path)), _duration(r.duration_s), str(r.tracks) if r.status == "done" else "-",
                      f"{r.fps:.1f}" if r.fps else "-", Text(r.status, style=styles[r.status]), Text(detail))
    return table
