"""Firmware emulators on a pseudo-terminal, so the real pyserial drivers open a real tty.

An emulator owns the master side of a pty and answers what the driver writes to the slave
path (``emulator.path``). Motion takes distance / speed of (scaled) time. Faults can be
injected at any time from the test or the ``sim-rail`` command.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
import threading
import time
import tty
from dataclasses import dataclass, field


@dataclass
class Faults:
    """Misbehaviour to inject; every emulator honours these, some add their own."""

    no_reply: bool = False  # swallow every reply (a hung controller)
    slow_reply_s: float = 0.0  # delay every reply
    garbage: bool = False  # put noise bytes before each reply
    split_lines: bool = False  # send each reply in two writes with a pause between
    disconnect_after_s: float | None = None  # drop the link this long after the next move starts
    error_next: int | None = None  # the next command fails with this firmware error code
    alarm_mid_move: bool = False  # a limit switch trips halfway through the next move
    reset_mid_move: bool = False  # the controller resets (banner again) during the next move


@dataclass
class Motion:
    """One axis moving to ``target``: position is a pure function of time.

    With ``accel`` 0 (the default) the speed changes instantly: constant ``speed`` from
    ``since``. With ``accel`` > 0 the move is a trapezoid: it starts at ``v0`` (towards the
    target), accelerates to ``speed``, cruises and decelerates to rest exactly at ``target``.
    """

    position: float = 0.0  # at ``since``
    target: float = 0.0
    speed: float = 1.0  # units per second (> 0)
    since: float = field(default_factory=time.monotonic)
    accel: float = 0.0  # units per second squared; 0: speed changes instantly
    v0: float = 0.0  # speed at ``since`` (towards the target; only with ``accel``)

    def _profile(self) -> tuple[float, float, float, float, float]:
        """(distance, peak speed, accelerating, cruising, decelerating seconds)."""
        distance, a, u = abs(self.target - self.position), self.accel, self.v0
        peak = min(max(self.speed, u), ((2 * a * distance + u * u) / 2) ** 0.5)
        peak = max(peak, u)
        t1 = (peak - u) / a
        d1 = (peak * peak - u * u) / (2 * a)
        d3 = peak * peak / (2 * a)
        t3 = peak / a
        t2 = max(0.0, distance - d1 - d3) / peak if peak > 0 else 0.0
        return distance, peak, t1, t2, t3

    def _travelled(self, t: float) -> tuple[float, float]:
        """(distance travelled since ``since``, speed) at ``t``."""
        if self.accel <= 0:
            gap = abs(self.target - self.position)
            travelled = self.speed * max(0.0, t - self.since)
            return (gap, 0.0) if travelled >= gap else (travelled, self.speed)
        distance, peak, t1, t2, t3 = self._profile()
        tau, a, u = max(0.0, t - self.since), self.accel, self.v0
        if tau < t1:
            return u * tau + a * tau * tau / 2, u + a * tau
        d1 = (peak * peak - u * u) / (2 * a)
        if tau < t1 + t2:
            return d1 + peak * (tau - t1), peak
        tau -= t1 + t2
        if tau < t3:
            return min(distance, d1 + peak * t2 + peak * tau - a * tau * tau / 2), peak - a * tau
        return distance, 0.0

    def now(self, t: float) -> float:
        gap = self.target - self.position
        travelled, _ = self._travelled(t)
        if abs(gap) <= travelled:
            return self.target
        return self.position + travelled * (1 if gap > 0 else -1)

    def velocity(self, t: float) -> float:
        """Speed (>= 0) at ``t``."""
        if self.now(t) == self.target:
            return 0.0
        return self._travelled(t)[1]

    def moving(self, t: float) -> bool:
        return self.now(t) != self.target

    def ends_at(self) -> float:
        """When the carriage reaches ``target``."""
        distance = abs(self.target - self.position)
        if self.accel <= 0:
            return self.since + distance / self.speed
        _, _, t1, t2, t3 = self._profile()
        return self.since + t1 + t2 + t3

    def start(self, target: float, speed: float, t: float) -> None:
        """Set off from rest towards ``target``."""
        self.position, self.target, self.speed, self.since = self.now(t), target, speed, t
        self.v0 = 0.0

    def halt(self, t: float) -> None:
        here = self.now(t)
        self.position, self.target, self.since, self.v0 = here, here, t, 0.0

    def decelerate(self, t: float) -> None:
        """Stop as soon as the acceleration allows (at once without ``accel``)."""
        if self.accel <= 0 or not self.moving(t):
            self.halt(t)
            return
        here, speed = self.now(t), self.velocity(t)
        direction = 1 if self.target > here else -1
        stop = here + direction * speed * speed / (2 * self.accel)
        if (stop - self.target) * direction >= 0:
            return  # it is already decelerating into the target
        self.position, self.target, self.since = here, stop, t
        self.speed = self.v0 = speed


IN_OPEN = 0x20  # inotify: the file was opened
_EVENT = struct.Struct("iIII")  # struct inotify_event without its name


def open_watch(path: str) -> int:
    """An inotify descriptor that becomes readable whenever someone opens ``path`` (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init, add = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError) as exc:
        raise RuntimeError("watching a pty for opens needs Linux inotify") from exc
    fd = int(init(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    if int(add(fd, os.fsencode(path), IN_OPEN)) < 0:
        errno = ctypes.get_errno()
        os.close(fd)
        raise OSError(errno, f"cannot watch {path} for opens")
    return fd


class PtyEmulator:
    """Base: the pty, the reader thread, reply delivery with faults. Subclasses speak.

    ``watch_opens``: call :meth:`on_open` whenever a client opens the pty (a real Arduino Uno
    resets when its port is opened; see the GRBL emulator's ``reset_on_open``).
    """

    def __init__(self, *, watch_opens: bool = False) -> None:
        self.faults = Faults()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._opens: int | None = open_watch(self.path) if watch_opens else None
        self._lock = threading.RLock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.received: list[bytes] = []  # every chunk the driver wrote, for tests
        self.connected = True
        self._close_on_exit = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> PtyEmulator:
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()
        self.on_start()
        return self

    def close(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2)
            if self._thread.is_alive():
                # Still inside a (slow) reply: closing now would let its late bytes land in
                # whichever pty reuses these descriptor numbers. The loop closes them on exit.
                self._close_on_exit = True
                return
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave, self._opens):
            if fd is None:
                continue
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def disconnect(self) -> None:
        """Vanish like an unplugged cable: the driver's next read or write fails."""
        self.connected = False
        self._running.clear()
        with contextlib.suppress(OSError):
            os.close(self._master)

    def plug_in(self) -> str:
        """After :meth:`disconnect`: the cable back in. The controller kept its power and
        state (call its reset for one that did not); the link is a new tty, as a replugged
        USB adapter gets a new device node. Returns the new path."""
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._close_fds()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        if self._opens is not None:
            self._opens = open_watch(self.path)
        self.connected = True
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self.path

    # -- for subclasses --------------------------------------------------------------------

    def on_start(self) -> None:
        """Called once the reader runs (e.g. print a boot banner)."""

    def on_bytes(self, data: bytes) -> None:
        """Everything the driver wrote, as it arrives."""
        raise NotImplementedError

    def on_open(self) -> None:
        """A client opened the pty (only with ``watch_opens``)."""

    def tick(self, now: float) -> None:
        """Called about every 5 ms (timed events: motion finishing, scheduled faults)."""

    def reply(self, data: bytes | str) -> None:
        """Send to the driver, through the injected faults."""
        raw = data.encode("ascii") if isinstance(data, str) else data
        f = self.faults
        if f.no_reply or not self.connected:
            return
        if f.slow_reply_s:
            time.sleep(f.slow_reply_s)
        if f.garbage:
            raw = b"\x00\xfe#%" + raw
        if f.split_lines and len(raw) > 2:
            half = len(raw) // 2
            self._write(raw[:half])
            time.sleep(0.01)
            self._write(raw[half:])
            return
        self._write(raw)

    # -- internals -------------------------------------------------------------------------

    def _write(self, raw: bytes) -> None:
        if not self._running.is_set():
            return  # closed while a reply was being delayed: it goes nowhere
        try:
            os.write(self._master, raw)
        except OSError:
            self.connected = False

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            if self._close_on_exit:
                self._close_fds()

    def _serve(self) -> None:
        watched = [self._master] if self._opens is None else [self._master, self._opens]
        while self._running.is_set():
            try:
                ready, _, _ = select.select(watched, [], [], 0.005)
            except (OSError, ValueError):
                return
            if self._opens is not None and self._opens in ready and self._opened():
                with self._lock:
                    self.on_open()
            if self._master in ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                if data:
                    with self._lock:
                        self.received.append(data)
                        self.on_bytes(data)
            with self._lock:
                self.tick(time.monotonic())

    def _opened(self) -> bool:
        """Drain the inotify events: whether one of them was an open."""
        assert self._opens is not None
        try:
            events = os.read(self._opens, 4096)
        except BlockingIOError:
            return False
        opened, at = False, 0
        while at + _EVENT.size <= len(events):
            _, mask, _, length = _EVENT.unpack_from(events, at)
            opened |= bool(mask & IN_OPEN)
            at += _EVENT.size + length
        return opened
