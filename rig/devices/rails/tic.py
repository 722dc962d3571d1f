"""Pololu Tic stepper controller driver (TTL serial or USB virtual COM port, binary protocol).

Encodings follow pololu/tic-arduino (Tic.cpp) and the Tic user's guide (0J71, sections 7-9).
"Moved" means the current position equals the target position in position planning mode, read
back from the Tic itself. The Tic stops on its own when the host is silent longer than its
command timeout (1 s by default), so every status poll carries a "reset command timeout".

``referenced`` is the Tic's own word: its "position uncertain" flag, which it sets at power-up,
on a Reset, whenever the motor is de-energised (on purpose, or by a driver error or low VIN)
and on "halt and hold", and clears only on "halt and set position" and a finished homing. So a
stop here decelerates to a standstill ("set target velocity 0", the Tic's own default soft
error response) instead of halting abruptly: the count stays trustworthy and referenced.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from rig.devices.rails.link import SerialLink
from rig.errors import ControllerRestarted, RailError

log = logging.getLogger("stackrig.rails.tic")

REPLY_TIMEOUT_S = 0.5  # a status exchange is ~40 bytes: 45 ms at 9600 baud, plus USB latency
POLL_S = 0.02
STOP_TIMEOUT_S = 5.0  # a decelerating stop that takes longer is made abrupt (halt and hold)
FAILED_STOP_S = 0.5  # after a failed move: how long the deceleration may take before halting
RESTART_REASON = "the Tic reset (power dip, brown-out or reset) and restarted its count at 0"
RESUME_TIMEOUT_S = 1.0  # exit safe start clears the error for 200 ms while the Tic starts up
NONSENSE_RETRIES = 3
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


class Command(IntEnum):
    SET_TARGET_POSITION = 0xE0
    SET_TARGET_VELOCITY = 0xE3
    HALT_AND_SET_POSITION = 0xEC
    HALT_AND_HOLD = 0x89
    GO_HOME = 0x97
    RESET_COMMAND_TIMEOUT = 0x8C
    DEENERGIZE = 0x86
    ENERGIZE = 0x85
    EXIT_SAFE_START = 0x83
    ENTER_SAFE_START = 0x8F
    RESET = 0xB0
    CLEAR_DRIVER_ERROR = 0x8A
    SET_SPEED_MAX = 0xE6
    SET_STARTING_SPEED = 0xE5
    SET_ACCEL_MAX = 0xEA
    SET_DECEL_MAX = 0xE9
    GET_VARIABLE = 0xA1
    GET_VARIABLE_AND_CLEAR_ERRORS = 0xA2


class TicError(IntFlag):
    """Bits of the "error status" variable (u16 at 0x02)."""

    INTENTIONALLY_DEENERGIZED = 1 << 0
    MOTOR_DRIVER_ERROR = 1 << 1
    LOW_VIN = 1 << 2
    KILL_SWITCH = 1 << 3
    REQUIRED_INPUT_INVALID = 1 << 4
    SERIAL_ERROR = 1 << 5
    COMMAND_TIMEOUT = 1 << 6
    SAFE_START_VIOLATION = 1 << 7
    ERR_LINE_HIGH = 1 << 8


class MiscFlag(IntFlag):
    """Bits of the "misc flags 1" variable (u8 at 0x01)."""

    ENERGIZED = 1 << 0
    POSITION_UNCERTAIN = 1 << 1
    FORWARD_LIMIT = 1 << 2
    REVERSE_LIMIT = 1 << 3
    HOMING = 1 << 4


OPERATION_STATES = {
    0: "reset",
    2: "de-energized",
    4: "soft error",
    6: "waiting for ERR line",
    8: "starting up",
    10: "normal",
}
NORMAL = 10
PLANNING_POSITION = 1

ERROR_ADVICE: dict[TicError, tuple[str, str]] = {
    TicError.INTENTIONALLY_DEENERGIZED: (
        "intentionally de-energized",
        "energise the motor again, or reconnect",
    ),
    TicError.MOTOR_DRIVER_ERROR: (
        "motor driver error",
        "check the motor wiring, the current limit and the driver's temperature",
    ),
    TicError.LOW_VIN: (
        "low VIN",
        "check the motor power supply and its connection",
    ),
    TicError.KILL_SWITCH: (
        "kill switch active",
        "release the kill switch, or check which pin is configured as one",
    ),
    TicError.REQUIRED_INPUT_INVALID: (
        "required input invalid",
        "set the control mode to Serial / I2C / USB in the Tic Control Center",
    ),
    TicError.SERIAL_ERROR: (
        "serial error",
        "check the wiring, the baud rate and that CRC is on in both the profile and the Tic, or "
        "in neither",
    ),
    TicError.COMMAND_TIMEOUT: (
        "command timeout",
        "the computer was silent longer than the Tic's command timeout; move again (the driver "
        "resumes) or lengthen the timeout in the Tic Control Center",
    ),
    TicError.SAFE_START_VIOLATION: (
        "safe start violation",
        "resume it: the driver re-sends exit safe start on connect",
    ),
    TicError.ERR_LINE_HIGH: (
        "ERR line high",
        "something wired to the ERR pin reports an error: check that device",
    ),
}
# Errors the Tic raises on its own when the host pauses or the line glitches: a new move the
# operator asked for may clear them. Everything else needs a person to look.
RESUMABLE = TicError.SERIAL_ERROR | TicError.COMMAND_TIMEOUT | TicError.SAFE_START_VIOLATION
ERROR_STATUS_BITS = 0xFFFF  # "errors occurred" bits 0-15 mirror the error status
# Errors that de-energise the motor: it may slip, so absolute positions are no longer trusted.
LOSES_POSITION = TicError.MOTOR_DRIVER_ERROR | TicError.LOW_VIN


# -- encoding (pure) -------------------------------------------------------------------------


def crc7(data: bytes) -> int:
    """Pololu's CRC-7 (polynomial 0x91, computed LSB first), as in the Tic user's guide."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc ^ 0x91) >> 1 if crc & 1 else crc >> 1
    return crc


