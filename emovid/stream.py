"""Run the ends of the frame pipeline in worker threads: decode ahead of the analysis (`Prefetch`) and encode
behind it (`BackgroundWriter`), so decode, inference and encode overlap on several cores. FFmpeg (PyAV),
OpenCV and ONNX Runtime release the GIL while they work, so plain threads are enough.

- Memory stays bounded: each hand-over is a queue of at most `maxsize` items (frames; `queue_size` picks
  fewer for big frames), and a thread that is ahead waits for the other.
- Order and results are unchanged: items pass in order through one worker each, and every stage computes
  exactly what it computes without threads (the equality test compares the CSVs byte for byte).
- Failures propagate: an exception raised in a worker is re-raised in the calling thread (on the next item, the
  next `submit` or at `close`), with its traceback. When the caller fails or is interrupted (Ctrl-C lands in the
  main thread), leaving the `with` block stops and joins the worker; the worker closes its source iterator
  in its own thread, so a decoder's `finally` (closing the file) still runs. Partial outputs are removed by
  the owners of the files (VideoSink, emovid.outputs.atomic_output), which exit after these helpers.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
POLL_S = 0.05  # how often a blocked hand-over checks whether the other side stopped
DEFAULT_QUEUE = 8


def queue_size(item_bytes: int, budget_bytes: int = 64 * 2**20, most: int = DEFAULT_QUEUE) -> int:
    """How many items of `item_bytes` a hand-over may hold: `most`, fewer for big frames (at least 2), so a
    queue of 4K frames stays within about `budget_bytes`."""
    return max(2, min(most, budget_bytes // max(item_bytes, 1)))


class _End:
    pass


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_END = _End()


class Prefetch(Generic[T]):
    """Iterate over `source` in a worker thread, at most `maxsize` items ahead of the consumer.

    with Prefetch(read_frames(path)) as frames:
        for frame in frames: ...
    """

    def __init__(self, source: Iterable[T], maxsize: int = DEFAULT_QUEUE, name: str = "emovid-prefetch"):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._source = iter(source)
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # the consumer already has the error that matters, if any
                    close()  # a generator's finally runs here, in the thread that ran it

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True  # stopped by close()
                    raise StopIteration from None
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item

    def close(self) -> None:
        """Stop the worker (it closes its source) and wait for it; items not consumed are dropped."""
        self._stop.set()
        self._done = True
        while self._thread.is_alive():
            self._drain()
            self._thread.join(POLL_S)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWriter(Generic[T]):
    """Call `write(item)` for each submitted item, in order, in one worker thread (at most `maxsize` waiting).

    with BackgroundWriter(lambda item: sink.write(*item)) as writer:
        for item in items:
            writer.submit(item)
    # leaving the block normally waits until every item is written and re-raises the worker's error, if any;
    # leaving it with an exception drops the items not yet written and stops the worker.
    """

    def __init__(self, write: Callable[[T], None], maxsize: int = DEFAULT_QUEUE, name: str = "emovid-writer"):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._write(item)
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc
                return

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stop.set()
            raise error

    def submit(self, item: T) -> None:
        """Queue one item (waits while the queue is full); raises the worker's error if it failed."""
        while True:
            self._raise_error()
            if not self._thread.is_alive():
                raise RuntimeError("BackgroundWriter.submit() after close()")
            try:
                self._queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Write everything submitted, stop the worker, and raise its error if it failed."""
        while self._thread.is_alive():
            self._raise_error()
            try:
                self._queue.put(_END, timeout=POLL_S)
                break
            except queue.Full:
                continue
        while self._thread.is_alive():
            self._thread.join(POLL_S)
        self._raise_error()

    def abort(self) -> None:
        """Stop at once: items not yet written are dropped; the worker's error, if any, is discarded."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(POLL_S)
        self._error = None

    def __enter__(self) -> BackgroundWriter[T]:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
