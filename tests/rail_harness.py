"""One harness per rail firmware, so that the driver tests are written once.

Each :class:`Firmware` knows how to start its emulator fast (20 mm/s, short timeouts), build
and connect its driver, inject the common faults, and read back what the emulator did: where
the carriage is, whether it moves, the moves it made and the motion commands it was sent.
The attributes say what the firmware's driver does where drivers legitimately differ; the
conformance suite (test_rail_conformance.py) asserts each firmware's own behaviour from them.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import pytest

from rig.devices.emulators.base import PtyEmulator
from rig.devices.emulators.grbl import GrblEmulator
from rig.devices.emulators.marlin import ERROR_KILL, MarlinEmulator
from rig.devices.emulators.sangaboard import SangaboardEmulator
from rig.devices.emulators.tic import TicEmulator
from rig.devices.protocols import FocusDriver
from rig.devices.rails.grbl import GrblDriver
from rig.devices.rails.marlin import MarlinDriver
from rig.devices.rails.sangaboard import SangaboardDriver
from rig.devices.rails.tic import Command, Framing, TicDriver
from rig.errors import RailError

SPEED_MM_S = 20.0  # every emulated carriage moves this fast: a 4 mm move takes 0.2 s
SPEED_UM_S = SPEED_MM_S * 1000.0
STEPS_PER_MM_SANGABOARD = 2000.0  # two steps per micrometre
STEPS_PER_MM_TIC = 1000.0  # one step per micrometre
SLACK_S = 0.3  # how long after the event that ends a wait the driver may take to notice it

E = TypeVar("E", bound=PtyEmulator)
D = TypeVar("D", bound=FocusDriver)


def wait_until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """The emulators act in their own thread: wait (bounded) for what must happen there."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the emulator never got there"
        time.sleep(0.005)


def raises_within(seconds: float, match: str, call: Callable[[], object]) -> RailError:
    """``call`` must fail with a RailError matching ``match`` in under ``seconds``."""
    start = time.monotonic()
    with pytest.raises(RailError, match=match) as info:
        call()
    assert time.monotonic() - start < seconds
    return info.value


def sent(emu: PtyEmulator) -> bytes:
    """Everything the driver has written to the emulator so far."""
    return b"".join(emu.received)


def once_moving(emu: PtyEmulator, fw: Firmware[Any, Any], action: Callable[[], None]) -> Trigger:
    """Run ``action`` (a stop, a fault) from another thread once the carriage has set off."""
    trigger = Trigger(emu, fw, action)
    trigger.start()
    return trigger


class Trigger(threading.Thread):
    def __init__(
        self, emu: PtyEmulator, fw: Firmware[Any, Any], action: Callable[[], None]
    ) -> None:
        super().__init__(daemon=True)
        self.emu, self.fw, self.action = emu, fw, action
        self.origin = fw.position_um(emu)
        self.at: float | None = None  # when the action ran

    def run(self) -> None:
        wait_until(lambda: self.fw.position_um(self.emu) != self.origin)
        self.at = time.monotonic()
        self.action()


@dataclass
class Bench(Generic[E, D]):
    """An emulator and the driver connected to it."""

    emu: E
    driver: D