def encode32(value: int) -> bytes:
    """The five data bytes of a 32-bit write: the four MSBs first, then the bytes LSB first."""
    raw = (value & 0xFFFFFFFF).to_bytes(4, "little")
    msbs = sum(((b >> 7) & 1) << i for i, b in enumerate(raw))
    return bytes([msbs, *(b & 0x7F for b in raw)])


@dataclass(frozen=True)
class Framing:
    """How commands are framed: compact (no device number) or Pololu protocol, optional CRC."""

    device_number: int | None = None
    crc: bool = False

    def frame(self, command: int, data: bytes = b"") -> bytes:
        if self.device_number is None:
            packet = bytes([command]) + data
        else:
            packet = bytes([0xAA, self.device_number & 0x7F, command & 0x7F]) + data
        return packet + bytes([crc7(packet)]) if self.crc else packet

    def quick(self, command: int) -> bytes:
        return self.frame(command)

    def write7(self, command: int, value: int) -> bytes:
        return self.frame(command, bytes([value & 0x7F]))

    def write32(self, command: int, value: int) -> bytes:
        return self.frame(command, encode32(value))

    def block_read(self, offset: int, length: int, *, clear_errors: bool = False) -> bytes:
        if not 1 <= length <= 15:
            raise ValueError(f"block read length {length}: the Tic sends 1 to 15 bytes")
        command = Command.GET_VARIABLE_AND_CLEAR_ERRORS if clear_errors else Command.GET_VARIABLE
        return self.frame(command, bytes([offset & 0x7F, length]))


