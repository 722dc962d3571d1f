"""OpenFlexure Sangaboard (firmware v0.5 and v1.x): one axis of the stage as a focus drive.

The firmware speaks integer steps and relative moves only; this driver offers micrometres and
absolute targets. Behaviour that the docs leave open follows the v1 firmware source (and the
v0.4 Arduino code for the old firmware); docs/rails.md has the details:

- A blocking move ends with ``done.`` (``done`` on v0.3, ``stopped`` where the firmware answers
  through its notify-on-stop path); every move is then confirmed with ``p?``.
- ``stop`` (v1 only: the old firmware moves inside its command handler and cannot be
  interrupted) answers ``Move aborted`` and the interrupted move never completes, so the
  thread waiting for that move ends on ``Move aborted`` (or after ``STOP_GRACE_S``) with
  "stopped". It latches nothing: the coils hold, the count is kept, the next move just runs.
  Homing is the exception: the firmware starts its next homing phase after a stop, so a stop
  during homing is repeated until ``moving?`` says false.
- A restart shows as the start-up line (the version) arriving unasked: during a move instead
  of ``done.``, or waiting in the input before the next command (the input is read, not
  flushed, before every command). It raises :class:`~rig.errors.ControllerRestarted`. After a
  restart the board's count is what its EEPROM holds (v1: the position at the last ``zero``),
  not where the stage is.
- ``referenced`` is False after every connect: the firmware keeps nothing a host can read
  that a restart clears, and a board that restarted while the port was closed printed its
  version line to nobody. It becomes True on ``set_zero`` / ``home``, False again on a
  restart or an endstop hit (the firmware then re-zeroes that axis at the switch).
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
from collections.abc import Iterator
from typing import overload

from rig.devices.rails.link import SerialLink
from rig.errors import ControllerRestarted, RailError

VERSION_RE = re.compile(r"Sangaboard Firmware v(\d+(\.\d+)+)")
POSITION_RE = re.compile(r"(-?\d+) (-?\d+) (-?\d+)")
MOVING_RE = re.compile(r"true|false")
BOARD_RE = re.compile(r"(?!Sangaboard Firmware).+")  # a late start-up line is not the board
BLOCKING_RE = re.compile(r"blocking_moves (true|false)")
ZEROED_RE = re.compile(r"position reset to 0 0 0")
RELEASED_RE = re.compile(r"motors released|done\.?")  # v1 source prints "done"
DONE_RE = re.compile(r"done\.?")
ABORTED_RE = re.compile(r"Move aborted")
FINISHED = ("done.", "done", "stopped")
ABORTED = "Move aborted"
ENDSTOP_HIT = "Endstop hit"
REFUSALS = ("Bad command", "Type 'help'", "Invalid command")  # v0.3 and v1 unknown command
AXES = "xyz"
SUPPORTED = ((0, 5), (2,))  # firmware v0.5 up to, not including, v2
QUERY_PAUSE_S = 0.001  # pysangaboard's pause before asking
POLL_S = 0.05  # how often a waiting move looks at the stop request
STOP_GRACE_S = 1.0  # after a stop, how long to wait for the firmware to confirm it
ASK_AGAIN_S = 0.3  # connect: ask 'version' again after this much silence (a board booting)
REPLY_WINDOW_S = 0.25  # a version line later than this after asking is a start-up banner
JOG_MARGIN_S = 5.0
JOG_S_PER_STEP = 0.01  # ten times the default step delay: a jog's wait is never too short
HOME_POLL_S = 0.1
HOMING_PHASES = 4  # seek, retreat, slow approach, back off (v1 endstops module)


class _Halted(RailError):
    """Raised while the stage may still move, after it was told to stop."""


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
        connect_timeout_s: float = 1.0,
        home_direction: str = "reverse",
    ) -> None:
        if axis not in AXES:
            raise ValueError(f"axis = {axis!r}: must be one of 'x', 'y', 'z'")
        if steps_per_mm <= 0:
            raise ValueError(f"steps_per_mm = {steps_per_mm}: must be > 0")
        if home_direction != "reverse":
            raise ValueError(
                f"home_direction = {home_direction!r}: a Sangaboard homes to its min switches "
                "only (its home_max leaves the count as it was), so 'reverse'"
            )
        self.axis = axis
        self.steps_per_um = steps_per_mm / 1000.0
        self.reply_timeout_s = reply_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.firmware: tuple[int, ...] = ()
        self.referenced = False
        self.restarted_on_open = False  # the last connect saw the board start up
        self._index = AXES.index(axis)
        self._link = SerialLink(port, baudrate, label="Sangaboard")
        self._io = threading.Lock()  # one exchange (or move) on the link at a time
        self._owner: int | None = None  # the thread holding _io
        self._busy_until = 0.0  # the deadline of the call holding _io
        self._stops = 0  # stop requests so far: a waiting call watches for a new one
        self._stop_signal = threading.Event()  # wakes a pause when a stop comes
        self._stop_at = 0.0
        self._stop_confirmed = False  # the firmware said "Move aborted" to the latest stop
        self._connecting = False  # start-up lines are noted, not raised, while connecting
        # The last target reached, as (steps, micrometres): reporting the micrometres while
        # the stage still sits on that step keeps rounding from adding up over many moves.
        self._reached: tuple[int, float] | None = None

    # -- FocusDriver ---------------------------------------------------------------------------

    def connect(self) -> str:
        with self._talking(time.monotonic() + self.connect_timeout_s + 3 * self.reply_timeout_s):
            self._link.open()
            self._connecting, self.restarted_on_open = True, False
            try:
                self._link.keep_dtr_on_close()  # later opens do not reset a Nano again
                version = self._identify(time.monotonic() + self.connect_timeout_s)
                board = self._board()
                if self.firmware >= (1,):
                    self._ensure_blocking_moves()
            except BaseException:  # whatever ends a connect, the port it opened is closed
                self._link.close()
                raise
            finally:
                self._connecting = False
            self.referenced = False
            self._reached = None
        identity = f"{board} ({version})" if board else version
        if self.restarted_on_open:
            identity += (
                " (it started up as the port opened: its count is what it saved at the last "
                "zero; set zero or home)"
            )
        return identity

    def close(self) -> None:
        self._link.close()

    def position_um(self) -> float:
        with self._talking(time.monotonic() + self.reply_timeout_s):
            steps = self._steps()
            if self._reached is not None and self._reached[0] == steps:
                return self._reached[1]
            return steps / self.steps_per_um

    def move_to(self, target_um: float, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        stops = self._stops
        with self._talking(deadline):
            self._reached = None
            target = round(target_um * self.steps_per_um)
            delta = target - self._steps(deadline)
            if self._stops != stops:
                raise self._stopped()  # a stop that came while the position was asked for
            if delta:
                command = f"mr{self.axis} {delta}"
                self._send(command)
                self._await_move(command, deadline, stops)
            self._confirm(target, target_um, deadline)

    def jog(self, delta_um: float) -> None:
        """A short blocking move by ``delta_um`` (see the module notes for why blocking)."""
        steps = abs(round(delta_um * self.steps_per_um))
        self.move_to(self.position_um() + delta_um, JOG_MARGIN_S + steps * JOG_S_PER_STEP)

    def stop(self) -> None:
        """Stop the stage and return once it stands still.

        An idle board is only asked ``moving?`` (nothing is sent that could change it). While
        another thread waits for a move, ``stop`` goes out at once and that call raises; this
        one returns when the firmware confirmed it (or, unconfirmed, ``moving?`` says false).
        The old (v0.x) firmware cannot interrupt a move: the stop then takes effect when the
        move has ended, and the waiting call still raises.
        """
        self._stop_at = time.monotonic()
        self._stops += 1
        self._stop_signal.set()
        if self._io.acquire(blocking=False):
            try:
                self._owner = threading.get_ident()
                self._come_to_rest()
            finally:
                self._owner = None
                self._io.release()
            return
        if self._can_stop:
            self._link.write(b"stop\n")  # no flush here: another thread may be reading
        if self._owner == threading.get_ident():
            return  # called from inside that very call (a signal handler): it will see it
        wait = max(self._busy_until - time.monotonic(), 0.0) + 2 * self.reply_timeout_s
        if self._can_stop:
            wait = min(wait, STOP_GRACE_S + 3 * self.reply_timeout_s)
        if not self._io.acquire(timeout=wait):
            raise RailError(
                f"the Sangaboard on {self._link.port} did not come to rest after a stop within "
                f"{wait:.1f} s: check it, and cut its power if it still moves"
            )
        try:
            self._owner = threading.get_ident()
            if not self._stop_confirmed:
                self._come_to_rest()
        finally:
            self._owner = None
            self._io.release()

    def unlock(self) -> str:
        """The firmware has no alarm or lock; make sure it rests and confirms its moves."""
        with self._talking(time.monotonic() + 4 * self.reply_timeout_s):
            self._come_to_rest()
            turned_on = self.firmware >= (1,) and self._ensure_blocking_moves()
        what = "the Sangaboard has no alarm or lock to clear"
        if turned_on:
            what += "; blocking moves were off (another program?): turned them on"
        if self.referenced:
            return f"{what}; the position is kept"
        return f"{what}; the position is not referenced: set zero or home"

    def set_zero(self) -> None:
        """``zero`` resets all three axes of the board, not only this one (and writes them to
        its EEPROM: a restart brings this zero back, wherever the stage then is)."""
        with self._talking(time.monotonic() + self.reply_timeout_s):
            self._reached = None
            self._query("zero", ZEROED_RE)
            self.referenced = True

    def home(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        stops = self._stops
        with self._talking(deadline):
            module = self._endstops_module()
            if module is None:
                raise RailError("this Sangaboard has no endstops module: set zero by hand instead")
            if "min" not in module:
                raise RailError(
                    f"this Sangaboard has no min endstops ({module!r}): set zero by hand"
                )
            self._reached = None
            command = f"home_min {1 << self._index}"
            self._send(command)
            self._await_homing(command, deadline, stops)
            self.referenced = True

    def energise(self, on: bool) -> None:
        if on:
            return  # the firmware energises the coils on the next move
        with self._talking(time.monotonic() + self.reply_timeout_s):
            self._reached = None  # a released stage may be pushed off its step
            self._query("release", RELEASED_RE)

    # -- connecting ----------------------------------------------------------------------------

    def _identify(self, deadline: float) -> str:
        """The version line that answers 'version'; one that comes unasked, or long after the
        question, is the board starting up (a Nano resets as its port opens, drops what it
        gets in its bootloader, then prints the version line)."""
        asked = first = self._ask_version()
        while True:
            line = self._read_line(min(deadline, asked + ASK_AGAIN_S), "version")
            if line is None:
                if time.monotonic() >= deadline:
                    raise RailError(
                        f"the Sangaboard on {self._link.port} did not answer 'version' in "
                        "time: check that it is powered and connected, and that the port is "
                        "right"
                    )
                asked = self._ask_version()  # quiet: it may have been in its bootloader
                continue
            if not line or _is_late(line):
                continue  # e.g. the end of a move made before this program started
            match = VERSION_RE.search(line)
            if match is None:
                raise RailError(
                    f"{self._link.port} answered {line!r} to 'version': that is not a "
                    "Sangaboard. Check the port, and the rail protocol in the profile"
                )
            if asked != first or time.monotonic() - asked > REPLY_WINDOW_S:
                # Not the prompt answer to the first question: the board was starting up, and
                # this is its start-up line or an answer to a later question.
                self.restarted_on_open = True
            break
        self.firmware = tuple(int(part) for part in match.group(1).split("."))
        if not SUPPORTED[0] <= self.firmware < SUPPORTED[1]:
            raise RailError(
                f"{match.group(0)} on {self._link.port} is not supported: stackrig speaks "
                "Sangaboard firmware v0.5 and v1.x; update the board's firmware"
            )
        return match.group(0)

    def _ask_version(self) -> float:
        self._link.write(b"version\n")
        return time.monotonic()

    def _board(self) -> str | None:
        """The board's name; None where the firmware has no ``board`` command."""
        match = self._query("board", BOARD_RE, refusal_ok=True)
        return None if match is None else match.group(0)

    def _ensure_blocking_moves(self) -> bool:
        """The setting lives in EEPROM: another program may have turned blocking moves off.
        True when they were off and this turned them on."""
        match = self._query("blocking_moves?", BLOCKING_RE, refusal_ok=True)
        if match is not None and match.group(1) == "false":
            self._query("blocking_moves true", DONE_RE)
            return True
        return False

    def _endstops_module(self) -> str | None:
        """The ``Endstops: ...`` line of ``list_modules`` (e.g. "Endstops: min soft")."""
        self._send("list_modules")
        deadline = time.monotonic() + self.reply_timeout_s
        found = None
        while (line := self._expect_line(deadline, "list_modules")) != "--END--":
            if _is_refusal(line):
                return None  # firmware from before modules
            if VERSION_RE.search(line):
                self._restarted(line, "while listing its modules")
            if "endstop" in line.lower():
                found = line
        return found

    # -- moving --------------------------------------------------------------------------------

    @property
    def _can_stop(self) -> bool:
        return self.firmware >= (1,)

    def _await_move(self, command: str, deadline: float, stops: int) -> None:
        """Read until the move has finished; every other ending is a RailError, and a wait
        that fails with the stage perhaps still moving tells it to stop first."""
        endstop = None
        while (line := self._moving_line(command, deadline, stops)) not in FINISHED:
            if line == ABORTED:
                self._stop_confirmed = True
                raise self._stopped()
            if line.startswith(ENDSTOP_HIT):
                endstop = line  # the firmware still completes the move: read on
                self.referenced = False  # it re-zeroed that axis at the switch
            elif VERSION_RE.search(line):
                self._restarted(line, f"during '{command}'")  # the restart stopped it
            elif _is_refusal(line):
                raise _refused(command, line)  # the move never started
            # Anything else is debug output of a firmware built with DEBUG_ON.
        if self._stops != stops:
            self._stop_confirmed = True  # the move ended: it stands where it stopped
            raise self._stopped()
        if endstop is not None:
            raise RailError(
                f"the stage hit an endstop during '{command}' ({endstop}); the firmware "
                "re-zeroed that axis there. Move back inside the travel and check the limits"
            )

    def _moving_line(self, command: str, deadline: float, stops: int) -> str:
        """The next line while the stage may move; a read that fails (garbled, lost) tells
        the stage to stop before it raises."""
        try:
            return self._line_during_move(command, deadline, stops)
        except _Halted:
            raise
        except RailError:
            self._halt()
            raise

    def _line_during_move(self, command: str, deadline: float, stops: int) -> str:
        """The next line, watching for stop requests and the caller's deadline."""
        while True:
            now = time.monotonic()
            if self._stops != stops and self._can_stop and now >= self._stop_at + STOP_GRACE_S:
                self._halt()  # the first stop was not confirmed: say it again
                raise _Halted(str(self._stopped()))
            if now >= deadline:
                self._halt()
                raise _Halted(
                    f"the Sangaboard did not finish '{command}' in time; it was told to stop. "
                    "Check that the stage can move freely, and the speed in the profile"
                )
            line = self._read_line(min(deadline, now + POLL_S), command)
            if line:
                return line

    def _await_homing(self, command: str, deadline: float, stops: int) -> None:
        """Homing is several moves, each may print ``done.``: poll ``moving?`` instead."""
        while self._query("moving?", MOVING_RE).group(0) == "true":
            if self._stops != stops:
                self._come_to_rest()
                raise self._stopped()
            if time.monotonic() >= deadline:
                self._come_to_rest()
                raise RailError(
                    f"the Sangaboard did not finish '{command}' in time; it was told to stop. "
                    "Check the endstop wiring"
                )
            self._pause(HOME_POLL_S, stops)
        if self._stops != stops:
            self._stop_confirmed = True
            raise self._stopped()

    def _pause(self, seconds: float, stops: int) -> None:
        """Sleep, but wake at once when a stop comes (the count of stops moves past ``stops``)."""
        end = time.monotonic() + seconds
        while self._stops == stops and (left := end - time.monotonic()) > 0:
            self._stop_signal.wait(left)
            self._stop_signal.clear()  # a stale signal: the loop looks at the count again

    def _come_to_rest(self) -> None:
        """Make sure nothing moves (holding the link): ``moving?``, and while it says true,
        ``stop`` (a homing goes on to its next phase after each). The old firmware only
        answers once a move is over, so there an answer means rest."""
        if not self._can_stop:
            self._steps()
            self._stop_confirmed = True
            return
        for _ in range(HOMING_PHASES + 2):
            if self._query("moving?", MOVING_RE).group(0) == "false":
                self._stop_confirmed = True
                return
            self._query("stop", ABORTED_RE)  # a homing then starts its next phase at once
        raise RailError(
            f"the Sangaboard on {self._link.port} still moves after {HOMING_PHASES + 2} stops: "
            "check it, and cut its power if it does not come to rest"
        )

    def _confirm(self, target: int, target_um: float, deadline: float) -> None:
        steps = self._steps(deadline)
        if steps != target:
            raise RailError(
                f"the stage stopped at {steps / self.steps_per_um:.2f} um ({steps} steps) "
                f"instead of {target_um:.2f} um ({target} steps): check it is not blocked, then "
                "set zero or home before capturing"
            )
        self._reached = (target, target_um)

    def _halt(self) -> None:
        """Best effort after a failed wait: a stage left moving is worse than a lost reply."""
        if self._can_stop:
            with contextlib.suppress(RailError):
                self._link.write(b"stop\n")

    def _stopped(self) -> RailError:
        return RailError(
            "stopped on request before the move finished: the stage is where it halted; "
            "check it, then move again"
        )

    def _restarted(self, line: str, when: str) -> None:
        """The board printed its start-up line: note it while connecting, else raise."""
        self.referenced = False
        self._reached = None
        if self._connecting:
            self.restarted_on_open = True
            return
        raise ControllerRestarted(
            f"the Sangaboard restarted {when} (it printed {line!r}): its position is lost, "
            "its count is back to what it saved at the last zero. Check its power and USB "
            "cable, then set zero or home"
        )

    # -- talking -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _talking(self, deadline: float) -> Iterator[None]:
        """Hold the link for one call (a stop from another thread writes past it)."""
        self._io.acquire()
        self._owner, self._busy_until = threading.get_ident(), deadline
        self._stop_confirmed = False
        try:
            yield
        finally:
            self._owner = None
            self._io.release()

    def _steps(self, deadline: float | None = None) -> int:
        return int(self._query("p?", POSITION_RE, deadline=deadline).group(self._index + 1))

    def _send(self, command: str) -> None:
        """As pysangaboard does: pause, drop stray input (reading it first: a start-up line
        there means the board restarted since the last exchange), then ask."""
        time.sleep(QUERY_PAUSE_S)
        for line in self._unasked():
            if VERSION_RE.search(line):
                self._restarted(line, f"before '{command}' (while idle)")
            elif line.startswith(ENDSTOP_HIT):
                self.referenced = False
        self._link.write(command.encode("ascii") + b"\n")

    def _unasked(self) -> list[str]:
        """The whole lines already waiting in the input; then the input is flushed (a partial
        line is dropped, as pysangaboard's flush does)."""
        lines = [line.strip() for line in self._link.waiting_lines()]
        self._link.reset_input()
        return lines

    @overload
    def _query(
        self, command: str, answer: re.Pattern[str], *, deadline: float | None = ...
    ) -> re.Match[str]: ...

    @overload
    def _query(
        self,
        command: str,
        answer: re.Pattern[str],
        *,
        refusal_ok: bool,
        deadline: float | None = ...,
    ) -> re.Match[str] | None: ...

    def _query(
        self,
        command: str,
        answer: re.Pattern[str],
        *,
        refusal_ok: bool = False,
        deadline: float | None = None,
    ) -> re.Match[str] | None:
        """Send ``command`` and return its answer; stray lines (late replies) are skipped.

        A refusal raises, or gives None with ``refusal_ok`` (commands older firmware lacks).
        The answer must come within ``reply_timeout_s``, and before ``deadline`` if given.
        """
        self._send(command)
        bound = time.monotonic() + self.reply_timeout_s
        bound = bound if deadline is None else min(bound, deadline)
        while True:
            line = self._expect_line(bound, command)
            if _is_refusal(line):
                if refusal_ok:
                    return None
                raise _refused(command, line)
            match = answer.fullmatch(line)
            if match is not None:
                return match
            if VERSION_RE.search(line):
                self._restarted(line, f"while answering '{command}'")
            elif line.startswith(ENDSTOP_HIT):
                self.referenced = False

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
