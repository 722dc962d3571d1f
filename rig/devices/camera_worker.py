"""One thread owns the camera; everyone else asks it, with a deadline.

Why a dedicated thread: libgphoto2 camera handles are not thread-safe, so every call into them
must come from the same thread, and the session and the UI must never block on a camera that
stops answering (asleep, cable pulled mid-transfer, firmware hang).

Why not ``concurrent.futures.ThreadPoolExecutor``: a call stuck inside libgphoto2 cannot be
interrupted, and the executor's worker threads are joined at interpreter exit, so one hung USB
transfer would keep stackrig from quitting. Here the thread is a daemon: after a hang the worker
is marked faulted, the stuck thread is abandoned, and :meth:`CameraWorker.restart` starts a
fresh thread with a fresh camera object. If the old call still holds the USB device, the new
connection fails to claim it until the camera is switched off and on, which also ends the old
call; the error then says so.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, Protocol, TypeVar

from rig.errors import CameraError

log = logging.getLogger("stackrig.camera")

R = TypeVar("R")


class _Connectable(Protocol):
    def connect(self) -> str: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=_Connectable)
_Job = tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]


class CameraWorker(Generic[C]):
    """Runs ``fn(camera, *args)`` on the one thread that owns the camera.

    ``make_camera`` builds an unconnected camera (e.g. ``lambda: GPhotoCamera(model)``);
    :meth:`start` connects it on the worker thread.
    """

    def __init__(self, make_camera: Callable[[], C], *, connect_timeout_s: float = 30.0) -> None:
        self._make_camera = make_camera
        self._connect_timeout_s = connect_timeout_s
        self._jobs: queue.Queue[_Job | None] | None = None
        self._thread: threading.Thread | None = None
        self._fault: str | None = None

    def start(self) -> str:
        """Start the thread and connect the camera; return what connect() said."""
        self._jobs = queue.Queue()
        camera = self._make_camera()
        self._thread = threading.Thread(
            target=_serve, args=(camera, self._jobs), name="camera", daemon=True
        )
        self._thread.start()
        self._fault = None
        return self.call(_connect, timeout_s=self._connect_timeout_s, what="connecting")

    def restart(self) -> str:
        """Abandon the current thread (it may be stuck in libgphoto2) and start afresh."""
        if self._fault is None:
            try:
                self.close()
            except CameraError as exc:  # closing hung: abandon that thread as well
                log.warning("closing before restart: %s", exc)
        if self._jobs is not None:
            self._jobs.put(None)  # a stuck thread is a daemon: it cannot hold up exit
        log.info("restarting the camera worker (was: %s)", self._fault or "healthy")
        return self.start()

    def call(
        self,
        fn: Callable[..., R],
        *args: Any,
        timeout_s: float,
        what: str | None = None,
    ) -> R:
        """``fn(camera, *args)`` on the camera thread; its result, or its exception re-raised.

        If it has not finished after ``timeout_s`` the caller gets a CameraError at once and
        the worker is faulted: later calls fail until :meth:`restart`.
        """
        what = what or getattr(fn, "__name__", "the request")
        if self._fault is not None:
            raise CameraError(
                f"the camera stopped responding earlier ({self._fault}): switch it off and on, "
                "then reconnect"
            )
        if self._jobs is None:
            raise CameraError("the camera worker is not started: connect first")
        future: Future[R] = Future()
        self._jobs.put((fn, args, future))
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            self._fault = f"{what} hung for more than {timeout_s:g} s"
            log.error("camera worker faulted: %s", self._fault)
            raise CameraError(
                f"the camera did not respond to {what} within {timeout_s:g} s: check it is on "
                "and awake; retry"
            ) from None

    @property
    def faulted(self) -> bool:
        return self._fault is not None

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the camera on its thread and let the thread end."""
        if self._jobs is None:
            return
        try:
            if self._fault is None:
                self.call(_close, timeout_s=timeout_s, what="closing")
        finally:
            self._jobs.put(None)
            if self._thread is not None and self._fault is None:
                self._thread.join(timeout_s)
            self._jobs = self._thread = None


def _connect(camera: _Connectable) -> str:
    return camera.connect()


def _close(camera: _Connectable) -> None:
    camera.close()


def _serve(camera: Any, jobs: queue.Queue[_Job | None]) -> None:
    """The camera thread: run jobs in order until told to stop (None)."""
    while (job := jobs.get()) is not None:
        fn, args, future = job
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn(camera, *args))
        except BaseException as exc:  # handed to the caller, who re-raises it
            future.set_exception(exc)
