"""Marlin 2.x emulator: the replies and timing documented for the G-code a focus rail uses.

Commands run one at a time from a queue, as in Marlin: ``M400`` and ``G28`` hold the queue
until motion is over, printing ``echo:busy: processing`` every keepalive interval (M113). Moves
go into a planner and take distance / speed of real time; ``M114`` reports the planned
position (``current_position``), and after ``Count`` the stepper counts, as Marlin does.

``M410`` acts on arrival (Marlin's EMERGENCY_PARSER) unless ``emergency_parser=False``; its
queued copy is answered ``ok`` in turn. A quickstop drops the planner without deceleration,
re-reads the position from the stepper counts, and then, as ``Planner::quick_stop`` does with
``cleaning_buffer_counter``, refuses to plan moves for ``quickstop_window_s`` (1 s in Marlin):
a ``G1`` in that window is answered ``ok`` and its target becomes ``current_position`` (so
``M114`` reports it), but nothing moves; ``M400`` (and ``M410`` itself without the emergency
parser) waits the window out. Nothing is latched: no alarm, the axes stay homed.

Start-up: ``start``, the reset cause, ``Marlin <version>`` and ``echo:`` lines, as
``MarlinCore.cpp`` ``setup()`` prints them. With ``boot_s`` 0 that happened before any client
could open the port (pyserial flushes it on open): a board plugged in earlier. With
``boot_s`` > 0 the board is in its bootloader for that long after ``start()``, dropping input:
a Mega that reset when the port opened. ``reset_on_open`` makes every open of the pty such a
reset (DTR auto-reset, with ``boot_s`` or else half a second of bootloader); :meth:`restart` is
the reset button. A restarted Marlin believes it is
at 0 wherever the carriage is, and forgets ``G92``.

``stopped`` is Marlin's "stopped after an error" state (``IsStopped()``): moves are answered
with the stopped message and ``ok`` and do not run, until ``M999``.

Fault choices (see :class:`MarlinFaults`):

- ``alarm_mid_move``: an endstop trips halfway. The carriage stops, Marlin prints
  ``echo:endstops hit:  Z:<pos>`` and empties its planner, so ``M400`` answers ``ok`` - but
  Marlin keeps *believing* it reached the target (``M114`` says so), as the real firmware
  does after a hit outside homing. Only the message tells the host.
- ``reset_mid_move``: the board reboots halfway: queue, planner and line numbers are lost,
  nothing is answered during ``boot_s``, then ``start`` and the banner.
- ``error_next``: :data:`ERROR_CHECKSUM` / :data:`ERROR_LINE_NUMBER` reject the next numbered
  line once (``Error:...``, ``Resend:``, ``ok``); :data:`ERROR_KILL` halts the firmware like
  ``M112`` or a thermal fault, after which it answers nothing.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rig.devices.emulators.base import Faults, Motion, PtyEmulator

ERROR_CHECKSUM = 1
ERROR_LINE_NUMBER = 2
ERROR_KILL = 112
_WORD = re.compile(r"([A-Z])\s*(-?\d*\.?\d*)")
BOOTLOADER_S = 0.5  # a reset on open without boot_s: an Arduino bootloader's wait
_EMERGENCY_STOP = re.compile(r"(N\d+\s*)?M410\b")
STOPPED_MESSAGE = (  # STR_ERR_STOPPED
    "Printer stopped due to errors. Fix the error and use M999 to restart. "
    "(Temperature is reset. Set it after restarting)"
)
# A command handler: (arguments, command line, now) -> True to answer "ok" at once.
_Handler = Callable[[dict[str, str], str, float], bool]


@dataclass
class MarlinFaults(Faults):
    corrupt_lines: int = 0  # the next this many numbered lines fail their checksum (bad cable)


class MarlinEmulator(PtyEmulator):
    def __init__(
        self,
        *,
        axis: str = "Z",
        steps_per_mm: float = 400.0,
        feed_mm_s: float = 5.0,
        keepalive_s: float = 2.0,
        min_mm: float = 0.0,
        max_mm: float = 200.0,
        boot_s: float = 0.0,
        banner: bool = True,
        emergency_parser: bool = True,
        firmware_name: str = "Marlin 2.1.2.4",
        unsupported: tuple[str, ...] = (),
        quickstop_window_s: float = 1.0,
        reset_on_open: bool = False,
    ) -> None:
        super().__init__(watch_opens=reset_on_open)
        self.faults: MarlinFaults = MarlinFaults()
        self.axis = axis
        self.steps_per_mm = steps_per_mm
        self.feed_mm_s = feed_mm_s
        self.keepalive_s = keepalive_s
        self.min_mm, self.max_mm = min_mm, max_mm
        self.soft_endstops = True
        self.boot_s = boot_s
        self.banner = banner
        self.emergency_parser = emergency_parser
        self.firmware_name = firmware_name
        self.unsupported = unsupported
        self.quickstop_window_s = quickstop_window_s
        self.energised = False
        self.killed = False
        self.stopped = False  # IsStopped(): moves are refused until M999
        self.restarts = 0  # how often the board (re)started since the emulator was made
        self.quickstops = 0
        self.moves: list[tuple[float, float]] = []  # completed moves, logical mm (start, end)
        self.motion = Motion(speed=feed_mm_s)  # the carriage, in machine mm (switch at 0)
        self._origin = 0.0  # where the carriage was when the stepper counts were last 0
        self._drift = 0.0  # the planner's position minus where the carriage is
        self._planned = 0.0  # the planner's position: the end of the last planned move
        self._offset = 0.0  # logical minus machine position (G92)
        self._destination = 0.0  # Marlin's current_position: the last target (machine)
        self._planner: deque[tuple[float, float]] = deque()  # (machine target, speed)
        self._segment_start: float | None = None  # logical start of the segment in motion
        self._queue: deque[str] = deque()
        self._waiting: str | None = None  # "M400", "G28" or "M410" while it holds the queue
        self._homing = False
        self._next_busy = 0.0
        self._relative = False
        self._last_n = 0
        self._rx = bytearray()
        self._boot_until: float | None = None
        self._cleaning_until = 0.0  # moves are dropped until then (after a quickstop)
        self._alarm_at: float | None = None
        self._reset_at: float | None = None
        self._disconnect_at: float | None = None

    # -- what tests look at ------------------------------------------------------------------

    def position_mm(self) -> float:
        """Where the carriage really is, in the logical (G92) coordinates: what Marlin would
        report had it not lost its position (endstop hit, reset)."""
        with self._lock:
            return self.motion.now(time.monotonic()) + self._offset

    def moving(self) -> bool:
        with self._lock:
            return self.motion.moving(time.monotonic()) or bool(self._planner)

    def refusing_moves(self) -> bool:
        """Within the second after a quickstop, when Marlin drops what it is asked to plan."""
        with self._lock:
            return time.monotonic() < self._cleaning_until

    def restart(self) -> None:
        """The reset button (or a power glitch): the board boots again (``boot_s``)."""
        with self._lock:
            self._reset(time.monotonic())

    # -- PtyEmulator ---------------------------------------------------------------------------

    def on_start(self) -> None:
        if not self.banner:
            return
        with self._lock:
            if self.boot_s > 0:
                self._boot_until = time.monotonic() + self.boot_s
            else:
                self._boot("PowerUp")  # before anyone can open the port

    def on_open(self) -> None:
        self._reset(time.monotonic(), self.boot_s or BOOTLOADER_S)  # DTR auto-reset

    def on_bytes(self, data: bytes) -> None:
        if self.killed or self._boot_until is not None:
            return  # halted, or still in the bootloader: input is lost
        self._rx.extend(data.replace(b"\r", b"\n"))
        while (end := self._rx.find(b"\n")) >= 0:
            line = self._rx[:end].decode("ascii", errors="replace").strip()
            del self._rx[: end + 1]
            if line:
                self._receive(line, time.monotonic())

    def tick(self, now: float) -> None:
        if self._boot_until is not None and now >= self._boot_until:
            self._boot_until = None
            self._boot(" External Reset")
        if self._disconnect_at is not None and now >= self._disconnect_at:
            self._disconnect_at = None
            self.disconnect()
            return
        if self._alarm_at is not None and now >= self._alarm_at:
            self._endstop_hit(now)
        if self._reset_at is not None and now >= self._reset_at:
            self._reset_at = None
            self._reset(now)
        self._advance_planner(now)
        self._poll_wait(now)

    def _boot(self, cause: str) -> None:
        """What ``setup()`` prints (MarlinCore.cpp), a version line and echo lines."""
        self.restarts += 1
        self.reply(
            f"start\n{cause}\n{self.firmware_name}\n"
            "echo: Last Updated: 2024-01-01 | Author: (none, default config)\n"
            "echo: Compiled: Jan  1 2024\necho: Free Memory: 4400  PlannerBufferBytes: 1216\n"
        )

    # -- receiving -----------------------------------------------------------------------------

    def _receive(self, text: str, now: float) -> None:
        if self.emergency_parser and _EMERGENCY_STOP.match(text):
            self._quickstop(now)
        if self._injected(ERROR_KILL):
            self._kill()
            return
        command = self._unframe(text) if text.startswith("N") else text
        if command is not None:
            self._queue.append(command)
            self._run_queue(now)

    def _unframe(self, text: str) -> str | None:
        """Marlin's checks on ``N<n> ... *<xor>``, in its order; None when rejected."""
        body, star, checksum = text.rpartition("*")
        number = re.match(r"N(\d+)\s*", body)
        if not star or number is None:
            self._line_error("No Checksum with line number")
            return None
        command = body[number.end() :].strip()
        n = int(number.group(1))
        renumbers = command.startswith("M110")  # M110 sets the number itself
        if not renumbers and (n != self._last_n + 1 or self._injected(ERROR_LINE_NUMBER)):
            self._line_error("Line Number is not Last Line Number+1")
            return None
        if not checksum.isdigit() or int(checksum) != _xor(body) or self._corrupted():
            self._line_error("checksum mismatch")
            return None
        self._last_n = n
        return command

    def _injected(self, code: int) -> bool:
        """Whether ``error_next`` asks for this error now (it is then used up)."""
        if self.faults.error_next != code:
            return False
        self.faults.error_next = None
        return True

    def _corrupted(self) -> bool:
        if self._injected(ERROR_CHECKSUM):
            return True
        if self.faults.corrupt_lines > 0:
            self.faults.corrupt_lines -= 1
            return True
        return False

    def _line_error(self, message: str) -> None:
        n = self._last_n
        self.reply(f"Error:{message}, Last Line: {n}\nResend: {n + 1}\nok\n")

    # -- the command queue -----------------------------------------------------------------------

    def _run_queue(self, now: float) -> None:
        while self._queue and self._waiting is None and not self.killed:
            self._execute(self._queue.popleft(), now)

    def _execute(self, command: str, now: float) -> None:
        word = command.split()[0].upper()
        args = {k: v for k, v in _WORD.findall(command.upper()[len(word) :]) if v}
        handler = None if word in self.unsupported else self._handlers().get(word)
        if handler is None:
            self.reply(f'echo:Unknown command: "{command}"\nok\n')
            return
        if handler(args, command, now):
            self.reply("ok\n")

    def _handlers(self) -> dict[str, _Handler]:
        return {
            "G0": self._g1,
            "G1": self._g1,
            "G21": _accept,
            "G28": self._g28,
            "G90": self._absolute,
            "G91": self._absolute,
            "G92": self._g92,
            "M17": self._energise,
            "M18": self._energise,
            "M84": self._energise,
            "M92": self._m92,
            "M110": self._m110,
            "M113": self._m113,
            "M114": self._m114,
            "M115": self._m115,
            "M118": self._m118,
            "M201": _accept,
            "M203": _accept,
            "M211": self._m211,
            "M400": self._m400,
            "M410": self._m410,
            "M112": self._m112,
            "M999": self._m999,
        }

    def _g1(self, args: dict[str, str], command: str, now: float) -> bool:
        if self.stopped:  # queue.cpp: moves while IsStopped() get this, and ok, and nothing
            self.reply(f"{STOPPED_MESSAGE}\n")
            return True
        if "F" in args:
            self.feed_mm_s = float(args["F"]) / 60.0
        if self.axis in args:
            value = float(args[self.axis])
            logical = self._destination + self._offset + value if self._relative else value
            target = logical - self._offset
            if self.soft_endstops:
                target = min(max(target, self.min_mm), self.max_mm)  # Marlin clamps silently
            self._destination = target
            if now < self._cleaning_until:
                return True  # buffer_segment refuses it; current_position took it anyway
            self._planned = target
            self._planner.append((target, self.feed_mm_s))
            self._advance_planner(now)
        return True

    def _absolute(self, args: dict[str, str], command: str, now: float) -> bool:
        self._relative = command.upper().startswith("G91")
        return True

    def _g92(self, args: dict[str, str], command: str, now: float) -> bool:
        if self.axis in args:
            self._offset = float(args[self.axis]) - self._destination
        return True

    def _g28(self, args: dict[str, str], command: str, now: float) -> bool:
        self._hold("G28", now)
        return False

    def _m400(self, args: dict[str, str], command: str, now: float) -> bool:
        self._hold("M400", now)
        return False

    def _energise(self, args: dict[str, str], command: str, now: float) -> bool:
        self.energised = command.upper().startswith("M17")
        return True

    def _m92(self, args: dict[str, str], command: str, now: float) -> bool:
        if self.axis in args:
            self.steps_per_mm = float(args[self.axis])
        else:
            self.reply(f"echo: M92 X80.00 Y80.00 {self.axis}{self.steps_per_mm:.2f} E93.00\n")
        return True

    def _m110(self, args: dict[str, str], command: str, now: float) -> bool:
        self._last_n = int(float(args.get("N", "0")))
        return True

    def _m113(self, args: dict[str, str], command: str, now: float) -> bool:
        if "S" in args:
            self.keepalive_s = float(args["S"])
        return True

    def _m114(self, args: dict[str, str], command: str, now: float) -> bool:
        steps = round((self.motion.now(now) - self._origin) * self.steps_per_mm)
        planned = {"X": 0.0, "Y": 0.0, "Z": 0.0, self.axis: self._destination + self._offset}
        counts = {"X": 0, "Y": 0, "Z": 0, self.axis: steps}
        self.reply(
            f"X:{planned['X']:.2f} Y:{planned['Y']:.2f} Z:{planned['Z']:.2f} E:0.00 "
            f"Count X:{counts['X']} Y:{counts['Y']} Z:{counts['Z']}\n"
        )
        return True

    def _m115(self, args: dict[str, str], command: str, now: float) -> bool:
        self.reply(
            f"FIRMWARE_NAME:{self.firmware_name} (Jan  1 2024 12:00:00) "
            "SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 "
            "MACHINE_TYPE:Focus Rail EXTRUDER_COUNT:0 UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff\n"
            "Cap:SERIAL_XON_XOFF:0\nCap:EEPROM:1\nCap:AUTOREPORT_POS:0\n"
            f"Cap:EMERGENCY_PARSER:{int(self.emergency_parser)}\n"
        )
        return True

    def _m118(self, args: dict[str, str], command: str, now: float) -> bool:
        self.reply(command[4:].strip() + "\n")
        return True

    def _m211(self, args: dict[str, str], command: str, now: float) -> bool:
        if "S" in args:
            self.soft_endstops = args["S"] != "0"
        state = "ON" if self.soft_endstops else "OFF"
        self.reply(
            f"echo:Soft endstops: {state}  Min:  {self.axis}{self.min_mm:.2f}   "
            f"Max:  {self.axis}{self.max_mm:.2f}\n"
        )
        return True

    def _m410(self, args: dict[str, str], command: str, now: float) -> bool:
        if self.emergency_parser:
            return True  # gcode.cpp: already done on arrival, the queued copy does nothing
        self._quickstop(now)  # quickstop_stepper(), whose synchronize() waits the window out
        self._hold("M410", now)
        return False

    def _m112(self, args: dict[str, str], command: str, now: float) -> bool:
        self._kill()
        return False

    def _m999(self, args: dict[str, str], command: str, now: float) -> bool:
        self.stopped = False  # marlin_state = MF_RUNNING ("S1": no flush and resend)
        return True

    # -- motion ------------------------------------------------------------------------------

    def _hold(self, what: str, now: float) -> None:
        self._waiting = what
        self._next_busy = now + self.keepalive_s

    def _poll_wait(self, now: float) -> None:
        """End M400 / G28 / M410 once motion (and the quickstop window) is over; until then,
        keep the host informed."""
        if self._waiting is None:
            return
        if self.motion.moving(now) or self._planner or now < self._cleaning_until:
            if now >= self._next_busy:
                self._next_busy = now + self.keepalive_s
                self.reply("echo:busy: processing\n")
            return
        if self._waiting == "G28" and not self._homing:
            self._homing = True  # the endstop sits at machine (carriage) 0
            self._planner.append((self._drift, self.feed_mm_s))  # planner units for 0
            self._advance_planner(now)
            return
        if self._homing:
            self._homing = False
            self._origin = self._drift = self._offset = self._destination = self._planned = 0.0
        self._waiting = None
        self.reply("ok\n")
        self._run_queue(now)

    def _advance_planner(self, now: float) -> None:
        if self.motion.moving(now):
            return
        if self._segment_start is not None:
            self.moves.append((self._segment_start, self.motion.target + self._offset))
            self._segment_start = None
        if not self._planner:
            return
        target, speed = self._planner.popleft()
        here = self.motion.now(now)
        self._segment_start = here + self._offset
        self.motion.start(target - self._drift, speed, now)
        self._arm_faults(abs(target - self._drift - here) / speed, now)

    def _arm_faults(self, duration_s: float, now: float) -> None:
        f = self.faults
        if f.alarm_mid_move:
            f.alarm_mid_move = False
            self._alarm_at = now + duration_s / 2
        if f.reset_mid_move:
            f.reset_mid_move = False
            self._reset_at = now + duration_s / 2
        if f.disconnect_after_s is not None:
            self._disconnect_at = now + f.disconnect_after_s
            f.disconnect_after_s = None

    def _halt(self, now: float) -> None:
        self.motion.halt(now)
        self._planner.clear()
        self._segment_start = None
        self._alarm_at = self._reset_at = None

    def _quickstop(self, now: float) -> None:
        """Planner::quick_stop() and quickstop_stepper(): everything planned is dropped at
        once, the position is read back from the stepper counts, and moves are refused for
        the cleaning window."""
        self.quickstops += 1
        self._halt(now)
        self._destination = self._planned = self.motion.now(now) - self._origin
        self._drift = -self._origin
        self._cleaning_until = now + self.quickstop_window_s

    def _endstop_hit(self, now: float) -> None:
        self._halt(now)
        here = self.motion.now(now)
        self._drift = self._planned - here  # Marlin still believes in the target
        self.reply(f"echo:endstops hit:  {self.axis}:{here + self._offset:.2f}\n")

    def _reset(self, now: float, boot_s: float | None = None) -> None:
        boot_s = self.boot_s if boot_s is None else boot_s
        self._halt(now)
        self._origin = self.motion.now(now)  # the stepper counts start again at 0 here
        self._drift = -self._origin  # it boots believing it is at 0
        self._offset = self._destination = self._planned = 0.0
        self._cleaning_until = 0.0
        self._queue.clear()
        self._rx.clear()
        self._waiting, self._homing, self._relative, self._last_n = None, False, False, 0
        self.stopped = self.energised = False
        if not self.banner:
            return  # a board that boots silently (output goes nowhere)
        if boot_s > 0:
            self._boot_until = now + boot_s
        else:
            self._boot(" External Reset")

    def _kill(self) -> None:
        self._halt(time.monotonic())
        self.killed = True
        self.reply("Error:Printer halted. kill() called!\n")


def _accept(args: dict[str, str], command: str, now: float) -> bool:
    return True


def _xor(text: str) -> int:
    checksum = 0
    for byte in text.encode("ascii", errors="replace"):
        checksum ^= byte
    return checksum
