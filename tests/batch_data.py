"""Tiny stacks on disk for the batch tests (a few 96x128 frames each, made in milliseconds)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from helpers import focus_stack, textured_scene, to_u8
from PIL import Image

from stacking import io

_ORIGINAL, _EXIF_IFD = 0x9003, 0x8769


def write_stack(
    folder: Path, seed: int, frames: int = 4, start: int = 0, taken: datetime | None = None
) -> list[Path]:
    """``frames`` focus-bracketed JPEGs of one scene, named frame_<start>...; with ``taken``,
    each carries an EXIF capture time one second after the last."""
    folder.mkdir(parents=True, exist_ok=True)
    shots, _ = focus_stack(textured_scene(96, 128, seed=seed), frames)
    paths = []
    for i, shot in enumerate(shots):
        path = folder / f"frame_{start + i:03d}.jpg"
        image = Image.fromarray(to_u8(shot))
        if taken is None:
            image.save(path, quality=95)
        else:
            exif = Image.Exif()
            stamp = (taken + timedelta(seconds=i)).strftime("%Y:%m:%d %H:%M:%S")
            exif.get_ifd(_EXIF_IFD)[_ORIGINAL] = stamp
            image.save(path, quality=95, exif=exif.tobytes())
        paths.append(path)
    return paths


def corrupt(folder: Path) -> None:
    """A stack none of whose frames is an image any more."""
    for path in folder.glob("*.jpg"):
        path.write_bytes(b"not a jpeg at all")


def pixels(image: Path) -> np.ndarray:
    return io.read_image(image).pixels


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``root`` (hidden ones too): size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
