"""The GRBL emulator against the real GRBL 1.1h firmware: the same raw serial scenario on both.

Each test runs one scenario through pyserial, byte for byte the same, against the emulator
(rig/devices/emulators/grbl.py, with GRBL's default acceleration and rates) and against the
unmodified firmware on a simulated Uno (tests/grbl_sim.py), and compares what came back: the
replies in order, status reports reduced to their state (and pins), numbers only where both
must agree exactly, and timings within bounds that both must meet. The firmware is right: a
difference is a bug in the emulator.

The firmware runs in one simulator for most scenarios (each brings it back to a known state
first) and in a second one that resets whenever its port opens, as an Uno does. No skipping:
when the simulator cannot be built, these tests fail.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
import serial
from grbl_sim import GrblSim

from rig.devices.emulators.grbl import GrblEmulator

BANNER = "Grbl 1.1h ['$' for help]"
UNLOCK = "[MSG:'$H'|'$X' to unlock]"
UNLOCKED = ["[MSG:Caution: Unlocked]", "ok"]
# GRBL's default rates and accelerations ($110.., $120..), modelled
STOCK: dict[str, Any] = {"accel_mm_s2": 10.0, "max_rate_mm_min": 500.0}
_STATUS = re.compile(r"<([^|>]+)\|([^>]*)>")
_OFFSET = re.compile(r"\[(G5[4-9]|G28|G30|G92):([^\]]+)\]")

Line = tuple[float, str]  # (when it arrived, the line)


class Wire:
    """Raw pyserial to one controller: what is sent, and the lines that come back."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 115200, timeout=0)
        self.opened = time.monotonic()
        self._buffer = b""

    def send(self, data: bytes) -> float:
        self.port.write(data)
        return time.monotonic()

    def read(self, seconds: float) -> list[Line]:
        return self.until(lambda _: False, seconds)

    def until(self, done: Callable[[list[Line]], bool], timeout_s: float) -> list[Line]:
        """Lines as they arrive, until ``done(lines so far)`` or the timeout."""
        lines: list[Line] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            data = self.port.read(4096)
            if not data:
                time.sleep(0.002)
                continue
            self._buffer += data
            while b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                text = raw.decode("ascii", errors="replace").strip()
                if text:
                    lines.append((time.monotonic(), text))
            if done(lines):
                break
        return lines

    def ask(self, timeout_s: float = 0.5) -> tuple[list[Line], str | None]:
        """'?' and the lines up to its report (None: no report came)."""
        self.send(b"?")
        lines = self.until(lambda got: bool(got) and got[-1][1].startswith("<"), timeout_s)
        report = lines[-1][1] if lines and lines[-1][1].startswith("<") else None
        return lines, report

    def close(self) -> None:
        self.port.close()


class Target(Protocol):
    wire: Wire

    def limit(self, closed: bool) -> None: ...

    def hardware_reset(self) -> None: ...

    def reopen(self) -> None: ...

    def took(self, start: float, end: float) -> float:
        """Seconds of the controller's own time between two moments of time.monotonic()."""
        ...


class SimClock:
    """Simulated time at a moment of the host's clock. Under load the simulation lags the wall
    clock (by half, on a busy 2-core machine), and the firmware's timings are in simulated
    time. The runner's status file pairs sim_s with wall_s (CLOCK_MONOTONIC, as
    time.monotonic(), since the runner started) every 20 ms: sampled here, interpolated."""

    def __init__(self, sim: GrblSim) -> None:
        self.sim = sim
        self.samples: list[tuple[float, float]] = []  # (wall_s, sim_s)
        self.started = float("inf")  # the runner's wall_s origin on the host's clock
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            status = self.sim.status()
            wall, sim = float(status["wall_s"]), float(status["sim_s"])
            self.started = min(self.started, time.monotonic() - wall)  # read after written
            if not self.samples or wall > self.samples[-1][0]:
                self.samples.append((wall, sim))
            time.sleep(0.005)

    def at(self, moment: float) -> float:
        wall = moment - self.started
        deadline = time.monotonic() + 2.0
        while (not self.samples or self.samples[-1][0] < wall) and time.monotonic() < deadline:
            time.sleep(0.005)
        walls = [w for w, _ in self.samples]
        i = min(max(bisect.bisect_left(walls, wall), 1), len(walls) - 1)
        (w0, s0), (w1, s1) = self.samples[i - 1], self.samples[i]
        return s0 + (wall - w0) * (s1 - s0) / (w1 - w0)

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)


