"""Firmware emulators on a pseudo-terminal, so the real pyserial drivers open a real tty.

An emulator owns the master side of a pty and answers what the driver writes to the slave
path (``emulator.path``). Motion takes distance / speed of (scaled) time. Faults can be
injected at any time from the test or the ``sim-rail`` command.
"""

from __future__ import annotations

import contextlib
import os
import select
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
    """One axis moving at constant speed: position is a pure function of time."""

    position: float = 0.0  # at ``since``
    target: float = 0.0
    speed: float = 1.0  # units per second (> 0)
    since: float = field(default_factory=time.monotonic)

    def now(self, t: float) -> float:
        travelled = self.speed * max(0.0, t - self.since)
        gap = self.target - self.position
        if abs(gap) <= travelled:
            return self.target
        return self.position + travelled * (1 if gap > 0 else -1)

    def moving(self, t: float) -> bool:
        return self.now(t) != self.target

    def start(self, target: float, speed: float, t: float) -> None:
        self.position, self.target, self.speed, self.since = self.now(t), target, speed, t

    def halt(self, t: float) -> None:
        here = self.now(t)
        self.position, self.target, self.since = here, here, t


class PtyEmulator:
    """Base: the pty, the reader thread, reply delivery with faults. Subclasses speak."""

    def __init__(self) -> None:
        self.faults = Faults()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
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
        for fd in (self._master, self._slave):
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

    # -- for subclasses --------------------------------------------------------------------

    def on_start(self) -> None:
        """Called once the reader runs (e.g. print a boot banner)."""

    def on_bytes(self, data: bytes) -> None:
        """Everything the driver wrote, as it arrives."""
        raise NotImplementedError

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
        while self._running.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.005)
            except (OSError, ValueError):
                return
            if ready:
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
