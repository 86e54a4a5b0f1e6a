"""Build, train, evaluate and export the three FER2013 emotion models of emovid.

`training` and `emovid` share nothing but the ONNX files and their metadata. Modules that need
TensorFlow (`models`, `train`, `export`) import it themselves; `data` and `evaluate` do not.
"""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
ARCHS: tuple[str, ...] = ("scratch", "mobilenetv2", "vgg16")


class TrainingError(Exception):
    """A problem the user can fix (bad data file, missing weights, missing extra): one line."""