class Real:
    def __init__(self, sim: GrblSim) -> None:
        self.sim = sim
        self.wire = Wire(str(sim.link))
        self.clock = SimClock(sim)

    def took(self, start: float, end: float) -> float:
        return self.clock.at(end) - self.clock.at(start)

    def limit(self, closed: bool) -> None:
        self.sim.ctl("zlimit on" if closed else "zlimit off")

    def hardware_reset(self) -> None:
        self.sim.ctl("hwreset")

    def reopen(self) -> None:
        self.wire.close()
        time.sleep(0.1)
        self.wire = Wire(str(self.sim.link))


class Emulated:
    def __init__(self, emu: GrblEmulator) -> None:
        self.emu = emu
        self.wire = Wire(emu.path)

    def took(self, start: float, end: float) -> float:
        return end - start

    def limit(self, closed: bool) -> None:
        self.emu.set_limit(closed)

    def hardware_reset(self) -> None:
        self.emu.hardware_reset()

    def reopen(self) -> None:
        self.wire.close()
        time.sleep(0.1)
        self.wire = Wire(self.emu.path)


def token(line: str) -> str:
    """A reply as compared: status reports reduced to state and pins, offsets to zero/set."""
    m = _STATUS.fullmatch(line)
    if m:
        pins = [f for f in m.group(2).split("|") if f.startswith("Pn:")]
        return "<" + "|".join([m.group(1), *pins]) + ">"
    m = _OFFSET.fullmatch(line)
    if m:
        zero = all(float(v) == 0.0 for v in m.group(2).split(","))
        return f"[{m.group(1)}:{'zero' if zero else 'set'}]"
    return line


def mpos(report: str | None) -> str:
    assert report is not None, "no status report"
    fields = dict(f.split(":", 1) for f in report.strip("<>").split("|")[1:])
    return fields["MPos"]


@dataclass
class Run:
    """What one scenario saw on one controller."""

    name: str
    tokens: list[str] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)
    exact: list[str] = field(default_factory=list)  # lines both must print character for character

    def take(self, lines: list[Line]) -> list[Line]:
        for _, line in lines:
            t = token(line)
            if not (t.startswith("<") and self.tokens and self.tokens[-1] == t):
                self.tokens.append(t)  # repeated status reports: once (their count is timing)
        return lines

    def ask(self, wire: Wire) -> str | None:
        lines, report = wire.ask()
        self.take(lines)
        return report

    def poll(
        self, wire: Wire, seconds: float, every_s: float, until: str | None = None
    ) -> list[Line]:
        """'?' every ``every_s`` for ``seconds``, or until a report starting ``until``."""
        lines: list[Line] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            wire.send(b"?")
            lines += self.take(wire.read(every_s))
            if until is not None and any(line.startswith(until) for _, line in lines):
                break
        return lines


def first(lines: list[Line], text: str) -> float:
    """When the first line starting with ``text`` came."""
    for at, line in lines:
        if line.startswith(text):
            return at
    raise AssertionError(f"no {text!r} in {[line for _, line in lines]}")


def oks(count: int) -> Callable[[list[Line]], bool]:
    return lambda lines: sum(line == "ok" or line.startswith("error") for _, line in lines) >= count


def has(text: str) -> Callable[[list[Line]], bool]:
    return lambda lines: any(line.startswith(text) for _, line in lines)


def settle(target: Target) -> None:
    """A known state whatever came before: switch open, reset, unlocked, hard limits off, G54
    zero."""
    target.limit(False)
    wire = target.wire
    wire.send(b"\x18")
    wire.until(has(BANNER), 3.0)  # 0.5 s more after an ALARM:3
    wire.read(0.05)
    wire.send(b"$X\n$21=0\nG10 L2 P1 Z0\n")
    wire.until(oks(3), 3.0)
    wire.read(0.05)


# -- the controllers ---------------------------------------------------------------------------


