"""Feed libgphoto2's virtual camera the frame for the current rail position.

The virtual camera (python-gphoto2's bundled vusb, a Nikon D750 behind the real PTP driver)
serves the first JPEG in ``VCAMERADIR`` and reads its bytes when a capture is downloaded, but
its file list, sizes included, is fixed when the camera opens. So the feed keeps one file of a
fixed length and rewrites it in place before each shot: the new JPEG, then zeros after its end
marker (decoders stop at the marker). A frame too big for the slot is re-encoded smaller.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

SERVED_NAME = "scene.jpg"
QUALITIES = (92, 85, 75, 60, 45)


class CameraFeed:
    """The file in ``folder`` the virtual camera serves, ``slot_bytes`` long."""

    def __init__(self, folder: Path, slot_bytes: int) -> None:
        if slot_bytes < 1024:
            raise ValueError(f"slot_bytes = {slot_bytes}: too small for a JPEG")
        self.path = folder / SERVED_NAME
        self.slot_bytes = slot_bytes
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_frames(cls, folder: Path, first_frame: np.ndarray, headroom: float = 2.0) -> CameraFeed:
        """A feed sized for frames like ``first_frame`` (RGB), written as the first served file
        (before the camera opens: its size is read then)."""
        data = encode_jpeg(first_frame, QUALITIES[0])
        feed = cls(folder, int(len(data) * headroom))
        feed.show(first_frame)
        return feed

    @classmethod
    def existing(cls, folder: Path) -> CameraFeed:
        """The feed whose file is already served from ``folder`` (e.g. in the camera's process)."""
        return cls(folder, (folder / SERVED_NAME).stat().st_size)

    def show(self, rgb: np.ndarray) -> int:
        """Serve ``rgb`` for the next capture; returns the JPEG quality it fitted at."""
        for quality in QUALITIES:
            data = encode_jpeg(rgb, quality)
            if len(data) <= self.slot_bytes:
                self._write(data + bytes(self.slot_bytes - len(data)))
                return quality
        raise ValueError(
            f"a {rgb.shape[1]}x{rgb.shape[0]} frame does not fit the {self.slot_bytes}-byte slot "
            f"even at JPEG quality {QUALITIES[-1]}: make the slot larger"
        )

    def _write(self, data: bytes) -> None:
        # In place (same inode, same length): the camera holds this file's entry open.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode the simulated frame as JPEG")
    return data.tobytes()