class Firmware(Generic[E, D]):
    """How to run one firmware's emulator and driver, and what its driver does."""

    name: ClassVar[str]
    emulator_class: ClassVar[Callable[..., Any]]
    driver_class: ClassVar[Callable[..., Any]]
    steps_per_mm: ClassVar[float | None] = None  # what the registry needs (NEEDS_STEPS)
    boot_s: ClassVar[float] = 0.0  # how long the emulator runs before a driver connects
    identity: ClassVar[str]  # regex connect() must fully match on the default emulator
    reply_timeout_s: ClassVar[float]  # the driver's bound on a position query
    slow_reply_s: ClassVar[float]  # replies this late still fit every bound of the driver
    silent_connect: ClassVar[str]  # what connect says of a controller that never answers
    connect_timeout_s: ClassVar[float]  # how long connect gives a silent controller
    error_code: ClassVar[int]  # Faults.error_next that makes the firmware send its error
    error: ClassVar[str]  # what a move says when the firmware answers with that error
    after_error: ClassVar[str | None] = None  # what the next move says (None: it works)
    overrun: ClassVar[str]  # what a move says that outlasts its timeout
    limit: ClassVar[str]  # what a move says when a limit switch trips halfway
    reset: ClassVar[str]  # what a move says when the controller resets halfway
    garbage: ClassVar[str | None]  # what line noise before each reply makes a query say
    garbage_s: ClassVar[float] = 0.0  # how long the driver looks at noise before it says so
    readback_um: ClassVar[float] = 0.0  # how closely a position off the commanded one reads
    stop_pause_s: ClassVar[float] = 0.0  # a documented pause inside stop()
    stop_sent: ClassVar[bytes]  # what stop() puts on the wire
    silent_move: ClassVar[str]  # what a move says when the controller stops answering
    silent_query: ClassVar[str]  # what a position query says when no answer comes in time
    motion: ClassVar[re.Pattern[bytes]]  # one match per motion command on the wire

    # -- to override -------------------------------------------------------------------------

    def emulator_options(self, speed_mm_s: float) -> dict[str, Any]:
        return {}

    def driver_options(self, speed_mm_s: float) -> dict[str, Any]:
        return {}

    def here(self, emu: E) -> float:
        """Where the emulated carriage is (mm or steps), in the firmware's coordinates."""
        raise NotImplementedError

    def finished(self, emu: E) -> Sequence[tuple[float, float]]:
        """(start, end) of every move the emulator finished (mm or steps)."""
        raise NotImplementedError

    def moving(self, emu: E) -> bool:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return self.name  # the test ids

    def start(self, speed_mm_s: float = SPEED_MM_S, **options: Any) -> E:
        """A started emulator whose carriage moves at ``speed_mm_s`` (with the driver's)."""
        emu: E = self.emulator_class(**{**self.emulator_options(speed_mm_s), **options})
        emu.start()
        if self.boot_s:
            time.sleep(self.boot_s)
        return emu

    def driver(self, emu: E, speed_mm_s: float = SPEED_MM_S, **options: Any) -> D:
        """A driver for ``emu`` with short timeouts (not connected)."""
        driver: D = self.driver_class(emu.path, **{**self.driver_options(speed_mm_s), **options})
        return driver

    def position_um(self, emu: E) -> float:
        return self.here(emu) * 1000.0  # millimetres, unless the controller counts steps

    def moves_um(self, emu: E) -> list[tuple[float, float]]:
        return [(a * 1000.0, b * 1000.0) for a, b in self.finished(emu)]

    def settled_moves(self, emu: E, count: int) -> list[tuple[float, float]]:
        """The finished moves once there are ``count`` (a move is recorded as it ends)."""
        wait_until(lambda: len(self.moves_um(emu)) >= count)
        return self.moves_um(emu)

    def motion_commands(self, data: bytes) -> int:
        """How many motion commands (moves, jogs, homing) ``data`` holds."""
        return len(self.motion.findall(data))

    def inject_error(self, emu: E) -> None:
        emu.faults.error_next = self.error_code

    @contextlib.contextmanager
    def running(self, **options: Any) -> Iterator[E]:
        emu = self.start(**options)
        try:
            yield emu
        finally:
            # A reply being delayed (slow_reply_s) holds the emulator's lock. Let it finish:
            # PtyEmulator.close() closes the pty even when its thread outlives the join, and
            # that thread's late write then lands in whatever reuses the file descriptor.
            emu.faults.slow_reply_s = 0.0
            with emu._lock:
                pass
            emu.close()

    @contextlib.contextmanager
    def connect(self, emu: E, **options: Any) -> Iterator[D]:
        driver = self.driver(emu, **options)
        try:
            driver.connect()
            yield driver
        finally:
            driver.close()

    @contextlib.contextmanager
    def connected(self, speed_mm_s: float = SPEED_MM_S, **emulator: Any) -> Iterator[Bench[E, D]]:
        with (
            self.running(speed_mm_s=speed_mm_s, **emulator) as emu,
            self.connect(emu, speed_mm_s=speed_mm_s) as driver,
        ):
            driver.set_zero()  # as an operator does first: absolute moves need a reference
            yield Bench(emu, driver)


