"""The models of a run: the face detector and the emotion classifier, loaded once (in a thread while the CLI starts,
or cached for the Python API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from emovid.classify import EmotionClassifier
    from emovid.detect import FaceDetector
    from emovid.options import AnalysisOptions
    from emovid.runtime import SessionConfig


@dataclass
class Models:
    """The detector and emotion classifier of a batch (loaded once)."""

    detector: FaceDetector
    classifier: EmotionClassifier

    def describe(self) -> str:
        """One line: the execution provider in use, then the emotion model and the face detector."""
        line = self.classifier.runtime.describe()
        detector_runtime = getattr(self.detector, "runtime", None)
        if detector_runtime is not None and detector_runtime.provider != self.classifier.runtime.provider:
            line += f" (face detector: {detector_runtime.describe()})"
        detector_name = getattr(self.detector, "name", None)
        return f"{line}; {self.classifier.describe()}" + (f"; face detector {detector_name}" if detector_name else "")


def load_models(options: AnalysisOptions, session_config: SessionConfig | None = None) -> Models:
    """Load the face detector and the emotion classifier (ModelError / DeviceError on failure; ModelError too when
    re-identification is asked for and its extra is missing). `session_config`: extra ONNX Runtime settings for
    both models' sessions (see emovid.runtime.session_options)."""
    from emovid.classify import load_classifier

    if options.reid_window_s:
        from emovid.reid import DlibEmbedder

        DlibEmbedder()  # checks that the extra is installed; its models load when first needed

    threads = options.inference_threads
    classifier = load_classifier(options.model, options.device, intra_op_threads=threads,
                                 session_config=session_config)
    from emovid.detect import load_detector

    detector = load_detector(options.detector, device=options.device, min_face_px=options.min_face_px,
                             max_side=options.detect_size_px, intra_op_threads=threads,
                             session_config=session_config)
    return Models(detector=detector, classifier=classifier)


class ModelsLoading:
    """`load_models(options)` running in a daemon thread from construction on; `result()` waits for it and returns
    the Models, or raises what loading raised (ModelError, DeviceError...).

    ONNX Runtime builds its sessions without holding the GIL, so the CLI starts this first and imports the video,
    drawing and console modules and checks the inputs meanwhile. A daemon thread, so an
    interrupted or failed run does not wait for the models it will never use."""

    def __init__(self, options: AnalysisOptions):
        import threading

        self._models: Models | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(options,), name="emovid-load-models", daemon=True)
        self._thread.start()

    def _load(self, options: AnalysisOptions) -> None:
        try:
            self._models = load_models(options)
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def result(self) -> Models:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._models is not None
        return self._models


_MODELS_CACHE: dict[tuple, Models] = {}


def cached_models(options: AnalysisOptions) -> Models:
    key = (options.model, options.device, options.detector, options.min_face_px, options.detect_size_px)
    if key not in _MODELS_CACHE:
        _MODELS_CACHE.clear()  # keep one set of sessions alive at most
        _MODELS_CACHE[key] = load_models(options)
    return _MODELS_CACHE[key]