class Firmware:
    """One simulator, started on first use: inside a test, so a missing simulator fails it."""

    def __init__(self, folder: Path, reset_on_open: bool = False) -> None:
        self.folder, self.reset_on_open = folder, reset_on_open
        self.sim: GrblSim | None = None
        self.error: Exception | None = None

    def get(self) -> GrblSim:
        if self.error is not None:
            raise self.error
        if self.sim is None:
            try:
                self.sim = GrblSim(self.folder, reset_on_open=self.reset_on_open).start()
            except Exception as exc:
                self.error = exc
                raise
        return self.sim

    def close(self) -> None:
        if self.sim is not None:
            self.sim.close()


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firmware]:
    holder = Firmware(tmp_path_factory.mktemp("grbl"))
    yield holder
    holder.close()


@pytest.fixture(scope="module")
def uno(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firmware]:
    holder = Firmware(tmp_path_factory.mktemp("uno"), reset_on_open=True)
    yield holder
    holder.close()


Scenario = Callable[[Target, Run], None]


def on_both(
    firmware: Firmware, scenario: Scenario, settled: bool = True, **emulator: Any
) -> tuple[Run, Run]:
    """(the firmware's run, the emulator's run) of ``scenario``."""
    sim = firmware.get()  # first: without a simulator the test fails at once
    runs = []
    for real in (False, True):
        run = Run("firmware" if real else "emulator")
        if real:
            target: Real | Emulated = Real(sim)
        else:
            emu = GrblEmulator(**{**STOCK, "boot_delay_s": 0.0, **emulator})
            emu.start()
            target = Emulated(emu)
        try:
            if settled:
                settle(target)
            scenario(target, run)
        except AssertionError as exc:
            raise AssertionError(f"{run.name}: {exc}\n after {run.tokens}") from None
        finally:
            target.wire.close()
            if isinstance(target, Emulated):
                target.emu.close()
            else:
                target.clock.close()
        runs.append(run)
    emulated, real_run = runs
    return real_run, emulated


def same(real: Run, emu: Run) -> None:
    assert emu.tokens == real.tokens, (
        f"the emulator's replies differ from the firmware's:\n firmware: {real.tokens}\n"
        f" emulator: {emu.tokens}"
    )
    assert emu.exact == real.exact


def within(runs: tuple[Run, Run], name: str, low: float, high: float) -> None:
    for run in runs:
        value = run.times[name]
        assert low <= value <= high, f"{run.name}: {name} = {value:.3f} s, not in [{low}, {high}]"


# -- scenarios ---------------------------------------------------------------------------------


def reset_while_idle(t: Target, run: Run) -> None:
    """$G and T, a move, G92; a reset at a standstill keeps the position, clears G92 and T."""
    w = t.wire
    w.send(b"$G\nT3\n$G\n")
    run.take(w.until(oks(3), 5.0))
    w.send(b"G91 G1 Z0.3 F60\nG4 P0\n")
    run.take(w.until(oks(2), 5.0))
    w.send(b"G92 Z5\n$#\n")
    run.take(w.until(oks(2), 5.0))
    before = mpos(run.ask(w))
    sent = w.send(b"\x18")
    lines = run.take(w.until(has(BANNER), 5.0))
    run.times["banner"] = t.took(sent, first(lines, BANNER))
    run.take(w.read(0.1))
    w.send(b"$G\n$#\n")
    run.take(w.until(oks(2), 5.0))
    after = mpos(run.ask(w))
    run.exact.append(f"kept: {before == after}")


def test_a_reset_at_a_standstill_keeps_the_position(firmware: Firmware) -> None:
    real, emu = on_both(firmware, reset_while_idle)
    same(real, emu)
    assert "[GC:G0 G54 G17 G21 G90 G94 M5 M9 T3 F0 S0]" in real.tokens
    assert real.tokens[-1] == "<Idle>" and "[G92:set]" in real.tokens
    assert real.tokens.count("[G92:zero]") == 1 and real.exact == ["kept: True"]
    within((real, emu), "banner", 0.015, 0.2)  # $1 = 25 ms


def reset_while_moving(t: Target, run: Run) -> None:
    """A reset in motion: ALARM:3, half a second of silence, the banner, locked."""
    w = t.wire
    w.send(b"G91 G1 Z2 F60\n")
    run.take(w.until(oks(1), 5.0))
    w.read(0.3)
    run.ask(w)
    sent = w.send(b"\x18")
    lines = run.poll(w, 5.0, 0.05, until="<Alarm")
    run.times["alarm"] = t.took(sent, first(lines, "ALARM:3"))
    run.times["banner"] = t.took(first(lines, "ALARM:3"), first(lines, BANNER))
    w.send(b"G1 Z0.1\n$J=G91 Z0.1 F60\n$X\n$X\n")
    run.take(w.until(oks(4), 5.0))
    run.ask(w)


