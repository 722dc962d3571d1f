"""GRBL 1.1 driver (DIY Arduino rails), following gnea/grbl's documented interface.

Send-and-wait for every line (one ``ok``/``error:N`` each), so the 128-byte receive buffer is
never overrun and EEPROM writes are never streamed. "Moved" means the planner is empty and the
machine is Idle: ``G4 P0`` is acknowledged only then, and a status report confirms it.

What survives what (checked against the real firmware, see docs/rails.md): a soft reset at a
standstill keeps the machine position, one in motion raises ALARM:3; a hardware reset (power,
or DTR when an Uno's port opens) restarts the position at 0; G92 is cleared by any reset, G54
(``G10 L20``, the zero stackrig sets) lives in EEPROM. So connecting never resets, a stop waits
for the standstill before it resets, and a restart is told, never hidden.
"""

from __future__ import annotations

import math
import re
import threading
import time

from rig.devices.rails.link import LinkTimeout, SerialLink
from rig.errors import ControllerRestarted, RailError

RESET = b"\x18"
FEED_HOLD = b"!"
STATUS = b"?"
JOG_CANCEL = b"\x85"
REFERENCE_MARK = "G19"  # plane select meaning "referenced since the last restart" (see _mark)
RESET_GRACE_S = 0.05  # after open, before the first query: a DTR reset takes effect in this
POLL_S = 0.02  # status poll interval while waiting for a standstill
ANSWER_S = 0.2  # after a timed-out move: a controller that still talks answers within this
SILENT_S = 1.5  # no answer for this long after open (past any boot): halted, or not GRBL

ERRORS = {
    1: "a G-code word has no letter",
    2: "a number is missing or malformed",
    3: "GRBL does not know this '$' command",
    5: "homing is not enabled ($22=0): enable it or set zero by hand",
    8: "'$' commands are only accepted when GRBL is Idle",
    9: "G-code is locked out during an alarm or jog: run 'stackrig rail unlock' or home",
    10: "soft limits need homing enabled ($22=1)",
    11: "the line is too long (80 characters max)",
    15: "the jog target exceeds the machine travel: jog less far",
    16: "the jog command is malformed",
    20: "unsupported G-code command",
    22: "feed rate not set",
}
ALARMS = {
    1: "hard limit switch hit: clear it, run 'stackrig rail unlock', re-home or re-zero",
    2: "soft limit: the target is outside the travel; unlock, then move inside it",
    3: "reset while moving: the position may be lost; unlock, then re-home or re-zero",
    4: "probe fail",
    5: "probe fail",
    6: "homing failed: the cycle was reset",
    7: "homing failed: the door opened",
    8: "homing failed: could not pull off the limit switch; check the switch wiring",
    9: "homing failed: no limit switch found within the travel; check the switch",
}
_STATUS = re.compile(r"<([^|>]+)\|(.*)>")


def describe_error(code: int) -> str:
    return ERRORS.get(code, f"GRBL error {code}")


def describe_alarm(code: int) -> str:
    return ALARMS.get(code, f"GRBL alarm {code}: run 'stackrig rail unlock', then re-home")


