"""A lens focus motor for the simulated rig: the camera setting the lens driver writes.

It stands where a Nikon body's ``manualfocusdrive`` range sits (the virtual D750 of libgphoto2
does not offer one), so ``rail.protocol = "lens"`` runs through the real
:class:`~rig.devices.lens_focus.LensFocusDriver` and its Nikon mechanism. The motor turns as
commanded (no lost steps: a real one loses some, which the driver cannot see either); where it
focuses, in rail micrometres, is what the subject is rendered at.
"""

from __future__ import annotations

import threading
import time

from rig.errors import CameraError

NIKON_RANGE = (-32767.0, 32767.0, 1.0)


class SimulatedLens:
    """:class:`rig.devices.lens_focus.ConfigAccess` of a body with a Nikon-style focus drive."""

    KEY = "manualfocusdrive"

    def __init__(self, um_per_step: float, step_size: int = 1, s_per_command: float = 0.02):
        self.um_per_motor_step = um_per_step / step_size
        self.s_per_command = s_per_command  # the PTP call and the motor turning
        self._motor = 0
        self._lock = threading.Lock()

    def keys(self) -> list[str]:
        return [self.KEY]

    def get(self, key: str) -> tuple[str, object, list[str], tuple[float, float, float] | None]:
        self._known(key)
        return "range", 0, [], NIKON_RANGE

    def set(self, key: str, value: object) -> None:
        self._known(key)
        if not isinstance(value, int) or not NIKON_RANGE[0] <= value <= NIKON_RANGE[1]:
            raise CameraError(f"{key} = {value!r}: the drive takes whole steps within its range")
        time.sleep(self.s_per_command)
        with self._lock:
            self._motor += value

    def model(self) -> str:
        return "simulated lens"

    def focus_um(self) -> float:
        """Where the lens focuses, as a rail position."""
        with self._lock:
            return self._motor * self.um_per_motor_step

    def _known(self, key: str) -> None:
        if key != self.KEY:
            raise CameraError(f"the simulated lens has no setting {key!r}")