def test_a_reset_in_motion_is_alarm_3_and_locks(firmware: Firmware) -> None:
    real, emu = on_both(firmware, reset_while_moving)
    same(real, emu)
    assert real.tokens[1:6] == ["<Run>", "ALARM:3", BANNER, UNLOCK, "<Alarm>"]  # '?' unanswered
    assert real.tokens[6:] == ["error:9", "error:8", *UNLOCKED, "ok", "<Idle>"]
    within((real, emu), "alarm", 0.0, 0.2)
    within((real, emu), "banner", 0.45, 1.0)  # 0.5 s + $1


def hold_then_reset(t: Target, run: Run) -> None:
    """Feed hold: Hold:1 while decelerating, Hold:0 stopped, lines wait; a reset then: no alarm."""
    w = t.wire
    w.send(b"G91 G1 Z2 F60\n")
    run.take(w.until(oks(1), 5.0))
    w.read(0.3)
    run.ask(w)
    sent = w.send(b"!")
    lines: list[Line] = []
    while not any("Hold:0" in line for _, line in lines) and time.monotonic() < sent + 5.0:
        w.send(b"?")
        lines += run.take(w.read(0.02))
    run.times["hold"] = t.took(sent, first(lines, "<Hold:0"))
    held = mpos(run.ask(w))
    w.send(b"$I\n")
    run.take(w.read(0.2))  # nothing: lines wait for the resume
    w.send(b"\x18")
    run.take(w.until(has(BANNER), 5.0))
    run.take(w.read(0.1))
    run.exact.append(f"kept: {mpos(run.ask(w)) == held}")


def test_a_feed_hold_then_a_reset_leaves_no_alarm(firmware: Firmware) -> None:
    real, emu = on_both(firmware, hold_then_reset)
    same(real, emu)
    assert real.tokens[1:] == ["<Run>", "<Hold:1>", "<Hold:0>", BANNER, "<Idle>"]
    assert real.exact == ["kept: True"]
    within((real, emu), "hold", 0.08, 1.0)


def hold_and_resume(t: Target, run: Run) -> None:
    """Feed hold at a standstill is Hold:0; a line sent then waits for '~'. '~' while still
    decelerating is ignored."""
    w = t.wire
    w.send(b"!")
    run.ask(w)
    w.send(b"G91 G1 Z0.2 F60\n")
    run.take(w.read(0.2))  # no ok yet
    run.ask(w)
    w.send(b"~")
    run.take(w.until(oks(1), 5.0))
    run.poll(w, 5.0, 0.05, until="<Idle")
    w.send(b"G91 G1 Z1 F60\n")
    run.take(w.until(oks(1), 5.0))
    w.read(0.3)
    w.send(b"!")
    w.read(0.03)
    w.send(b"~")  # Hold:1: too early, forgotten
    run.poll(w, 5.0, 0.05, until="<Hold:0")
    w.send(b"~")
    run.poll(w, 5.0, 0.1, until="<Idle")


def test_feed_hold_at_a_standstill_and_resume(firmware: Firmware) -> None:
    real, emu = on_both(firmware, hold_and_resume)
    same(real, emu)
    resumed = ["<Hold:0>", "ok", "<Run>", "<Idle>"]
    assert real.tokens == [*resumed, "ok", "<Hold:1>", *resumed[:1], *resumed[2:]]


def jog_cancel(t: Target, run: Run) -> None:
    """0x85 ends a jog (decelerating, no alarm); outside a jog it is ignored. '!' while
    jogging is a jog cancel too."""
    w = t.wire
    w.send(b"$J=G91 Z10 F100\n")
    run.take(w.until(oks(1), 5.0))
    w.read(0.3)
    sent = w.send(b"\x85")
    lines = run.poll(w, 5.0, 0.03, until="<Idle")
    run.times["cancel"] = t.took(sent, first(lines, "<Idle"))
    w.send(b"\x85")
    run.ask(w)
    w.send(b"$J=G91 Z10 F100\n")
    run.take(w.until(oks(1), 5.0))
    w.read(0.3)
    w.send(b"!")
    run.poll(w, 5.0, 0.05, until="<Idle")
    w.send(b"~")
    run.ask(w)
    w.send(b"G91 G1 Z0.3 F60\n")
    run.take(w.until(oks(1), 5.0))
    w.read(0.15)
    w.send(b"\x85")
    run.poll(w, 5.0, 0.1, until="<Idle")


