"""GRBL 1.1h emulator, modelled on the real firmware (gnea/grbl 1.1h) and checked against it
running on a simulated Arduino (tests/test_grbl_emulator_parity.py).

What it models, as GRBL does it:

* a serial ISR (realtime bytes act at once, other bytes go to a 128-byte buffer) and a main
  loop that reads one line at a time and can be busy: waiting for the planner (G4, a full
  planner), dwelling in 50 ms steps (realtime commands are looked at only between steps),
  suspended in a feed hold, frozen after an alarm (0.5 s) or in a reset;
* soft reset (0x18): while moving, ALARM:3 and a locked machine; otherwise the banner
  ``$1`` ms later ($1 is GRBL's stepper idle delay, 25 ms by default), position kept, G92 and
  the tool cleared; after $SLP or in Alarm the machine comes back locked;
* hard and soft limits: ALARM:1/2, ``[MSG:Reset to continue]`` and then no answer at all, not
  even to ``?``, until a soft reset;
* feed hold (Hold:1 while decelerating, Hold:0 once stopped, lines wait until ``~``), jog cancel
  (0x85, or ``!`` while jogging), an optional acceleration (``accel_mm_s2``);
* the G-code parser's modal state, errors and offsets (G54..G59 kept in "EEPROM", G92 and T
  cleared by any reset; T also by any later G-code line without a T, as 1.1h does), ``$G``,
  ``$#``, ``$$``, ``$I``, ``$N``, ``$C``, ``$SLP``, ``$RST``;
* hardware resets (power, DTR): :meth:`hardware_reset`, and with ``reset_on_open`` every open
  of the pty, as an Arduino Uno resets when its port opens; :meth:`set_limit` for the switch.

The common faults: ``alarm_mid_move`` trips the hard limit halfway (ALARM:1 whatever $21 says),
``reset_mid_move`` is a brown-out halfway (a hardware reset without bootloader wait: no
ALARM:3, the count restarts at 0).

One axis moves (the one the rail is on, Z by default); words for the others are accepted but
nothing moves there. Machine space is ``travel_mm`` (default 0..100 mm); soft limits ($20=1)
check it. Arcs (G2/G3), probing (G38.x) and overrides are not modelled.

Fast by default: without ``accel_mm_s2`` speed changes instantly, and without
``max_rate_mm_min`` the feed rate is not capped by $110..$112 (they still read as GRBL's
defaults). Give both to move as a stock GRBL does.
"""

from __future__ import annotations

import math
import re
import struct
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from rig.devices.emulators.base import Motion, PtyEmulator

BANNER = "\r\nGrbl 1.1h ['$' for help]\r\n"
VERSION = "1.1h.20190830"
OPTIONS = "V,15,128"
MSG_UNLOCK = "[MSG:'$H'|'$X' to unlock]\r\n"
MSG_RESET = "[MSG:Reset to continue]\r\n"
MSG_CHECK_LIMITS = "[MSG:Check Limits]\r\n"
HELP = "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]\r\n"
AXES = "XYZ"
MM_PER_INCH = 25.4
DWELL_STEP_S = 0.05  # DWELL_TIME_STEP: G4 waits whole 50 ms steps, looking at realtime between
ALARM_PAUSE_S = 0.5  # report_alarm_message() holds everything this long after ALARM:N
PLANNER_BLOCKS = 15  # BLOCK_BUFFER_SIZE 16, one slot always free
RX_BUFFER = 128  # serial receive buffer: bytes beyond it are dropped
LINE_MAX = 79  # LINE_BUFFER_SIZE 80 less the terminating zero: longer lines are error:11
MAX_STEP_RATE_HZ = 30_000  # $100 x $110 may not exceed this (error:12)
MAX_TOOL = 255
REPORT_WCO_IDLE, REPORT_WCO_BUSY = 10, 30  # a status report carries WCO every N reports
REPORT_OVR_IDLE, REPORT_OVR_BUSY = 10, 20  # and Ov every N

DEFAULT_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0,
    20: 0, 21: 0, 22: 0, 23: 0, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0,
    100: 250, 101: 250, 102: 250, 110: 500, 111: 500, 112: 500,
    120: 10, 121: 10, 122: 10, 130: 200, 131: 200, 132: 200,
}  # fmt: skip
_WHOLE = {0, 1, 2, 3, 10, 23, 26}  # stored as integers
_FLAGS = {4, 5, 6, 13, 20, 21, 22, 32}  # stored as 0/1
_PRINTED_WHOLE = _WHOLE | _FLAGS | {30, 31}  # $$ prints these without decimals

_NUMBER = re.compile(r"[-+]?(\d*)(\.?)(\d*)")
_BUSY = ("Run", "Hold", "Jog", "Home")  # states with the slow WCO/Ov refresh

# Home (index 6) and G30 (7) positions follow G54..G59 (0..5) in the coordinate data.
G28, G30 = 6, 7
_NAMES = [f"G{54 + i}" for i in range(6)] + ["G28", "G30"]

Wait = Callable[[float], bool]


@dataclass
class Dwell:
    steps: int


Job = Generator["Wait | Dwell", None, int]


@dataclass
class Block:
    """One planner block: where the rail axis goes, how fast (mm/s)."""

    target: float
    rate: float
    jog: bool = False
    home: bool = False
    start: float = 0.0  # where it set off (when it starts)


@dataclass
class Parser:
    """The G-code parser's state (gc_state): modes, offsets, the planned position."""

    motion: str = "G0"
    coord: int = 0  # G54
    plane: int = 17
    inches: bool = False
    relative: bool = False
    inverse_time: bool = False
    spindle: int = 5
    coolant: int = 9
    feed: float = 0.0  # mm/min
    speed: float = 0.0
    tool: int = 0
    g92: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    tlo: float = 0.0
    position: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # machine mm


def read_float(text: str, at: int) -> tuple[float, int] | None:
    """GRBL's read_float(): sign, digits, one decimal point, no exponent."""
    m = _NUMBER.match(text, at)
    if m is None or not (m.group(1) or m.group(3)):
        return None
    return float(m.group(0) if m.group(0) not in {"+.", "-."} else "nan"), m.end()


