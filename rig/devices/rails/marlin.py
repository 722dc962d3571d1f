"""Marlin 2.x driver (3D-printer boards), after the MarlinDocumentation G-code pages.

Every command is a numbered, checksummed line (``N<n> ... *<xor>``) sent one at a time; Marlin
answers each with ``ok`` in the order received. Because ``ok`` carries no line number, the
driver keeps a queue of the lines still owed an ``ok`` (``_owed``): a stop sent from another
thread, or a command abandoned after an error, then never steals the ``ok`` of the next one.
"Moved" means finished: the ``ok`` of ``M400`` (planner empty), then ``M114`` confirms that
Marlin arrived where it was sent (it clamps moves at its soft endstops without an error).

What a stop leaves behind (docs/rails.md has the sources): ``M410`` (quickstop) drops every
planned move at once, without deceleration, and re-reads the position from the stepper
counts; nothing is latched and the axes stay homed. But Marlin then refuses to plan moves for
about a second (``Planner::quick_stop`` sets ``cleaning_buffer_counter``), dropping them
silently while reporting their targets as reached, and ``M400`` waits that second out. So
after every quickstop this driver sends ``M400`` and waits for its ``ok`` before it sends
anything else, and ``stop`` returns only once that wait is over.

``referenced`` is False after every connect: Marlin keeps nothing a host can read that a
restart clears (a restart shows only as ``start``, which a board that restarted while the
port was closed printed to nobody). ``set_zero`` (``G92``) and ``home`` (``G28``) make it True;
``start`` mid-session (:class:`~rig.errors.ControllerRestarted`), a kill and an endstop hit
outside homing (Marlin then believes in targets it never reached) make it False.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import NoReturn

from rig.devices.rails.link import LinkTimeout, SerialLink
from rig.errors import ControllerRestarted, RailError

log = logging.getLogger("stackrig.rails.marlin")

AXES = "XYZ"
M114_RESOLUTION_MM = 0.005  # M114 prints two decimals: a reading this close confirms a target
MAX_RESENDS = 3  # a line Marlin asks for more often than this is not getting through
QUICKSTOP_QUIET_S = 1.0  # Marlin drops every move planned this long after a quickstop
POLL_S = 0.05  # how often a wait for motion looks at the stop requests
QUICKSTOP = b"M410\n"  # unnumbered: the emergency parser acts on it as it arrives
STOPPED_BY_ERROR = "Printer stopped due to errors"  # Marlin's STR_ERR_STOPPED
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


class _AtRest(RailError):
    """A failure that leaves the axis standing (nothing to quickstop)."""


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
        self.referenced = False
        self.restarted_on_open = False  # the last connect saw Marlin start up
        self._owed: deque[object] = deque()  # one token per line sent and not yet answered ok
        self._send_lock = threading.Lock()  # a write and its token go together
        self._io_lock = threading.RLock()  # one command-and-reply exchange at a time
        self._owner: int | None = None  # the thread in a public call
        self._stops = 0  # stop requests so far: a wait for motion watches for a new one
        self._waiting_motion = False  # a call waits for a move or homing to end
        self._moving = False  # motion may be under way that no wait has seen end (a jog)
        self._quiet_until = 0.0  # a quickstop was sent: Marlin refuses moves until then
        self._settle = False  # a quickstop was sent: wait it out before the next command
        self._line_no = 0
        self._in_step = False  # False after any failed exchange: resynchronise first
        self._connecting = False
        self._killed = False
        self._commanded_mm: float | None = None  # where the last finished command left the axis
        self._noise: list[str] = []
        self._busy = False  # Marlin sent a busy keepalive during the current exchange

    # -- FocusDriver -----------------------------------------------------------------------

    def connect(self) -> str:
        with self._talking():
            self.link.open()  # (closes a previous handle first)
            self._connecting, self.restarted_on_open, self._killed = True, False, False
            self._settle = self._moving = False
            try:
                self.link.keep_dtr_on_close()  # later opens do not reset a Mega again
                identity = self._start_session(time.monotonic() + self.connect_timeout_s)
            except BaseException:  # whatever ends a connect, the port it opened is closed
                self.link.close()
                raise
            finally:
                self._connecting = False
            self.referenced = False
        if self.restarted_on_open:
            identity += " (it started up as the port opened: home or set zero)"
        return identity

    def close(self) -> None:
        self.link.close()

    def position_um(self) -> float:
        with self._talking():
            here = self._read_position(self._deadline())
            known = self._commanded_mm
            if known is not None and abs(here - known) <= M114_RESOLUTION_MM:
                return known * 1000.0  # finer than M114's two decimals, and confirmed by it
            self._commanded_mm = None
            return here * 1000.0

    def move_to(self, target_um: float, timeout_s: float) -> None:
        target = target_um / 1000.0
        deadline = time.monotonic() + timeout_s
        stops = self._stops
        with self._talking():
            self._commanded_mm = None
            if self._settle:
                self._settle_down(deadline, strict=True)
            with self._halting_on_failure(stops):
                self._exchange(f"G1 {self.axis}{target:.4f} F{self._feed()}", deadline)
                self._moving = True
                self._finish(f"the move to {target:.3f} mm", deadline, stops)
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
        with self._talking():
            deadline = self._deadline()
            self._exchange("G91", deadline)
            self._moving = True
            self._exchange(f"G0 {self.axis}{delta:.4f} F{self._feed()}", deadline)
            self._exchange("G90", deadline)
            if self._commanded_mm is not None:
                self._commanded_mm += delta

    def stop(self) -> None:
        """Quickstop (``M410``) and return once Marlin takes moves again.

        A call waiting for motion in another thread gets the quickstop at once and raises;
        this one then waits out Marlin's second of refusing moves. An idle rail gets nothing
        at all (a quickstop would refuse the next move for a second); after a jog it gets the
        quickstop and the wait. Without EMERGENCY_PARSER Marlin acts on ``M410`` only once the
        move under way has ended.
        """
        self._stops += 1
        me = threading.get_ident()
        if self._owner == me:  # from inside a call on this thread (a signal handler)
            self._quickstop()
            return
        if self._waiting_motion:
            self._quickstop()  # before waiting for the link: the motion stops now
        if not self._io_lock.acquire(timeout=self._stop_wait_s()):
            raise RailError(
                f"Marlin on {self.link.port} did not come back after a quickstop: check it, "
                "and reset it (power or reset button) if it still moves"
            )
        try:
            self._owner = me
            if self._moving and not self._settle and self.link.is_open:
                self._quickstop()  # a jog may still run
            if self._settle or not self._in_step:
                self._settle_down(self._deadline())
        finally:
            self._owner = None
            self._io_lock.release()

    def unlock(self) -> str:
        """``M999 S1``: back to running after Marlin stopped itself for an error (it then
        refuses moves). A kill (``M112``, thermal runaway) needs the reset button instead."""
        if self._killed:
            raise RailError(
                "Marlin halted (kill): only its reset button or a power cycle clears that; then "
                "connect again and home or re-zero"
            )
        with self._talking():
            self._exchange("M999 S1", self._deadline())
        what = "Marlin: sent M999 (it runs again if it had stopped for an error)"
        if self.referenced:
            return f"{what}; the position is kept"
        return f"{what}; the position is not referenced: home or re-zero"

    def set_zero(self) -> None:
        with self._talking():
            self._exchange(f"G92 {self.axis}0", self._deadline())
            self._commanded_mm = 0.0
            self.referenced = True

    def home(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        stops = self._stops
        with self._talking():
            self._commanded_mm = None
            if self._settle:
                self._settle_down(deadline, strict=True)
            with self._halting_on_failure(stops):
                self._moving = self._waiting_motion = True
                try:
                    # G28 blocks in Marlin: its ok comes once homing is over, with keepalives.
                    self._exchange(f"G28 {self.axis}", deadline, stops)
                finally:
                    self._waiting_motion = False
                self._finish("homing", deadline, stops)
            self.referenced = True

    def energise(self, on: bool) -> None:
        command = f"M17 {self.axis}" if on else f"M18 {self.axis}"
        with self._talking():
            self._exchange(command, self._deadline())

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

        False when the board (re)booted meanwhile or the attempt ran out of time; a boot seen
        outside connect raises :class:`ControllerRestarted`.
        """
        marker = f"stackrig-sync-{next(_sync_ids)}"
        self._line_no = 0
        self._send(b"M110 N0\n")
        self._send(f"M118 {marker}\n".encode("ascii"))
        seen = False
        while True:
            line = self._next_line(attempt_end, "M118 (a hello)")
            if line is None:
                return False
            if line == "start":
                self._owed.clear()  # what was sent before the reset was lost
                if not self._connecting:
                    self._restarted("while it was getting back in step")
                self.restarted_on_open = True
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

    # -- stopping --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _talking(self) -> Iterator[None]:
        """Hold the link for one public call (a stop from another thread writes past it)."""
        with self._io_lock:
            outer = self._owner is None
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                if outer:
                    self._owner = None

    @contextlib.contextmanager
    def _halting_on_failure(self, stops: int) -> Iterator[None]:
        """A wait for motion that fails quickstops the axis, so it never runs on behind an
        error; not for a stop request (``stop`` did that) nor a restart or kill (the board
        stands: the link is closed)."""
        try:
            yield
        except (ControllerRestarted, _AtRest):
            raise
        except RailError:
            if self._stops == stops and self.link.is_open:
                with contextlib.suppress(RailError):
                    self._quickstop()
            raise

    def _quickstop(self) -> None:
        self._send(QUICKSTOP)  # its queued copy is answered ok in turn (owed a token)
        self._quiet_until = time.monotonic() + QUICKSTOP_QUIET_S
        self._settle = True
        self._moving = False
        self._commanded_mm = None

    def _settle_down(self, deadline: float, *, strict: bool = False) -> None:
        """After a quickstop: in step again, then ``M400``, whose ``ok`` comes only once the
        quickstop is done and Marlin takes moves again. Given at least that long, unless
        ``strict`` (a move's own timeout counts)."""
        if not strict:
            deadline = max(deadline, self._quiet_until + self.reply_timeout_s)
        self._settle = False
        try:
            if not self._in_step:
                self._resync(deadline)
            self._exchange("M400", deadline)
        except RailError:
            self._settle = True
            raise
        self._moving = False
        self._commanded_mm = None

    def _stop_wait_s(self) -> float:
        """How long ``stop`` waits for the call in another thread to end (a move ends at once
        with the emergency parser, else when it is over)."""
        if self.capabilities.get("EMERGENCY_PARSER", True):
            return QUICKSTOP_QUIET_S + 3 * self.reply_timeout_s
        return QUICKSTOP_QUIET_S + 3 * self.reply_timeout_s + 600.0

    def _stopped_error(self, what: str) -> RailError:
        return RailError(
            f"{what} was stopped on request (M410 quickstop): the rail stopped short; "
            "Marlin may have lost steps, so re-zero or home before relying on positions"
        )

    def _restarted(self, during: str) -> NoReturn:
        self.referenced = False
        self._fail_link(
            f"Marlin restarted (printed 'start') {during}: the position is lost. Check the "
            "power supply and USB cable, connect again, then home or re-zero",
            restarted=True,
        )

    # -- exchanges -------------------------------------------------------------------------

    def _exchange(self, command: str, deadline: float, stops: int | None = None) -> list[str]:
        """Send ``command`` numbered and return the lines that came before its ``ok``.

        With ``stops``, the wait ends (RailError) as soon as a stop is requested.
        """
        with self._io_lock:
            if self._settle:
                self._settle_down(deadline)
                deadline = max(deadline, time.monotonic() + self.reply_timeout_s)
            if not self._in_step:
                self._resync(deadline)
            self._in_step = False
            self._line_no += 1
            lines = self._await_ok(command, frame(self._line_no, command), deadline, stops)
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

    def _finish(self, what: str, deadline: float, stops: int) -> None:
        """M400: its ``ok`` means the planner is empty, i.e. the motion is over."""
        self._waiting_motion = True
        try:
            self._exchange("M400", deadline, stops)
        finally:
            self._waiting_motion = False
        self._moving = False
        if self._stops != stops:  # without the emergency parser: noticed after the move
            raise self._stopped_error(what)

    def _await_ok(
        self, command: str, framed: bytes, deadline: float, stops: int | None
    ) -> list[str]:
        token = self._send(framed)
        lines: list[str] = []
        resends = 0
        resend_asked = False
        self._busy = False
        while True:
            line = self._read_reply(deadline, command, stops)
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
            self._restarted(f"during {command}")
        if line.startswith("Error:"):
            self._raise_error(line[len("Error:") :].strip(), command)
            return False
        if STOPPED_BY_ERROR in line:
            raise _AtRest(
                f"Marlin is stopped after an error and ignores moves ({line!r} during "
                f"{command}): fix the cause, then unlock (M999) and re-zero"
            )
        if line.startswith("echo:"):
            return self._check_echo(line[len("echo:") :].strip(), command)
        return line not in ("wait", "") and not line.startswith("//")

    def _raise_error(self, text: str, command: str) -> None:
        if "Last Line" in text:
            return  # a framing error: the Resend line that follows says which line
        if "kill()" in text or "halted" in text:
            self._killed = True
            self.referenced = False
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
            self.referenced = False
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

    def _read_reply(self, deadline: float, command: str, stops: int | None) -> str:
        """The next line of the answer to ``command``; with ``stops``, a stop request ends
        the wait at once."""
        while True:
            step_end = deadline if stops is None else min(deadline, time.monotonic() + POLL_S)
            line = self._next_line(step_end, command)
            if line is not None:
                return line
            if stops is not None and self._stops != stops:
                raise self._stopped_error(command)
            if time.monotonic() >= deadline:
                raise self._timeout(command)

    def _next_line(self, deadline: float, what: str) -> str | None:
        """The next readable line, or None once ``deadline`` has passed."""
        try:
            raw = self.link.read_line(deadline, what)
        except LinkTimeout:
            return None
        line = raw.strip()
        if not line.isprintable():
            if line.endswith("start"):
                return "start"  # a board that resets may emit a byte or two of noise first
            self._noise.append(line)
            return ""
        self._noise.clear()
        return line

    def _timeout(self, command: str) -> RailError:
        if self._busy:
            return RailError(
                f"Marlin was still busy with {command} when the time allowed ran out: the "
                "motion takes longer than expected. Check the speed in the profile against "
                "Marlin's maximum feed rate (M203), then stop or home the rail"
            )
        message = (
            f"Marlin controller on {self.link.port} did not answer {command} in time: check "
            "that it is powered and connected, and that the protocol and baud rate in the "
            "profile match the controller"
        )
        if self._noise:
            message += (
                f". It sent only unreadable bytes ({_quote(self._noise[-3:])}): set the baud "
                "rate of the profile to the firmware's BAUDRATE (often 115200 or 250000)"
            )
        return RailError(message)

    def _read_position(self, deadline: float) -> float:
        for line in reversed(self._exchange("M114", deadline)):
            value = parse_position(line, self.axis)
            if value is not None:
                return value
        raise RailError(
            f"Marlin's M114 reply has no {self.axis} position: check the axis in the profile"
        )

    def _deadline(self) -> float:
        return time.monotonic() + self.reply_timeout_s

    def _feed(self) -> str:
        return f"{self.speed_mm_s * 60.0:.0f}"  # Marlin's F is mm per minute

    def _fail_link(self, message: str, *, restarted: bool = False) -> NoReturn:
        """The board reset or halted: what we set up is gone, so require a new connect."""
        self._commanded_mm = None
        self._settle = self._moving = False
        self.link.close()
        raise ControllerRestarted(message) if restarted else RailError(message)

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