class Grbl(Firmware[GrblEmulator, GrblDriver]):
    name = "grbl"
    emulator_class = GrblEmulator  # it moves at the feed rate the driver sends
    driver_class = GrblDriver
    motion = re.compile(rb"\bG[01] |\$J=|\$H\b")  # realtime bytes may precede a line
    identity = (
        r"GRBL 1\.1h\.20190830; position not referenced until homed or zeroed; it releases the "
        r"motor 25 ms after each move \(\$1\): set \$1=255 to hold the focus between shots"
    )
    connect_timeout_s = 3.5  # boot_timeout_s, plus 1.5 s of silence before it tries a reset
    silent_connect = r"nothing on .* answers like GRBL, even after a reset"
    reply_timeout_s = 2.0  # a status report
    silent_query = r"GRBL controller on .* did not answer a status report in time"
    silent_move = r"GRBL stopped answering during the move to 1000\.0 um .*sent it a feed hold"
    slow_reply_s = 0.05
    readback_um = 1.0  # status reports have three decimals of a millimetre
    garbage = None  # GRBL's driver strips noise in front of a known reply, and carries on
    stop_sent = b"\x85!"  # jog-cancel and feed hold; the reset only once it stands still
    error_code = 9
    error = r"GRBL refused 'G1 .*': G-code is locked out.*\(error:9\)"
    overrun = r"the move to [\d.]+ um did not finish within [\d.]+ s, so stackrig stopped it at"
    limit = r"GRBL alarm: hard limit switch hit: clear it, run 'stackrig rail unlock'.*\(ALARM:1\)"
    reset = r"GRBL restarted by itself .*the position is not referenced"

    def driver_options(self, speed_mm_s: float) -> dict[str, Any]:
        return {"speed_mm_s": speed_mm_s, "boot_timeout_s": 2.0}

    def here(self, emu: GrblEmulator) -> float:
        return emu.motion.now(time.monotonic()) - emu.wco  # work coordinates

    def finished(self, emu: GrblEmulator) -> Sequence[tuple[float, float]]:
        return [(a - emu.wco, b - emu.wco) for a, b in emu.moves]

    def moving(self, emu: GrblEmulator) -> bool:
        return emu.motion.moving(time.monotonic()) or bool(emu.queue)


class Marlin(Firmware[MarlinEmulator, MarlinDriver]):
    name = "marlin"
    emulator_class = MarlinEmulator
    driver_class = MarlinDriver
    motion = re.compile(rb"(?m)^N\d+ (G[01]|G28)\b")
    identity = r"Marlin 2\.1\.2\.4 on Focus Rail"
    connect_timeout_s = 1.5
    silent_connect = r"no answer from a Marlin controller on .* to a hello \(M118\)"
    reply_timeout_s = 0.5
    silent_query = r"Marlin controller on .* did not answer M114 in time"
    silent_move = r"Marlin controller on .* did not answer G1 Z1\.0000 F1200 in time"
    slow_reply_s = 0.02  # every busy keepalive is delayed too, inside the emulator
    readback_um = 5.0  # M114 has two decimals of a millimetre
    garbage = r"did not answer M114 in time.*unreadable bytes.*baud rate"
    garbage_s = 0.5  # unreadable lines are dropped: the noise shows when the wait ends
    stop_sent = b"M410\n"  # unnumbered: the emergency parser acts on it at once
    # The emulator's error line is a kill (M112, thermal runaway): Marlin answers nothing after.
    error_code = ERROR_KILL
    error = r"Marlin halted \(kill\): reset the board.*'Printer halted\. kill\(\) called!'"
    after_error = r"not connected: connect first"
    overrun = r"Marlin was still busy with M400 when the time allowed ran out"
    limit = r"the rail hit a limit switch during M400 \(endstops hit: +Z:.*then home or re-zero"
    reset = r"Marlin restarted \(printed 'start'\) during M400: the position is lost"

    def emulator_options(self, speed_mm_s: float) -> dict[str, Any]:
        return {"keepalive_s": 0.05, "feed_mm_s": speed_mm_s}

    def driver_options(self, speed_mm_s: float) -> dict[str, Any]:
        return {
            "speed_mm_s": speed_mm_s,
            "reply_timeout_s": self.reply_timeout_s,
            "connect_timeout_s": self.connect_timeout_s,
            "hello_interval_s": 0.2,
        }

    def here(self, emu: MarlinEmulator) -> float:
        return emu.position_mm()

    def finished(self, emu: MarlinEmulator) -> Sequence[tuple[float, float]]:
        return emu.moves

    def moving(self, emu: MarlinEmulator) -> bool:
        return emu.moving()


