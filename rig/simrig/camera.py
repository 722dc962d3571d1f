"""The simulated rig's frames without the PTP path, for in-process tests and benchmarks.

``stackrig --simulate`` shoots through libgphoto2's virtual camera in a camera process
(renewed every :data:`VIRTUAL_CAMERA_SHOTS`); this writes the same frame into the download
folder complete and fsync'd, as a download does, where a test or a benchmark measures the
session rather than the camera.
"""

from __future__ import annotations

import os
from pathlib import Path

from rig.simrig.camera_feed import QUALITIES, encode_jpeg
from rig.simrig.rig import SimulatedRig

VIRTUAL_CAMERA_SHOTS = 24  # a margin under libgphoto2's vcamera limit of about 26 (DESIGN.md)


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
        write_download(path, encode_jpeg(frame, QUALITIES[0]))
        return [path]


def write_download(path: Path, data: bytes) -> None:
    """A file as a camera download leaves it: new (never over another), complete, fsync'd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
