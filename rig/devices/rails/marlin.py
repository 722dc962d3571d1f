"""Marlin 2.x driver (3D-printer boards), after the MarlinDocumentation G-code pages.

Every command is a numbered, checksummed line (``N<n> ... *<xor>``) sent one at a time; Marlin
answers each with ``ok`` in the order received. Because ``ok`` carries no line number, the
driver keeps a queue of the lines still owed an ``ok`` (``_owed``): a stop sent from another
thread, or a command abandoned after an error, then never steals the ``ok`` of the next one.
"Moved" means finished: the ``ok`` of ``M400`` (planner empty), then ``M114`` confirms that
Marlin arrived where it was sent (it clamps moves at its soft endstops without an error).
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections import deque
from typing import NoReturn

from rig.devices.rails.link import SerialLink
from rig.errors import RailError

log = logging.getLogger("stackrig.rails.marlin")

AXES = "XYZ"
M114_RESOLUTION_MM = 0.005  # M114 prints two decimals: a reading this close confirms a target
MAX_RESENDS = 3  # a line Marlin asks for more often than this is not getting through
_RESEND = re.compile(r"Resend:\s*(\d+)")
_FIRMWARE = re.compile(r"FIRMWARE_NAME:\s*(.*?)(?:\s+[A-Z_]+:|$)")
_MACHINE = re.compile(r"MACHINE_TYPE:\s*(.*?)(?:\s+[A-Z_]+:|$)")
_CAP = re.compile(r"Cap:([A-Z_0-9]+):([01])")
_sync_ids = itertools.count(1)


def frame(number: int, command: str) -> bytes:
    """``N<n> <command>*<checksum>``: the checksum is the XOR of every byte before ``*``."""
    body = f"N{number} {command}".encode("ascii")
    checksum = 0
    for byte in body:
        checksum ^= byte
    return body + b"*" + str(checksum).encode("ascii") + b"\n"


def parse_position(line: str, axis: str) -> float | None:
    """The ``axis`` value of an M114 line, read before ``Count`` (the stepper counts)."""
    head = line.split("Count", 1)[0]
    match = re.search(rf"(?<![A-Za-z]){axis}:\s*(-?\d+(?:\.\d*)?)", head)
    return float(match.group(1)) if match else None


def is_ok(line: str) -> bool:
    # ADVANCED_OK builds append "N<line> P<planner> B<buffer>".
    return line == "ok" or line.startswith("ok ")


class MarlinDriver:
    name = "marlin"

    def __init__(
        self,
        port: str,
        *,
        axis: str = "Z",
        steps_per_mm: float | None = None,
        speed_mm_s: float = 5.0,
        accel_mm_s2: float | None = None,
        baudrate: int = 115200,
        reply_timeout_s: float = 5.0,
        connect_timeout_s: float = 10.0,
        hello_interval_s: float = 1.0,
    ) -> None:
        if len(axis) != 1 or axis.upper() not in AXES:
            raise RailError(f"axis {axis!r}: choose X, Y or Z for a Marlin rail")
        if speed_mm_s <= 0:
            raise RailError(f"speed {speed_mm_s} mm/s: must be above 0")
        self.axis = axis.upper()
        self.steps_per_mm = steps_per_mm
        self.speed_mm_s = speed_mm_s
        self.accel_mm_s2 = accel_mm_s2
        self.reply_timeout_s = reply_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.hello_interval_s = hello_interval_s
        self.link = SerialLink(port, baudrate, label="Marlin controller")
        self.capabilities: dict[str, bool] = {}
        self._owed: deque[object] = deque()  # one token per line sent and not yet answered ok
        self._send_lock = threading.Lock()  # a write and its token go together
        self._io_lock = threading.RLock()  # one command-and-reply exchange at a time
        self._stopped = threading.Event()
        self._line_no = 0
        self._in_step = False  # False after any failed exchange: resynchronise first
        self._commanded_mm: float | None = None  # where the last finished command left the axis
        self._noise: list[str] = []
        self._busy = False  # Marlin sent a busy keepalive during the current exchange

    # -- FocusDriver -----------------------------------------------------------------------

    def connect(self) -> str:
        with self._io_lock:
            self.link.close()
            self.link.open()
            try:
                return self._start_session(time.monotonic() + self.connect_timeout_s)
            except RailError:
                self.link.close()
                raise

    def close(self) -> None:
        self.link.close()

    def position_um(self) -> float:
        with self._io_lock:
            here = self._read_position(time.monotonic() + self.reply_timeout_s)
            known = self._commanded_mm
            if known is not None and abs(here - known) <= M114_RESOLUTION_MM:
                return known * 1000.0  # finer than M114's two decimals, and confirmed by it
            self._commanded_mm = None
            return here * 1000.0

    def move_to(self, target_um: float, timeout_s: float) -> None:
        target = target_um / 1000.0
        deadline = time.monotonic() + timeout_s
        with self._io_lock:
            self._stopped.clear()
            self._commanded_mm = None
            self._exchange(f"G1 {self.axis}{target:.4f} F{self._feed()}", deadline)
            self._finish(f"the move to {target:.3f} mm", deadline)
            here = self._read_position(deadline)
            if abs(here - target) > M114_RESOLUTION_MM:
                raise RailError(
                    f"Marlin stopped at {self.axis}{here:.2f} instead of {target:.3f} mm: it "
                    "clamps moves at its soft endstops (M211) without an error. Stay inside the "
                    "travel configured in the firmware, or home so its limits match the rail"
                )
            self._commanded_mm = target

    def jog(self, delta_um: float) -> None:
        delta = delta_um / 1000.0
        deadline = time.monotonic() + self.reply_timeout_s
        with self._io_lock:
            self._exchange("G91", deadline)
            self._exchange(f"G0 {self.axis}{delta:.4f} F{self._feed()}", deadline)
            self._exchange("G90", deadline)
            if self._commanded_mm is not None:
                self._commanded_mm += delta

    def stop(self) -> None:
        """Quickstop. Unnumbered, so it takes no line number from a command being waited on;
        Marlin's emergency parser acts on it at once, its queued copy is answered ``ok`` later."""
        self._stopped.set()
        self._send(b"M410\n")

    def set_zero(self) -> None:
        with self._io_lock:
            self._exchange(f"G92 {self.axis}0", time.monotonic() + self.reply_timeout_s)
            self._commanded_mm = 0.0

    def home(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._io_lock:
            self._stopped.clear()
            self._commanded_mm = None
            # G28 blocks in Marlin: its ok comes once homing is over, with busy keepalives.
            self._exchange(f"G28 {self.axis}", deadline)
            self._finish("homing", deadline)

    def energise(self, on: bool) -> None:
        command = f"M17 {self.axis}" if on else f"M18 {self.axis}"
        with self._io_lock:
            self._exchange(command, time.monotonic() + self.reply_timeout_s)

    # -- session ---------------------------------------------------------------------------

    def _start_session(self, deadline: float) -> str:
        self.link.reset_input()
        self._owed.clear()
        self._noise.clear()
        self._greet(deadline)
        report = self._exchange("M115", deadline)
        identity = self._identify(report)
        if self.steps_per_mm is not None:
            self._exchange(f"M92 {self.axis}{self.steps_per_mm:g}", deadline)
        if self.accel_mm_s2 is not None:
            self._exchange(f"M201 {self.axis}{self.accel_mm_s2:g}", deadline)
        self._exchange("G21", deadline)  # millimetres
        self._exchange("G90", deadline)  # absolute
        self._commanded_mm = None
        self._read_position(deadline)  # fails here, not mid-capture, if M114 lacks the axis
        return identity

    def _greet(self, deadline: float) -> None:
        """Get in step with a running Marlin, whether or not opening the port reset the board.

        A board with auto-reset sits in its bootloader for a second or two, drops what it is
        sent, then prints ``start``; a board without prints nothing. So ask again every
        ``hello_interval_s``, and at once after ``start``, until an answer comes.
        """
        heard: list[str] = []
        while True:
            attempt_end = min(deadline, time.monotonic() + self.hello_interval_s)
            if self._sync(attempt_end, heard):
                return
            if time.monotonic() >= deadline:
                raise RailError(self._silence_advice(heard))

    def _sync(self, attempt_end: float, heard: list[str]) -> bool:
        """Reset line numbers and wait for a unique M118 echo: every ``ok`` before it is stale.

        False when the board (re)booted meanwhile or the attempt ran out of time.
        """
        marker = f"stackrig-sync-{next(_sync_ids)}"
        self._line_no = 0
        self._send(b"M110 N0\n")
        self._send(f"M118 {marker}\n".encode("ascii"))
        seen = False
        while True:
            try:
                line = self._read_line(attempt_end, "M118 (a hello)")
            except RailError:
                if not self.link.is_open:
                    raise
                return False
            if line == "start":
                self._owed.clear()  # what was sent before the reset was lost
                return False
            if line.startswith("error:"):  # lower case: GRBL and friends, never Marlin
                raise RailError(self._not_marlin(f"answered {line!r} to M110"))
            if marker in line:
                seen = True
            elif is_ok(line) and seen:  # the ok of M118: every earlier ok has come
                self._owed.clear()
                self._in_step = True
                return True
            elif line and not is_ok(line) and line not in heard[-5:]:
                heard.append(line)

    def _identify(self, report: list[str]) -> str:
        text = " ".join(report)
        firmware = _FIRMWARE.search(text)
        if firmware is None:
            raise RailError(
                self._not_marlin(f"answered M115 without FIRMWARE_NAME ({_quote(report)})")
            )
        name = firmware.group(1).strip()
        if not name.startswith("Marlin"):
            raise RailError(self._not_marlin(f"reports FIRMWARE_NAME:{name}"))
        self.capabilities = {cap: flag == "1" for cap, flag in _CAP.findall(text)}
        machine = _MACHINE.search(text)
        identity = name.split(" (")[0]  # drop the build date
        if machine and machine.group(1).strip():
            identity += f" on {machine.group(1).strip()}"
        if not self.capabilities.get("EMERGENCY_PARSER", True):
            log.warning("%s has no EMERGENCY_PARSER: stop acts only once a move ends", identity)
            identity += " (no emergency parser: stop acts only after the current move)"
        return identity

    # -- exchanges -------------------------------------------------------------------------

    def _exchange(self, command: str, deadline: float) -> list[str]:
        """Send ``command`` numbered and return the lines that came before its ``ok``."""
        with self._io_lock:
            if not self._in_step:
                self._resync(deadline)
            self._in_step = False
            self._line_no += 1
            lines = self._await_ok(command, frame(self._line_no, command), deadline)
            self._in_step = True
            return lines

    def _resync(self, deadline: float) -> None:
        """After a failed exchange: stale oks drained, numbering reset, absolute mode again
        (a failed jog may have left Marlin in G91)."""
        if not self._sync(deadline, []):
            raise RailError(
                f"Marlin on {self.link.port} stopped answering after the last error: check it, "
                "then connect again"
            )
        self._exchange("G90", deadline)

    def _finish(self, what: str, deadline: float) -> None:
        """M400: its ``ok`` means the planner is empty, i.e. the motion is over."""
        self._exchange("M400", deadline)
        if self._stopped.is_set():
            raise RailError(
                f"{what} was stopped on request (M410 quickstop): the rail stopped short; "
                "Marlin may have lost steps, so re-zero or home before relying on positions"
            )

    def _await_ok(self, command: str, framed: bytes, deadline: float) -> list[str]:
        token = self._send(framed)
        lines: list[str] = []
        resends = 0
        resend_asked = False
        self._busy = False
        while True:
            line = self._read_reply(deadline, command)
            if is_ok(line):
                if self._owed and self._owed.popleft() is not token:
                    continue  # the late ok of a stop or of an abandoned command
                if not resend_asked:
                    return lines
                resends += 1
                if resends > MAX_RESENDS:
                    raise RailError(
                        f"Marlin rejected {command} {resends} times as corrupted: check the USB "
                        "cable (short, shielded, away from motor wires) and the baud rate"
                    )
                token, resend_asked = self._send(framed), False
            elif (match := _RESEND.search(line)) is not None:
                self._check_resend(int(match.group(1)), command)
                resend_asked = True
            elif self._keep(line, command):
                lines.append(line)

    def _check_resend(self, number: int, command: str) -> None:
        if number != self._line_no:
            raise RailError(
                f"Marlin asked to resend line {number} while waiting on line {self._line_no} "
                f"({command}): it lost count, which happens when it resets; connect again"
            )

    def _keep(self, line: str, command: str) -> bool:
        """Raise on lines that end the command; False for chatter, True for its answer."""
        if line == "start":
            self._fail_link(
                f"Marlin restarted (printed 'start') during {command}: the position is lost. "
                "Check the power supply and USB cable, connect again, then home or re-zero"
            )
        if line.startswith("Error:"):
            self._raise_error(line[len("Error:") :].strip(), command)
            return False
        if line.startswith("echo:"):
            return self._check_echo(line[len("echo:") :].strip(), command)
        return line not in ("wait", "") and not line.startswith("//")

    def _raise_error(self, text: str, command: str) -> None:
        if "Last Line" in text:
            return  # a framing error: the Resend line that follows says which line
        if "kill()" in text or "halted" in text:
            self._fail_link(
                "Marlin halted (kill): reset the board (power or reset button), then home or "
                f"re-zero (it said: {text!r} during {command})"
            )
        raise RailError(
            f"Marlin reported an error during {command}: {text!r}. Fix the cause it names, "
            "then send M999 or reset the board, and re-zero"
        )

    def _check_echo(self, text: str, command: str) -> bool:
        if text.startswith("busy:"):
            self._busy = True
            return False  # keepalive: Marlin is working on the command, nothing more
        if text.startswith("Unknown command"):
            raise RailError(
                f"Marlin does not know {command.split()[0]} ({text}): this firmware build "
                "lacks it; enable it in Configuration_adv.h or use another command"
            )
        if text.startswith("endstops hit"):
            self._commanded_mm = None
            raise RailError(
                f"the rail hit a limit switch during {command} ({text}): Marlin has lost its "
                "position. Move away from the switch, then home or re-zero"
            )
        log.debug("Marlin: %s", text)
        return False

    # -- wire ------------------------------------------------------------------------------

    def _send(self, data: bytes) -> object:
        token = object()
        with self._send_lock:
            self._owed.append(token)  # before writing: the ok may be read at once
            try:
                self.link.write(data)
            except RailError:
                self._owed.remove(token)
                raise
        return token

    def _read_reply(self, deadline: float, command: str) -> str:
        try:
            return self._read_line(deadline, command)
        except RailError as exc:
            if self._busy and self.link.is_open:
                raise RailError(
                    f"Marlin was still busy with {command} when the time allowed ran out: the "
                    "motion takes longer than expected. Check the speed in the profile against "
                    "Marlin's maximum feed rate (M203), then stop or home the rail"
                ) from exc
            raise

    def _read_line(self, deadline: float, what: str) -> str:
        try:
            raw = self.link.read_line(deadline, what)
        except RailError as exc:
            if self._noise and self.link.is_open:
                raise RailError(
                    f"{exc}. It sent only unreadable bytes ({_quote(self._noise[-3:])}): "
                    "set the baud rate of the profile to the firmware's BAUDRATE (often 115200 "
                    "or 250000)"
                ) from exc
            raise
        line = raw.strip()
        if not line.isprintable():
            if line.endswith("start"):
                return "start"  # a board that resets may emit a byte or two of noise first
            self._noise.append(line)
            return ""
        self._noise.clear()
        return line

    def _read_position(self, deadline: float) -> float:
        for line in reversed(self._exchange("M114", deadline)):
            value = parse_position(line, self.axis)
            if value is not None:
                return value
        raise RailError(
            f"Marlin's M114 reply has no {self.axis} position: check the axis in the profile"
        )

    def _feed(self) -> str:
        return f"{self.speed_mm_s * 60.0:.0f}"  # Marlin's F is mm per minute

    def _fail_link(self, message: str) -> NoReturn:
        """The board reset or halted: what we set up is gone, so require a new connect."""
        self._commanded_mm = None
        self.link.close()
        raise RailError(message)

    def _silence_advice(self, heard: list[str]) -> str:
        said = f"; it said {_quote(heard)}" if heard else ""
        if self._noise:
            said += f"; its answers were unreadable bytes ({_quote(self._noise[-3:])})"
        return (
            f"no answer from a Marlin controller on {self.link.port} to a hello (M118){said}. "
            "Check power and cable, that it runs Marlin, and that the profile's baud rate "
            "matches the firmware's BAUDRATE (often 115200 or 250000)"
        )

    def _not_marlin(self, what: str) -> str:
        return (
            f"the controller on {self.link.port} {what}: it is not Marlin. Choose the protocol "
            "of its firmware in the profile"
        )


def _quote(lines: list[str]) -> str:
    return ", ".join(repr(line) for line in lines[-5:])
