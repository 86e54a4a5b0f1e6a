"""What processing one video gives: a `VideoResult`, and failures as one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from emovid.errors import EmovidError

if TYPE_CHECKING:  # pragma: no cover
    from emovid.timeline import Timeline


@dataclass(frozen=True)
class VideoResult:
    path: Path
    status: Literal["done", "skipped", "failed"]
    outputs: tuple[Path, ...] = ()
    duration_s: float | None = None
    frames: int = 0  # frames decoded
    analysed_frames: int = 0
    tracks: int = 0  # distinct track ids (people) seen
    elapsed_s: float = 0.0
    error: str | None = None  # one line, for failures
    node: str | None = None  # the machine that processed it (Ray runs)
    runtime: str | None = None  # the execution provider and models it ran on (Ray runs)
    timeline: Timeline | None = field(default=None, repr=False)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def fps(self) -> float | None:
        """Processing speed (decoded frames per second of wall time)."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 and self.frames else None


def one_line(exc: BaseException) -> str:
    """An exception as one line: EmovidError messages as they are, others prefixed with their type."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EmovidError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
