"""A serial link with deadlines: every read is bounded, every failure is a RailError."""

from __future__ import annotations

import threading
import time

import serial

from rig.errors import LinkLost, RailError

try:
    import termios

    # A tty that vanished mid-call raises termios.error, which is not an OSError.
    _LINK_ERRORS: tuple[type[Exception], ...] = (
        serial.SerialException,
        OSError,
        TypeError,  # pyserial's read on a closed fd
        termios.error,
    )
except ImportError:  # not POSIX
    _LINK_ERRORS = (serial.SerialException, OSError, TypeError)


class LinkTimeout(RailError):
    """Nothing (or not a whole reply) arrived before the deadline; the link itself is fine."""


class SerialLink:
    """pyserial port with line reads against a deadline and thread-safe writes.

    Writes are locked so that an emergency stop from another thread never interleaves with a
    command being sent. Reads happen on one thread (the one driving the rail).
    """

    def __init__(self, port: str, baudrate: int, *, label: str = "controller") -> None:
        self.port = port
        self.baudrate = baudrate
        self.label = label
        self._serial: serial.Serial | None = None
        self._buffer = bytearray()
        self._write_lock = threading.Lock()

    def open(self) -> None:
        self.close()  # reconnecting: never leave the previous handle open
        try:
            self._serial = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=0.02, write_timeout=2.0
            )
        except serial.SerialException as exc:
            raise RailError(_open_advice(self.port, exc)) from exc
        self._buffer.clear()

    def keep_dtr_on_close(self) -> None:
        """Leave DTR raised when the port closes (clear HUPCL), as ``stty -hupcl`` does.

        Boards that reset on DTR (an Arduino Uno, most CH340/16U2 boards) then reset only on
        the first open after they were plugged in, not on every later connect. Best effort:
        a port without termios (Windows, a socket URL) keeps its default.
        """
        port = self._require()
        try:
            import termios

            attrs = termios.tcgetattr(port.fileno())
            attrs[2] &= ~termios.HUPCL
            termios.tcsetattr(port.fileno(), termios.TCSANOW, attrs)
        except (ImportError, AttributeError, ValueError):
            pass
        except _LINK_ERRORS:
            pass

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None

    def reset_input(self) -> None:
        """Forget anything received but not yet read."""
        self._buffer.clear()
        port = self._require()
        try:
            port.reset_input_buffer()
        except _LINK_ERRORS as exc:
            raise self._lost(exc) from exc

    def write(self, data: bytes) -> None:
        port = self._require()
        with self._write_lock:
            try:
                port.write(data)
                port.flush()
            except _LINK_ERRORS as exc:
                raise self._lost(exc) from exc

    def read_line(self, deadline: float, what: str) -> str:
        """The next line (without its line ending) before ``deadline`` (time.monotonic())."""
        port = self._require()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return raw.rstrip(b"\r").decode("ascii", errors="replace")
            if time.monotonic() >= deadline:
                raise LinkTimeout(
                    f"{self.label} on {self.port} did not answer {what} in time: check that it "
                    "is powered and connected, and that the protocol and baud rate in the "
                    "profile match the controller"
                )
            try:
                chunk = port.read(port.in_waiting or 1)
            except _LINK_ERRORS as exc:
                raise self._lost(exc) from exc
            if chunk:
                self._buffer.extend(chunk)

    def waiting_lines(self) -> list[str]:
        """The whole lines already received, without waiting (a partial line stays)."""
        port = self._require()
        try:
            if port.in_waiting:
                self._buffer.extend(port.read(port.in_waiting))
        except _LINK_ERRORS as exc:
            raise self._lost(exc) from exc
        lines = []
        while (end := self._buffer.find(b"\n")) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            lines.append(raw.rstrip(b"\r").decode("ascii", errors="replace"))
        return lines

    def read_bytes(self, count: int, deadline: float, what: str) -> bytes:
        """Exactly ``count`` bytes before ``deadline`` (binary protocols)."""
        port = self._require()
        while len(self._buffer) < count:
            if time.monotonic() >= deadline:
                raise LinkTimeout(
                    f"{self.label} on {self.port} did not answer {what} in time: check that it "
                    "is powered and connected, and the baud rate in the profile"
                )
            try:
                chunk = port.read(count - len(self._buffer))
            except _LINK_ERRORS as exc:
                raise self._lost(exc) from exc
            self._buffer.extend(chunk)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _require(self) -> serial.Serial:
        if self._serial is None:
            raise RailError(f"{self.label} on {self.port} is not connected: connect first")
        return self._serial

    def _lost(self, exc: Exception) -> LinkLost:
        self.close()
        return LinkLost(
            f"lost the connection to the {self.label} on {self.port} ({exc}): check the cable "
            "and power, then connect again; the position may be wrong until you re-zero or home"
        )


def _open_advice(port: str, exc: Exception) -> str:
    text = str(exc)
    if "ermission" in text:
        return (
            f"no permission to open {port}: install stackrig's udev rules (see udev/) or add "
            "yourself to the 'dialout' group, then plug the controller in again"
        )
    if "No such file" in text or "could not open" in text:
        return (
            f"cannot open {port}: the controller is not there. Check the cable, or run "
            f"'stackrig rail list' to see the ports ({text})"
        )
    if "busy" in text.lower():
        return f"{port} is in use by another program: close it (e.g. a G-code sender) and retry"
    return f"cannot open {port}: {text}"
