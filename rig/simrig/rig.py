"""The whole rig without hardware, through the real code paths.

A firmware emulator listens on a pseudo-terminal that the real pyserial driver opens; the subject
(``subject.py``) sits in front of the lens; before each shot the frame it shows at the carriage's
*physical* position (the emulator's, not what the driver believes) becomes the file libgphoto2's
virtual camera serves, so the real PTP driver downloads it. Start the camera's process with
``VCAMERADIR`` set to :attr:`SimulatedRig.vcamera_dir`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rig.devices.emulators.base import PtyEmulator
from rig.devices.rails.registry import make_emulator
from rig.simrig.camera_feed import CameraFeed
from rig.simrig.subject import Subject, SubjectSettings


class SimulatedRig:
    def __init__(
        self,
        protocol: str,
        folder: Path,
        subject: SubjectSettings | None = None,
        steps_per_mm: float | None = None,
    ) -> None:
        self.protocol = protocol
        self.steps_per_mm = steps_per_mm
        self.emulator: PtyEmulator = make_emulator(protocol)
        self.subject = Subject(subject)
        self.feed = CameraFeed.for_frames(folder / "vcamera", self.subject.frame(0.0))
        self.last_frame: np.ndarray | None = None  # what before_shot showed the camera

    @property
    def vcamera_dir(self) -> Path:
        return self.feed.path.parent

    @property
    def port(self) -> str:
        return self.emulator.path

    def start(self) -> SimulatedRig:
        self.emulator.start()
        return self

    def close(self) -> None:
        self.emulator.close()

    def carriage_um(self) -> float:
        """Where the carriage physically is (the subject's coordinates)."""
        emu = self.emulator
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
