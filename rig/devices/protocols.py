"""The small protocols hardware hides behind. Positions are micrometres everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class FocusDriver(Protocol):
    """What one firmware driver provides: raw, honest motion with no policy on top.

    ``move_to`` returns only once the motion has *finished* (not when it is queued), within
    ``timeout_s``, or raises :class:`rig.errors.RailError`. Backlash, soft limits and settle
    live in :class:`rig.devices.motion.Rail`, the same for every driver.
    """

    name: str  # e.g. "grbl"

    def connect(self) -> str:
        """Open the link, wait for the controller, return what identified itself."""
        ...

    def close(self) -> None: ...

    def position_um(self) -> float:
        """The controller's current position."""
        ...

    def move_to(self, target_um: float, timeout_s: float) -> None:
        """Move and wait until the motion has finished."""
        ...

    def jog(self, delta_um: float) -> None:
        """A relative move for interactive focusing: returns at once where the firmware can
        queue it (GRBL, Marlin, Tic); the Sangaboard only moves blocking, so there it returns
        when the (short) jog has finished."""
        ...

    def stop(self) -> None:
        """Stop now. Safe to call from any thread, also while another call waits."""
        ...

    def set_zero(self) -> None:
        """Call the current position 0."""
        ...

    def home(self, timeout_s: float) -> None:
        """Run the controller's homing cycle; RailError where it has none."""
        ...

    def energise(self, on: bool) -> None:
        """Hold the motor (True) or release it (False)."""
        ...


@runtime_checkable
class FocusAxis(Protocol):
    """A focus drive as the rest of stackrig uses it (rail, stage or lens)."""

    def connect(self) -> str: ...

    def close(self) -> None: ...

    def position_um(self) -> float: ...

    def move_to(self, target_um: float) -> None:
        """Move (approaching from the configured side), wait until done, then settle."""
        ...

    def move_by(self, delta_um: float) -> None: ...

    def jog(self, delta_um: float) -> None: ...

    def stop(self) -> None: ...

    def set_zero(self) -> None: ...

    def home(self) -> None: ...

    def energise(self, on: bool) -> None: ...


@runtime_checkable
class Camera(Protocol):
    """A camera as the capture session uses it (python-gphoto2 behind it)."""

    def connect(self) -> str:
        """Open the camera; return its model (and port)."""
        ...

    def close(self) -> None: ...

    def capture(self, folder: Path) -> list[Path]:
        """Shoot one frame; every file it produced (RAW+JPEG), complete and fsync'd."""
        ...
