"""A camera for the simulated rig when libgphoto2's virtual camera cannot serve the run.

The virtual camera allows about 26 captures per process; a longer simulated session shoots
through this instead (the command says so): the same frame the virtual camera would have
served, written into the download folder complete and fsync'd, as the real path does.
"""

from __future__ import annotations

import os
from pathlib import Path

from rig.simrig.camera_feed import QUALITIES, encode_jpeg
from rig.simrig.rig import SimulatedRig

VIRTUAL_CAMERA_SHOTS = 24  # a margin under libgphoto2's vcamera limit (see DESIGN.md)


class SimulatedCamera:
    def __init__(self, rig: SimulatedRig) -> None:
        self.rig = rig
        self.shots = 0

    def capture(self, folder: Path) -> list[Path]:
        self.shots += 1
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"SIM_{self.shots:04d}.jpg"
        frame = self.rig.last_frame  # shown before this shot: rendered once, not twice
        if frame is None:
            frame = self.rig.subject.frame(self.rig.carriage_um(), self.shots)
        data = encode_jpeg(frame, QUALITIES[0])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return [path]
