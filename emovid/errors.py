"""One small exception family; the CLI maps it to one-line messages and exit codes."""


class EmovidError(Exception):
    """A failure the user can act on. `str(err)` is one line that names the file and the reason."""


class InputError(EmovidError):
    """A path that is missing, not a video, unreadable or undecodable."""


class ModelError(EmovidError):
    """An ONNX model that is missing, corrupt, or breaks the input/output contract."""


class DeviceError(EmovidError):
    """A requested execution device (e.g. --device cuda) that this machine cannot provide."""


class OutputError(EmovidError):
    """An output that cannot be written (folder not writable, disk full)."""