class GrblDriver:
    """One GRBL controller. All serial conversation happens under ``_io``; ``stop()`` may come
    from any thread: it sends the real-time stop at once and lets the call in progress (or
    itself, on an idle link) bring the machine to a clean standstill."""

    name = "grbl"

    def __init__(
        self,
        port: str,
        *,
        axis: str = "Z",
        speed_mm_s: float = 5.0,
        baudrate: int = 115200,
        boot_timeout_s: float = 5.0,
    ) -> None:
        if axis.upper() not in "XYZ" or len(axis) != 1:
            raise RailError(f"axis {axis!r}: GRBL drives X, Y or Z")
        self.axis = axis.upper()
        self.speed_mm_s = speed_mm_s
        self.boot_timeout_s = boot_timeout_s
        self.link = SerialLink(port, baudrate, label="GRBL controller")
        self.settings: dict[int, float] = {}
        self.referenced = False
        self._index = "XYZ".index(self.axis)
        self._wco: float | None = None
        self._io = threading.Lock()
        self._stopping = threading.Event()
        self._resting = False  # bringing the machine to rest: stop requests are being served
        self._halted = False  # connect() found GRBL silent (halted by ALARM:1) and reset it

    # -- FocusDriver ---------------------------------------------------------------------------

    def connect(self) -> str:
        self.link.open()
        try:
            self.link.keep_dtr_on_close()  # an Uno then resets on the first open only
            with self._io:
                self._halted = False
                banner, state = self._hello(time.monotonic() + self.boot_timeout_s + SILENT_S)
                version = self._query("$I", "the version query")
                self.settings = self._read_settings()
                # A restart clears the mark; no banner on open and the mark still set means
                # the count is the one the operator zeroed or homed.
                self.referenced = banner is None and self._marked()
        except BaseException:
            self.link.close()
            raise
        ver = next((v for v in version if v.startswith("[VER:")), "")
        ident = f"GRBL {ver[5:].split(':')[0]}" if ver else (banner or "GRBL")
        notes = []
        if self._halted:
            notes.append("it answered nothing, as after a hard-limit alarm, so it was reset")
        elif banner is not None:
            notes.append(
                "it restarted as the port opened: a DTR reset (an Uno does that on every "
                "open, see docs/rails.md) or it was just powered on"
            )
        if not self.referenced:
            notes.append("position not referenced until homed or zeroed")
        if self.settings.get(1, 255) != 255:
            notes.append(
                f"it releases the motor {self.settings[1]:g} ms after each move ($1): "
                "set $1=255 to hold the focus between shots"
            )
        if state in ("Alarm", "Sleep"):
            notes.append("it is locked: run 'stackrig rail unlock' (or home) before moving")
        elif state not in ("Idle", "Hold"):
            notes.append(f"it reports {state}")
        return "; ".join([ident, *notes])

    def close(self) -> None:
        self.link.close()

    def position_um(self) -> float:
        with self._io:
            _, position = self.status()
        return position * 1000.0

    def move_to(self, target_um: float, timeout_s: float) -> None:
        if not math.isfinite(target_um):
            raise RailError(f"move target {target_um} um: not a number")
        with self._io:
            self._stopping.clear()
            deadline = time.monotonic() + timeout_s
            feed = self.speed_mm_s * 60.0
            try:
                self._wait_jog_done(deadline)
                # Units, absolute mode and the operator's G54 zero on the move line itself:
                # no modal state to get out of step.
                self._send(
                    f"G1 G21 G90 G54 {self.axis}{target_um / 1000.0:.4f} F{feed:.1f}", deadline
                )
                # Any G4 waits for the planner to empty and the motion to end; P0 adds no
                # dwell (GRBL dwells in 50 ms steps, so even P0.01 would cost 50 ms).
                self._send("G4 P0", deadline, what="the end of the move")
                state, position = self.status(deadline)
            except _StopRequested:
                where = self._come_to_rest()
                raise RailError(f"move stopped on request at {where:.1f} um") from None
            except LinkTimeout as exc:
                self.link.write(JOG_CANCEL + FEED_HOLD)
                try:
                    where = self._come_to_rest(answer_s=ANSWER_S)
                except LinkTimeout:
                    raise RailError(
                        f"GRBL stopped answering during the move to {target_um:.1f} um ({exc}); "
                        "stackrig sent it a feed hold. Check the cable and power, then connect "
                        "again: the position is not known until then"
                    ) from exc
                raise RailError(
                    f"the move to {target_um:.1f} um did not finish within {timeout_s:.1f} s, "
                    f"so stackrig stopped it at {where:.1f} um: check the rail for a jam, and "
                    "the speed and steps/mm ($100..$102) against the rail"
                ) from exc
        if state != "Idle" or abs(position * 1000.0 - target_um) > self._tolerance_um():
            raise RailError(
                f"GRBL reports {state} at {position * 1000.0:.1f} um after a move to "
                f"{target_um:.1f} um: check the rail for stalls, then re-zero"
            )

    def jog(self, delta_um: float) -> None:
        if not math.isfinite(delta_um):
            raise RailError(f"jog of {delta_um} um: not a number")
        feed = self.speed_mm_s * 60.0
        with self._io:
            self._stopping.clear()
            self._send(f"$J=G91 G21 {self.axis}{delta_um / 1000.0:.4f} F{feed:.1f}")

    def stop(self) -> None:
        """Stop without an alarm: jog-cancel or feed hold, wait for the standstill (Hold:0),
        then flush the planner with a soft reset, which at a standstill keeps the position."""
        if not self.link.is_open:
            return
        if self._io.acquire(blocking=False):  # no call in progress: look before stopping
            try:
                if self._status_report()[0] != "Idle":
                    self.link.write(JOG_CANCEL + FEED_HOLD)
                    self._come_to_rest()
            finally:
                self._io.release()
            return
        self._stopping.set()
        # Real-time bytes act at once, also while another thread waits for a reply: 0x85
        # cancels a jog (GRBL ignores it otherwise), '!' decelerates a G-code move. The call in
        # progress sees the flag and brings the machine to rest; wait until it has.
        self.link.write(JOG_CANCEL + FEED_HOLD)
        if not self._io.acquire(timeout=self.boot_timeout_s + 30.0):
            raise RailError("GRBL did not come to rest after a stop: check the rail")
        try:
            self._come_to_rest()
        finally:
            self._io.release()

    def unlock(self) -> str:
        """Leave Alarm or Sleep. After a hard-limit alarm GRBL answers nothing until reset."""
        with self._io:
            self._stopping.clear()
            try:
                state = self._state(time.monotonic() + 0.5)
            except LinkTimeout:
                state = "Halted"
            except ControllerRestarted:
                state = self._state()
            words = []
            if state in ("Halted", "Sleep"):
                self._reset()
                words.append("reset it")
                state = self._state()
            if state in ("Hold", "Door"):
                self._come_to_rest()
                state = self._state()
            if state != "Alarm":
                return "GRBL was not locked" if not words else f"{words[0]}; it is {state}"
            pins = self._pins()
            self._send("$X", what="the unlock")
            words.append("unlocked it ($X)")
            if "Z" in pins or self.axis in pins:
                words.append("the limit switch is still closed: jog off it carefully")
        ref = "" if self.referenced else "; the position is not referenced: home or re-zero"
        return f"{', '.join(words)}{ref}"

    def set_zero(self) -> None:
        """Call here 0 in G54, which GRBL keeps in EEPROM: the zero survives reconnects and
        resets at a standstill. G92 (volatile, cleared by any reset) is cleared first."""
        with self._io:
            self._send("G92.1")
            self._send(f"G10 L20 P1 {self.axis}0")
            self._wco = None
            self._mark()

    def home(self, timeout_s: float) -> None:
        with self._io:
            self._send("$H", time.monotonic() + timeout_s, what="the end of homing")
            self._wco = None
            self._mark()

    def energise(self, on: bool) -> None:
        if on:
            # Only a reset wakes GRBL from sleep, and it wakes locked: the motor was free, so
            # the position is no longer referenced. Holding torque between moves is $1=255.
            with self._io:
                if self._state() == "Sleep":
                    self._reset()
                    self._send("$X", what="the unlock after sleep")
        else:
            with self._io:
                self._send("$SLP")
                self.referenced = False

    # -- GRBL specifics ------------------------------------------------------------------------

    def status(self, deadline: float | None = None) -> tuple[str, float]:
        """(state without sub-state, work position of the axis in mm) from a status report."""
        state, body = self._status_report(deadline)
        state = state.split(":")[0]
        fields = _fields(body)
        if "WCO" in fields:
            self._wco = _axis(fields["WCO"], self._index)
        if "WPos" in fields:
            return state, _axis(fields["WPos"], self._index)
        machine = _axis(fields["MPos"], self._index)
        if self._wco is None:
            self._wco = self._offsets(deadline)
        return state, machine - self._wco

    def _state(self, deadline: float | None = None) -> str:
        """The state alone (no '$#' for offsets: a sleeping or halted GRBL answers no lines)."""
        return self._status_report(deadline)[0].split(":")[0]

    def _status_report(self, deadline: float | None = None) -> tuple[str, str]:
        """(state with its sub-state, e.g. 'Hold:0', and the rest of the report)."""
        deadline = deadline if deadline is not None else time.monotonic() + 2.0
        self.link.write(STATUS)
        while True:
            m = _STATUS.fullmatch(self._read(deadline, "a status report"))
            if m:
                return m.group(1), m.group(2)

    def _hello(self, deadline: float) -> tuple[str | None, str]:
        """Ask until GRBL answers a status query; the banner, if a restart came first.

        A GRBL halted by a hard-limit alarm answers nothing at all until it is reset: only a
        controller that stays silent past a board's boot time is reset, and told so."""
        time.sleep(RESET_GRACE_S)  # a board that resets on DTR does so now
        self.link.reset_input()
        banner = None
        silent_until = time.monotonic() + SILENT_S
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise LinkTimeout(
                    f"nothing on {self.link.port} answers like GRBL, even after a reset: check "
                    "the protocol and the port, and that the controller is powered"
                )
            if banner is None and now >= silent_until and not self._halted:
                self._halted = True
                self.link.write(RESET)
            self.link.write(STATUS)  # lost while a board boots: asked again until answered
            ask_again = min(deadline, time.monotonic() + 0.25)
            while True:
                try:
                    line = _clean(self.link.read_line(ask_again, "a status query"))
                except LinkTimeout:
                    break
                if line.startswith("Grbl "):
                    banner = line
                    break  # it has just booted: ask now
                m = _STATUS.fullmatch(line)
                if m:
                    return banner, m.group(1).split(":")[0]

    def _marked(self) -> bool:
        """Whether the reference mark survived since the last zero or home."""
        for line in self._query("$G", "the parser state"):
            if line.startswith("[GC:"):
                return REFERENCE_MARK in line[4:-1].split()
        return False

    def _mark(self) -> None:
        """Set the mark: the arc plane (G17/G18/G19) is modal, only arcs use it and stackrig
        sends none, and any reset puts it back to G17. So a set mark means no restart since
        the position was referenced (a G-code sender that sends G17 clears it: the safe way)."""
        self._send(REFERENCE_MARK)
        self.referenced = True

    def _come_to_rest(self, answer_s: float | None = None) -> float:
        """After a stop: wait for the standstill, flush the planner, keep the reference.

        A reset in motion would raise ALARM:3; at Hold:0 it keeps the position, so the mark is
        set again when the position was referenced. Returns where the axis stopped (um).
        ``answer_s`` bounds the first answer (a controller that went silent fails fast)."""
        deadline = time.monotonic() + self.boot_timeout_s + 10.0
        first = None if answer_s is None else time.monotonic() + answer_s
        self._resting = True
        try:
            while True:
                state, _ = self._status_report(first or deadline)
                first = None
                if state in ("Idle", "Alarm", "Sleep", "Hold:0"):
                    break
                time.sleep(POLL_S)
            if state == "Hold:0":
                was_referenced = self.referenced
                self._reset()
                if was_referenced:
                    self._mark()
            _, position = self.status(deadline)
        finally:
            self._resting = False
            self._stopping.clear()
        return position * 1000.0

    def _reset(self) -> None:
        """Soft reset and the banner after it; the mark is gone with the parser state."""
        self.link.write(RESET)
        self.referenced = False
        deadline = time.monotonic() + self.boot_timeout_s
        while not _clean(self.link.read_line(deadline, "the banner after a reset")).startswith(
            "Grbl "
        ):
            pass
        self._wco = None

    def _wait_jog_done(self, deadline: float) -> None:
        """G-code is refused while a jog runs: wait for it to end."""
        while self._status_report(deadline)[0] == "Jog":
            time.sleep(POLL_S)

    def _pins(self) -> str:
        """Input pins GRBL reports active (Pn:XYZPDHRS), '' when none."""
        return _fields(self._status_report()[1]).get("Pn", "")

    def _tolerance_um(self) -> float:
        """Half a motor step (GRBL stops on whole steps) plus the report's 1 um resolution."""
        steps_per_mm = self.settings.get(100 + self._index, 0.0)
        half_step = 500.0 / steps_per_mm if steps_per_mm > 0 else 0.0
        return half_step + 1.0

    def _offsets(self, deadline: float | None) -> float:
        """Work offset of the axis (G54 + G92) from '$#', when no status carried WCO yet."""
        total = 0.0
        for line in self._query("$#", "the offsets query", deadline):
            m = re.fullmatch(r"\[(G54|G92):([^\]]+)\]", line)
            if m:
                total += _axis(m.group(2), self._index)
        return total

    def _read_settings(self) -> dict[int, float]:
        settings = {}
        for line in self._query("$$", "the settings list"):
            m = re.fullmatch(r"\$(\d+)=([-+]?\d*\.?\d+).*", line)
            if m:
                settings[int(m.group(1))] = float(m.group(2))
        return settings

    def _send(self, line: str, deadline: float | None = None, what: str | None = None) -> None:
        self._query(line, what or f"'{line}'", deadline)

    def _query(self, line: str, what: str, deadline: float | None = None) -> list[str]:
        """Send one line, collect what comes back until its ok; error:N / ALARM raise."""
        deadline = deadline if deadline is not None else time.monotonic() + 5.0
        self.link.write(line.encode("ascii") + b"\n")
        lines: list[str] = []
        while True:
            reply = self._read(deadline, what)
            if reply == "ok":
                return lines
            if reply.startswith("error:"):
                code = _code(reply)
                raise RailError(f"GRBL refused '{line}': {describe_error(code)} (error:{code})")
            lines.append(reply)

    def _read(self, deadline: float, what: str) -> str:
        """Next meaningful line; alarms and restarts raise, a stop request interrupts."""
        while True:
            if self._stopping.is_set() and not self._resting:
                raise _StopRequested
            try:
                raw = self.link.read_line(min(deadline, time.monotonic() + POLL_S), what)
            except LinkTimeout:
                if time.monotonic() >= deadline:
                    raise
                continue
            line = _clean(raw)
            if not line or line.startswith("[MSG:") or line.startswith("[echo:"):
                continue
            if line.startswith("ALARM:"):
                raise self._alarm(_code(line))
            if line.startswith("Grbl "):
                self.referenced = False
                self._wco = None
                raise ControllerRestarted(
                    "GRBL restarted by itself (power dip, reset, or USB glitch): its position "
                    "count restarted, so the position is not referenced; home or re-zero, "
                    "then start again"
                )
            return line

    def _alarm(self, code: int) -> RailError:
        """GRBL resets itself after an alarm: read what it prints after it, so the next call
        does not take that banner for a restart. After ALARM:1 it goes silent until reset."""
        self.referenced = False
        self._wco = None
        deadline = time.monotonic() + 1.5
        try:
            while True:
                line = _clean(self.link.read_line(deadline, "the alarm's banner"))
                if line.startswith("[MSG:'$H'") or line == "[MSG:Reset to continue]":
                    break
        except LinkTimeout:
            pass
        return RailError(f"GRBL alarm: {describe_alarm(code)} (ALARM:{code})")


class _StopRequested(Exception):
    """stop() was called while this thread waited on the controller."""


def _fields(body: str) -> dict[str, str]:
    return dict(f.split(":", 1) for f in body.split("|") if ":" in f)


def _axis(values: str, index: int) -> float:
    return float(values.split(",")[index])


_REPLY_END = re.compile(r"(ok|error:\d+|ALARM:\d+|<[^<>]*>|Grbl .*|\[.*\])$")


def _clean(line: str) -> str:
    """Drop line noise: non-printable bytes, and junk glued in front of a known reply."""
    line = re.sub(r"[^\x20-\x7e]", "", line).strip()
    m = _REPLY_END.search(line)
    if m and m.start() > 0 and not re.search(r"[A-Za-z0-9]", line[: m.start()]):
        return m.group(0)
    return line


def _code(line: str) -> int:
    try:
        return int(line.split(":", 1)[1])
    except (IndexError, ValueError):
        return -1