# One status poll: keep-alive, then current position and velocity, VIN + uptime, and last the
# header block. The header goes last because it is the one we can check: if noise shifted the
# replies, it no longer validates, and that vouches for the blocks in front of it.
STATUS_REPLY_LEN = 8 + 6 + 14


@dataclass(frozen=True)
class TicStatus:
    operation_state: int
    misc_flags: int
    error_status: int
    errors_occurred: int
    planning_mode: int
    target: int
    position: int
    vin_mv: int
    uptime_ms: int
    velocity: int = 0  # microsteps per 10 000 s

    @property
    def still(self) -> bool:
        """Standing still: no velocity and no homing under way."""
        return self.velocity == 0 and not self.homing

    @property
    def homing(self) -> bool:
        return bool(self.misc_flags & MiscFlag.HOMING)

    @property
    def position_uncertain(self) -> bool:
        return bool(self.misc_flags & MiscFlag.POSITION_UNCERTAIN)

    def limit_towards(self, target: int) -> str | None:
        """The active limit switch that blocks travel to ``target``, if any."""
        if target > self.position and self.misc_flags & MiscFlag.FORWARD_LIMIT:
            return "forward"
        if target < self.position and self.misc_flags & MiscFlag.REVERSE_LIMIT:
            return "reverse"
        return None


def status_request(framing: Framing) -> bytes:
    """Keep-alive and the three reads one poll needs (see :func:`decode_status`).

    The header is read with "clear errors occurred", so each poll sees the errors since the
    previous one: a driver error the Tic latched and cleared again between polls still shows.
    """
    return (
        framing.quick(Command.RESET_COMMAND_TIMEOUT)
        + framing.block_read(0x22, 8)
        + framing.block_read(0x33, 6)
        + framing.block_read(0x00, 14, clear_errors=True)
    )


def decode_status(reply: bytes) -> TicStatus:
    """The reply to :func:`status_request`; ValueError when it cannot be a Tic's."""
    if len(reply) != STATUS_REPLY_LEN:
        raise ValueError(f"{len(reply)} bytes, expected {STATUS_REPLY_LEN}")
    position, velocity = struct.unpack_from("<ii", reply, 0)
    vin, uptime = struct.unpack_from("<HI", reply, 8)
    op, misc, errors, occurred, planning, target = struct.unpack_from("<BBHIxBi", reply, 14)
    # Only the enumerated fields are checked: flag and error words gain bits in new firmware.
    if op not in OPERATION_STATES:
        raise ValueError(f"operation state {op} is not a Tic state")
    if planning > 2:
        raise ValueError(f"planning mode {planning} is not a Tic mode")
    return TicStatus(op, misc, errors, occurred, planning, target, position, vin, uptime, velocity)


def describe_errors(errors: int) -> str:
    """Each error bit in words, with what to do about it."""
    parts = [f"{name} ({advice})" for bit, (name, advice) in ERROR_ADVICE.items() if errors & bit]
    unknown = errors & ~sum(ERROR_ADVICE)
    parts += [f"error bit {i} (see the Tic user's guide)" for i in range(16) if unknown >> i & 1]
    return "; ".join(parts) or "no error"


# -- driver ----------------------------------------------------------------------------------


