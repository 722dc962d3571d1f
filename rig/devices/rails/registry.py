"""Protocol name -> driver and emulator, imported only when asked for.

:func:`make_driver` is the one place a profile's rail section becomes a driver: every key a
firmware can use reaches it here (see docs/rails.md, "In a profile").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rig.devices.emulators.base import PtyEmulator
from rig.devices.protocols import FocusDriver
from rig.errors import RailError

if TYPE_CHECKING:
    from rig.profiles.schema import RailSection

PROTOCOLS = ("grbl", "marlin", "sangaboard", "tic")
NEEDS_STEPS = ("sangaboard", "tic")  # these speak steps, not millimetres


def make_driver(rail: RailSection, port: str | None = None) -> FocusDriver:
    """A driver for the profile's ``[rail]`` section (nothing is opened yet).

    ``port`` replaces ``rail.port`` (an emulator's pty, a port given on the command line).
    """
    protocol = rail.protocol
    if protocol not in PROTOCOLS:
        raise RailError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    steps_per_mm = rail.steps_per_mm
    if protocol in NEEDS_STEPS and not steps_per_mm:
        raise RailError(
            f"a {protocol} controller counts steps: give steps per mm (see docs/rails.md, "
            "'Steps per millimetre')"
        )
    where = port or rail.port
    link: dict[str, Any] = {} if rail.baud_rate is None else {"baudrate": rail.baud_rate}
    if protocol == "grbl":
        from rig.devices.rails.grbl import GrblDriver

        return GrblDriver(where, axis=rail.axis, speed_mm_s=rail.speed_mm_s, **link)
    if protocol == "marlin":
        from rig.devices.rails.marlin import MarlinDriver

        return MarlinDriver(
            where,
            axis=rail.axis,
            steps_per_mm=steps_per_mm,
            speed_mm_s=rail.speed_mm_s,
            accel_mm_s2=rail.accel_mm_s2,
            **link,
        )
    assert steps_per_mm is not None
    if protocol == "sangaboard":
        from rig.devices.rails.sangaboard import SangaboardDriver

        return SangaboardDriver(
            where,
            axis=rail.axis,
            steps_per_mm=steps_per_mm,
            home_direction=rail.home_direction,
            **link,
        )
    from rig.devices.rails.tic import TicDriver

    accel = rail.accel_mm_s2
    return TicDriver(
        where,
        steps_per_mm=steps_per_mm,
        device_number=rail.tic_device_number,
        crc=rail.tic_crc,
        home_direction=rail.home_direction,
        max_speed_steps_s=rail.speed_mm_s * steps_per_mm,
        max_accel_steps_s2=None if accel is None else accel * steps_per_mm,
        **link,
    )


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