class Stepped(Firmware[E, D]):
    """A controller counting steps: the driver is told steps per mm, the emulator steps/s."""

    steps_per_mm: ClassVar[float]

    def emulator_options(self, speed_mm_s: float) -> dict[str, Any]:
        return {"steps_per_s": speed_mm_s * self.steps_per_mm}

    def driver_options(self, speed_mm_s: float) -> dict[str, Any]:
        return {"steps_per_mm": self.steps_per_mm}  # the speed is the controller's setting

    def position_um(self, emu: E) -> float:
        return self.here(emu) * 1000.0 / self.steps_per_mm

    def moves_um(self, emu: E) -> list[tuple[float, float]]:
        um = 1000.0 / self.steps_per_mm
        return [(a * um, b * um) for a, b in self.finished(emu)]


class Sangaboard(Stepped[SangaboardEmulator, SangaboardDriver]):
    name = "sangaboard"
    emulator_class = SangaboardEmulator
    driver_class = SangaboardDriver
    motion = re.compile(rb"(?m)^(mr|home_min)")  # relative moves (mrz, mr) and homing
    steps_per_mm = STEPS_PER_MM_SANGABOARD
    boot_s = 0.02  # the start-up line comes first, as from a board plugged in earlier
    identity = r"Sangaboard v0\.5\.5 \(Sangaboard Firmware v1\.0\.4\)"
    connect_timeout_s = 1.0
    silent_connect = r"the Sangaboard on .* did not answer 'version' in time"
    reply_timeout_s = 1.0
    silent_query = silent_move = r"the Sangaboard on .* did not answer 'p\?' in time"
    slow_reply_s = 0.2
    stop_sent = b"stop\n"
    garbage = r"garbled reply to 'p\?' from the Sangaboard on .*baud rate \(115200\)"
    error_code = 1
    error = r"the Sangaboard refused 'p\?': 'Error: command is p\?'"
    overrun = r"the Sangaboard did not finish 'mrz \d+' in time; it was told to stop"
    limit = r"the stage hit an endstop during 'mrz \d+' \(Endstop hit:3\)"
    reset = r"the Sangaboard restarted during 'mrz 8000'.*its position is lost"

    def here(self, emu: SangaboardEmulator) -> float:
        return emu.position()[2]

    def finished(self, emu: SangaboardEmulator) -> Sequence[tuple[float, float]]:
        return emu.z_moves()

    def moving(self, emu: SangaboardEmulator) -> bool:
        return emu._busy()  # the emulator has no public view of this


class Tic(Stepped[TicEmulator, TicDriver]):
    name = "tic"
    emulator_class = TicEmulator
    driver_class = TicDriver  # compact protocol, no CRC
    # Set target position and go home; only command bytes have the top bit set, never data.
    motion = re.compile(rb"[\xe0\x97]")
    steps_per_mm = STEPS_PER_MM_TIC  # microsteps
    identity = r"Pololu Tic on /dev/\S+ \(normal, VIN 12\.0 V, position 0\.0 um\)"
    connect_timeout_s = 0.5
    silent_connect = r"no Tic answered on .*baud rate \(Tic default 9600\), device number"
    reply_timeout_s = 0.5
    silent_query = silent_move = r"Tic on .* did not answer a status request in time"
    slow_reply_s = 0.03  # three replies per status poll
    garbage = r"the Tic on .* answers nonsense .*check the baud rate, the CRC setting"
    garbage_s = 0.15  # it asks three times, 50 ms apart
    stop_sent = Framing().write32(Command.SET_TARGET_VELOCITY, 0)  # decelerate: position kept
    # The Tic has no error line: its errors are status bits. Bit 1, motor driver error, latches.
    error_code = 1
    error = r"the Tic de-energised the motor: motor driver error \(check the motor wiring"
    after_error = r"motor driver error"
    overrun = r"the move to [\d.]+ um did not finish within [\d.]+ s .*the motor was halted"
    limit = r"the move to [\d.]+ um stopped at .*: the forward limit switch is active"
    reset = r"the Tic reset \(power dip, brown-out or reset\).*absolute positions are lost"

    def here(self, emu: TicEmulator) -> float:
        return emu.position

    def finished(self, emu: TicEmulator) -> Sequence[tuple[float, float]]:
        return emu.moves

    def moving(self, emu: TicEmulator) -> bool:
        return emu.moving


GRBL = Grbl()
MARLIN = Marlin()
SANGABOARD = Sangaboard()
TIC = Tic()
FIRMWARES: list[Firmware[Any, Any]] = [GRBL, MARLIN, SANGABOARD, TIC]