def test_jog_cancel(firmware: Firmware) -> None:
    real, emu = on_both(firmware, jog_cancel)
    same(real, emu)
    jog = ["ok", "<Jog>", "<Idle>"]
    assert real.tokens == [*jog, *jog, "ok", "<Run>", "<Idle>"]  # 0x85 and '~' then: ignored
    within((real, emu), "cancel", 0.05, 1.0)


def sleep_then_reset(t: Target, run: Run) -> None:
    """$SLP: Sleep answers '?' and nothing else; a reset wakes it locked."""
    w = t.wire
    w.send(b"$SLP\n")
    run.take(w.until(has("[MSG:Sleeping]"), 5.0))
    run.ask(w)
    w.send(b"G4 P0\n$$\n!")
    run.take(w.read(0.2))
    run.ask(w)
    w.send(b"\x18")
    run.take(w.until(has(UNLOCK), 5.0))
    run.ask(w)
    w.send(b"G4 P0\n$X\n")
    run.take(w.until(oks(2), 5.0))


def test_sleep_wakes_locked_by_a_reset(firmware: Firmware) -> None:
    real, emu = on_both(firmware, sleep_then_reset)
    same(real, emu)
    asleep = ["ok", "[MSG:Sleeping]", "<Sleep>"]  # then G4 P0, $$ and '!': no answer
    assert real.tokens == [*asleep, BANNER, UNLOCK, "<Alarm>", "error:9", *UNLOCKED]


def dwell(t: Target, run: Run) -> None:
    """G4 dwells in whole 50 ms steps, after the motion has ended; lines wait for it."""
    w = t.wire
    for _ in range(3):  # the quickest of three: the simulator may lag, hardly ever lead
        for p in ("0", "0.01", "0.05", "0.051", "0.1"):
            sent = w.send(f"G4 P{p}\n".encode())
            took = t.took(sent, first(run.take(w.until(oks(1), 5.0)), "ok"))
            run.times[f"P{p}"] = min(took, run.times.get(f"P{p}", took))
    sent = w.send(b"G91 G1 Z0.5 F60\nG4 P0\n")
    lines = run.take(w.until(oks(2), 5.0))
    run.times["move+P0"] = t.took(sent, lines[-1][0])
    w.send(b"G4 P0.3\n$I\n")
    run.take(w.until(oks(2), 5.0))


def test_dwell_takes_whole_50_ms_steps(firmware: Firmware) -> None:
    real, emu = on_both(firmware, dwell)
    same(real, emu)
    assert real.tokens == ["ok"] * 18 + ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    runs = (real, emu)
    # One step is 50 ms, two are 100 ms. The simulator can lag behind the wall clock (it
    # catches up lags under 50 ms by running faster for a while): differences, then bounds.
    for run in runs:
        took = run.times
        assert took["P0.051"] - took["P0.05"] > 0.03, f"{run.name}: {took}"  # one more step
        assert took["P0.1"] - took["P0.01"] > 0.03, f"{run.name}: {took}"
        assert abs(took["P0.05"] - took["P0.01"]) < 0.03, f"{run.name}: {took}"  # one step
        assert abs(took["P0.1"] - took["P0.051"]) < 0.03, f"{run.name}: {took}"  # two
    within(runs, "P0", -0.01, 0.05)  # sim time is read from a file: +-1 ms of jitter
    within(runs, "P0.01", 0.03, 0.2)
    within(runs, "P0.051", 0.075, 0.25)
    within(runs, "move+P0", 0.58, 1.2)  # 0.5 mm at 1 mm/s with 10 mm/s^2 ramps is 0.6 s


def hard_limit(t: Target, run: Run) -> None:
    """ALARM:1: then nothing is answered (not '?', not a reset during its pause) until a
    reset; after it, locked, and 'Check Limits' while the switch is still closed."""
    try:
        hard_limit_tripped(t, run)
    finally:
        t.limit(False)


