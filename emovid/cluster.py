"""Many videos at once: a batch spread over Ray workers (`--ray`), or one deterministic slice of it (`--shard`).

Each Ray worker is a long-lived actor that loads the face detector and the emotion model once and then processes
whole videos with `process_video`, exactly as a single-machine run does: one task per video, a path in, a small
record out. Frames never leave the worker, so tracking is unchanged and the outputs are byte-identical to a local
run. Outputs are written by the worker beside the inputs or in `--out`, so every machine must see the same paths
(a shared file system).

A worker that dies (killed, out of memory) is replaced and its video is given to a worker again, up to
`max_retries` times, then reported failed. Its unfinished temporaries are never renamed into place; on the machine
that runs the batch they are removed at once, on others by the next run's sweep. Videos whose outputs already exist
are skipped before anything is dispatched, so a rerun redoes only what is missing.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emovid.errors import EmovidError
from emovid.pipeline import AnalysisOptions, OutputOptions, VideoResult

RAY_INSTALL = "pip install 'emovid[ray]'"
LOCAL = "local"


class ClusterError(EmovidError):
    """Ray is missing or the cluster cannot be reached."""


@dataclass(frozen=True)
class ClusterOptions:
    address: str = LOCAL  # local: start Ray on this machine; auto: the cluster this machine joined; or host:port
    workers: int = 2
    cpus_per_worker: float = 1.0  # Ray's CPU resource per worker; ONNX Runtime gets as many threads (at least 1)
    gpus_per_worker: float = 0.0  # a fraction lets several workers share one GPU
    max_retries: int = 2  # a video whose worker died is tried again this many times

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 4096:
            raise ValueError(f"workers must be in [1, 4096], got {self.workers}")
        if not 0 < self.cpus_per_worker <= 1024:
            raise ValueError(f"cpus_per_worker must be in (0, 1024], got {self.cpus_per_worker}")
        if not 0 <= self.gpus_per_worker <= 64:
            raise ValueError(f"gpus_per_worker must be in [0, 64], got {self.gpus_per_worker}")
        if not 0 <= self.max_retries <= 100:
            raise ValueError(f"max_retries must be in [0, 100], got {self.max_retries}")


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" -> (I, N), 1 <= I <= N. ValueError otherwise."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or not (1 <= i <= n):
        raise ValueError(f"{text!r}: expected I/N with 1 <= I <= N (e.g. 2/8)")
    return i, n


def shard(paths: Sequence[Path], index: int, count: int) -> list[Path]:
    """The index-th (1-based) of `count` slices of `paths`: every count-th video from the index-th on, in input
    order. The slices of one input list are disjoint and together hold every video once."""
    return list(paths[index - 1::count])


class _Worker:
    """One Ray actor's state: the models, loaded once, and where it runs."""

    def __init__(self, analysis: AnalysisOptions, outputs: OutputOptions):
        from emovid.pipeline import load_models

        self.analysis, self.outputs = analysis, outputs
        self.models = load_models(analysis)
        self.node = socket.gethostname()

    def process(self, path: str) -> dict:
        from emovid.pipeline import one_line, process_video

        started = time.perf_counter()
        try:
            result = process_video(Path(path), self.analysis, self.outputs, models=self.models)
        except Exception as exc:  # one video's failure is a result, as in a local batch
            return {"status": "failed", "error": one_line(exc), "elapsed_s": time.perf_counter() - started,
                    "node": self.node, "pid": os.getpid()}
        return {"status": result.status, "outputs": [str(p) for p in result.outputs],
                "duration_s": result.duration_s, "frames": result.frames, "analysed_frames": result.analysed_frames,
                "tracks": result.tracks, "elapsed_s": result.elapsed_s, "node": self.node, "pid": os.getpid(),
                "runtime": self.models.describe()}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


def _connect(ray, cluster: ClusterOptions) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if cluster.address == LOCAL:
            needed = max(1, int(round(cluster.workers * cluster.cpus_per_worker)))
            ray.init(num_cpus=max(needed, os.cpu_count() or 1), **kwargs)
        else:
            ray.init(address=cluster.address, **kwargs)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ClusterError(f"cannot start or join Ray at {cluster.address}: {first[:200]}") from None


def _result(path: Path, record: dict) -> VideoResult:
    return VideoResult(path=path, status=record["status"], outputs=tuple(Path(p) for p in record.get("outputs", ())),
                       duration_s=record.get("duration_s"), frames=record.get("frames", 0),
                       analysed_frames=record.get("analysed_frames", 0), tracks=record.get("tracks", 0),
                       elapsed_s=record.get("elapsed_s", 0.0), error=record.get("error"), node=record.get("node"),
                       runtime=record.get("runtime"))


