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


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt, so the same cleanup runs
    (temporaries removed); `signum` gives the exit code, 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """`text` for a terminal: control characters (C0, DEL, C1: ANSI and OSC escapes, newlines), bidirectional
    overrides and undecodable bytes of file names written as Python escapes, so a name cannot move the cursor,
    recolour the terminal or split a line."""
    if text.isprintable() and not _BIDI.intersection(text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif ch in _BIDI or 0xD800 <= code < 0xE000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