def hard_limit_tripped(t: Target, run: Run) -> None:
    w = t.wire
    w.send(b"$21=1\nG91 G1 Z2 F60\n")
    run.take(w.until(oks(2), 5.0))
    w.read(0.3)
    t.limit(True)
    lines = run.take(w.until(has("ALARM:1"), 5.0))
    w.read(0.1)
    w.send(b"\x18")  # during the alarm's pause: forgotten
    lines += run.take(w.until(has("[MSG:Reset to continue]"), 5.0))
    run.times["pause"] = t.took(first(lines, "ALARM:1"), first(lines, "[MSG:Reset"))
    w.send(b"?$I\n")
    run.take(w.read(0.3))
    w.send(b"?")
    run.take(w.read(0.1))
    w.send(b"\x18")
    run.take(w.until(has(UNLOCK), 5.0))
    run.ask(w)
    t.limit(False)
    w.read(0.1)
    run.ask(w)
    w.send(b"$X\n$21=0\n")
    run.take(w.until(oks(2), 5.0))


def test_hard_limit_alarm_is_silent_until_reset(firmware: Firmware) -> None:
    real, emu = on_both(firmware, hard_limit)
    same(real, emu)
    halted = ["ALARM:1", "[MSG:Reset to continue]"]  # then '?', $I and a reset: no answer
    reset = [BANNER, "[MSG:Check Limits]", UNLOCK, "<Alarm|Pn:Z>", "<Alarm>"]
    assert real.tokens[2:] == [*halted, *reset, *UNLOCKED, "ok"]
    within((real, emu), "pause", 0.45, 1.0)


def offsets_across_a_hardware_reset(t: Target, run: Run) -> None:
    """G54 (G10 L2/L20) is kept in EEPROM; G92, T and the position restart at power-on."""
    w = t.wire
    w.send(b"G91 G1 Z0.2 F60\nG4 P0\nG10 L2 P1 Z0.5\nG92 Z1\nT5\n$G\n$#\n")
    lines = run.take(w.until(oks(7), 5.0))
    run.exact += [line for _, line in lines if line.startswith("[G54:")]
    run.ask(w)
    sent = time.monotonic()
    t.hardware_reset()
    run.times["banner"] = t.took(sent, first(run.take(w.until(has(BANNER), 5.0)), BANNER))
    run.take(w.read(0.1))
    run.exact.append(mpos(run.ask(w)))
    w.send(b"$G\n$#\nG10 L20 P1 Z0\n$#\n")
    lines = run.take(w.until(oks(4), 5.0))
    run.exact += [line for _, line in lines if line.startswith(("[G54:", "[G92:"))]


def test_g54_survives_a_hardware_reset_and_g92_does_not(firmware: Firmware) -> None:
    real, emu = on_both(firmware, offsets_across_a_hardware_reset)
    same(real, emu)
    assert "[GC:G1 G54 G17 G21 G91 G94 M5 M9 T5 F60 S0]" in real.tokens
    assert "[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]" in real.tokens
    assert real.exact == [
        "[G54:0.000,0.000,0.500]",  # G10 L2 P1 Z0.5
        "0.000,0.000,0.000",  # MPos after the reset
        "[G54:0.000,0.000,0.500]",  # kept
        "[G92:0.000,0.000,0.000]",  # cleared
        "[G54:0.000,0.000,0.000]",  # G10 L20 P1 Z0 at MPos 0
        "[G92:0.000,0.000,0.000]",
    ]
    within((real, emu), "banner", 0.0, 0.3)


def homing_lock(t: Target, run: Run) -> None:
    """$22=1 locks GRBL at power-on; a soft reset at a standstill does not."""
    w = t.wire
    w.send(b"$22=1\n")
    run.take(w.until(oks(1), 5.0))
    w.send(b"\x18")
    run.take(w.until(has(BANNER), 5.0))
    run.take(w.read(0.05))
    run.ask(w)
    t.hardware_reset()
    run.take(w.until(has(UNLOCK), 5.0))
    run.ask(w)
    w.send(b"G4 P0\n$22=0\n$X\n")
    run.take(w.until(oks(3), 5.0))


def test_homing_enabled_locks_at_power_on(firmware: Firmware) -> None:
    real, emu = on_both(firmware, homing_lock)
    same(real, emu)
    powered = [BANNER, UNLOCK, "<Alarm>", "error:9"]
    assert real.tokens == ["ok", BANNER, "<Idle>", *powered, "ok", *UNLOCKED]


