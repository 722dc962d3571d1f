"""The camera in a process of its own, which can be killed and started again.

Why a process: a libgphoto2 call that hangs (a camera asleep mid-transfer, firmware stuck)
cannot be interrupted inside a thread, and an abandoned thread keeps the USB device claimed.
Killing a process ends the call and makes the kernel release the device. A fresh process also
lifts libgphoto2's virtual camera's per-process limit of about 26 captures (a static counter in
vcamera.c), so a simulated session of any length runs through the real PTP path.

Why ``subprocess`` running ``python -c "from rig.devices.camera_child import main; main()"``
rather than ``multiprocessing``'s spawn: the child's environment (``VCAMERADIR`` and whatever
else ``env`` holds) is given to ``Popen`` and so is in place before the interpreter starts,
long before anything can import gphoto2; spawn would re-import the parent's ``__main__``
(the ``stackrig`` script, pytest, a REPL) in the child and leave the environment to code that
runs after that. A plain pipe also gives the parent what it needs and nothing it does not: a
deadline on every reply (``select``), a dead child seen as end-of-stream at once, and a
process that is killed and reaped by its own ``Popen`` without a resource tracker or a
manager thread. The child runs in a session of its own, so the terminal's Ctrl-C reaches only
the parent, which then closes the camera cleanly instead of losing it mid-download.

Calls are serialised (one at a time, from any thread). After a call times out or the child
dies, that call raises :class:`~rig.errors.CameraError` and the next call starts a fresh child
and reconnects to the same camera first, so retrying a shot just works.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import rig
from rig.devices.camera_child import (
    HEADER,
    CameraInfo,
    CameraSummary,
    ConfigValue,
    decode_length,
    encode,
)
from rig.errors import CameraError

log = logging.getLogger("stackrig.camera.process")

CHILD_CODE = "from rig.devices.camera_child import main; main()"
_CLOSE_TIMEOUT_S = 3.0  # a polite close: the child closes the camera and exits
_KILL_WAIT_S = 2.0  # after terminate, before kill
_STDERR_TAIL = 2000  # characters of the child's stderr quoted when it died
_FORWARDED_LOGGERS = ("stackrig", "gphoto2")


class CameraProcess:
    """A :class:`~rig.devices.gphoto.GPhotoCamera` living in a child process.

    Offers what GPhotoCamera offers callers (connect, close, summary, config_keys, get, set,
    capture, preview, vibration_controls, ``info``), plus :meth:`restart` and ``captures``.
    ``env`` is added to the child's environment only. ``call_timeout_s`` bounds every call
    (connecting includes starting the child); a capture may take ``capture_timeout_s`` to
    produce its first file (the child's own wait, which ends in a clear error) plus
    ``call_timeout_s`` for downloading, after which the child is killed.
    """

    def __init__(
        self,
        model: str | None = None,
        port: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        call_timeout_s: float = 30.0,
        capture_timeout_s: float = 60.0,
    ) -> None:
        self.model = model
        self.port = port
        self.env = dict(env or {})
        self.call_timeout_s = call_timeout_s
        self.capture_timeout_s = capture_timeout_s
        self.info: CameraInfo | None = None
        self.captures = 0  # captures the current child has answered
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = bytearray()
        self._lost: str | None = None  # why the last child ended under a call
        self._lock = threading.RLock()

    # -- life cycle -------------------------------------------------------------------------

    def connect(self) -> str:
        """Start a child, connect to the camera asked for; return 'model on port'."""
        with self._lock:
            self.close()
            return self._start(None)

    def restart(self) -> str:
        """Close the current child (killing it if it does not answer), start a fresh one and
        reconnect to the same camera."""
        with self._lock:
            previous = self.info
            self._stop()
            return self._start(previous)

    def close(self) -> None:
        """Close the camera and end the child: politely, then terminate, then kill; reaped."""
        with self._lock:
            self._stop()
            self.info = None
            self._lost = None

    def __enter__(self) -> CameraProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The current child's process id (None when there is none)."""
        return self._proc.pid if self._proc is not None else None

    # -- what GPhotoCamera offers -----------------------------------------------------------

    def summary(self) -> CameraSummary:
        value: CameraSummary = self._call("summary", what="reading the summary")
        return value

    def config_keys(self) -> list[str]:
        value: list[str] = self._call("config_keys", what="listing the settings")
        return value

    def vibration_controls(self) -> list[str]:
        value: list[str] = self._call("vibration_controls", what="reading the settings")
        return value

    def get(self, key: str) -> ConfigValue:
        value: ConfigValue = self._call("get", key, what=f"reading {key}")
        return value

    def set(self, key: str, value: str | int | float | bool) -> None:
        self._call("set", key, value, what=f"setting {key} to {value!r}")

    def capture(self, folder: Path, delete_after: bool | None = None) -> list[Path]:
        """Shoot once; the child downloads every file into ``folder`` (fsync'd, renamed)."""
        folder = Path(folder).absolute()  # the child's working folder is not the caller's
        try:
            files: list[Path] = self._call(
                "capture",
                folder,
                delete_after,
                what="capturing",
                timeout_s=self.capture_timeout_s + self.call_timeout_s,
            )
        finally:
            if self._proc is not None:
                self.captures += 1
        return files

    def preview(self) -> bytes:
        value: bytes = self._call("preview", what="live view")
        return value

    # -- internals --------------------------------------------------------------------------

    def _call(self, op: str, *args: Any, what: str, timeout_s: float | None = None) -> Any:
        with self._lock:
            if self._proc is None:
                if self._lost is None:
                    raise CameraError("the camera is not connected: connect first")
                reason = self._lost
                log.warning("starting a fresh camera process (the last one %s)", reason)
                self._start(self.info)
            return self._request(op, args, what, timeout_s or self.call_timeout_s)

    def _start(self, resume: CameraInfo | None) -> str:
        """A fresh child, connected (to ``resume``'s camera where given)."""
        self._spawn()
        doing = "reconnecting" if resume else "connecting"
        try:
            if resume is None:
                text, info = self._request("connect", (), doing, self.call_timeout_s)
            else:
                text, info = self._request("resume", (resume,), doing, self.call_timeout_s)
        except BaseException:
            if self._proc is not None:  # it answered, with an error: no camera to talk to
                self._stop()
            raise
        self.info = info
        self._lost = None
        log.info("camera process %d: %s", self.pid, text)
        return str(text)

    def _spawn(self) -> None:
        # A file, not a pipe: nobody has to drain it, and it outlives the child for its tail.
        self._stderr = tempfile.TemporaryFile(prefix="stackrig-camera-")  # noqa: SIM115
        package_root = str(Path(rig.__file__).resolve().parents[1])
        env = dict(os.environ)
        env.update(self.env)
        paths = [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", CHILD_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._stderr.close()
            self._stderr = None
            raise CameraError(f"could not start the camera process ({exc})") from exc
        self._buffer.clear()
        self.captures = 0
        options = {"capture_timeout_s": self.capture_timeout_s}
        levels = {name: logging.getLogger(name).getEffectiveLevel() for name in _FORWARDED_LOGGERS}
        setup = {
            "model": self.model,
            "port": self.port,
            "options": options,
            "levels": levels,
            "parent": os.getpid(),
        }
        self._send(setup, "starting the camera process")

    def _request(self, op: str, args: tuple[Any, ...], what: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        self._send((op, args, {}), what)
        try:
            while True:
                message = self._receive(deadline, what, timeout_s)
                if message[0] == "log":
                    _forward(message[1])
                    continue
                if message[0] == "ok":
                    return message[1]
                _, kind, text = message
                if kind == "CameraError":
                    raise CameraError(text)
                raise RuntimeError(f"{what} failed in the camera process:\n{text}")
        except (CameraError, RuntimeError):
            raise
        except BaseException:
            # Interrupted mid-call (Ctrl-C): the reply would arrive out of step with the next
            # request, so this child cannot be trusted any more.
            self._lose(f"was stopped when {what} was interrupted")
            raise

    def _send(self, message: object, what: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(encode(message))
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(what) from None

    def _receive(self, deadline: float, what: str, timeout_s: float) -> Any:
        """The next whole message, or CameraError when the child is dead or too slow."""
        while True:
            if len(self._buffer) >= HEADER.size:
                size = decode_length(bytes(self._buffer[: HEADER.size]))
                end = HEADER.size + size
                if len(self._buffer) >= end:
                    body = bytes(self._buffer[HEADER.size : end])
                    del self._buffer[:end]
                    return pickle.loads(body)
            self._fill(deadline, what, timeout_s)

    def _fill(self, deadline: float, what: str, timeout_s: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(left, 0.0))[0] if left > 0 else []
        if not ready:
            self._lose(f"hung {what} for more than {timeout_s:g} s and was killed")
            raise CameraError(
                f"the camera did not finish {what} within {timeout_s:g} s: the camera process "
                "was killed and a fresh one starts with the next call; check the camera is on "
                "and awake, then retry"
            )
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise self._died(what)
        self._buffer += chunk

    def _died(self, what: str) -> CameraError:
        """The child went away under a call: reap it and say how it ended."""
        assert self._proc is not None
        try:
            code = self._proc.wait(_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None  # it closed its pipe but lives on: kill it below
        how = (
            f"was killed by signal {-code}"
            if code is not None and code < 0
            else f"exited with status {code}"
            if code is not None
            else "stopped answering"
        )
        said = self._stderr_tail()
        self._lose(f"{how} while {what}")
        tail = f"; it said: {_last_words(said)}" if said else ""
        return CameraError(
            f"the camera process {how} while {what}: a fresh one starts with the next call{tail}"
        )

    def _lose(self, reason: str) -> None:
        """Kill and reap the child; the next call starts a fresh one."""
        self._lost = reason
        self._kill()
        log.error("camera process %s", reason)

    def _stop(self) -> None:
        """End the child: close the camera and let it exit, else terminate, else kill."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._request("close", (), "closing the camera", _CLOSE_TIMEOUT_S)
            except (CameraError, RuntimeError) as exc:  # the child is ended below all the same
                log.warning("closing the camera process: %s", exc)
        if self._proc is not None:
            self._kill(polite=True)

    def _kill(self, polite: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # end of requests: a healthy child exits by itself
        try:
            if not polite:
                proc.kill()
            try:
                proc.wait(_KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(_KILL_WAIT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            said = self._stderr_tail()
            if said:  # warnings, tracebacks, faulthandler: never lost with the process
                log.warning(
                    "camera process %d (status %s) wrote: %s", proc.pid, proc.returncode, said
                )
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            size = self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            return self._stderr.read().decode("utf-8", "backslashreplace").strip()
        except (OSError, ValueError):
            return ""


def _last_words(said: str) -> str:
    """The line of a dead child's stderr that says what went wrong: a traceback's last line,
    or the error line above a fatal error's thread dump."""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines)[-1]


def _forward(fields: dict[str, Any]) -> None:
    """A log record from the child, handed to this process's logger of the same name."""
    logger = logging.getLogger(fields["name"])
    if logger.isEnabledFor(fields["levelno"]):
        logger.handle(logging.makeLogRecord(fields))
