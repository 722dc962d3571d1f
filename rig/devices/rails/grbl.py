"""GRBL 1.1 driver (DIY Arduino rails), following gnea/grbl's documented interface.

Send-and-wait for every line (one ``ok``/``error:N`` each), so the 128-byte receive buffer is
never overrun and EEPROM writes are never streamed. "Moved" means the planner is empty and the
machine is Idle: ``G4 P0.01`` is acknowledged only then, and a status report confirms it.
"""

from __future__ import annotations

import re
import threading
import time

from rig.devices.rails.link import SerialLink
from rig.errors import RailError

RESET = b"\x18"
FEED_HOLD = b"!"
STATUS = b"?"
JOG_CANCEL = b"\x85"

ERRORS = {
    1: "a G-code word has no letter",
    2: "a number is missing or malformed",
    3: "GRBL does not know this '$' command",
    5: "homing is not enabled ($22=0): enable it or set zero by hand",
    8: "'$' commands are only accepted when GRBL is Idle",
    9: "G-code is locked out during an alarm or jog: unlock ($X) or home first",
    10: "soft limits need homing enabled ($22=1)",
    11: "the line is too long (80 characters max)",
    15: "the jog target exceeds the machine travel: jog less far",
    16: "the jog command is malformed",
    20: "unsupported G-code command",
    22: "feed rate not set",
}
ALARMS = {
    1: "hard limit switch hit: clear it, then unlock ($X) and re-home or re-zero",
    2: "soft limit: the target is outside the machine travel; unlock ($X) and move inside it",
    3: "reset while moving: the position may be lost; unlock ($X) and re-home or re-zero",
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
    return ALARMS.get(code, f"GRBL alarm {code}: unlock ($X) and re-home")


class GrblDriver:
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
        self._index = "XYZ".index(self.axis)
        self._wco: float | None = None
        self._stopped = threading.Event()

    # -- FocusDriver ---------------------------------------------------------------------------

    def connect(self) -> str:
        self.link.open()
        # Opening the port resets an Uno (DTR); others need the soft reset. Either way the
        # banner marks a controller ready for commands.
        self.link.write(RESET)
        banner = self._await_banner(time.monotonic() + self.boot_timeout_s)
        version = self._query("$I", "version query")
        self.settings = self._read_settings()
        state, _ = self.status()
        ident = next((v for v in version if v.startswith("[VER:")), banner)
        note = " (in Alarm: home, or unlock with $X, before moving)" if state == "Alarm" else ""
        return f"{banner.strip()} {ident}{note}".strip()

    def close(self) -> None:
        self.link.close()

    def position_um(self) -> float:
        _, position = self.status()
        return position * 1000.0

    def move_to(self, target_um: float, timeout_s: float) -> None:
        self._stopped.clear()
        deadline = time.monotonic() + timeout_s
        feed = self.speed_mm_s * 60.0
        # Units and absolute mode on the move line itself: no modal state to get out of step.
        self._send(f"G1 G21 G90 {self.axis}{target_um / 1000.0:.4f} F{feed:.1f}", deadline)
        self._send("G4 P0.01", deadline, what="the end of the move")
        state, position = self.status(deadline)
        if self._stopped.is_set():
            raise RailError("move stopped on request")
        if state != "Idle" or abs(position * 1000.0 - target_um) > self._tolerance_um():
            raise RailError(
                f"GRBL reports {state} at {position * 1000.0:.1f} um after a move to "
                f"{target_um:.1f} um: check the rail for stalls, then re-zero"
            )

    def jog(self, delta_um: float) -> None:
        feed = self.speed_mm_s * 60.0
        self._send(f"$J=G91 G21 {self.axis}{delta_um / 1000.0:.4f} F{feed:.1f}")

    def stop(self) -> None:
        """Feed hold (decelerate, position kept), then soft reset (flush the planner)."""
        self._stopped.set()
        self.link.write(FEED_HOLD)
        time.sleep(0.2)
        self.link.write(RESET)

    def set_zero(self) -> None:
        self._send(f"G92 {self.axis}0")
        self._wco = None

    def home(self, timeout_s: float) -> None:
        self._send("$H", time.monotonic() + timeout_s, what="the end of homing")
        self._wco = None

    def energise(self, on: bool) -> None:
        if on:
            # Waking from sleep needs a reset; holding torque between moves is $1=255.
            self.link.write(RESET)
            self._await_banner(time.monotonic() + self.boot_timeout_s)
        else:
            self._send("$SLP")

    # -- GRBL specifics ------------------------------------------------------------------------

    def _tolerance_um(self) -> float:
        """Half a motor step (GRBL stops on whole steps) plus the report's 1 um resolution."""
        steps_per_mm = self.settings.get(100 + self._index, 0.0)
        half_step = 500.0 / steps_per_mm if steps_per_mm > 0 else 0.0
        return half_step + 1.0

    def unlock(self) -> None:
        """Leave the Alarm state ($X) after the cause has been cleared."""
        self._send("$X")

    def status(self, deadline: float | None = None) -> tuple[str, float]:
        """(state, work position of the axis in mm) from a '?' status report."""
        deadline = deadline if deadline is not None else time.monotonic() + 2.0
        self.link.write(STATUS)
        while True:
            line = self._read(deadline, "a status report")
            m = _STATUS.fullmatch(line)
            if m:
                return self._parse_status(m.group(1), m.group(2), deadline)

    def _parse_status(self, state: str, body: str, deadline: float) -> tuple[str, float]:
        fields = dict(f.split(":", 1) for f in body.split("|") if ":" in f)
        if "WCO" in fields:
            self._wco = float(fields["WCO"].split(",")[self._index])
        if "WPos" in fields:
            return state, float(fields["WPos"].split(",")[self._index])
        machine = float(fields["MPos"].split(",")[self._index])
        if self._wco is None:
            self._wco = self._offsets(deadline)
        return state, machine - self._wco

    def _offsets(self, deadline: float) -> float:
        """Work offset of the axis (G54 + G92) from '$#', when no status carried WCO yet."""
        total = 0.0
        for line in self._query("$#", "the offsets query", deadline):
            m = re.fullmatch(r"\[(G54|G92):([^\]]+)\]", line)
            if m:
                total += float(m.group(2).split(",")[self._index])
        return total

    def _read_settings(self) -> dict[int, float]:
        settings = {}
        for line in self._query("$$", "the settings list"):
            m = re.fullmatch(r"\$(\d+)=([-+]?\d*\.?\d+).*", line)
            if m:
                settings[int(m.group(1))] = float(m.group(2))
        return settings

    def _await_banner(self, deadline: float) -> str:
        while True:
            line = self.link.read_line(deadline, "with its start-up banner")
            if line.startswith("Grbl "):
                return line
            # Anything else before the banner is boot noise; a Marlin or other firmware would
            # not print it, so the deadline names the problem.

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
        """Next meaningful line; alarms, resets and stops become RailErrors."""
        while True:
            line = _clean(self.link.read_line(deadline, what))
            if not line:
                continue
            if line.startswith("ALARM:"):
                raise RailError(f"GRBL alarm: {describe_alarm(_code(line))} ({line})")
            if line.startswith("Grbl "):
                if self._stopped.is_set():
                    raise RailError("move stopped on request: GRBL was halted and reset")
                raise RailError(
                    "GRBL reset itself (power dip or USB glitch?): the position may be lost; "
                    "re-home or re-zero, then start again"
                )
            if line.startswith("[MSG:") or line.startswith("[echo:"):
                continue
            return line


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
