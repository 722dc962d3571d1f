"""Pololu Tic emulator: compact and Pololu framing, optional CRC, the variable table, motion.

Error handling follows the Tic user's guide (0J71, section 5.4). Motor driver error and low VIN
de-energise the motor and make the position uncertain. Soft errors (command timeout, serial
error, safe start violation, ...) apply the default soft error response, "decelerate to hold",
and only when leaving the normal state. In the Serial / I2C / USB control mode every error also
sets "safe start violation", which only ExitSafeStart clears, once nothing else is wrong.
Positions are steps; the motor moves at the max speed, and with ``accel_steps_s2`` > 0 it
accelerates and decelerates (else speed changes at once).

The "position uncertain" flag follows the guide and pololu-tic-software: set at power-up, by
a Reset command, whenever the motor is de-energised, and by "halt and hold" (an abrupt stop
may lose steps); cleared by "halt and set position" and a finished homing. "Set target
velocity" 0 decelerates to a standstill and leaves it alone. A Reset command (unlike a power
cycle) does not restart the uptime counter ("a Reset command does not count"); that it keeps
the position count is this emulator's reading of the guide, which lists what Reset clears and
does not name the count (unverified on hardware).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from rig.devices.emulators.base import Motion, PtyEmulator
from rig.devices.rails.tic import NORMAL, Command, MiscFlag, TicError, crc7

C = Command
E = TicError
QUICK = (
    C.HALT_AND_HOLD,
    C.RESET_COMMAND_TIMEOUT,
    C.DEENERGIZE,
    C.ENERGIZE,
    C.EXIT_SAFE_START,
    C.ENTER_SAFE_START,
    C.RESET,
    C.CLEAR_DRIVER_ERROR,
)
WRITE32 = (
    C.SET_TARGET_POSITION,
    C.SET_TARGET_VELOCITY,
    C.HALT_AND_SET_POSITION,
    C.SET_SPEED_MAX,
    C.SET_STARTING_SPEED,
    C.SET_ACCEL_MAX,
    C.SET_DECEL_MAX,
)
DATA_LENGTH: dict[int, int] = {
    **dict.fromkeys(QUICK, 0),
    **dict.fromkeys(WRITE32, 5),
    C.GO_HOME: 1,
    C.GET_VARIABLE: 2,
    C.GET_VARIABLE_AND_CLEAR_ERRORS: 2,
}
# The commands that clear a serial error and restart the command timeout (guide 5.4).
QUALIFYING = {
    C.SET_TARGET_POSITION,
    C.SET_TARGET_VELOCITY,
    C.HALT_AND_SET_POSITION,
    C.HALT_AND_HOLD,
    C.ENERGIZE,
    C.EXIT_SAFE_START,
    C.RESET,
}
RESET_STATE = E.MOTOR_DRIVER_ERROR | E.LOW_VIN
SOFT = (
    E.KILL_SWITCH
    | E.REQUIRED_INPUT_INVALID
    | E.SERIAL_ERROR
    | E.COMMAND_TIMEOUT
    | E.SAFE_START_VIOLATION
)
SERIAL_FORMAT = 1 << 18  # "errors occurred" bits beyond the error status
SERIAL_CRC = 1 << 19
RESET_BROWNOUT = 1  # "device reset" variable: the cause of the last full reset (0: power-up)
FAR = 2**31 - 1  # homing towards a switch that is not there runs until halted
# Variables 0x00 .. 0x38 (guide section 7): op state, misc flags, error status, errors occurred,
# (0x08 unused), planning mode, target position, target velocity, starting speed, max speed,
# max decel, max accel, current position, current velocity, acting target, time since last
# step, device reset, VIN, uptime.
VARIABLES = struct.Struct("<BBHIxBiiIIIIiiiIBHI")


def decode32(data: bytes) -> int:
    """The value of a 32-bit write: the MSBs byte, then four 7-bit bytes, LSB first."""
    raw = bytes(b | (((data[0] >> i) & 1) << 7) for i, b in enumerate(data[1:5]))
    return int.from_bytes(raw, "little", signed=True)


class TicEmulator(PtyEmulator):
    """A Tic in Serial / I2C / USB mode on a pty.

    ``reverse_switch_at`` / ``forward_switch_at``: where the homing limit switches sit, in the
    Tic's steps at power-up (None: not wired, so homing that way never ends). ``moves`` records
    each completed position move as (start, end) steps.

    Faults beyond the base ones: ``error_next`` is the error status bit the next command raises
    (1: motor driver error, 2: low VIN, 3: kill switch); ``alarm_mid_move`` trips the limit
    switch ahead halfway through the next move; ``reset_mid_move`` resets the Tic halfway
    (a brown-out: a full reset, the count and the uptime start again at 0).
    """

    def __init__(
        self,
        *,
        steps_per_s: float = 4000.0,
        device_number: int = 14,
        crc: bool = False,
        command_timeout_s: float | None = 1.0,
        reverse_switch_at: int | None = -1000,
        forward_switch_at: int | None = None,
        vin_mv: int = 12000,
        accel_steps_s2: float = 0.0,
    ) -> None:
        super().__init__()
        self.accel = accel_steps_s2
        self.settings_speed = steps_per_s  # the stored setting: a reset restores it
        self.device_number = device_number
        self.crc = crc
        self.command_timeout_s = command_timeout_s
        self.switches = {0: reverse_switch_at, 1: forward_switch_at}  # by homing direction
        self.vin_mv = vin_mv
        self.moves: list[tuple[int, int]] = []
        self.written: dict[Command, int] = {}  # the last value of each 32-bit write
        self.errors_occurred = 0
        self.error_status = 0
        self.speed = steps_per_s
        self.planning = 0  # 0 off, 1 position, 2 velocity (homing)
        self.target = 0
        self.target_velocity = 0  # microsteps per 10 000 s (velocity planning mode)
        self.device_reset = 0  # cause of the last full reset (0: power-up)
        self.homing: int | None = None  # direction while homing
        self.uncertain = True
        self.limit = 0  # active limit switch flags
        self._packet = bytearray()
        self._offset = 0  # physical steps = position + offset: a reset moves the count only
        self._motion = self._at_rest(0.0, time.monotonic())
        self._move_from: int | None = None  # start of the position move under way
        self._fault_at: tuple[float, str] | None = None  # a mid-move fault: (when, kind)
        self._disconnect_at: float | None = None
        self._booted = self._last_command = time.monotonic()
        self._handlers: dict[Command, Callable[[bytes, float], None]] = {
            C.SET_TARGET_POSITION: self._set_target,
            C.SET_TARGET_VELOCITY: self._set_velocity,
            C.HALT_AND_SET_POSITION: self._halt_and_set_position,
            C.HALT_AND_HOLD: self._halt_and_hold,
            C.GO_HOME: self._go_home,
            C.RESET_COMMAND_TIMEOUT: self._reset_command_timeout,
            C.DEENERGIZE: lambda _, now: self._set_error(E.INTENTIONALLY_DEENERGIZED, now),
            C.ENERGIZE: lambda _, now: self._clear(E.INTENTIONALLY_DEENERGIZED),
            C.EXIT_SAFE_START: self._exit_safe_start,
            C.ENTER_SAFE_START: lambda _, now: self._set_error(E.SAFE_START_VIOLATION, now),
            C.RESET: lambda _, now: self._reset_command(now),
            C.CLEAR_DRIVER_ERROR: lambda _, now: self._clear(E.MOTOR_DRIVER_ERROR),
            C.SET_SPEED_MAX: self._set_speed,
            C.SET_STARTING_SPEED: lambda data, now: None,  # kept in ``written``; no ramps here
            C.SET_ACCEL_MAX: lambda data, now: None,
            C.SET_DECEL_MAX: lambda data, now: None,
            C.GET_VARIABLE: lambda data, now: self._read(data, now, clear=False),
            C.GET_VARIABLE_AND_CLEAR_ERRORS: lambda data, now: self._read(data, now, clear=True),
        }
        self._power_up(time.monotonic())

    # -- state, for tests ----------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self._position(time.monotonic())

    @property
    def moving(self) -> bool:
        return self._motion.moving(time.monotonic())

    @property
    def operation_state(self) -> int:
        errors = self.error_status
        if errors & RESET_STATE:
            return 0
        if errors & E.INTENTIONALLY_DEENERGIZED:
            return 2
        if errors & SOFT:
            return 4
        if errors & E.ERR_LINE_HIGH:
            return 6
        return NORMAL

    @property
    def energized(self) -> bool:
        return self.operation_state not in (0, 2)

    # -- framing -------------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> None:
        now = time.monotonic()
        for byte in data:
            if byte & 0x80:
                if self._packet:  # a new command before the last one was complete
                    self._serial_error(SERIAL_FORMAT, now)
                self._packet = bytearray([byte])
            elif self._packet:
                self._packet.append(byte)
            else:  # a data byte with no command
                self._serial_error(SERIAL_FORMAT, now)
                continue
            self._dispatch_if_complete(now)

    def _dispatch_if_complete(self, now: float) -> None:
        packet = self._packet
        pololu = packet[0] == 0xAA
        header = 3 if pololu else 1
        if len(packet) < header:
            return
        command = packet[2] | 0x80 if pololu else packet[0]
        if command not in DATA_LENGTH:
            self._packet = bytearray()
            self._serial_error(SERIAL_FORMAT, now)
            return
        end = header + DATA_LENGTH[command]
        if len(packet) < end + self.crc:
            return
        self._packet = bytearray()
        if self.crc and crc7(bytes(packet[:end])) != packet[end]:
            self._serial_error(SERIAL_CRC, now)  # and the command is ignored
            return
        if pololu and packet[1] != self.device_number:
            return  # for another device on the same line
        self._command(Command(command), bytes(packet[header:end]), now)

    def _command(self, command: Command, data: bytes, now: float) -> None:
        if self.faults.error_next is not None:
            bit, self.faults.error_next = self.faults.error_next, None
            self._set_error(E(1 << bit), now)
        if command in QUALIFYING:
            self._last_command = now
            self._clear(E.SERIAL_ERROR | E.COMMAND_TIMEOUT)
        if command in WRITE32:
            self.written[command] = decode32(data)
        self._handlers[command](data, now)

    # -- commands ------------------------------------------------------------------------------

    def _read(self, data: bytes, now: float, *, clear: bool) -> None:
        offset, length = data
        table = self._variables(now)
        self.reply(table[offset : offset + length].ljust(length, b"\x00"))
        if clear:
            self.errors_occurred = 0

    def _set_target(self, data: bytes, now: float) -> None:
        if self.operation_state != NORMAL:
            return  # ignored until the host resumes (exit safe start)
        value, here = decode32(data), self._position(now)
        self.planning, self.target, self.homing = 1, value, None
        if self.limit & MiscFlag.FORWARD_LIMIT and value < here:
            self.limit = 0
        if self.limit & MiscFlag.REVERSE_LIMIT and value > here:
            self.limit = 0
        towards_limit = (value > here and self.limit & MiscFlag.FORWARD_LIMIT) or (
            value < here and self.limit & MiscFlag.REVERSE_LIMIT
        )
        if towards_limit:
            return  # the Tic keeps the target but takes no step towards an active switch
        self._motion.start(value, self.speed, now)
        self._move_from = here
        self._schedule_faults(abs(value - here) / self.speed, now)

    def _set_velocity(self, data: bytes, now: float) -> None:
        """Velocity planning: 0 decelerates to a standstill and holds (position still certain)."""
        if self.operation_state != NORMAL:
            return
        value = decode32(data)
        self.planning, self.target_velocity, self.homing = 2, value, None
        self._move_from = None  # a position move cut short is not a finished move
        self._fault_at = None
        if value == 0:
            self._motion.decelerate(now)
            return
        speed = min(abs(value) / 10_000, self.speed)
        self._motion.start(FAR if value > 0 else -FAR, speed, now)

    def _halt_and_set_position(self, data: bytes, now: float) -> None:
        value, here = decode32(data), self._position(now)
        self._halt(now)
        self._offset += here - value
        self._motion = self._at_rest(float(value), now)
        self.target, self.uncertain = value, False

    def _halt_and_hold(self, data: bytes, now: float) -> None:
        self._halt(now)
        self.uncertain = True  # an abrupt stop may lose steps

    def _go_home(self, data: bytes, now: float) -> None:
        if self.operation_state != NORMAL:
            return
        direction = data[0] & 1
        switch = self.switches[direction]
        goal = (FAR if direction else -FAR) if switch is None else switch - self._offset
        self._halt(now)
        self.planning, self.homing, self.uncertain = 2, direction, True
        self._motion.start(goal, self.speed, now)

    def _reset_command_timeout(self, data: bytes, now: float) -> None:
        self._last_command = now
        self._clear(E.COMMAND_TIMEOUT)

    def _exit_safe_start(self, data: bytes, now: float) -> None:
        if not self.error_status & ~E.SAFE_START_VIOLATION:
            self._clear(E.SAFE_START_VIOLATION)

    def _set_speed(self, data: bytes, now: float) -> None:
        self.speed = decode32(data) / 10_000  # microsteps per 10 000 s

    # -- errors and state ----------------------------------------------------------------------

    def _set_error(self, bit: TicError, now: float) -> None:
        if self.error_status & bit:
            return
        was_normal = self.operation_state == NORMAL
        self.error_status |= bit | E.SAFE_START_VIOLATION
        self.errors_occurred |= bit | E.SAFE_START_VIOLATION
        if bit & (RESET_STATE | E.INTENTIONALLY_DEENERGIZED):
            self._halt(now)
            self.uncertain = True  # de-energised: the motor may slip
        elif was_normal:  # the default soft error response, "decelerate to hold"
            self._motion.decelerate(now)
            self.planning, self.target_velocity, self.homing = 2, 0, None
            self._move_from = self._fault_at = None

    def _serial_error(self, occurred: int, now: float) -> None:
        self.errors_occurred |= occurred
        self._set_error(E.SERIAL_ERROR, now)

    def _clear(self, bits: TicError) -> None:
        self.error_status &= ~bits

    def _halt(self, now: float) -> None:
        self._motion = self._at_rest(float(self._position(now)), now)
        self.planning, self.homing = 0, None
        self._move_from = None
        self._fault_at = None

    def _at_rest(self, position: float, now: float) -> Motion:
        return Motion(position, position, self.speed, now, accel=self.accel)

    def _power_up(self, now: float, *, cause: int = 0) -> None:
        """A full reset (power-up, brown-out): settings reloaded, the count and the uptime
        start again at 0, position uncertain, safe start on."""
        self._offset += self._position(now)
        self.speed = self.settings_speed
        self._halt(now)
        self._motion = self._at_rest(0.0, now)
        self.target = self.target_velocity = 0
        self.error_status = int(E.SAFE_START_VIOLATION)
        self.errors_occurred = 0
        self.uncertain = True
        self.limit = 0
        self.device_reset = cause
        self._booted = self._last_command = now

    def _reset_command(self, now: float) -> None:
        """The Reset command: an abrupt stop, settings reloaded, serial error, command timeout
        and errors occurred cleared, safe start on; the uptime runs on, the count is kept and
        the "intentionally de-energised" bit is left as it was (tic.h, tic_reset())."""
        deenergised = self.error_status & E.INTENTIONALLY_DEENERGIZED
        self.speed = self.settings_speed
        self._halt(now)
        self.target, self.target_velocity = self._position(now), 0
        self.error_status = int(E.SAFE_START_VIOLATION) | deenergised
        self.errors_occurred = 0
        self.uncertain = True  # the Reset state de-energises the motor
        self.limit = 0

    def _position(self, now: float) -> int:
        return round(self._motion.now(now))

    def _variables(self, now: float) -> bytes:
        here = self._position(now)
        velocity = 0
        if self._motion.moving(now):
            sign = 1 if self._motion.target > here else -1
            velocity = sign * max(1, round(self._motion.velocity(now) * 10_000))
        misc = (
            (MiscFlag.ENERGIZED if self.energized else 0)
            | (MiscFlag.POSITION_UNCERTAIN if self.uncertain else 0)
            | (MiscFlag.HOMING if self.homing is not None else 0)
            | self.limit
        )
        w = self.written
        return VARIABLES.pack(
            self.operation_state,
            misc,
            self.error_status,
            self.errors_occurred,
            self.planning,
            self.target,
            self.target_velocity,
            w.get(C.SET_STARTING_SPEED, 0),
            round(self.speed * 10_000),
            w.get(C.SET_DECEL_MAX, 0),
            w.get(C.SET_ACCEL_MAX, 0),
            here,
            velocity,
            self.target,
            0,  # time since last step
            self.device_reset,
            self.vin_mv,
            round((now - self._booted) * 1000) & 0xFFFFFFFF,
        )

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self._disconnect_at is not None and now >= self._disconnect_at:
            self._disconnect_at = None
            self.disconnect()
            return
        if self._fault_at is not None and now >= self._fault_at[0]:
            kind, self._fault_at = self._fault_at[1], None
            if kind == "alarm":
                self._limit_hit(now)
            else:
                self._power_up(now, cause=RESET_BROWNOUT)
        timeout = self.command_timeout_s
        if timeout and now - self._last_command > timeout:
            self._set_error(E.COMMAND_TIMEOUT, now)
        if not self._motion.moving(now):
            self._arrived(now)

    def _arrived(self, now: float) -> None:
        if self.homing is not None:
            # Homing ends on the switch, which becomes position 0 (guide 5.6).
            self._offset += self._position(now)
            self._halt(now)
            self._motion = self._at_rest(0.0, now)
            self.target, self.uncertain = 0, False
        elif self._move_from is not None:
            self.moves.append((self._move_from, self.target))
            self._move_from = None

    def _schedule_faults(self, duration_s: float, now: float) -> None:
        f = self.faults
        if f.disconnect_after_s is not None:
            self._disconnect_at, f.disconnect_after_s = now + f.disconnect_after_s, None
        if f.alarm_mid_move:
            self._fault_at, f.alarm_mid_move = (now + duration_s / 2, "alarm"), False
        elif f.reset_mid_move:
            self._fault_at, f.reset_mid_move = (now + duration_s / 2, "reset"), False

    def _limit_hit(self, now: float) -> None:
        """A limit switch trips: the Tic stops, keeps its target and flags the switch."""
        here = self._position(now)
        self.limit |= MiscFlag.FORWARD_LIMIT if self.target > here else MiscFlag.REVERSE_LIMIT
        self._motion = self._at_rest(float(here), now)
        self._move_from = None
