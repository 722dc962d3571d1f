"""The camera process's side of :class:`rig.devices.camera_process.CameraProcess`, and what
both sides share: the framing on the pipe and the plain values that cross it.

Run as ``python -c "from rig.devices.camera_child import main; main()"`` (so this module is
imported once, under its own name, and pickled values name it the same on both sides).
Importing this module does not import gphoto2: the parent stays free of libgphoto2, and the
child only imports it in :func:`main`, after the environment it was started with (e.g.
``VCAMERADIR`` for libgphoto2's virtual camera) is already in place.

Wire format: each message is a 4-byte big-endian length and a pickle. The parent sends
``(op, args, kwargs)``; the child answers with any number of ``("log", record)`` followed by
``("ok", value)`` or ``("error", kind, text)``. The child's stdout carries the replies (a dup of
fd 1 taken at start; fd 1 itself then points at stderr so that stray prints cannot corrupt
the stream).
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import IO, Any

HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 30  # a length beyond this is a corrupt stream, not a message
# What the parent may call on the GPhotoCamera in the child; anything else is refused.
METHODS = frozenset(
    {
        "connect",
        "reconnect",
        "close",
        "summary",
        "config_keys",
        "vibration_controls",
        "get",
        "set",
        "capture",
        "preview",
    }
)
_PARENT_POLL_S = 1.0

log = logging.getLogger("stackrig.camera.process")


# -- the values a camera reports (defined here so that the parent can unpickle them without
# importing gphoto2; rig.devices.gphoto re-exports them) -----------------------------------


@dataclass(frozen=True)
class CameraInfo:
    model: str
    port: str


@dataclass(frozen=True)
class CameraSummary:
    model: str
    port: str
    lens: str | None
    battery: str | None
    storage_free_bytes: int | None
    storage_total_bytes: int | None


@dataclass(frozen=True)
class ConfigValue:
    name: str
    label: str
    type: str  # text, range, toggle, radio, menu, button or date
    value: str | int | float | None
    choices: tuple[str, ...]  # radio and menu widgets; empty otherwise
    readonly: bool
    range: tuple[float, float, float] | None = None  # (min, max, step) of a range widget


# -- framing ---------------------------------------------------------------------------------


def encode(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def decode_length(header: bytes) -> int:
    (size,) = HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes: the stream is corrupt")
    return size


def receive(stream: IO[bytes]) -> Any:
    """The next message from a blocking stream, or None at its end."""
    header = _read_exactly(stream, HEADER.size)
    if header is None:
        return None
    body = _read_exactly(stream, decode_length(header))
    if body is None:
        return None
    return pickle.loads(body)


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Replies:
    """The child's end of the reply stream; log records and answers share it, one at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: object) -> None:
        data = encode(message)
        with self._lock:
            self._stream.write(data)
            self._stream.flush()


class PipeLogHandler(logging.Handler):
    """Sends each record to the parent, which hands it to its own logger of the same name."""

    def __init__(self, replies: Replies) -> None:
        super().__init__()
        self._replies = replies

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "name": record.name,
                "levelno": record.levelno,
                "levelname": record.levelname,
                "msg": record.getMessage(),  # formatted here: args may not pickle
                "created": record.created,
                "pathname": record.pathname,
                "lineno": record.lineno,
                "funcName": record.funcName,
                "exc_text": self.formatException(record.exc_info) if record.exc_info else None,
                "process": record.process,
                "processName": "camera process",
            }
            self._replies.send(("log", fields))
        except Exception:  # a record that cannot be sent must not fail the camera call
            self.handleError(record)

    def formatException(self, exc_info: Any) -> str:
        return "".join(traceback.format_exception(*exc_info)).rstrip()


# -- the child ---------------------------------------------------------------------------------


def serve(camera: Any, requests: IO[bytes], replies: Replies) -> None:
    """Answer requests in order until the parent closes the pipe."""
    while (request := receive(requests)) is not None:
        op, args, kwargs = request
        replies.send(answer(camera, op, args, kwargs))


def answer(camera: Any, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """One request's reply: ("ok", value) or ("error", kind, text)."""
    from rig.errors import CameraError

    try:
        if op == "resume":  # a fresh process for the camera a previous one had
            (camera.info,) = args
            op, args = "reconnect", ()
        if op not in METHODS:
            raise ValueError(f"the camera process has no operation {op!r}")
        value = getattr(camera, op)(*args, **kwargs)
        if op in ("connect", "reconnect"):
            value = (value, camera.info)
        return ("ok", value)
    except CameraError as exc:
        return ("error", "CameraError", str(exc))
    except Exception as exc:  # a bug: the parent raises it with this traceback
        log.error("%s failed in the camera process", op, exc_info=True)
        return ("error", type(exc).__name__, "".join(traceback.format_exception(exc)).rstrip())


def _exit_with_parent(parent: int) -> None:
    """End this process when the parent is gone: a camera must not stay claimed by an orphan
    (the child runs in its own session, so the terminal's Ctrl-C does not reach it)."""
    while True:
        time.sleep(_PARENT_POLL_S)
        if os.getppid() != parent:
            os._exit(3)


def main() -> None:
    reply_stream = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # print() and C code writing to stdout end up in the stderr file
    replies = Replies(reply_stream)
    requests = sys.stdin.buffer
    setup = receive(requests)
    if setup is None:
        return
    handler = PipeLogHandler(replies)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name, level in setup["levels"].items():
        logging.getLogger(name).setLevel(level)
    threading.Thread(
        target=_exit_with_parent, args=(setup["parent"],), name="parent-watch", daemon=True
    ).start()

    # Imported only now: gphoto2 picks its USB back end from the environment at import time.
    from rig.devices.gphoto import GPhotoCamera

    camera = GPhotoCamera(setup["model"], setup["port"], **setup["options"])
    try:
        serve(camera, requests, replies)
    finally:
        camera.close()
