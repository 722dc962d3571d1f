"""OpenFlexure Sangaboard (firmware v0.5 and v1.x): one axis of the stage as a focus drive.

The firmware speaks integer steps and relative moves only; this driver offers micrometres and
absolute targets. Behaviour that the docs leave open follows the v1 firmware source:

- A blocking move ends with ``done.`` (``done`` on v0.3, ``stopped`` where the firmware answers
  through its notify-on-stop path); every move is then confirmed with ``p?``.
- ``stop`` answers ``Move aborted`` and the interrupted move never completes, so the thread
  waiting for that move ends on ``Move aborted`` (or after ``STOP_GRACE_S``) with "stopped".
- A restart mid-move shows as the start-up line (the version) arriving instead of ``done.``.
- ``energise(True)`` sends nothing: the firmware energises the coils on the next move.
- ``jog`` is a short *blocking* move: a blocking move occupies the link until it ends, and
  switching the board to non-blocking moves (stored in its EEPROM) would leave every other
  client of the board, and this driver's own waits, unable to tell when a move has finished.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from typing import overload

from rig.devices.rails.link import SerialLink
from rig.errors import RailError

VERSION_RE = re.compile(r"Sangaboard Firmware v(\d+(\.\d+)+)")
POSITION_RE = re.compile(r"(-?\d+) (-?\d+) (-?\d+)")
MOVING_RE = re.compile(r"true|false")
BOARD_RE = re.compile(r"(?!Sangaboard Firmware).+")  # a late start-up line is not the board
BLOCKING_RE = re.compile(r"blocking_moves (true|false)")
ZEROED_RE = re.compile(r"position reset to 0 0 0")
RELEASED_RE = re.compile(r"motors released|done\.?")  # v1 source prints "done"
DONE_RE = re.compile(r"done\.?")
FINISHED = ("done.", "done", "stopped")
ABORTED = "Move aborted"
ENDSTOP_HIT = "Endstop hit"
REFUSALS = ("Bad command", "Type 'help'", "Invalid command")  # v0.3 and v1 unknown command
AXES = "xyz"
SUPPORTED = ((0, 5), (2,))  # firmware v0.5 up to, not including, v2
QUERY_PAUSE_S = 0.001  # pysangaboard's pause before flushing input and asking
POLL_S = 0.05  # how often a waiting move looks at the stop request
STOP_GRACE_S = 1.0  # after a stop, how long to wait for the firmware to confirm it
JOG_MARGIN_S = 5.0
JOG_S_PER_STEP = 0.01  # ten times the default step delay: a jog's wait is never too short
HOME_POLL_S = 0.1


class SangaboardDriver:
    """:class:`~rig.devices.protocols.FocusDriver` for one axis of a Sangaboard."""

    name = "sangaboard"

    def __init__(
        self,
        port: str,
        *,
        axis: str = "z",
        steps_per_mm: float,
        baudrate: int = 115200,
        reply_timeout_s: float = 1.0,
    ) -> None:
        if axis not in AXES:
            raise ValueError(f"axis = {axis!r}: must be one of 'x', 'y', 'z'")
        if steps_per_mm <= 0:
            raise ValueError(f"steps_per_mm = {steps_per_mm}: must be > 0")
        self.axis = axis
        self.steps_per_um = steps_per_mm / 1000.0
        self.reply_timeout_s = reply_timeout_s
        self.firmware: tuple[int, ...] = ()
        self._index = AXES.index(axis)
        self._link = SerialLink(port, baudrate, label="Sangaboard")
        self._stop_requested = threading.Event()
        self._stop_at = 0.0
        # The last target reached, as (steps, micrometres): reporting the micrometres while
        # the stage still sits on that step keeps rounding from adding up over many moves.
        self._reached: tuple[int, float] | None = None

    # -- FocusDriver ---------------------------------------------------------------------------

    def connect(self) -> str:
        self._link.open()
        try:
            version = self._identify()
            board = self._board()
            if self.firmware >= (1,):
                self._ensure_blocking_moves()
        except RailError:
            self._link.close()
            raise
        return f"{board} ({version})" if board else version

    def close(self) -> None:
        self._link.close()

    def position_um(self) -> float:
        steps = self._steps()
        if self._reached is not None and self._reached[0] == steps:
            return self._reached[1]
        return steps / self.steps_per_um

    def move_to(self, target_um: float, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self._stop_requested.clear()
        self._reached = None
        target = round(target_um * self.steps_per_um)
        delta = target - self._steps()
        if self._stop_requested.is_set():
            raise self._stopped()  # a stop that came while the position was asked for
        if delta:
            command = f"mr{self.axis} {delta}"
            self._send(command)
            self._await_move(command, deadline)
        self._confirm(target, target_um)

    def jog(self, delta_um: float) -> None:
        """A short blocking move by ``delta_um`` (see the module notes for why blocking)."""
        steps = abs(round(delta_um * self.steps_per_um))
        self.move_to(self.position_um() + delta_um, JOG_MARGIN_S + steps * JOG_S_PER_STEP)

    def stop(self) -> None:
        self._stop_at = time.monotonic()
        self._stop_requested.set()
        self._link.write(b"stop\n")  # no flush here: another thread may be reading

    def set_zero(self) -> None:
        """``zero`` resets all three axes of the board, not only this one."""
        self._reached = None
        self._query("zero", ZEROED_RE)

    def home(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        module = self._endstops_module()
        if module is None:
            raise RailError("this Sangaboard has no endstops module: set zero by hand instead")
        if "min" not in module:
            raise RailError(f"this Sangaboard has no min endstops ({module!r}): set zero by hand")
        self._stop_requested.clear()
        self._reached = None
        command = f"home_min {1 << self._index}"
        self._send(command)
        self._await_homing(command, deadline)

    def energise(self, on: bool) -> None:
        if on:
            return  # the firmware energises the coils on the next move
        self._reached = None  # a released stage may be pushed off its step
        self._query("release", RELEASED_RE)

    # -- connecting ----------------------------------------------------------------------------

    def _identify(self) -> str:
        self._send("version")
        deadline = time.monotonic() + self.reply_timeout_s
        while _is_late(line := self._expect_line(deadline, "version")):
            pass  # e.g. the end of a move made before this program started
        match = VERSION_RE.search(line)
        if match is None:
            raise RailError(
                f"{self._link.port} answered {line!r} to 'version': that is not a Sangaboard. "
                "Check the port, and the rail protocol in the profile"
            )
        self.firmware = tuple(int(part) for part in match.group(1).split("."))
        if not SUPPORTED[0] <= self.firmware < SUPPORTED[1]:
            raise RailError(
                f"{match.group(0)} on {self._link.port} is not supported: stackrig speaks "
                "Sangaboard firmware v0.5 and v1.x; update the board's firmware"
            )
        return match.group(0)

    def _board(self) -> str | None:
        """The board's name; None where the firmware has no ``board`` command."""
        match = self._query("board", BOARD_RE, refusal_ok=True)
        return None if match is None else match.group(0)

    def _ensure_blocking_moves(self) -> None:
        """The setting lives in EEPROM: another program may have turned blocking moves off."""
        match = self._query("blocking_moves?", BLOCKING_RE, refusal_ok=True)
        if match is not None and match.group(1) == "false":
            self._query("blocking_moves true", DONE_RE)

    def _endstops_module(self) -> str | None:
        """The ``Endstops: ...`` line of ``list_modules`` (e.g. "Endstops: min soft")."""
        self._send("list_modules")
        deadline = time.monotonic() + self.reply_timeout_s
        found = None
        while (line := self._expect_line(deadline, "list_modules")) != "--END--":
            if _is_refusal(line):
                return None  # firmware from before modules
            if "endstop" in line.lower():
                found = line
        return found

    # -- moving --------------------------------------------------------------------------------

    def _await_move(self, command: str, deadline: float) -> None:
        """Read until the move has finished; every other ending is a RailError."""
        endstop = None
        while (line := self._line_during_move(command, deadline)) not in FINISHED:
            if line == ABORTED:
                raise self._stopped()
            if line.startswith(ENDSTOP_HIT):
                endstop = line  # the firmware still completes the move: read on
            elif VERSION_RE.search(line):
                raise RailError(
                    f"the Sangaboard restarted during '{command}' (it printed {line!r}): its "
                    "position is lost. Check its power and USB cable, then set zero or home"
                )
            elif _is_refusal(line):
                raise _refused(command, line)
            # Anything else is debug output of a firmware built with DEBUG_ON.
        if self._stop_requested.is_set():
            raise self._stopped()
        if endstop is not None:
            raise RailError(
                f"the stage hit an endstop during '{command}' ({endstop}); the firmware "
                "re-zeroed that axis there. Move back inside the travel and check the limits"
            )

    def _line_during_move(self, command: str, deadline: float) -> str:
        """The next line, watching for stop requests and the caller's deadline."""
        while True:
            now = time.monotonic()
            if self._stop_requested.is_set() and now >= self._stop_at + STOP_GRACE_S:
                self._halt()  # the first stop was not confirmed: say it again
                raise self._stopped()
            if now >= deadline:
                self._halt()
                raise RailError(
                    f"the Sangaboard did not finish '{command}' in time; it was told to stop. "
                    "Check that the stage can move freely, and the speed in the profile"
                )
            line = self._read_line(min(deadline, now + POLL_S), command)
            if line:
                return line

    def _await_homing(self, command: str, deadline: float) -> None:
        """Homing is several moves, each may print ``done.``: poll ``moving?`` instead."""
        while self._query("moving?", MOVING_RE).group(0) == "true":
            if self._stop_requested.is_set():
                raise self._stopped()
            if time.monotonic() >= deadline:
                self._halt()
                raise RailError(
                    f"the Sangaboard did not finish '{command}' in time; it was told to stop. "
                    "Check the endstop wiring"
                )
            time.sleep(HOME_POLL_S)
        if self._stop_requested.is_set():
            raise self._stopped()

    def _confirm(self, target: int, target_um: float) -> None:
        steps = self._steps()
        if steps != target:
            raise RailError(
                f"the stage stopped at {steps / self.steps_per_um:.2f} um ({steps} steps) "
                f"instead of {target_um:.2f} um ({target} steps): check it is not blocked, then "
                "set zero or home before capturing"
            )
        self._reached = (target, target_um)

    def _halt(self) -> None:
        """Best effort after a failed wait: a stage left moving is worse than a lost reply."""
        with contextlib.suppress(RailError):
            self._link.write(b"stop\n")

    def _stopped(self) -> RailError:
        return RailError(
            "stopped on request before the move finished: the stage is where it halted; "
            "check it, then move again"
        )

    # -- talking -------------------------------------------------------------------------------

    def _steps(self) -> int:
        return int(self._query("p?", POSITION_RE).group(self._index + 1))

    def _send(self, command: str) -> None:
        """As pysangaboard does: pause, drop stray input, then ask."""
        time.sleep(QUERY_PAUSE_S)
        self._link.reset_input()
        self._link.write(command.encode("ascii") + b"\n")

    @overload
    def _query(self, command: str, answer: re.Pattern[str]) -> re.Match[str]: ...

    @overload
    def _query(
        self, command: str, answer: re.Pattern[str], *, refusal_ok: bool
    ) -> re.Match[str] | None: ...

    def _query(
        self, command: str, answer: re.Pattern[str], *, refusal_ok: bool = False
    ) -> re.Match[str] | None:
        """Send ``command`` and return its answer; stray lines (late replies) are skipped.

        A refusal raises, or gives None with ``refusal_ok`` (commands older firmware lacks).
        """
        self._send(command)
        deadline = time.monotonic() + self.reply_timeout_s
        while True:
            line = self._expect_line(deadline, command)
            if _is_refusal(line):
                if refusal_ok:
                    return None
                raise _refused(command, line)
            match = answer.fullmatch(line)
            if match is not None:
                return match

    def _expect_line(self, deadline: float, command: str) -> str:
        """The next non-empty line before ``deadline``, or a RailError."""
        while True:
            line = self._read_line(deadline, command)
            if line is None:
                raise RailError(
                    f"the Sangaboard on {self._link.port} did not answer '{command}' in time: "
                    "check that it is powered and connected, and that the port is right"
                )
            if line:
                return line

    def _read_line(self, deadline: float, command: str) -> str | None:
        """The next line, stripped; None once ``deadline`` has passed."""
        try:
            raw = self._link.read_line(deadline, f"'{command}'")
        except RailError:
            if self._link.is_open:
                return None  # only the deadline: the caller words the error
            raise
        if not all(ch.isprintable() and ch.isascii() for ch in raw.rstrip("\r")):
            raise RailError(
                f"garbled reply to '{command}' from the Sangaboard on {self._link.port}: "
                f"{raw!r}. Check the baud rate ({self._link.baudrate}) and the USB cable"
            )
        return raw.strip()


def _is_late(line: str) -> bool:
    """Lines that only ever come at the end of a move."""
    return line in FINISHED or line == ABORTED or line.startswith(ENDSTOP_HIT)


def _is_refusal(line: str) -> bool:
    """Errors and refusals of every firmware version (e.g. "Min endstops not installed")."""
    return "error" in line.lower() or "not installed" in line or line.startswith(REFUSALS)


def _refused(command: str, line: str) -> RailError:
    return RailError(
        f"the Sangaboard refused '{command}': {line!r}. Check the firmware version and modules"
    )
