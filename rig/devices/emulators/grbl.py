"""GRBL 1.1h emulator: banner on reset, one ok/error:N per line, realtime bytes, status
reports, alarms, settings, jogging and a planner whose moves take distance / speed of time.

One axis moves (the one the rail is on, Z by default); the others stay at 0. Machine space is
``travel_mm`` (default 0..100 mm); soft limits ($20=1) check it like GRBL does.
"""

from __future__ import annotations

import re
import time
from collections import deque

from rig.devices.emulators.base import Motion, PtyEmulator

BANNER = "\r\nGrbl 1.1h ['$' for help]\r\n"
AXES = "XYZ"
_WORD = re.compile(r"([A-Z])([-+]?\d*\.?\d+)")
_REALTIME = {ord("?"), ord("!"), ord("~"), 0x18, 0x85}


class GrblEmulator(PtyEmulator):
    def __init__(
        self,
        axis: str = "Z",
        travel_mm: tuple[float, float] = (0.0, 100.0),
        homing: bool = False,
        status_wpos: bool = False,
    ) -> None:
        super().__init__()
        self.axis = AXES.index(axis.upper())
        self.travel_mm = travel_mm
        self.settings: dict[int, float] = {
            1: 25, 10: 0 if status_wpos else 1, 20: 0, 21: 0, 22: 1 if homing else 0,
            100: 250, 101: 250, 102: 250, 110: 500, 111: 500, 112: 500,
            120: 10, 121: 10, 122: 10, 130: 200, 131: 200, 132: 200,
        }  # fmt: skip
        self.motion = Motion()
        self.queue: deque[float] = deque()  # planned targets (mm, machine)
        self.dwell_waiting = 0  # G4 oks owed once the planner empties
        self.state = "Idle"
        self.wco = 0.0  # work coordinate offset of the axis (G92)
        self.distance_mode = "G90"
        self.feed = 0.0
        self.moves: list[tuple[float, float]] = []  # completed (start, end), machine mm
        self._line = bytearray()
        self._move_start: float | None = None
        self._status_count = 0
        self._fault_at: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        self._boot()

    def _boot(self) -> None:
        self.queue.clear()
        self.dwell_waiting = 0
        self.motion.halt(time.monotonic())
        self._line.clear()
        self.state = "Alarm" if self.settings[22] else "Idle"
        self.reply(BANNER)
        if self.state == "Alarm":
            self.reply("[MSG:'$H'|'$X' to unlock]\r\n")

    # -- input ---------------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte in _REALTIME:
                self._realtime(byte)
            elif byte == ord("\n"):
                line = self._line.decode("ascii", errors="replace").strip()
                self._line.clear()
                self._command(line)
            elif byte != ord("\r"):
                self._line.append(byte)

    def _realtime(self, byte: int) -> None:
        now = time.monotonic()
        if byte == ord("?"):
            self.reply(self._status(now) + "\r\n")
        elif byte == ord("!"):
            if self.state in ("Run", "Jog"):
                self.motion.halt(now)
                self.queue.clear()
                self.state = "Hold:0" if self.state == "Run" else "Idle"
        elif byte == ord("~"):
            if self.state.startswith("Hold"):
                self.state = "Idle"
        elif byte == 0x18:
            if self.state in ("Run", "Jog") and self.motion.moving(now):
                self.motion.halt(now)
                self.reply(BANNER)
                self.reply("ALARM:3\r\n")
                self.state = "Alarm"
                self.queue.clear()
                self.dwell_waiting = 0
                return
            self._boot()
        elif byte == 0x85 and self.state == "Jog":
            self.motion.halt(now)
            self.queue.clear()
            self.state = "Idle"

    # -- line commands -------------------------------------------------------------------------

    def _command(self, line: str) -> None:
        f = self.faults
        if f.error_next is not None:
            code, f.error_next = f.error_next, None
            self.reply(f"error:{code}\r\n")
            return
        if len(line) > 80:
            self.reply("error:11\r\n")
            return
        text = line.upper().replace(" ", "")
        if not text:
            self.reply("ok\r\n")
        elif text.startswith("$"):
            self._dollar(text)
        else:
            self._gcode(text)

    def _dollar(self, text: str) -> None:
        idle = self.state == "Idle" or (self.state == "Alarm" and text in ("$X", "$H", "$$"))
        if text == "$X":
            if self.state == "Alarm":
                self.state = "Idle"
            self.reply("[MSG:Caution: Unlocked]\r\nok\r\n")
        elif text == "$H":
            self._home()
        elif text.startswith("$J="):
            self._jog(text[3:])
        elif not idle and text not in ("$I", "$G", "$#"):
            self.reply("error:8\r\n")
        elif text == "$$":
            for key in sorted(self.settings):
                self.reply(f"${key}={self.settings[key]:.3f}\r\n")
            self.reply("ok\r\n")
        elif text == "$I":
            self.reply("[VER:1.1h.20190830:]\r\n[OPT:V,15,128]\r\nok\r\n")
        elif text == "$G":
            self.reply(f"[GC:G0 G54 G17 G21 {self.distance_mode} G94 M5 M9 T0 F0 S0]\r\nok\r\n")
        elif text == "$#":
            offsets = ["0.000"] * 3
            offsets[self.axis] = f"{self.wco:.3f}"
            self.reply(f"[G54:0.000,0.000,0.000]\r\n[G92:{','.join(offsets)}]\r\nok\r\n")
        elif text == "$SLP":
            self.state = "Sleep"
            self.reply("ok\r\n")
        elif m := re.fullmatch(r"\$(\d+)=([-+]?\d*\.?\d+)", text):
            key = int(m.group(1))
            if key not in self.settings:
                self.reply("error:3\r\n")
                return
            self.settings[key] = float(m.group(2))
            time.sleep(0.005)  # EEPROM write
            self.reply("ok\r\n")
        else:
            self.reply("error:3\r\n")

    def _gcode(self, text: str) -> None:
        if self.state == "Alarm" or self.state == "Sleep":
            self.reply("error:9\r\n")
            return
        words = _WORD.findall(text)
        if not words or "".join(letter + value for letter, value in words) != text:
            self.reply("error:1\r\n" if not words else "error:2\r\n")
            return
        codes = [f"{letter}{float(value):g}" for letter, value in words if letter in "GM"]
        values = {letter: float(value) for letter, value in words if letter not in "GM"}
        for code in codes:
            if code in ("G90", "G91"):
                self.distance_mode = code
            elif code not in ("G0", "G1", "G4", "G21", "G92", "G94", "G17", "G54"):
                self.reply("error:20\r\n")
                return
        if "F" in values:
            self.feed = values["F"]
        if "G4" in codes:
            self.dwell_waiting += 1  # ok once the planner is empty (see tick)
            return
        target_word = AXES[self.axis]
        if "G92" in codes:
            if target_word in values:
                here = self.motion.now(time.monotonic())
                self.wco = here - values[target_word]
            self.reply("ok\r\n")
            return
        if target_word in values and ("G0" in codes or "G1" in codes or not codes):
            self._plan(values[target_word], rapid="G0" in codes)
            return
        self.reply("ok\r\n")

    def _on_step(self, mm: float) -> float:
        """GRBL moves whole steps: targets snap to the step grid of the axis."""
        steps = self.settings[100 + self.axis]
        return round(mm * steps) / steps if steps > 0 else mm

    def _plan(self, value: float, rapid: bool) -> None:
        base = self.queue[-1] if self.queue else self.motion.target
        target = base + value if self.distance_mode == "G91" else value + self.wco
        target = self._on_step(target)
        if not rapid and self.feed <= 0:
            self.reply("error:22\r\n")
            return
        if self.settings[20] and not self.travel_mm[0] <= target <= self.travel_mm[1]:
            self._alarm(2)
            return
        self.queue.append(target)
        self.reply("ok\r\n")

    def _jog(self, body: str) -> None:
        if self.state not in ("Idle", "Jog"):
            self.reply("error:16\r\n")
            return
        words = dict(_WORD.findall(body))
        letter = AXES[self.axis]
        if letter not in words or "F" not in words:
            self.reply("error:16\r\n")
            return
        now = time.monotonic()
        value = float(words[letter])
        relative = "G91" in body
        target = self.motion.now(now) + value if relative else value + self.wco
        target = self._on_step(target)
        if self.settings[20] and not self.travel_mm[0] <= target <= self.travel_mm[1]:
            self.reply("error:15\r\n")
            return
        self.state = "Jog"
        self._begin(target, float(words["F"]) / 60.0, now)
        self.reply("ok\r\n")

    def _home(self) -> None:
        if not self.settings[22]:
            self.reply("error:5\r\n")
            return
        now = time.monotonic()
        self.state = "Home"
        self.motion.start(self.travel_mm[0], self.settings[110 + self.axis] / 60.0, now)
        self._move_start = now
        self.queue.clear()

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        f = self.faults
        if self._move_start is not None and self._fault_at is not None and now >= self._fault_at:
            self._fire_fault(now)
        if self.motion.moving(now):
            return
        if self.state == "Home":
            self.state = "Idle"
            self._move_start = None
            self.reply("ok\r\n")
            return
        if self.state in ("Run", "Jog") and self._move_start is not None:
            self.moves.append((self.motion.position, self.motion.target))
            self._move_start = None
        if self.queue and self.state in ("Idle", "Run"):
            target = self.queue.popleft()
            speed = (self.feed or self.settings[110 + self.axis]) / 60.0
            self.state = "Run"
            self._begin(target, speed, now)
            if f.disconnect_after_s is not None:
                self._fault_at = now + f.disconnect_after_s
            elif f.alarm_mid_move or f.reset_mid_move:
                self._fault_at = now + abs(target - self.motion.position) / speed / 2
            return
        if self.state in ("Run", "Jog"):
            self.state = "Idle"
        if self.dwell_waiting and self.state == "Idle":
            self.reply("ok\r\n" * self.dwell_waiting)
            self.dwell_waiting = 0

    def _begin(self, target: float, speed: float, now: float) -> None:
        self.motion.start(target, max(speed, 1e-6), now)
        self._move_start = now

    def _fire_fault(self, now: float) -> None:
        f = self.faults
        self._fault_at = None
        if f.disconnect_after_s is not None:
            f.disconnect_after_s = None
            self.disconnect()
        elif f.alarm_mid_move:
            f.alarm_mid_move = False
            self.motion.halt(now)
            self._alarm(1)
            self.reply("[MSG:Reset to continue]\r\n")
        elif f.reset_mid_move:
            f.reset_mid_move = False
            self._realtime(0x18)

    def _alarm(self, code: int) -> None:
        self.motion.halt(time.monotonic())
        self.queue.clear()
        self.dwell_waiting = 0
        self._move_start = None
        self.state = "Alarm"
        self.reply(f"ALARM:{code}\r\n")

    def _status(self, now: float) -> str:
        pos = [0.0, 0.0, 0.0]
        pos[self.axis] = self.motion.now(now)
        self._status_count += 1
        fields = [self.state]
        if self.settings[10]:
            fields.append("MPos:" + ",".join(f"{v:.3f}" for v in pos))
        else:
            work = list(pos)
            work[self.axis] -= self.wco
            fields.append("WPos:" + ",".join(f"{v:.3f}" for v in work))
        fields.append(f"FS:{self.feed:.0f},0")
        if self._status_count % 10 == 1:
            wco = ["0.000"] * 3
            wco[self.axis] = f"{self.wco:.3f}"
            fields.append("WCO:" + ",".join(wco))
        return "<" + "|".join(fields) + ">"
