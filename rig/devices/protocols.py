"""The small protocols hardware hides behind. Positions are micrometres everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class FocusDriver(Protocol):
    """What one firmware driver provides: raw, honest motion with no policy on top.

    ``move_to`` returns only once the motion has *finished* (not when it is queued), within
    ``timeout_s``, or raises :class:`rig.errors.RailError`; a move that fails or times out is
    stopped first, so the motor never runs on behind an error. Backlash, soft limits and
    settle live in :class:`rig.devices.motion.Rail`, the same for every driver.

    ``referenced`` tells the truth about the position: False when the controller restarted
    (power, reset button, DTR reset on open, a reset after an alarm) since the operator last
    zeroed or homed it, because its count then restarted too. Drivers detect a restart on
    connect and mid-run (an unprompted banner), never reset a controller that answers, and
    raise :class:`rig.errors.ControllerRestarted` when one happens under a call.
    """

    name: str  # e.g. "grbl"
    referenced: bool

    def connect(self) -> str:
        """Open the link without resetting a controller that answers; return what identified
        itself (and a word when it restarted on open or is locked)."""
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
        """Stop now and wait until the motor stands still, leaving the controller ready for
        the next move (no alarm, no lock) and the position kept. Safe from any thread, also
        while another call waits (that call then raises RailError); at once on an idle rail."""
        ...

    def unlock(self) -> str:
        """Clear an alarm or lock so moves are accepted again; say what was done (and whether
        the position must now be re-referenced)."""
        ...

    def set_zero(self) -> None:
        """Call the current position 0 (where the firmware can, in a form that survives a
        reconnect); the position is referenced from then on."""
        ...

    def home(self, timeout_s: float) -> None:
        """Run the controller's homing cycle; RailError where it has none. Referenced after."""
        ...

    def energise(self, on: bool) -> None:
        """Hold the motor (True) or release it (False)."""
        ...


@runtime_checkable
class FocusAxis(Protocol):
    """A focus drive as the rest of stackrig uses it (rail, stage or lens)."""

    @property
    def referenced(self) -> bool:
        """Whether absolute positions mean anything (see FocusDriver.referenced)."""
        ...

    def connect(self) -> str: ...

    def close(self) -> None: ...

    def position_um(self) -> float: ...

    def move_to(self, target_um: float) -> None:
        """Move (approaching from the configured side), wait until done, then settle."""
        ...

    def move_by(self, delta_um: float) -> None: ...

    def jog(self, delta_um: float) -> None: ...

    def stop(self) -> None: ...

    def unlock(self) -> str: ...

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
