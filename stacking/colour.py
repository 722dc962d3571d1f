"""Colour: a frame's channels as fusion planes, and fused planes back into an RGB image."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import overload

import cv2
import numpy as np

from stacking import bands, exposure, pyramid
from stacking.dtypes import full_scale


class Planes(Sequence[np.ndarray]):
    """The exposure-corrected float32 channels of a frame, each made only when asked for.

    Fusion takes one channel at a time, so memory holds one float plane, never three.
    """

    def __init__(
        self, pixels: np.ndarray, gains: tuple[float, ...], offsets: tuple[float, ...]
    ) -> None:
        self.pixels = pixels
        self.gains = gains
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.gains)

    @overload
    def __getitem__(self, c: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, c: slice) -> Sequence[np.ndarray]: ...
    def __getitem__(self, c: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(c, slice):
            return [self[i] for i in range(len(self))[c]]
        if not 0 <= c < len(self):
            raise IndexError(c)
        plane = np.empty(self.pixels.shape[:2], np.float32)
        bands.run(partial(self._channel, c), self.pixels, plane)
        return plane

    def _channel(self, c: int, pixels: np.ndarray, plane: np.ndarray) -> None:
        channel = cv2.extractChannel(pixels, c)
        if self.gains[c] == 1.0 and self.offsets[c] == 0.0:
            # Nothing to correct: a plain rescale, far cheaper than the sRGB round trip.
            cv2.multiply(channel, 1.0 / full_scale(channel.dtype), dst=plane, dtype=cv2.CV_32F)
        else:
            np.copyto(plane, exposure.corrected_channel(channel, self.gains[c], self.offsets[c]))


def luma_chroma(rgb: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """([Y], [Cr, Cb]) of float RGB planes: fuse the luma, carry the chroma."""
    y, cr, cb = cv2.split(cv2.cvtColor(cv2.merge(rgb), cv2.COLOR_RGB2YCrCb))
    return [y], [cr, cb]


def to_rgb(planes: Iterator[np.ndarray], chroma: Iterable[np.ndarray] | None) -> np.ndarray:
    """HxWx3 float32 RGB from fused planes: R, G, B, or Y with the carried ``chroma``.

    RGB planes are copied in one at a time, so only one extra plane is ever in memory.
    """
    if chroma is not None:
        luma = next(planes)
        crcb = [pyramid.resize_to(c, luma.shape) for c in chroma]
        return np.asarray(cv2.cvtColor(cv2.merge([luma, *crcb]), cv2.COLOR_YCrCb2RGB), np.float32)
    image: np.ndarray | None = None
    for c, plane in enumerate(planes):
        if image is None:
            image = np.empty((*plane.shape, 3), np.float32)
        bands.run(partial(_put_channel, c), image, plane)
    assert image is not None
    return image


def _put_channel(channel: int, image: np.ndarray, plane: np.ndarray) -> None:
    image[..., channel] = plane  # numpy copies without the GIL: the bands run side by side


def unsharp(image: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask of the finished RGB image: ``image + amount * (image - blur(image))``."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)
