"""Motion policy on top of any firmware driver: backlash, soft limits, settle, bounded waits.

The same for every controller, so a GRBL rail and a Sangaboard stage behave alike.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rig.devices.protocols import FocusDriver
from rig.errors import RailError

# Without soft limits no move may go further than this from where the rail is: a typo (1e12)
# or a stray absolute target must not run a carriage into its end stops.
DEFAULT_TRAVEL_UM = 100_000.0


@dataclass(frozen=True)
class MotionSettings:
    """How shots are approached. Distances in micrometres, times in seconds."""

    backlash_um: float = 0.0  # overshoot so every shot position is approached the same way
    approach: str = "positive"  # the side moves finish from: "positive" or "negative"
    soft_min_um: float | None = None  # refuse targets below (None: no limit)
    soft_max_um: float | None = None  # refuse targets above
    settle_s: float = 0.0  # wait after the motion has finished, before the shutter
    speed_um_s: float = 1000.0  # used to bound each wait: a move may take its length / speed
    timeout_margin_s: float = 5.0  # fixed part of every wait bound

    def __post_init__(self) -> None:
        if self.backlash_um < 0:
            raise ValueError(f"backlash_um = {self.backlash_um}: must be >= 0")
        if self.approach not in ("positive", "negative"):
            raise ValueError(f"approach = {self.approach!r}: must be 'positive' or 'negative'")
        if self.settle_s < 0:
            raise ValueError(f"settle_s = {self.settle_s}: must be >= 0")
        if self.speed_um_s <= 0:
            raise ValueError(f"speed_um_s = {self.speed_um_s}: must be > 0")
        lo, hi = self.soft_min_um, self.soft_max_um
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"soft limits {lo} .. {hi} um: the minimum must be below the maximum")


class Rail:
    """A :class:`~rig.devices.protocols.FocusAxis` made of a driver and motion settings."""

    def __init__(
        self,
        driver: FocusDriver,
        settings: MotionSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.driver = driver
        self.settings = settings or MotionSettings()
        self._sleep = sleep
        self._stopped = threading.Event()
        self._at: float | None = None  # where the last move ended, while nothing else moved it

    # -- FocusAxis ---------------------------------------------------------------------------

    @property
    def referenced(self) -> bool:
        """False after a controller restart, until zeroed or homed: absolute moves are refused."""
        return self.driver.referenced

    def connect(self) -> str:
        self._at = None
        return self.driver.connect()

    def close(self) -> None:
        self._at = None
        self.driver.close()

    def position_um(self) -> float:
        return self.driver.position_um()

    def move_to(self, target_um: float) -> None:
        """Move to ``target_um`` finishing from the approach side, wait, then settle."""
        if not self.referenced:
            raise RailError(
                "the position is not referenced (the controller restarted, or was never "
                "zeroed), so an absolute target means nothing: zero here ('stackrig rail zero') "
                "or home first; relative moves (jog) still work"
            )
        _finite(target_um, "move target")
        self.check_limits(target_um)  # soft limits: refused before the driver is even asked
        self._go(target_um, self._start())

    def move_by(self, delta_um: float) -> None:
        _finite(delta_um, "move")
        start = self._start()
        self._go(start + delta_um, start)

    def jog(self, delta_um: float) -> None:
        _finite(delta_um, "jog")
        here = self.driver.position_um()
        self.check_limits(here + delta_um, start_um=here)
        self._at = None
        self.driver.jog(delta_um)

    def stop(self) -> None:
        self._stopped.set()
        self._at = None
        self.driver.stop()

    def unlock(self) -> str:
        self._at = None
        return self.driver.unlock()

    def set_zero(self) -> None:
        self._at = None
        self.driver.set_zero()

    def home(self) -> None:
        self._at = None
        self.driver.home(timeout_s=self.settings.timeout_margin_s + 120.0)

    def energise(self, on: bool) -> None:
        self._at = None
        self.driver.energise(on)

    def _start(self) -> float:
        """Where a move starts: where the last move ended, else the controller's report.

        Saves a status round trip per shot; anything that may have moved the rail (a jog, a
        stop, an error) forgets it, and a restart in between is caught by the move itself."""
        return self._at if self._at is not None else self.driver.position_um()

    def _go(self, target_um: float, start: float) -> None:
        _finite(target_um, "move target")
        self.check_limits(target_um, start_um=start)
        self._stopped.clear()
        self._at = None
        for waypoint in self.path(start, target_um):
            self._move(start, waypoint)
            start = waypoint
        if self._stopped.is_set():
            raise RailError("move stopped on request: check the rail, then move again")
        self._at = target_um
        if self.settings.settle_s > 0:
            self._sleep(self.settings.settle_s)
        if self._stopped.is_set():
            self._at = None
            raise RailError("move stopped on request: check the rail, then move again")

    # -- policy (pure) -------------------------------------------------------------------------

    def path(self, start_um: float, target_um: float) -> list[float]:
        """Waypoints from ``start_um``: via an overshoot when arriving from the wrong side."""
        s = self.settings
        sign = 1.0 if s.approach == "positive" else -1.0
        # Arriving in the approach direction means moving towards +sign.
        arriving_right = (target_um - start_um) * sign >= 0
        if s.backlash_um == 0 or arriving_right:
            return [target_um]
        overshoot = target_um - sign * s.backlash_um
        self.check_limits(overshoot, what="backlash overshoot", start_um=start_um)
        return [overshoot, target_um]

    def check_limits(
        self, target_um: float, what: str = "target", start_um: float | None = None
    ) -> None:
        """Soft limits where set (and the position is referenced), else the default travel
        from ``start_um``: no move is ever unbounded."""
        lo, hi = self.settings.soft_min_um, self.settings.soft_max_um
        if (lo is None and hi is None) or not self.referenced:
            if start_um is not None and abs(target_um - start_um) > DEFAULT_TRAVEL_UM:
                why = (
                    "no soft limits are set"
                    if self.referenced
                    else "the position is not referenced"
                )
                raise RailError(
                    f"{what} {target_um:.1f} um is {abs(target_um - start_um) / 1000:.1f} mm "
                    f"away; {why}, so a move is bounded by the default travel of "
                    f"{DEFAULT_TRAVEL_UM / 1000:.0f} mm: set rail.soft_min_um and "
                    "rail.soft_max_um in the profile for a longer rail"
                )
            return
        if lo is not None and target_um < lo:
            raise RailError(
                f"{what} {target_um:.1f} um is below the soft limit {lo:.1f} um: "
                "choose a position inside the travel, or widen the limits in the profile"
            )
        if hi is not None and target_um > hi:
            raise RailError(
                f"{what} {target_um:.1f} um is above the soft limit {hi:.1f} um: "
                "choose a position inside the travel, or widen the limits in the profile"
            )

    def timeout_for(self, distance_um: float) -> float:
        """How long a move of ``distance_um`` may take before it counts as stuck."""
        s = self.settings
        return s.timeout_margin_s + 3.0 * abs(distance_um) / s.speed_um_s

    def _move(self, start_um: float, target_um: float) -> None:
        if self._stopped.is_set():
            return
        self.driver.move_to(target_um, self.timeout_for(target_um - start_um))


def _finite(value: float, what: str) -> None:
    if not math.isfinite(value):
        raise RailError(f"{what} {value} um: not a number; give a distance in micrometres")