class TicDriver:
    """A :class:`~rig.devices.protocols.FocusDriver` for a Pololu Tic in Serial/I2C/USB mode.

    Positions are micrometres in the API and (micro)steps on the wire: ``steps_per_mm`` counts
    the Tic's microsteps. ``device_number`` None speaks the compact protocol, otherwise the
    Pololu protocol to that device. Speeds and accelerations, when given, override the Tic's
    stored settings until it resets (the driver sends them again after a reset it sees).
    """

    name = "tic"

    def __init__(
        self,
        port: str,
        *,
        steps_per_mm: float,
        baudrate: int = 9600,
        device_number: int | None = None,
        max_speed_steps_s: float | None = None,
        max_accel_steps_s2: float | None = None,
        crc: bool = False,
        home_direction: str = "reverse",
    ) -> None:
        if steps_per_mm <= 0:
            raise RailError(f"steps_per_mm = {steps_per_mm}: must be > 0 (microsteps per mm)")
        if device_number is not None and not 0 <= device_number <= 127:
            raise RailError(f"device number {device_number}: the Tic uses 0 to 127 (default 14)")
        if home_direction not in ("reverse", "forward"):
            raise RailError(f"home direction {home_direction!r}: 'reverse' or 'forward'")
        self.port = port
        self.steps_per_mm = steps_per_mm
        self.framing = Framing(device_number, crc)
        self.speed_setting = _speed_setting(max_speed_steps_s)
        self.accel_setting = _accel_setting(max_accel_steps_s2)
        self.home_direction = home_direction
        self.link = SerialLink(port, baudrate, label="Tic")
        self.referenced = False  # the Tic's "position uncertain" flag, as last read
        self._request = status_request(self.framing)
        self._exchange = threading.Lock()  # one status exchange at a time, whatever the thread
        self._motion = threading.Lock()  # held by a call waiting for motion (move, home)
        self._mover: int | None = None  # the thread holding _motion
        self._stops = 0  # stop requests so far: a waiting call watches for a new one
        self._uptime_ms: int | None = None
        self._lost: str | None = None  # why absolute positions can no longer be trusted
        self._reconfigure = False  # the Tic reset: its own settings are back, send ours again

    # -- FocusDriver ---------------------------------------------------------------------------

    def connect(self) -> str:
        self.link.close()
        self.link.open()
        try:
            status = self._identify()
            self._configure()
            status = self._resume(Command.ENERGIZE, Command.EXIT_SAFE_START)
        except BaseException:  # whatever ends a connect, the port it opened is closed
            self.link.close()
            raise
        self._lost = None
        state = OPERATION_STATES[status.operation_state]
        return (
            f"Pololu Tic on {self.port} ({state}, VIN {status.vin_mv / 1000:.1f} V, "
            f"position {self._um(status.position):.1f} um)"
        )

    def close(self) -> None:
        self.link.close()

    def position_um(self) -> float:
        return self._um(self._status().position)

    def move_to(self, target_um: float, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        steps = self._steps(target_um)
        what = f"the move to {target_um:.1f} um"
        stops = self._stops
        with self._moving():
            self._ready(what, absolute=True, deadline=deadline)
            self._send(self.framing.write32(Command.SET_TARGET_POSITION, steps))
            self._wait(what, timeout_s, deadline, stops, steps, _arrived(steps))

    def jog(self, delta_um: float) -> None:
        status = self._ready("a jog", absolute=False)
        target = status.position + round(delta_um * self.steps_per_mm / 1000.0)
        if not I32_MIN <= target <= I32_MAX:
            raise RailError(f"a jog of {delta_um:.1f} um leaves the Tic's position range")
        self._send(self.framing.write32(Command.SET_TARGET_POSITION, target))

    def stop(self) -> None:
        """Decelerate to a standstill ("set target velocity 0") and wait for it.

        Safe from any thread: a call waiting for motion sees the request and raises; this one
        returns once the Tic reports zero velocity. An idle Tic gets no command at all. A
        deceleration that outlasts ``STOP_TIMEOUT_S`` is cut short with "halt and hold" (the
        Tic then flags its position uncertain, so ``referenced`` becomes False).
        """
        self._stops += 1
        if self._motion.acquire(blocking=False):
            try:
                if not self._status().still:  # a jog under way
                    self._come_to_rest(STOP_TIMEOUT_S)
            finally:
                self._motion.release()
            return
        self._send(self._decelerate)  # a move is under way: stop it now
        if self._mover == threading.get_ident():
            return  # from inside that very call (a signal handler): it sees the request
        self._come_to_rest(STOP_TIMEOUT_S)

    def unlock(self) -> str:
        """Clear what keeps the Tic from moving: a latched driver error, an intentional
        de-energise, safe start; then it must run normally."""
        status = self._status()
        errors = status.error_status
        done = []
        commands = []
        if errors & TicError.MOTOR_DRIVER_ERROR:
            commands.append(Command.CLEAR_DRIVER_ERROR)
            done.append("cleared the motor driver error")
        if errors & TicError.INTENTIONALLY_DEENERGIZED:
            commands.append(Command.ENERGIZE)
            done.append("energised the motor")
        rest = errors & ~(TicError.MOTOR_DRIVER_ERROR | TicError.INTENTIONALLY_DEENERGIZED)
        if rest:
            done.append(f"resumed it from {describe_errors(rest)}")
        commands.append(Command.EXIT_SAFE_START)
        self._reapply_settings()
        status = self._resume(*commands)
        what = "; ".join(done) if done else "nothing was locked (it runs normally)"
        if self._lost or not self.referenced:
            why = self._lost or "it flags its position uncertain"
            return f"Tic: {what}. {why}: home or set zero before absolute moves"
        return f"Tic: {what}; the position is kept"

    def set_zero(self) -> None:
        self._send(self.framing.write32(Command.HALT_AND_SET_POSITION, 0))
        status = self._status()
        if status.position != 0:
            raise RailError(
                f"the Tic did not take position 0 (it reports {status.position} steps): check "
                "that its control mode is Serial / I2C / USB"
            )
        self._lost = None

    def home(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        what = f"homing ({self.home_direction})"
        stops = self._stops
        with self._moving():
            self._ready(what, absolute=False, deadline=deadline)
            direction = 1 if self.home_direction == "forward" else 0
            self._send(self.framing.write7(Command.GO_HOME, direction))
            self._wait(what, timeout_s, deadline, stops, None, self._homed)
        self._lost = None

    def energise(self, on: bool) -> None:
        if on:
            self._resume(Command.ENERGIZE, Command.EXIT_SAFE_START)
        else:
            self._send(self.framing.quick(Command.DEENERGIZE))
            self.referenced = False  # the Tic flags its position uncertain when de-energised

    # -- connection ----------------------------------------------------------------------------

    def _identify(self) -> TicStatus:
        self._uptime_ms = None
        try:
            return self._status()
        except RailError as exc:
            raise RailError(
                f"no Tic answered on {self.port}: check baud rate (Tic default 9600), device "
                "number and that serial is enabled (control mode Serial/I2C/USB)"
            ) from exc

    def _configure(self) -> None:
        self._reconfigure = False
        if self.speed_setting is not None:
            self._send(self.framing.write32(Command.SET_SPEED_MAX, self.speed_setting))
        if self.accel_setting is not None:
            # Same deceleration: a focus rail should stop the way it starts.
            self._send(self.framing.write32(Command.SET_ACCEL_MAX, self.accel_setting))
            self._send(self.framing.write32(Command.SET_DECEL_MAX, self.accel_setting))

    def _reapply_settings(self) -> None:
        if self._reconfigure:
            log.info(
                "Tic on %s reset: sending the profile's speed and acceleration again", self.port
            )
            self._configure()

    def _resume(self, *commands: Command) -> TicStatus:
        """Send ``commands`` (ticcmd --resume), then wait until the Tic runs normally."""
        self._send(b"".join(self.framing.quick(c) for c in commands))
        deadline = time.monotonic() + RESUME_TIMEOUT_S
        while True:
            status = self._status()
            if status.operation_state == NORMAL and not status.error_status:
                return status
            if time.monotonic() >= deadline:
                state = OPERATION_STATES[status.operation_state]
                raise RailError(
                    f"the Tic on {self.port} does not resume (operation state: {state}): "
                    f"{describe_errors(status.error_status)}"
                )
            time.sleep(POLL_S)

    # -- motion --------------------------------------------------------------------------------

    def _ready(self, what: str, *, absolute: bool, deadline: float | None = None) -> TicStatus:
        """The Tic's status once it can take a target; resumes after an idle command timeout."""
        status = self._status(deadline)
        if absolute and self._lost:
            raise self._lost_error(f"cannot start {what}")
        blocking = status.error_status & ~RESUMABLE
        if blocking:
            raise RailError(f"cannot start {what}: the Tic reports {describe_errors(blocking)}")
        self._reapply_settings()
        if status.error_status:
            # This move is the operator's own request, which is what safe start waits for.
            log.info("Tic resumes before %s: %s", what, describe_errors(status.error_status))
            status = self._resume(Command.EXIT_SAFE_START)
        return status

    def _wait(
        self,
        what: str,
        timeout_s: float,
        deadline: float,
        stops: int,
        target: int | None,
        done: Callable[[TicStatus], bool],
    ) -> None:
        """Poll until ``done``; any fault stops the motor (decelerating, then abruptly if it
        does not come to rest in time) and raises."""
        try:
            while True:
                status = self._status()
                self._check(status, what, target, stops)
                if done(status):
                    return
                if time.monotonic() >= deadline:
                    raise RailError(
                        f"{what} did not finish within {timeout_s:.1f} s (the Tic is at "
                        f"{self._um(status.position):.1f} um): the motor was halted; check "
                        "for a stall, a missing limit switch or a too low max speed"
                    )
                time.sleep(POLL_S)
        except RailError:
            with contextlib.suppress(RailError):
                self._send(self._decelerate)
                self._come_to_rest(FAILED_STOP_S)
            raise

    def _check(self, status: TicStatus, what: str, target: int | None, stops: int) -> None:
        """Raise for anything that means the motion will not end where it was asked to."""
        here = f"{self._um(status.position):.1f} um"
        if self._stops != stops:
            raise RailError(f"{what} was stopped on request at {here}: check the rail, then move")
        if self._lost:
            raise self._lost_error(f"{what} failed at {here}")
        if status.error_status:
            # Add what occurred since the last poll: our own keep-alive may have cleared the
            # cause (a command timeout) and left only its consequence (safe start).
            errors = status.error_status | (status.errors_occurred & ERROR_STATUS_BITS)
            raise RailError(f"{what} failed at {here}: the Tic reports {describe_errors(errors)}")
        if target is None:
            return
        limit = status.limit_towards(target)
        if limit:
            raise RailError(
                f"{what} stopped at {here}: the {limit} limit switch is active. Move away from "
                "it and check the soft limits of the profile against the travel"
            )
        if status.planning_mode != PLANNING_POSITION or status.target != target:
            raise RailError(
                f"{what} was overridden at {here}: the Tic's target is now {status.target} steps. "
                "Close other programs talking to the Tic (e.g. the Tic Control Center)"
            )

    @contextlib.contextmanager
    def _moving(self) -> Iterator[None]:
        with self._motion:
            self._mover = threading.get_ident()
            try:
                yield
            finally:
                self._mover = None

    @property
    def _decelerate(self) -> bytes:
        return self.framing.write32(Command.SET_TARGET_VELOCITY, 0)

    def _come_to_rest(self, bound_s: float) -> TicStatus:
        """Ask for a standstill and wait for it; abruptly (halt and hold) past ``bound_s``."""
        self._send(self._decelerate)
        deadline = time.monotonic() + bound_s
        while not (status := self._status()).still:
            if time.monotonic() >= deadline:
                self._send(self.framing.quick(Command.HALT_AND_HOLD))
                log.warning("Tic on %s did not decelerate in %.1f s: halted", self.port, bound_s)
                status = self._status()
                if not status.still:
                    raise RailError(
                        f"the Tic on {self.port} still moves after a stop: de-energise it or "
                        "cut its motor power"
                    )
                return status
            time.sleep(POLL_S)
        return status

    def _lost_error(self, prefix: str) -> RailError:
        return RailError(
            f"{prefix}: {self._lost}, so absolute positions are lost. Home the rail, or jog to "
            "a known place and set zero, then move again"
        )

    @staticmethod
    def _homed(status: TicStatus) -> bool:
        if status.homing:
            return False
        if status.position_uncertain:
            raise RailError(
                "homing did not run or did not finish: configure and wire a limit switch for "
                "the homing direction in the Tic Control Center"
            )
        return True

    # -- link ----------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.link.write(data)

    def _status(self, deadline: float | None = None) -> TicStatus:
        """One validated status poll (also keeps the command timeout from firing), answered
        before ``deadline`` where given, else within ``REPLY_TIMEOUT_S``."""
        problem = ""
        with self._exchange:
            for _ in range(NONSENSE_RETRIES):
                self.link.reset_input()  # bytes left over from noise or a late reply
                self.link.write(self._request)
                bound = time.monotonic() + REPLY_TIMEOUT_S
                raw = self.link.read_bytes(
                    STATUS_REPLY_LEN,
                    bound if deadline is None else min(bound, deadline),
                    "a status request",
                )
                try:
                    status = decode_status(raw)
                except ValueError as exc:
                    problem = str(exc)
                    time.sleep(0.05)  # let the rest of a garbled reply arrive, then drop it
                    continue
                self._track(status)
                return status
        raise RailError(
            f"the Tic on {self.port} answers nonsense ({problem}): check the baud rate, the "
            "CRC setting, and that nothing else is connected to its serial line"
        )

    def _track(self, status: TicStatus) -> None:
        """Remember events that make the Tic's position count untrustworthy; a restart (its
        uptime ran backwards) raises :class:`ControllerRestarted`, once."""
        self.referenced = not status.position_uncertain
        restarted = self._uptime_ms is not None and status.uptime_ms < self._uptime_ms
        self._uptime_ms = status.uptime_ms  # wraps after 49 days: only a restart goes back
        slipped = status.errors_occurred & LOSES_POSITION
        if slipped:
            self._lost = f"the Tic de-energised the motor: {describe_errors(slipped)}"
            log.warning("Tic on %s: %s", self.port, self._lost)
        if restarted:
            self._lost = RESTART_REASON
            self._reconfigure = True
            log.warning("Tic on %s: %s", self.port, self._lost)
            raise ControllerRestarted(self._lost_error("the Tic on " + self.port + " restarted"))

    # -- units ---------------------------------------------------------------------------------

    def _um(self, steps: int) -> float:
        return steps * 1000.0 / self.steps_per_mm

    def _steps(self, um: float) -> int:
        steps = round(um * self.steps_per_mm / 1000.0)
        if not I32_MIN <= steps <= I32_MAX:
            raise RailError(f"{um:.1f} um is outside the Tic's position range (32-bit steps)")
        return steps


def _arrived(steps: int) -> Callable[[TicStatus], bool]:
    return lambda s: (
        s.position == steps and s.target == steps and s.planning_mode == PLANNING_POSITION
    )


def _speed_setting(steps_s: float | None) -> int | None:
    """Max speed in the Tic's unit, microsteps per 10 000 s."""
    if steps_s is None:
        return None
    value = round(steps_s * 10_000)
    if not 0 < value <= 500_000_000:
        raise RailError(f"max speed {steps_s} steps/s: the Tic takes up to 50 000 steps/s")
    return value


def _accel_setting(steps_s2: float | None) -> int | None:
    """Max acceleration in the Tic's unit, microsteps per 100 s^2."""
    if steps_s2 is None:
        return None
    value = round(steps_s2 * 100)
    if not 100 <= value <= I32_MAX:
        raise RailError(f"max acceleration {steps_s2} steps/s^2: the Tic takes 1 and above")
    return value
