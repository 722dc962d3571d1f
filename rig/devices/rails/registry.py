"""Protocol name -> driver and emulator, imported only when asked for."""

from __future__ import annotations

from rig.devices.emulators.base import PtyEmulator
from rig.devices.protocols import FocusDriver
from rig.errors import RailError

PROTOCOLS = ("grbl", "marlin", "sangaboard", "tic")
NEEDS_STEPS = ("sangaboard", "tic")  # these speak steps, not millimetres


def make_driver(
    protocol: str,
    port: str,
    *,
    steps_per_mm: float | None = None,
    speed_mm_s: float = 5.0,
) -> FocusDriver:
    """A driver for ``protocol`` on ``port`` (nothing is opened yet)."""
    if protocol not in PROTOCOLS:
        raise RailError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if protocol in NEEDS_STEPS and not steps_per_mm:
        raise RailError(
            f"a {protocol} controller counts steps: give steps per mm (see README, 'Wiring a "
            "controller into a profile')"
        )
    if protocol == "grbl":
        from rig.devices.rails.grbl import GrblDriver

        return GrblDriver(port, speed_mm_s=speed_mm_s)
    if protocol == "marlin":
        from rig.devices.rails.marlin import MarlinDriver

        return MarlinDriver(port, steps_per_mm=steps_per_mm, speed_mm_s=speed_mm_s)
    assert steps_per_mm is not None
    if protocol == "sangaboard":
        from rig.devices.rails.sangaboard import SangaboardDriver

        return SangaboardDriver(port, steps_per_mm=steps_per_mm)
    from rig.devices.rails.tic import TicDriver

    return TicDriver(port, steps_per_mm=steps_per_mm, max_speed_steps_s=speed_mm_s * steps_per_mm)


def make_emulator(protocol: str) -> PtyEmulator:
    if protocol == "grbl":
        from rig.devices.emulators.grbl import GrblEmulator

        return GrblEmulator()
    if protocol == "marlin":
        from rig.devices.emulators.marlin import MarlinEmulator

        return MarlinEmulator()
    if protocol == "sangaboard":
        from rig.devices.emulators.sangaboard import SangaboardEmulator

        return SangaboardEmulator()
    if protocol == "tic":
        from rig.devices.emulators.tic import TicEmulator

        return TicEmulator()
    raise RailError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