def run_on_ray(paths: Sequence[Path], analysis: AnalysisOptions, outputs: OutputOptions, cluster: ClusterOptions,
               on_result: Callable[[VideoResult], None] | None = None) -> list[VideoResult]:
    """Process `paths` on Ray workers; results in input order. Skipped videos are decided here, before dispatch.
    ClusterError when Ray is missing or unreachable; KeyboardInterrupt cancels the work, kills the workers and
    removes their temporaries (on this machine) before it propagates."""
    ray = _import_ray()
    results: list[VideoResult | None] = [None] * len(paths)
    todo: deque[int] = deque()
    for i, path in enumerate(paths):
        if outputs.needs_work(path, analysis):
            todo.append(i)
        else:
            results[i] = VideoResult(path=path, status="skipped", outputs=outputs.paths_for(path).paths())
            if on_result is not None:
                on_result(results[i])
    if not todo:
        return [r for r in results if r is not None]
    interrupt = _Interrupt()
    try:
        _connect(ray, cluster)
        return _dispatch(ray, paths, analysis, outputs, cluster, results, todo, on_result, interrupt)
    finally:
        interrupt.restore()


class _Interrupt:
    """Ctrl-C as a flag the dispatch loop checks: Ray's waits may run Python's SIGINT handler inside its own code,
    where the KeyboardInterrupt can be lost. Only in the main thread, and only when SIGINT has Python's default."""

    def __init__(self) -> None:
        import signal
        import threading

        self._event = threading.Event()
        self._previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, lambda signum, frame: self._event.set())

    def check(self) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt

    def restore(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        self.check()  # a Ctrl-C after the last check still interrupts


def _dispatch(ray, paths: Sequence[Path], analysis: AnalysisOptions, outputs: OutputOptions, cluster: ClusterOptions,
              results: list, todo: deque, on_result, interrupt: _Interrupt) -> list[VideoResult]:
    """The dispatch loop of run_on_ray, once Ray is up."""
    from ray.exceptions import RayError, RayTaskError

    from emovid.outputs import remove_stale_temporaries

    threads = max(1, int(cluster.cpus_per_worker))
    remote = ray.remote(num_cpus=cluster.cpus_per_worker, num_gpus=cluster.gpus_per_worker, max_restarts=0)(_Worker)
    worker_analysis = analysis if analysis.inference_threads else _with_threads(analysis, threads)
    actors: list = []
    in_flight: dict = {}  # future -> (actor, index)
    attempts: dict[int, int] = {}

    def new_actor():
        actor = remote.remote(worker_analysis, outputs)
        actors.append(actor)
        return actor

    try:
        idle = [new_actor() for _ in range(min(cluster.workers, len(todo)))]
        while todo or in_flight:
            interrupt.check()
            while idle and todo:
                actor, index = idle.pop(), todo.popleft()
                attempts[index] = attempts.get(index, 0) + 1
                in_flight[actor.process.remote(str(paths[index]))] = (actor, index)
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for future in ready:
                actor, index = in_flight.pop(future)
                try:
                    record = ray.get(future)
                except RayTaskError as exc:  # process() catches everything, so this is a bug: report it
                    record = {"status": "failed", "error": f"worker error: {str(exc).splitlines()[0][:200]}"}
                except RayError as exc:  # the worker died: replace it and try the video again
                    ray.kill(actor, no_restart=True)
                    actor = new_actor()
                    _sweep(paths[index], outputs, remove_stale_temporaries)
                    if attempts[index] <= cluster.max_retries:
                        todo.appendleft(index)
                        idle.append(actor)
                        continue
                    record = {"status": "failed", "error": f"{paths[index]}: its worker died {attempts[index]} "
                                                           f"times ({type(exc).__name__})"}
                results[index] = _result(paths[index], record)
                if on_result is not None:
                    on_result(results[index])
                idle.append(actor)
    except KeyboardInterrupt:
        for actor in actors:  # killing the actor ends its task (Ray cannot force-cancel actor tasks)
            ray.kill(actor, no_restart=True)
        time.sleep(0.5)  # the killed workers' processes exit before their temporaries are swept
        for _, index in in_flight.values():
            _sweep(paths[index], outputs, remove_stale_temporaries)
        raise
    finally:
        ray.shutdown()
    return [r for r in results if r is not None]


def _with_threads(analysis: AnalysisOptions, threads: int) -> AnalysisOptions:
    import dataclasses

    return dataclasses.replace(analysis, inference_threads=threads)


def _sweep(path: Path, outputs: OutputOptions, sweep) -> None:
    """Remove the temporaries a dead worker left beside this video's outputs (this machine's only)."""
    for folder in {p.parent for p in outputs.paths_for(path).paths()}:
        sweep(folder, force=True)