def lround(value: float) -> int:
    """C's lround(): halves away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def f32(value: float) -> float:
    """The AVR's float: GRBL computes in single precision."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


class GrblEmulator(PtyEmulator):
    def __init__(
        self,
        axis: str = "Z",
        travel_mm: tuple[float, float] = (0.0, 100.0),
        homing: bool = False,
        status_wpos: bool = False,
        accel_mm_s2: float | None = None,
        max_rate_mm_min: float | None = None,
        reset_on_open: bool = False,
        boot_delay_s: float = 0.5,
    ) -> None:
        """``accel_mm_s2``: model acceleration with $120..$122 (set to this); ``None``: speed
        changes instantly. ``max_rate_mm_min``: cap feed rates at $110..$112 (set to this), as
        GRBL does; ``None``: no cap. ``reset_on_open``: reboot whenever a client opens the
        pty, after ``boot_delay_s`` (the Uno's bootloader; bytes sent meanwhile are lost)."""
        super().__init__(watch_opens=reset_on_open)
        self.axis = AXES.index(axis.upper())
        self.travel_mm = travel_mm
        self.boot_delay_s = boot_delay_s
        self.settings: dict[int, float] = dict(DEFAULT_SETTINGS)
        self.settings[10] = 0 if status_wpos else 1
        self.settings[22] = 1 if homing else 0
        self.model_accel = accel_mm_s2 is not None
        if accel_mm_s2 is not None:
            for key in (120, 121, 122):
                self.settings[key] = accel_mm_s2
        self.cap_rate = max_rate_mm_min is not None
        if max_rate_mm_min is not None:
            for key in (110, 111, 112):
                self.settings[key] = max_rate_mm_min
        # "EEPROM": survives every reset.
        self.coords: list[list[float]] = [[0.0, 0.0, 0.0] for _ in range(8)]
        self.startup_lines = ["", ""]
        self.build_info = ""

        self.motion = Motion()  # the rail axis, machine mm (GRBL's MPos)
        self.queue: deque[Block] = deque()  # planned blocks after the one under way
        self.moves: list[tuple[float, float]] = []  # completed (start, end), machine mm
        self.gc = Parser()
        self.limit_closed = False  # the rail axis' limit switch
        self.power_on_mm = 0.0  # carriage position at the last power-on (MPos restarts at 0)
        self._state = "Idle"
        self._block: Block | None = None  # under way, or held
        self._hold_complete = False
        self._jog_cancel = False
        self._stopping = False  # decelerating for a hold or a jog cancel
        self._soft_limit = False
        self._cycle_stop_at: float | None = None
        # ISR flags (sys_rt_exec_state / sys_rt_exec_alarm)
        self._rt_reset = self._rt_status = self._rt_hold = self._rt_start = False
        self._rt_cancel = self._rt_sleep = False
        self._rt_alarm = 0
        # main loop
        self._rx = bytearray()
        self._more_input = False  # the ISR has more bytes of this burst to store
        self._startup: deque[str] = deque()
        self._job: Job | None = None
        self._job_line = ("", False)
        self._wait: Wait | None = None
        self._dwell_left = 0
        self._dwell_next = 0.0
        self._dwell_abort = False
        self._dwell_held = False
        self._mode = "ready"  # ready | dwell | critical | sleep
        self._frozen_until: float | None = None
        self._thaw: Callable[[float], None] | None = None
        self._booting = False
        self._wco_counter = 0
        self._ovr_counter = 0
        self._fault_at: float | None = None

    # -- public ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The state a status report shows (Idle, Run, Hold:0, Hold:1, Jog, Alarm, Sleep...)."""
        if self._state == "Hold":
            return "Hold:0" if self._hold_complete else "Hold:1"
        return self._state

    @property
    def wco(self) -> float:
        """Work coordinate offset of the rail axis (G54..G59 + G92 + tool length)."""
        return self._wco()[self.axis]

    @property
    def feed(self) -> float:
        return self.gc.feed

    @property
    def distance_mode(self) -> str:
        return "G91" if self.gc.relative else "G90"

    def carriage_mm(self, t: float | None = None) -> float:
        """Where the carriage physically is: MPos restarts at 0 on every power-on."""
        return self.motion.now(time.monotonic() if t is None else t) + self.power_on_mm

    def set_limit(self, closed: bool) -> None:
        """Close or open the rail axis' limit switch. With $21=1 any change of the pin trips
        ALARM:1 (GRBL's pin-change interrupt), unless GRBL is in Alarm already."""
        with self._lock:
            if closed == self.limit_closed:
                return
            self.limit_closed = closed
            if self.settings[21] and not self._booting and self._state != "Home":
                self._hard_limit(time.monotonic())

    def hardware_reset(self, boot_delay_s: float | None = None) -> None:
        """Power cycle, reset button or DTR: everything stops, MPos restarts at 0, G92 and the
        tool are gone (G54..G59 and $ settings are kept). The firmware starts after
        ``boot_delay_s`` (default: this emulator's ``boot_delay_s``; 0 for a brown-out), and the
        banner follows $1 ms later. Bytes sent before it starts are lost."""
        with self._lock:
            self._hardware_reset(time.monotonic(), boot_delay_s)

    power_cycle = hardware_reset

    def _hardware_reset(self, now: float, boot_delay_s: float | None) -> None:
        delay = self.boot_delay_s if boot_delay_s is None else boot_delay_s
        self.power_on_mm += self.motion.now(now)
        self.motion = Motion(position=0.0, target=0.0, since=now, accel=self.motion.accel)
        self._halt_everything()
        self._state = "Alarm" if self.settings[22] else "Idle"  # (what it will boot into)
        self._booting = True
        self._frozen_until, self._thaw = now + delay, self._power_on

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        with self._lock:  # powered on long before anyone connects: the banner is out already
            self._power_on(time.monotonic(), delay_s=0.0)

    def on_open(self) -> None:
        self.hardware_reset()

    def _power_on(self, now: float, delay_s: float | None = None) -> None:
        self._booting = False
        self._state = "Alarm" if self.settings[22] else "Idle"  # HOMING_INIT_LOCK
        self._reinit(now, delay_s)

    def _halt_everything(self) -> None:
        self.queue.clear()
        self._block = None
        self._stopping = self._jog_cancel = self._hold_complete = self._soft_limit = False
        self._cycle_stop_at = None
        self._rt_reset = self._rt_status = self._rt_hold = self._rt_start = False
        self._rt_cancel = self._rt_sleep = False
        self._rt_alarm = 0
        self._rx.clear()
        self._startup.clear()
        if self._job is not None:
            self._job.close()
        self._job, self._wait = None, None
        self._mode = "ready"
        self._dwell_abort = self._dwell_held = False
        self._fault_at = None

    def _reinit(self, now: float, delay_s: float | None = None) -> None:
        """main()'s loop after a reset: flush, re-initialise, banner $1 ms later."""
        sleeping = self._state == "Sleep"
        self._halt_everything()
        self.motion.halt(now)
        self.gc = Parser()  # gc_init(): G92, tool, modes and feed back to their defaults
        self._sync_position()
        self._wco_counter = self._ovr_counter = 0
        delay = self._idle_delay(sleeping) if delay_s is None else delay_s
        self._freeze(now, delay, self._main_loop_start)

    def _idle_delay(self, sleeping: bool = False) -> float:
        """st_go_idle(): it waits $1 ms (unless $1=255) before releasing the motors."""
        lock = self.settings[1]
        return lock / 1000.0 if lock != 255 or sleeping or self._rt_alarm else 0.0

    def _main_loop_start(self, now: float) -> None:
        self.reply(BANNER)
        if self.settings[21] and self.limit_closed:
            self._state = "Alarm"
            self.reply(MSG_CHECK_LIMITS)
        if self._state in ("Alarm", "Sleep"):
            self.reply(MSG_UNLOCK)
            self._state = "Alarm"
        else:
            self._state = "Idle"
            self._startup.extend(line for line in self.startup_lines if line)

    # -- the serial ISR -------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> None:
        now = time.monotonic()
        self._advance(now)
        last = len(data) - 1
        for at, byte in enumerate(data):
            if self._booting or not self.connected:
                continue  # the bootloader has the line
            act = True  # the main loop gets to act before the next byte arrives
            if byte == 0x18:
                self._mc_reset(now)
            elif byte == ord("?"):
                self._rt_status = True
            elif byte == ord("!"):
                self._rt_hold = True
            elif byte == ord("~"):
                self._rt_start = True
            elif byte >= 0x80:
                if byte == 0x85 and self._state == "Jog":
                    self._rt_cancel = True
            elif len(self._rx) < RX_BUFFER:
                self._rx.append(byte)
                act = byte in (0x0A, 0x0D)
            if act and at < last:
                self._more_input = True
                self._main(now)
        self._more_input = False
        self._main(now)

    def _moving(self) -> bool:
        """mc_reset()'s test: a cycle, a jog, homing, or a hold still decelerating."""
        return self._state in ("Run", "Jog", "Home") or (
            self._state == "Hold" and not self._hold_complete
        )

    def _mc_reset(self, now: float) -> None:
        if self._rt_reset:
            return
        self._rt_reset = True
        if self._moving():
            if self._state == "Home":
                self._rt_alarm = self._rt_alarm or 6
            else:
                self._rt_alarm = 3
            self._stop_dead(now)
            self._freeze(now, self._idle_delay())  # st_go_idle() inside the ISR

    def _hard_limit(self, now: float) -> None:
        """The limit pin-change interrupt."""
        if self._state != "Alarm" and not self._rt_alarm:
            self._mc_reset(now)
            self._rt_alarm = 1

    def _stop_dead(self, now: float) -> None:
        """The steppers stop at once (position kept, on a whole step)."""
        here = self._grid(self.motion.now(now))
        self.motion.halt(now)
        self.motion.position = self.motion.target = here
        self._stopping = False
        self._cycle_stop_at = None

    def _freeze(
        self, now: float, seconds: float, then: Callable[[float], None] | None = None
    ) -> None:
        until = now + seconds
        if self._frozen_until is not None and self._thaw is not None and then is None:
            self._frozen_until = max(self._frozen_until, until)
            return
        self._frozen_until, self._thaw = until, then

    # -- time -----------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self._advance(now)
        self._main(now)

    def _advance(self, now: float) -> None:
        """The steppers: blocks end and the next starts; holds and cycles complete."""
        if self._fault_at is not None and now >= self._fault_at:
            self._fire_fault(now)
        while (
            self._block is not None
            and not self._stopping
            and self.motion.target == self._block.target
            and not self.motion.moving(now)
        ):
            block, end = self._block, self.motion.ends_at()
            self._block = None
            if block.home:
                self._cycle_stop_at = end
            else:
                self.moves.append((block.start, block.target))
                if self.queue:
                    self._begin(self.queue.popleft(), end)
                else:
                    self._cycle_stop_at = end + self._idle_delay()
        if self._stopping and not self.motion.moving(now):
            self._stopping = False
            self._cycle_stop_at = self.motion.ends_at() + self._idle_delay()
        if self._cycle_stop_at is not None and now >= self._cycle_stop_at:
            at, self._cycle_stop_at = self._cycle_stop_at, None
            self._cycle_stop(at)

    def _cycle_stop(self, t: float) -> None:
        """EXEC_CYCLE_STOP: the steppers ran out (end of the planner, or a hold completed)."""
        if self._state == "Hold" and not self._soft_limit and not self._jog_cancel:
            self._hold_complete = True
            return
        if self._jog_cancel:
            self.queue.clear()
            self._block = None
            self._jog_cancel = False
            self._sync_position()
        self._hold_complete = False
        self._state = "Idle"
        if self.queue and not self._soft_limit:  # planned while the last block ran out
            self._start_cycle(t)

    def _start_cycle(self, t: float) -> None:
        """Cycle start: the first planned block sets off."""
        self._state = "Jog" if self.queue[0].jog else "Run"
        self._begin(self.queue.popleft(), t)

    def _begin(self, block: Block, t: float) -> None:
        block.start = self.motion.now(t)
        self._block = block
        self._set_accel()
        self.motion.start(block.target, max(block.rate, 1e-6), t)
        f = self.faults
        if f.disconnect_after_s is not None:
            self._fault_at = t + f.disconnect_after_s
        elif f.alarm_mid_move or f.reset_mid_move:
            self._fault_at = t + (self.motion.ends_at() - t) / 2

    def _fire_fault(self, now: float) -> None:
        """At the moment it was due (the tick that sees it may come a little later)."""
        f = self.faults
        now, self._fault_at = self._fault_at or now, None
        if f.disconnect_after_s is not None:
            f.disconnect_after_s = None
            self.disconnect()
        elif f.alarm_mid_move:
            f.alarm_mid_move = False
            self._hard_limit(now)  # the switch bounced: as if $21=1
        elif f.reset_mid_move:
            f.reset_mid_move = False
            self._hardware_reset(now, boot_delay_s=0.0)  # a brown-out: no bootloader wait

    # -- the main loop --------------------------------------------------------------------------

    def _main(self, now: float) -> None:
        for _ in range(10_000):  # (each pass consumes a line, a flag or a step)
            if self._frozen_until is not None:
                if now < self._frozen_until:
                    return
                thaw, self._frozen_until, self._thaw = self._thaw, None, None
                if thaw is not None:
                    thaw(now)
                continue
            if self._mode == "critical":
                if not self._rt_reset:
                    return  # spinning: nothing but a reset gets through
                self._rt_alarm = 0
                self._abort(now)
                continue
            if self._mode == "dwell":
                if not self._dwell(now):
                    return
                continue
            if self._state == "Home" and not self._rt_reset:
                pass  # the homing cycle looks at nothing but a reset
            elif not self._rt_system(now):
                continue
            if self._mode != "ready" or self._suspended():
                return
            if self._job is not None:
                if self._wait is not None and not self._wait(now):
                    self._auto_cycle_start(now)  # a sync or a full planner starts the cycle
                    return
                self._step_job(now)
                continue
            line = self._next_line()
            if line is None:
                if not self._more_input:
                    self._auto_cycle_start(now)  # all input read: go
                return
            self._run_line(*line)
        raise RuntimeError("the GRBL emulator's main loop did not settle")

    def _auto_cycle_start(self, now: float) -> None:
        if self._state == "Idle" and self._block is None and self.queue:
            self._start_cycle(now)

    def _suspended(self) -> bool:
        """Lines wait (protocol_exec_rt_suspend()): a hold is complete, or a jog is being
        cancelled."""
        return (self._state == "Hold" and self._hold_complete) or self._jog_cancel

    def _rt_system(self, now: float) -> bool:
        """protocol_exec_rt_system(): False when the main loop must stop here."""
        if self._rt_alarm:
            code = self._rt_alarm
            self._state = "Alarm"
            self.reply(f"ALARM:{code}\r\n")
            self._freeze(now, ALARM_PAUSE_S, lambda t: self._after_alarm(code, t))
            return False
        if self._rt_reset:
            if self._mode == "dwell":
                self._dwell_abort = True
                return False
            self._abort(now)
            return False
        if self._rt_status:
            self._rt_status = False
            self.reply(self._status(now) + "\r\n")
        if self._rt_sleep:  # $SLP has answered ok
            self._rt_sleep = False
            self.reply("[MSG:Sleeping]\r\n")
        held = self._rt_hold or self._rt_cancel
        if held:
            self._hold(now)
        if self._rt_start:
            self._rt_start = False
            resumable = self._state == "Idle" or (self._state == "Hold" and self._hold_complete)
            if resumable and not held and not self._jog_cancel:
                self._hold_complete = False
                self._state = "Idle"
                if self._block is not None:  # the rest of the held block
                    self._state = "Run"
                    self._set_accel()
                    self.motion.start(self._block.target, max(self._block.rate, 1e-6), now)
                elif self.queue:
                    self._start_cycle(now)
        return True

    def _set_accel(self) -> None:
        self.motion.accel = self.settings[120 + self.axis] if self.model_accel else 0.0

    def _hold(self, now: float) -> None:
        """Feed hold ('!') or jog cancel (0x85): both end a jog; '!' holds a G-code cycle."""
        if self._state not in ("Alarm", "Check", "Sleep"):
            if self._state in ("Run", "Jog") and not self._jog_cancel:
                if self._state == "Jog":
                    self._jog_cancel = True
                self._decelerate(now)
            if self._state == "Idle":
                self._hold_complete = True  # nothing to decelerate: Hold:0 at once
            if self._rt_hold and self._state != "Jog":
                self._state = "Hold"
        self._rt_hold = self._rt_cancel = False

    def _decelerate(self, now: float) -> None:
        self.motion.decelerate(now)
        if self.motion.moving(now):
            self.motion.target = self._grid(self.motion.target)
        else:
            self._stop_dead(now)
        self._stopping = True
        self._cycle_stop_at = None

    def _after_alarm(self, code: int, now: float) -> None:
        if code in (1, 2):  # a critical event: nothing but a reset, from now on
            self.reply(MSG_RESET)
            self._rt_reset = False  # a reset sent during the pause is forgotten
            self._rt_alarm = 0
            self._mode = "critical"
            return
        self._rt_alarm = 0
        self._abort(now)

    def _abort(self, now: float) -> None:
        """sys.abort: a line under way still answers ok, then main() starts over."""
        if self._job is not None:
            self.reply("ok\r\n")
        self._reinit(now)

    def _dwell(self, now: float) -> bool:
        """delay_sec(): realtime commands are looked at every 50 ms. True once it is over."""
        while True:
            if self._dwell_held:  # suspended by a hold inside a step
                if not self._rt_system(now) and not self._dwell_abort:
                    return self._mode != "dwell"
                if self._suspended() and not self._dwell_abort:
                    return False
                self._dwell_held = False
                self._dwell_next = now + DWELL_STEP_S
                self._dwell_left -= 1
                continue
            if now < self._dwell_next:
                return False
            if self._dwell_abort:
                self._abort(now)
                return True
            if self._dwell_left <= 0:
                self._mode = "ready"
                return True
            if not self._rt_system(now) and not self._dwell_abort:
                return self._mode != "dwell"
            if self._suspended() and not self._dwell_abort:
                self._dwell_held = True
                return False
            self._dwell_left -= 1
            self._dwell_next += DWELL_STEP_S

    # -- lines ----------------------------------------------------------------------------------

    def _next_line(self) -> tuple[str, bool] | None:
        """(line, from the startup lines), cleaned as protocol_main_loop() does; None: no
        complete line yet."""
        if self._startup:
            return self._startup.popleft(), True
        for end, byte in enumerate(self._rx):
            if byte in (0x0A, 0x0D):
                raw = bytes(self._rx[:end])
                del self._rx[: end + 1]
                return self._clean(raw), False
        return None

    @staticmethod
    def _clean(raw: bytes) -> str:
        out: list[str] = []
        comment = False
        for byte in raw:
            c = chr(byte)
            if comment:
                if c == ")":
                    comment = False
                continue
            if c == ";":
                break
            if c == "(":
                comment = True
            elif byte <= 0x20 or c == "/":
                continue
            elif len(out) >= LINE_MAX:
                return "\x01"  # overflow
            else:
                out.append(c.upper() if "a" <= c <= "z" else c)
        return "".join(out)

    def _run_line(self, text: str, startup: bool) -> None:
        now = time.monotonic()
        f = self.faults
        if f.error_next is not None and not startup:
            code, f.error_next = f.error_next, None
            self.reply(f"error:{code}\r\n")
            return
        if text == "\x01":
            self._finish(11, text, startup)
            return
        if not text:
            self._finish(0, text, startup)
            return
        if text.startswith("$"):
            job = self._dollar(text, now)
        elif self._state in ("Alarm", "Jog"):
            job = 9
        else:
            job = self._gcode(text, now)
        if isinstance(job, int):
            self._finish(job, text, startup)
            return
        self._job, self._wait = job, None
        self._job_line = (text, startup)

    def _step_job(self, now: float) -> None:
        assert self._job is not None
        try:
            step = next(self._job)
        except StopIteration as done:
            self._job, self._wait = None, None
            text, startup = self._job_line
            self._finish(int(done.value), text, startup)
            return
        if isinstance(step, Dwell):
            self._wait = None
            self._mode = "dwell"
            self._dwell_left, self._dwell_next = step.steps, now
            self._dwell_abort = self._dwell_held = False
        else:
            self._wait = step

    def _finish(self, code: int, text: str, startup: bool) -> None:
        status = "ok" if code == 0 else f"error:{code}"
        self.reply(f">{text}:{status}\r\n" if startup else f"{status}\r\n")

    # -- $ commands -----------------------------------------------------------------------------

    def _dollar(self, text: str, now: float) -> int | Job:
        state = self._state
        key = text[1:2]
        if key == "":
            self.reply(HELP)
            return 0
        if key == "J":
            if state not in ("Idle", "Jog"):
                return 8
            if text[2:3] != "=":
                return 3
            return self._gcode(text, now, jog=True)
        if key in ("$", "G", "C", "X"):
            if len(text) != 2:
                return 3
            if key == "$":
                if state in ("Run", "Hold"):
                    return 8
                for k in sorted(self.settings):
                    self.reply(f"${k}={self._setting_text(k)}\r\n")
            elif key == "G":
                self.reply(self._modes() + "\r\n")
            elif key == "C":
                if state == "Check":
                    self._mc_reset(now)
                    self.reply("[MSG:Disabled]\r\n")
                else:
                    if state != "Idle":
                        return 8
                    self._state = "Check"
                    self.reply("[MSG:Enabled]\r\n")
            elif state == "Alarm":
                self.reply("[MSG:Caution: Unlocked]\r\n")
                self._state = "Idle"
            return 0
        if state not in ("Idle", "Alarm"):
            return 8
        if key == "#":
            if len(text) != 2:
                return 3
            self._report_offsets()
            return 0
        if key == "H":
            if not self.settings[22]:
                return 5
            if len(text) != 2:
                return 3
            return self._home(now)
        if key == "S":
            if text != "$SLP":
                return 3
            # Motors off; only a reset ends it, and GRBL then wakes locked. ('[MSG:Sleeping]'
            # follows the ok; the state is Sleep from now on.)
            self._stop_dead(now)
            self._state, self._mode, self._rt_sleep = "Sleep", "sleep", True
            return 0
        if key == "I":
            if len(text) == 2:
                self.reply(f"[VER:{VERSION}:{self.build_info}]\r\n[OPT:{OPTIONS}]\r\n")
            elif text[2] != "=":
                return 3
            else:
                self.build_info = text[3:]
            return 0
        if key == "R":
            if not re.fullmatch(r"\$RST=[$#*]", text):
                return 3
            if text[5] in "$*":
                self.settings.update(DEFAULT_SETTINGS)
            if text[5] in "#*":
                self.coords = [[0.0, 0.0, 0.0] for _ in range(8)]
            self.reply("[MSG:Restoring defaults]\r\n")
            self._mc_reset(now)
            return 0
        if key == "N" and len(text) == 2:
            for n, line in enumerate(self.startup_lines):
                self.reply(f"$N{n}={line}\r\n")
            return 0
        startup = key == "N"
        if startup and state != "Idle":
            return 8
        at = 2 if startup else 1
        number = read_float(text, at)
        if number is None:
            return 2
        parameter, at = number
        if text[at : at + 1] != "=":
            return 3
        if startup:
            n = int(parameter)
            if n >= len(self.startup_lines):
                return 3
            self.startup_lines[n] = text[at + 1 :]
            return 0
        number = read_float(text, at + 1)
        if number is None:
            return 2
        value, at = number
        if at != len(text) or parameter > 255:
            return 3
        return self._store_setting(int(parameter), value)

    def _store_setting(self, key: int, value: float) -> int:
        if math.copysign(1.0, value) < 0:
            return 4
        if key >= 100:
            if key not in self.settings:
                return 3
            kind, axis = divmod(key - 100, 10)
            if kind in (0, 1):
                steps = value if kind == 0 else self.settings[100 + axis]
                rate = value if kind == 1 else self.settings[110 + axis]
                if steps * rate > MAX_STEP_RATE_HZ * 60.0:
                    return 12
            self.settings[key] = value
            return 0
        if key not in DEFAULT_SETTINGS:
            return 3
        whole = int(value) & 0xFF
        if key == 0 and whole < 3:
            return 6
        if key == 20 and whole and not self.settings[22]:
            return 10
        if key in _FLAGS:
            self.settings[key] = 1 if whole else 0
            if key == 22 and not whole:
                self.settings[20] = 0
        elif key in _WHOLE:
            self.settings[key] = whole
        else:
            self.settings[key] = value
        return 0

    def _setting_text(self, key: int) -> str:
        value = self.settings[key]
        return f"{value:.0f}" if key in _PRINTED_WHOLE else f"{value:.3f}"

    def _home(self, now: float) -> Job:
        self._state = "Home"
        self.queue.clear()
        target = self._grid(self.travel_mm[0])
        block = Block(target, self.settings[110 + self.axis] / 60.0, home=True)
        if abs(target - self.motion.now(now)) > 0:
            self._begin(block, now)
        else:
            self._cycle_stop_at = now
        return self._wait_homed()

    def _wait_homed(self) -> Job:
        yield lambda now: self._state != "Home"
        self._sync_position()
        return 0

    # -- G-code ---------------------------------------------------------------------------------

    def _gcode(self, text: str, now: float, jog: bool = False) -> int | Job:
        """gc_execute_line(): parse and check the whole line, then a job that executes it."""
        gc = self.gc
        words: dict[str, float] = {}
        groups: set[str] = set()
        axis_command = ""  # "", "motion", "non-modal", "tlo"
        motion = gc.motion
        non_modal = ""
        coord, plane, inches, relative = gc.coord, gc.plane, gc.inches, gc.relative
        inverse_time, spindle, coolant = gc.inverse_time, gc.spindle, gc.coolant
        tlo_mode = ""
        program = ""
        if jog:
            motion, inverse_time = "G1", False
        at = 3 if jog else 0
        while at < len(text):
            letter = text[at]
            if not "A" <= letter <= "Z":
                return 1
            number = read_float(text, at + 1)
            if number is None:
                return 2
            value, at = number
            whole = int(value)
            mantissa = round(100 * (value - whole))
            if letter == "G":
                if whole in (10, 28, 30, 92, 4, 53):
                    if whole in (10, 28, 30, 92) and mantissa == 0:
                        if axis_command:
                            return 24
                        axis_command = "non-modal"
                    group = "non-modal"
                    non_modal = f"G{whole}"
                    if whole in (28, 30, 92):
                        if mantissa not in (0, 10):
                            return 20
                        non_modal += ".1" if mantissa else ""
                        mantissa = 0
                elif whole in (0, 1, 2, 3, 38, 80):
                    if whole != 80:
                        if axis_command:
                            return 24
                        axis_command = "motion"
                    group, motion = "motion", f"G{whole}"
                    if whole == 38:
                        if mantissa not in (20, 30, 40, 50):
                            return 20
                        motion, mantissa = f"G38.{mantissa // 10}", 0
                elif whole in (17, 18, 19):
                    group, plane = "plane", whole
                elif whole in (90, 91):
                    if mantissa == 0:
                        group, relative = "distance", whole == 91
                    else:
                        if mantissa != 10 or whole == 90:
                            return 20
                        group, mantissa = "arc-distance", 0
                elif whole in (93, 94):
                    group, inverse_time = "feed-mode", whole == 93
                elif whole in (20, 21):
                    group, inches = "units", whole == 20
                elif whole == 40:
                    group = "cutter"
                elif whole in (43, 49):
                    group = "tlo"
                    if axis_command:
                        return 24
                    axis_command = "tlo"
                    if whole == 49:
                        tlo_mode = "G49"
                    elif mantissa == 10:
                        tlo_mode, mantissa = "G43.1", 0
                    else:
                        return 20
                elif 54 <= whole <= 59:
                    group, coord = "coord", whole - 54
                elif whole == 61:
                    if mantissa != 0:
                        return 20
                    group = "path"
                else:
                    return 20
                if mantissa > 0:
                    return 23
                if group in groups:
                    return 21
                groups.add(group)
            elif letter == "M":
                if mantissa > 0:
                    return 23
                if whole in (0, 1, 2, 30):
                    group = "M-flow"
                    if whole != 1:
                        program = f"M{whole}"
                elif whole in (3, 4, 5):
                    group, spindle = "M-spindle", whole
                elif whole in (8, 9):
                    group, coolant = "M-coolant", whole
                else:
                    return 20
                if group in groups:
                    return 21
                groups.add(group)
            else:
                if letter not in "FIJKLNPRSTXYZ":
                    return 20
                if letter == "T" and value > MAX_TOOL:
                    return 38
                if letter in words:
                    return 25
                if letter in "FNPTS" and value < 0:
                    return 4
                words[letter] = value
        axes = [AXES[i] in words for i in range(3)]
        if any(axes) and not axis_command:
            axis_command = "motion"
        if "N" in words and words["N"] > 9_999_999:
            return 27
        # feed rate
        feed = words.get("F", 0.0)
        if jog:
            if "F" not in words:
                return 22
            feed *= MM_PER_INCH if inches else 1.0
        elif inverse_time:
            if axis_command == "motion" and motion not in ("G80", "G0") and "F" not in words:
                return 22
        elif not gc.inverse_time:
            feed = feed * (MM_PER_INCH if inches else 1.0) if "F" in words else gc.feed
        speed = words.get("S", gc.speed)
        used = {"N", "F", "S", "T"} if not jog else {"N", "F"}
        if non_modal == "G4":
            if "P" not in words:
                return 28
            used.add("P")
        values = [words.get(a, 0.0) * (MM_PER_INCH if inches else 1.0) for a in AXES]
        if axis_command == "tlo" and tlo_mode == "G43.1" and axes != [False, False, True]:
            return 37
        block_coord = list(self.coords[coord]) if coord != gc.coord else self._coord_system()
        target = list(gc.position)
        g10: tuple[int, list[float]] | None = None
        g92: list[float] | None = None
        via: list[float] | None = None
        if non_modal == "G10":
            if not any(axes):
                return 26
            if "P" not in words and "L" not in words:
                return 28
            p = int(words.get("P", 0.0))
            if p > 6:
                return 29
            level = int(words.get("L", 0.0))
            if level not in (2, 20) or (level == 2 and "R" in words):
                return 20
            used |= {"L", "P"}
            index = p - 1 if p > 0 else coord
            data = list(self.coords[index])
            for i in range(3):
                if axes[i]:
                    if level == 20:
                        data[i] = gc.position[i] - gc.g92[i] - values[i]
                        data[i] -= gc.tlo if i == 2 else 0.0
                    else:
                        data[i] = values[i]
            g10 = (index, data)
        elif non_modal == "G92":
            if not any(axes):
                return 26
            g92 = list(gc.g92)
            for i in range(3):
                if axes[i]:
                    g92[i] = gc.position[i] - block_coord[i] - values[i]
                    g92[i] -= gc.tlo if i == 2 else 0.0
        elif axis_command != "tlo" and any(axes):
            for i in range(3):
                if not axes[i]:
                    continue
                if non_modal == "G53":
                    target[i] = values[i]
                elif relative:
                    target[i] = gc.position[i] + values[i]
                else:
                    target[i] = values[i] + block_coord[i] + gc.g92[i]
                    target[i] += gc.tlo if i == 2 else 0.0
            if non_modal in ("G28", "G30"):
                via = target
        if non_modal in ("G28", "G30"):
            stored = list(self.coords[G28 if non_modal == "G28" else G30])
            if via is not None:
                target = [stored[i] if axes[i] else gc.position[i] for i in range(3)]
            else:
                target = stored
                axis_command = ""
        if non_modal == "G53" and motion not in ("G0", "G1"):
            return 30
        if motion == "G80":
            if any(axes):
                return 31
        elif axis_command == "motion":
            if motion == "G0":
                if not any(axes):
                    axis_command = ""
            else:
                if feed == 0.0:
                    return 22
                if motion != "G1":
                    return 20  # arcs and probing: not modelled
                if not any(axes):
                    axis_command = ""
        if axis_command:
            used |= set(AXES)
        if set(words) - used:
            return 36
        if jog:
            if groups - {"distance", "units", "non-modal"} or non_modal not in ("", "G53"):
                return 16
            if self.settings[20] and not self._in_travel(target[self.axis]):
                return 15
            return self._jog(target, feed)
        # execute (gc_execute_line step 4) as far as it goes without waiting
        gc.inverse_time = inverse_time
        gc.feed = feed
        if speed != gc.speed and gc.spindle != 5:
            self._ovr_counter = 0
        gc.speed = speed
        gc.tool = int(words.get("T", 0.0))
        if spindle != gc.spindle or coolant != gc.coolant:
            self._ovr_counter = 0
        gc.spindle, gc.coolant = spindle, coolant
        return self._execute(
            non_modal, motion, axis_command, target, via, g10, g92, words, plane, inches,
            coord, block_coord, relative, tlo_mode, values, program,
        )  # fmt: skip

    def _execute(
        self,
        non_modal: str,
        motion: str,
        axis_command: str,
        target: list[float],
        via: list[float] | None,
        g10: tuple[int, list[float]] | None,
        g92: list[float] | None,
        words: dict[str, float],
        plane: int,
        inches: bool,
        coord: int,
        block_coord: list[float],
        relative: bool,
        tlo_mode: str,
        values: list[float],
        program: str,
    ) -> Job:
        gc = self.gc
        check = self._state == "Check"
        if non_modal == "G4" and not check:
            yield from self._synchronise()
            steps = math.ceil(f32(1000 // 50 * f32(words["P"])))
            if steps > 0:
                yield Dwell(steps)
        gc.plane, gc.inches = plane, inches
        if axis_command == "tlo":
            tlo = values[2] if tlo_mode == "G43.1" else 0.0
            if tlo != gc.tlo:
                gc.tlo = tlo
                self._wco_counter = 0
        if coord != gc.coord:
            gc.coord = coord
            self._wco_counter = 0
        gc.relative = relative
        if g10 is not None:
            index, data = g10
            self.coords[index] = data
            if index == gc.coord:
                self._wco_counter = 0
        elif non_modal in ("G28", "G30"):
            if via is not None:
                yield from self._line(via, rapid=True)
            yield from self._line(target, rapid=True)
            gc.position = list(target)
        elif non_modal in ("G28.1", "G30.1"):
            self.coords[G28 if non_modal == "G28.1" else G30] = list(gc.position)
        elif g92 is not None:
            gc.g92 = g92
            self._wco_counter = 0
        elif non_modal == "G92.1":
            gc.g92 = [0.0, 0.0, 0.0]
            self._wco_counter = 0
        gc.motion = motion
        if motion in ("G0", "G1") and axis_command == "motion":
            yield from self._line(target, rapid=motion == "G0")
            gc.position = list(target)
        if program:
            yield from self._synchronise()
            if program == "M0":
                if not check:
                    self._rt_hold = True
                    yield lambda now: True  # the hold happens before the line ends
            else:
                gc.motion, gc.plane, gc.relative, gc.inverse_time = "G1", 17, False, False
                gc.coord, gc.spindle, gc.coolant = 0, 5, 9
                self._wco_counter = 0
                self.reply("[MSG:Pgm End]\r\n")
        return 0

    def _synchronise(self) -> Iterator[Wait]:
        """protocol_buffer_synchronize(): until the planner is empty and the cycle is over."""
        yield lambda now: self._block is None and not self.queue and self._state != "Run"

    def _line(self, target: list[float], rapid: bool) -> Iterator[Wait]:
        """mc_line(): soft limits, a free planner block, then plan it."""
        here = target[self.axis]
        if self.settings[20] and not self._in_travel(here):
            self._soft_limit = True
            if self._state == "Run":
                self._rt_hold = True
                yield lambda now: self._state == "Idle"
            self._mc_reset(time.monotonic())
            self._rt_alarm = 2
            yield lambda now: False  # the alarm ends this line
        if self._state == "Check":
            return
        yield lambda now: len(self.queue) + (self._block is not None) < PLANNER_BLOCKS
        rate = self._rate(target, rapid)
        self._plan(Block(self._grid(here), rate))

    def _rate(self, target: list[float], rapid: bool) -> float:
        """mm/s along the rail axis."""
        gc = self.gc
        max_rate = self.settings[110 + self.axis]
        if rapid:
            return max_rate / 60.0
        rate = gc.feed
        if gc.inverse_time:
            distance = math.dist(target, gc.position)
            rate = gc.feed * distance
        if self.cap_rate:
            rate = min(rate, max_rate)
        return rate / 60.0

    def _plan(self, block: Block) -> bool:
        """plan_buffer_line(): False when the block has no steps (the planner drops it)."""
        last = self.queue[-1].target if self.queue else None
        if last is None:
            last = self._block.target if self._block is not None else self.motion.target
        if lround(block.target * self._steps()) == lround(last * self._steps()):
            return False
        self.queue.append(block)
        return True

    def _jog(self, target: list[float], feed: float) -> int:
        max_rate = self.settings[110 + self.axis]
        rate = min(feed, max_rate) if self.cap_rate else feed
        here = target[self.axis]
        if len(self.queue) + (self._block is not None) >= PLANNER_BLOCKS:
            return 0  # (GRBL would wait for room; jogs are sent one at a time)
        planned = self._plan(Block(self._grid(here), rate / 60.0, jog=True))
        self.gc.position = list(target)
        if planned and self._state == "Idle":
            self._start_cycle(time.monotonic())  # a jog starts at once
        return 0

    def _in_travel(self, mm: float) -> bool:
        return self.travel_mm[0] <= mm <= self.travel_mm[1]

    def _sync_position(self) -> None:
        self.gc.position = [0.0, 0.0, 0.0]
        self.gc.position[self.axis] = self.motion.now(time.monotonic())

    def _steps(self) -> float:
        return self.settings[100 + self.axis]

    def _grid(self, mm: float) -> float:
        """GRBL moves whole steps: positions snap to the step grid of the axis."""
        steps = self._steps()
        return lround(mm * steps) / steps if steps > 0 else mm

    # -- reports --------------------------------------------------------------------------------

    def _coord_system(self) -> list[float]:
        return list(self.coords[self.gc.coord])

    def _wco(self) -> list[float]:
        cs, g92 = self.coords[self.gc.coord], self.gc.g92
        wco = [cs[i] + g92[i] for i in range(3)]
        wco[2] += self.gc.tlo
        return wco

    def _coord_text(self, values: list[float]) -> str:
        if self.settings[13]:
            return ",".join(f"{v / MM_PER_INCH:.4f}" for v in values)
        return ",".join(f"{v:.3f}" for v in values)

    def _rate_text(self, mm_min: float) -> str:
        return f"{mm_min / MM_PER_INCH:.1f}" if self.settings[13] else f"{mm_min:.0f}"

    def _status(self, now: float) -> str:
        pos = [0.0, 0.0, 0.0]
        pos[self.axis] = self._grid(self.motion.now(now))
        mask = int(self.settings[10])
        fields = [self.state]
        wco = self._wco()
        if mask & 1:
            fields.append("MPos:" + self._coord_text(pos))
        else:
            fields.append("WPos:" + self._coord_text([pos[i] - wco[i] for i in range(3)]))
        if mask & 2:
            blocks = PLANNER_BLOCKS - len(self.queue) - (self._block is not None)
            fields.append(f"Bf:{blocks},{RX_BUFFER - len(self._rx)}")
        rate = self.motion.velocity(now) * 60.0 if self._state != "Idle" else 0.0
        spindle = self.gc.speed if self.gc.spindle != 5 else 0.0
        fields.append(f"FS:{self._rate_text(rate)},{spindle:.0f}")
        if self.limit_closed:
            fields.append(f"Pn:{AXES[self.axis]}")
        busy = self._state in _BUSY
        if self._wco_counter > 0:
            self._wco_counter -= 1
        else:
            self._wco_counter = (REPORT_WCO_BUSY if busy else REPORT_WCO_IDLE) - 1
            if self._ovr_counter == 0:
                self._ovr_counter = 1
            fields.append("WCO:" + self._coord_text(wco))
        if self._ovr_counter > 0:
            self._ovr_counter -= 1
        else:
            self._ovr_counter = (REPORT_OVR_BUSY if busy else REPORT_OVR_IDLE) - 1
            fields.append("Ov:100,100,100")
            accessories = {3: "S", 4: "C"}.get(self.gc.spindle, "")
            accessories += "F" if self.gc.coolant == 8 else ""
            if accessories:
                fields.append("A:" + accessories)
        return "<" + "|".join(fields) + ">"

    def _modes(self) -> str:
        gc = self.gc
        return (
            f"[GC:{gc.motion} G{54 + gc.coord} G{gc.plane} G{20 if gc.inches else 21} "
            f"G{91 if gc.relative else 90} G{93 if gc.inverse_time else 94} "
            f"M{gc.spindle} M{gc.coolant} T{gc.tool} F{self._rate_text(gc.feed)} "
            f"S{gc.speed:.0f}]"
        )

    def _report_offsets(self) -> None:
        for name, data in zip(_NAMES, self.coords, strict=True):
            self.reply(f"[{name}:{self._coord_text(data)}]\r\n")
        self.reply(f"[G92:{self._coord_text(self.gc.g92)}]\r\n")
        tlo = self.gc.tlo / MM_PER_INCH if self.settings[13] else self.gc.tlo
        self.reply(f"[TLO:{tlo:.{4 if self.settings[13] else 3}f}]\r\n")
        self.reply(f"[PRB:{self._coord_text([0.0, 0.0, 0.0])}:0]\r\n")
