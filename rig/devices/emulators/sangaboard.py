"""An OpenFlexure Sangaboard (firmware v1 / v0.5) on a pseudo-terminal.

What it answers, and why (see docs/rail-protocols.md and docs/rails.md; the v1.0-beta
firmware source and the v0.4 Arduino code were read for what the docs leave open):

- Commands are matched by prefix in the firmware's own order, as ``handle_command`` does, so
  ``p?``, ``position?`` and ``p`` all print the position, ``dt?`` the step delay.
- ``mr dx dy dz`` / ``mrx|mry|mrz d`` (integer steps): blocking moves reply ``done.`` (or
  ``done_reply``) once the motion has finished; with ``blocking_moves false`` they reply at once.
- ``stop`` halts and replies ``Move aborted``; the interrupted blocking move then never replies
  (in the v1 source ``stage_stop`` clears the moving flag, so the completion line is skipped).
  The coils stay energised and the count is kept: nothing is latched, the next move just runs.
- Unknown commands reply ``Type 'help' for a list of commands.`` (the v1 source with the help
  module built in).
- Endstops module (``endstop_min`` set): ``list_modules`` names it, ``endstops?``,
  ``home_min <mask>``: seek the min switch (it becomes 0), back off ``home_retreat_steps``,
  approach it again slowly, back off again; ``done.`` is printed as that last move *starts*,
  as in the v1 source. A ``stop`` ends only the phase under way: the firmware's homing loop
  then starts the next one, so stopping a homing takes a stop per phase. A move reaching the
  switch stops there, prints ``Endstop hit:-<axis>`` and calls that position 0, then
  completes like any move.
- Start-up: ``setup()`` prints the version line once. With ``boot_s`` 0 that happened before
  any client could open the port (pyserial flushes it on open): a board plugged in earlier.
  With ``boot_s`` > 0 the board is still in its bootloader for that long after ``start()``,
  dropping what it is sent, then prints the version line: a Nano that reset when the port was
  opened. ``reset_on_open`` makes every open of the pty such a reset (DTR auto-reset; without
``boot_s``, half a second of bootloader);
  :meth:`restart` is a power glitch. After any restart the count is what the EEPROM holds:
  the position saved at the last ``zero`` (v1), or after every move (v0.x firmware).
- ``legacy`` (default: a v0.x version line): the old Arduino code, which moves inside the
  command handler, so a command sent during a move is answered only once the move is over,
  and which has no ``stop``, ``moving?``, ``blocking_moves`` or ``board``.
- Faults: ``stray_before[command] = line`` (own to this emulator) -> that line (a late
  reply to something earlier) arrives just before the answer to ``command``, once;
  ``error_next`` -> the next command answers ``Error: command is <command>`` (the v0.3
  wording); ``alarm_mid_move`` -> the next move meets an endstop halfway (as above);
  ``reset_mid_move`` -> halfway the board restarts (as :meth:`restart`);
  ``disconnect_after_s`` counts from the next move's start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rig.devices.emulators.base import Motion, PtyEmulator

AXES = 3
REPLY_LATENCY_S = 0.003  # the firmware answers within 2-4 ms
UNKNOWN_REPLY = "Type 'help' for a list of commands."
HELP_LINES = (
    "",
    "Commands (terminated by a newline character):",
    "mrx <d>, mry <d>, mrz <d>, mr <d> <d> <d>, release, p?, zero, stop, moving?",
    "",
    "--END--",
)
BOOTLOADER_S = 0.5  # a reset on open without boot_s: the Nano's bootloader waits about this
SLOW_APPROACH = 4.0  # homing's final approach: min_step_delay 4000 us instead of 1000
LEGACY_ONLY_V1 = ("board", "stop", "moving", "notify_on_stop", "blocking_moves")

Vector = tuple[int, int, int]


@dataclass(frozen=True)
class CompletedMove:
    """One move as the stage made it, in steps (tests check the approach direction)."""

    start: Vector
    end: Vector


class SangaboardEmulator(PtyEmulator):
    """Three stepper axes counted in steps; ``moves`` records every move that ended."""

    def __init__(
        self,
        *,
        version_reply: str = "Sangaboard Firmware v1.0.4",
        board_reply: str | None = "Sangaboard v0.5.5",
        done_reply: str = "done.",
        steps_per_s: float = 1000.0,
        blocking: bool = True,
        endstop_min: int | None = None,
        home_retreat_steps: int = 100,
        boot_s: float = 0.0,
        reset_on_open: bool = False,
        legacy: bool | None = None,
    ) -> None:
        super().__init__(watch_opens=reset_on_open)
        self.version_reply = version_reply
        self.legacy = " v0." in version_reply if legacy is None else legacy
        self.board_reply = None if self.legacy else board_reply  # None: no `board` command
        self.done_reply = done_reply
        self.steps_per_s = steps_per_s
        self.blocking = blocking
        self.endstop_min = endstop_min  # physical position of the min switches; None: no module
        self.home_retreat_steps = home_retreat_steps
        self.boot_s = boot_s
        self.endstops_line = "Endstops: min soft"  # what list_modules says of the module
        # Fault: {command: line}, that line (a late reply) comes just before that command's
        # answer, once.
        self.stray_before: dict[str, str] = {}
        self.moves: list[CompletedMove] = []
        self.restarts = 0  # how often the board (re)started since the emulator was made
        self.energised = False
        self._motions = [Motion(speed=steps_per_s) for _ in range(AXES)]
        self._offsets = [0, 0, 0]  # physical - reported, per axis
        self._saved = (0, 0, 0)  # what the board reads back from EEPROM after a reset
        self._move_start: Vector | None = None
        self._blocked: list[int] = []  # axes of the current move that will meet the switch
        self._notify = False  # a blocking move is waiting to say "done."
        self._homing: list[int] = []  # axes being homed; the phase is in _home_phase
        self._home_phase = ""
        self._half_way: float | None = None  # when the injected mid-move fault fires
        self._disconnect_at: float | None = None
        self._boot_until: float | None = None  # in the bootloader until then: input is lost
        self._deferred: list[str] = []  # legacy firmware: commands that wait for the move
        self._pending: list[tuple[float, str]] = []
        self._inbox = bytearray()
        self._commands: list[tuple[str, Callable[[str], None]]] = self._command_table()

    # -- public view for tests ---------------------------------------------------------------

    def position(self) -> Vector:
        """The position the firmware would report now."""
        now = time.monotonic()
        return (self._reported(0, now), self._reported(1, now), self._reported(2, now))

    def z_moves(self) -> list[tuple[int, int]]:
        """(start, end) in steps of every finished move that changed z."""
        return [(m.start[2], m.end[2]) for m in self.moves if m.start[2] != m.end[2]]

    def restart(self, boot_s: float | None = None) -> None:
        """A power glitch or the reset button: motion stops, the EEPROM count comes back, the
        version line follows after ``boot_s`` (default: the emulator's)."""
        with self._lock:
            self._reset(time.monotonic(), self.boot_s if boot_s is None else boot_s)

    # -- PtyEmulator -------------------------------------------------------------------------

    def on_start(self) -> None:
        self.restarts += 1
        if self.boot_s > 0:
            self._boot_until = time.monotonic() + self.boot_s
        else:
            self.reply(self.version_reply + "\r\n")  # before anyone can open the port

    def on_open(self) -> None:
        self._reset(time.monotonic(), self.boot_s or BOOTLOADER_S)  # DTR auto-reset

    def on_bytes(self, data: bytes) -> None:
        if self._boot_until is not None:
            return  # the bootloader drops it
        self._inbox.extend(data)
        while (end := self._inbox.find(b"\n")) >= 0:
            line = self._inbox[:end].decode("ascii", errors="replace").strip()
            del self._inbox[: end + 1]
            if self.legacy and self._busy():
                self._deferred.append(line)  # the old firmware reads it after the move
            else:
                self._handle(line)

    def tick(self, now: float) -> None:
        if self._boot_until is not None:
            if now < self._boot_until:
                return
            self._boot_until = None
            self._say(self.version_reply)
        if self._disconnect_at is not None and now >= self._disconnect_at:
            self._disconnect_at = None
            self.disconnect()
            return
        if self._half_way is not None and now >= self._half_way:
            self._half_way = None
            self._mid_move_fault(now)
        if self._move_start is not None and not self._moving(now):
            self._motion_ended(now)
        while self._deferred and not self._busy():
            self._handle(self._deferred.pop(0))
        self._deliver(now)

    # -- commands ----------------------------------------------------------------------------

    def _command_table(self) -> list[tuple[str, Callable[[str], None]]]:
        """Prefixes in the firmware's registration order (first match wins)."""
        table: list[tuple[str, Callable[[str], None]]] = [
            ("version", lambda _: self._say(self.version_reply)),
            ("list_modules", self._list_modules),
            ("help", lambda _: self._say(*HELP_LINES)),
        ]
        if self.board_reply is not None:
            table.append(("board", lambda _: self._say(self.board_reply or "")))
        table += [
            ("mrx", lambda a: self._move_axis(0, a)),
            ("mry", lambda a: self._move_axis(1, a)),
            ("mrz", lambda a: self._move_axis(2, a)),
            ("mr", self._move_all),
            ("release", self._release),
            ("p", lambda _: self._say(" ".join(map(str, self.position())))),
            ("ramp_time", lambda a: self._say("ramp time 0" if "?" in a else "done.")),
            ("dt", lambda a: self._say("minimum step delay 1000" if "?" in a else "done.")),
            ("zero", self._zero),
            ("stop", self._stop),
            ("moving", lambda _: self._say("true" if self._busy() else "false")),
            ("blocking_moves", self._blocking_moves),
        ]
        if self.endstop_min is not None:
            table += [("endstops?", self._endstops), ("home_min", self._home_min)]
        if self.legacy:
            table = [(p, run) for p, run in table if p not in LEGACY_ONLY_V1]
        return table

    def _handle(self, line: str) -> None:
        if not line:  # an empty line matches no command prefix on the firmware either
            self._say(UNKNOWN_REPLY)
            return
        stray = self.stray_before.pop(line.split()[0], None)
        if stray is not None:
            self._say(stray)
        if self.faults.error_next is not None:
            self.faults.error_next = None
            self._say(f"Error: command is {line.split()[0]}")
            return
        for prefix, run in self._commands:
            if line.startswith(prefix):
                run(line[len(prefix) :].strip())
                return
        self._say(UNKNOWN_REPLY)

    def _list_modules(self, _: str) -> None:
        if self.endstop_min is not None:
            self._say(self.endstops_line)
        self._say("--END--")

    def _move_axis(self, axis: int, args: str) -> None:
        delta = [0, 0, 0]
        delta[axis] = _int(args)
        self._start_move(delta)

    def _move_all(self, args: str) -> None:
        parts = args.split()
        if len(parts) != AXES:
            self._say("Error: command is mr <int> <int> <int>")
            return
        self._start_move([_int(p) for p in parts])

    def _release(self, _: str) -> None:
        self.energised = False
        self._say("motors released")

    def _zero(self, _: str) -> None:
        now = time.monotonic()
        self._offsets = [round(m.now(now)) for m in self._motions]
        self._saved = (0, 0, 0)
        self._say("position reset to 0 0 0")

    def _stop(self, _: str) -> None:
        self._halt(time.monotonic())
        self._notify = False  # the aborted move never reports completion
        self._say("Move aborted")
        # Homing carries on: the firmware's endstops loop starts the next phase (see above),
        # here at the next tick, which sees the halted move as ended.

    def _blocking_moves(self, args: str) -> None:
        if args.startswith("?"):
            self._say(f"blocking_moves {'true' if self.blocking else 'false'}")
            return
        self.blocking = args.startswith("t")
        self._say("done.")

    def _endstops(self, _: str) -> None:
        now = time.monotonic()
        at_min = [round(m.now(now)) <= (self.endstop_min or 0) for m in self._motions]
        self._say(" ".join("-1" if hit else "0" for hit in at_min))

    def _home_min(self, args: str) -> None:
        mask = _int(args) if args else 7
        self._homing = [axis for axis in range(AXES) if mask >> axis & 1]
        self.energised = True
        self._home_phase = "seek"
        self._home_move(time.monotonic())

    # -- motion ------------------------------------------------------------------------------

    def _start_move(self, delta: list[int], speed_factor: float = 1.0) -> None:
        now = time.monotonic()
        longest = max(abs(d) for d in delta)
        self._move_start = self.position()
        self.energised = True
        self._blocked = []
        rate = self.steps_per_s / speed_factor
        for axis, d in enumerate(delta):
            motion = self._motions[axis]
            target = motion.now(now) + d
            if self.endstop_min is not None and d < 0 and target <= self.endstop_min:
                target = float(self.endstop_min)  # the switch stops the axis there
                self._blocked.append(axis)
            # Axes finish together: the longest move runs at full speed (as the firmware does).
            speed = rate * abs(d) / longest if longest else rate
            motion.start(target, max(speed, 1e-9), now)
        if self._homing:
            return  # the faults below are for moves the host asked for
        if self.faults.disconnect_after_s is not None:
            self._disconnect_at = now + self.faults.disconnect_after_s
            self.faults.disconnect_after_s = None
        if self.faults.alarm_mid_move or self.faults.reset_mid_move:
            self._half_way = now + longest / self.steps_per_s / 2
        if self.blocking or self.legacy:
            self._notify = True
        else:
            self._say(self.done_reply)

    def _moving(self, now: float) -> bool:
        return any(m.moving(now) for m in self._motions)

    def _busy(self) -> bool:
        return bool(self._homing) or self._moving(time.monotonic())

    def _motion_ended(self, now: float) -> None:
        """A move (or homing phase) reached its target: record it, then answer or go on."""
        self._record()
        self._check_endstops(now)
        if self._homing:
            self._next_home_phase(now)
            return
        if self.legacy:
            self._saved = self.position()  # the old firmware saves the count after each move
        if self._notify:
            self._notify = False
            self._say(self.done_reply)

    def _check_endstops(self, now: float) -> None:
        for axis in self._blocked:
            self._endstop_hit(axis, -1, now)
        self._blocked = []

    def _home_move(self, now: float) -> None:
        """Start the move of the current homing phase on every homed axis."""
        steps = self.home_retreat_steps
        delta = {
            "seek": -100_000,  # home_move_steps in the v1 source: far past any switch
            "retreat": steps,
            "approach": -2 * steps,
            "back off": steps,
        }[self._home_phase]
        move = [delta if axis in self._homing else 0 for axis in range(AXES)]
        self._start_move(move, SLOW_APPROACH if self._home_phase == "approach" else 1.0)
        if self._home_phase == "back off":
            self._say("done.")  # printed as the last move starts, as the v1 source does

    def _next_home_phase(self, now: float) -> None:
        phases = ("seek", "retreat", "approach", "back off")
        at = phases.index(self._home_phase)
        if at + 1 == len(phases):
            self._homing = []
            return
        self._home_phase = phases[at + 1]
        self._home_move(now)

    def _mid_move_fault(self, now: float) -> None:
        self._halt(now)
        if self.faults.reset_mid_move:
            self.faults.reset_mid_move = False
            self._record()
            self._reset(now, self.boot_s)
            return
        self.faults.alarm_mid_move = False
        axis, direction = self._main_axis()
        self._record()
        self._endstop_hit(axis, direction, now)
        if self._notify:
            self._notify = False
            self._say(self.done_reply)

    def _main_axis(self) -> tuple[int, int]:
        """The axis that moved furthest in the move being interrupted, and its direction."""
        start = self._move_start or (0, 0, 0)
        now = self.position()
        deltas = [now[i] - start[i] for i in range(AXES)]
        axis = max(range(AXES), key=lambda i: abs(deltas[i]))
        return axis, 1 if deltas[axis] >= 0 else -1

    def _endstop_hit(self, axis: int, direction: int, now: float) -> None:
        self._say(f"Endstop hit:{direction * (axis + 1)}")
        if direction < 0:  # the min switch defines 0
            self._offsets[axis] = round(self._motions[axis].now(now))

    def _reset(self, now: float, boot_s: float) -> None:
        """The board restarts: motion stops, pending output and input are lost, the count is
        read back from EEPROM, the coils are free; the version line follows the boot."""
        self._halt(now)
        self._move_start = None
        self._pending.clear()
        self._deferred.clear()
        self._inbox.clear()
        self._notify = False
        self._homing = []
        self.energised = False
        self.restarts += 1
        self._offsets = [
            round(m.now(now)) - s for m, s in zip(self._motions, self._saved, strict=True)
        ]
        if boot_s > 0:
            self._boot_until = now + boot_s
        else:
            self._say(self.version_reply)

    def _halt(self, now: float) -> None:
        for motion in self._motions:
            motion.halt(now)
        self._half_way = None
        self._blocked = []

    def _record(self) -> None:
        if self._move_start is not None:
            self.moves.append(CompletedMove(self._move_start, self.position()))
            self._move_start = None

    def _reported(self, axis: int, now: float) -> int:
        return round(self._motions[axis].now(now)) - self._offsets[axis]

    # -- output ------------------------------------------------------------------------------

    def _say(self, *lines: str) -> None:
        due = time.monotonic() + REPLY_LATENCY_S
        self._pending.extend((due, line) for line in lines)

    def _deliver(self, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, line = self._pending.pop(0)
            self.reply(line + "\r\n")


def _int(text: str) -> int:
    """atoi: leading integer or 0, as the firmware parses arguments."""
    digits = ""
    for i, ch in enumerate(text.strip()):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0