def open_resets_the_board(t: Target, run: Run) -> None:
    """An Uno resets when its port opens: '?' gets nothing before the banner (0.5 s of
    bootloader), the position restarts at 0, G92 is gone, G54 stays."""
    w = t.wire
    time.sleep(0.1)  # (sooner, the simulator's reset comes after the firmware answered)
    w.send(b"?")
    lines = w.until(has(BANNER), 5.0)
    run.times["banner"] = first(lines, BANNER) - w.opened  # (the runner holds its clock then)
    run.exact.append(f"before the banner: {[line for _, line in lines][:-1]}")
    w.read(0.3)  # (the simulator may still answer a '?' sent while it booted)
    w.send(b"G91 G1 Z0.2 F60\nG4 P0\nG92 Z0\nG10 L20 P1 Z5\n")
    run.take(w.until(oks(4), 5.0))
    run.exact.append(mpos(run.ask(w)))
    t.reopen()
    w = t.wire
    lines = w.until(has(BANNER), 5.0)
    run.times["banner again"] = first(lines, BANNER) - w.opened
    w.read(0.1)
    run.exact.append(mpos(run.ask(w)))
    w.send(b"$#\n")
    lines = run.take(w.until(oks(1), 5.0))
    run.exact += [line for _, line in lines if line.startswith(("[G54:", "[G92:"))]


def test_opening_the_port_of_an_uno_resets_it(uno: Firmware) -> None:
    real, emu = on_both(
        uno, open_resets_the_board, settled=False, reset_on_open=True, boot_delay_s=0.5
    )
    same(real, emu)
    assert real.exact == [
        "before the banner: []",
        "0.000,0.000,0.200",  # MPos before closing
        "0.000,0.000,0.000",  # and after opening again
        "[G54:0.000,0.000,-5.000]",  # G10 L20 P1 Z5 at Z 0.2 with G92 Z0 there: kept
        "[G92:0.000,0.000,0.000]",  # cleared
    ]
    within((real, emu), "banner", 0.45, 1.0)
    within((real, emu), "banner again", 0.45, 1.0)


# -- the emulator alone: what the simulator cannot show, and the fast default ----------------


def test_the_emulator_is_fast_unless_asked_to_be_stock() -> None:
    """By default no ramps and no $110 cap: F1200 is 20 mm/s at once (the test harness's
    pace). With GRBL's defaults the same 2 mm are capped at 500 mm/min and ramp at 10 mm/s^2,
    never reaching that speed: 2 x sqrt(2 mm / 10 mm/s^2) = 0.89 s."""
    for options, low, high in (({}, 0.1, 0.45), (STOCK, 0.9, 1.3)):
        with GrblEmulator(**options) as emu:
            assert isinstance(emu, GrblEmulator)
            wire = Wire(emu.path)
            try:
                wire.read(0.05)  # the power-on banner
                sent = wire.send(b"G1 Z2 F1200\nG4 P0\n")
                lines = wire.until(oks(2), 5.0)
                assert low <= lines[-1][0] - sent <= high  # (+ $1 = 25 ms)
            finally:
                wire.close()


def test_a_restart_mid_move_is_a_brown_out() -> None:
    """Faults.reset_mid_move: a hardware reset (no ALARM:3), the count restarts at 0 while the
    carriage stays where it was; bytes sent while the board boots are lost."""
    with GrblEmulator() as emu:
        assert isinstance(emu, GrblEmulator)
        wire = Wire(emu.path)
        try:
            wire.read(0.05)  # the power-on banner
            emu.faults.reset_mid_move = True
            wire.send(b"G1 Z2 F600\nG4 P0\n")
            lines = wire.until(has(BANNER), 2.0)
            assert [line for _, line in lines] == ["ok", BANNER]
            assert emu.carriage_mm() == pytest.approx(1.0, abs=0.1)
            assert mpos(wire.ask()[1]) == "0.000,0.000,0.000"
            emu.hardware_reset(boot_delay_s=0.2)
            wire.send(b"$I\n")  # during the boot: lost
            assert [line for _, line in wire.read(0.4)] == [BANNER]
            assert emu.carriage_mm() == pytest.approx(1.0, abs=0.1)
        finally:
            wire.close()
