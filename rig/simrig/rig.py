"""The whole rig without hardware, through the real code paths.

A firmware emulator listens on a pseudo-terminal that the real pyserial driver opens; the subject
(``subject.py``) sits in front of the lens; before each shot the frame it shows at the carriage's
*physical* position (the emulator's, not what the driver believes) becomes the file libgphoto2's
virtual camera serves, so the real PTP driver downloads it. Start the camera's process with
``VCAMERADIR`` set to :attr:`SimulatedRig.vcamera_dir`.

The driver opens :attr:`SimulatedRig.port`, a stable link to the emulator's pty (as udev's
``/dev/stackrig-rail`` is to a real adapter), so :meth:`SimulatedRig.replug` can pull the cable
and put it back. With no protocol there is no emulator: the camera side alone is simulated and
the subject is shown at the position a real rail reports (``where``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rig.devices.emulators.base import PtyEmulator
from rig.devices.rails.registry import make_emulator
from rig.simrig.camera_feed import CameraFeed
from rig.simrig.subject import Subject, SubjectSettings


class SimulatedRig:
    def __init__(
        self,
        protocol: str | None,
        folder: Path,
        subject: SubjectSettings | None = None,
        steps_per_mm: float | None = None,
    ) -> None:
        self.protocol = protocol
        self.steps_per_mm = steps_per_mm
        self.emulator: PtyEmulator | None = make_emulator(protocol) if protocol else None
        self.subject = Subject(subject)
        self.feed = CameraFeed.for_frames(folder / "vcamera", self.subject.frame(0.0))
        self.last_frame: np.ndarray | None = None  # what before_shot showed the camera
        self.where: Callable[[], float] | None = None  # without an emulator: the real rail's
        self._port = folder / "stackrig-rail"

    @property
    def vcamera_dir(self) -> Path:
        return self.feed.path.parent

    @property
    def port(self) -> str:
        return str(self._port)

    def start(self) -> SimulatedRig:
        if self.emulator is not None:
            self.emulator.start()
            self._link(self.emulator.path)
        return self

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.close()

    def unplug(self) -> None:
        """Pull the rail's cable: the driver's next read or write fails."""
        self._emulator().disconnect()
        self._port.unlink(missing_ok=True)

    def replug(self) -> None:
        """Put the cable back (after :meth:`unplug`, or after the emulator's own
        ``disconnect_after_s`` fault): a new tty behind the same port name."""
        self._link(self._emulator().plug_in())

    def _link(self, target: str) -> None:
        new = self._port.with_name(self._port.name + ".new")
        new.unlink(missing_ok=True)
        new.symlink_to(target)
        os.replace(new, self._port)

    def _emulator(self) -> PtyEmulator:
        if self.emulator is None:
            raise ValueError("this simulated rig has no rail emulator: a real rail is in use")
        return self.emulator

    def carriage_um(self) -> float:
        """Where the carriage physically is (the subject's coordinates)."""
        emu = self.emulator
        if emu is None:
            if self.where is None:
                raise ValueError("a simulated camera on a real rail needs the rail's position")
            return self.where()
        if self.protocol == "grbl":
            return float(emu.carriage_mm()) * 1000.0  # type: ignore[attr-defined]
        if self.protocol == "marlin":
            return float(emu.position_mm()) * 1000.0  # type: ignore[attr-defined]
        if self.steps_per_mm is None:
            raise ValueError(f"a simulated {self.protocol} rail needs steps_per_mm")
        steps = emu.position()[2] if self.protocol == "sangaboard" else emu.position  # type: ignore[attr-defined]
        return float(steps) / self.steps_per_mm * 1000.0

    def before_shot(self, shot: int) -> float:
        """Put the frame for the carriage's position in front of the virtual camera; returns
        that position (um)."""
        here = self.carriage_um()
        self.last_frame = self.subject.frame(here, shot)
        self.feed.show(self.last_frame)
        return here

    def __enter__(self) -> SimulatedRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
