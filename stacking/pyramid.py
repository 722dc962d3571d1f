"""Gaussian and Laplacian pyramids of single-channel float32 images (pure functions)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from stacking import bands


def level_count(shape: tuple[int, ...], smallest: int = 16, most: int = 8) -> int:
    """Number of detail levels so the base level's short side stays at least ``smallest``."""
    return max(1, min(most, int(math.log2(max(1, min(shape[:2]) / smallest)))))


def level_shapes(shape: tuple[int, ...], levels: int) -> list[tuple[int, int]]:
    """(h, w) of every level, full size first, base last (levels + 1 entries)."""
    h, w = shape[:2]
    shapes = [(h, w)]
    for _ in range(levels):
        h, w = (h + 1) // 2, (w + 1) // 2
        shapes.append((h, w))
    return shapes


class Buffers:
    """Reusable arrays for :func:`laplacian` at fixed level shapes (avoids page faults)."""

    def __init__(self, shapes: list[tuple[int, int]]) -> None:
        self.bands = [np.empty(s, np.float32) for s in shapes[:-1]]
        self.downs = [np.empty(s, np.float32) for s in shapes[1:]]


def laplacian(img: np.ndarray, levels: int, buffers: Buffers | None = None) -> list[np.ndarray]:
    """Laplacian pyramid: ``levels`` detail bands then the low-pass base.

    With ``buffers`` the result lives in them and is valid until their next use.
    """
    out = []
    current = img
    for k in range(levels):
        size = (current.shape[1], current.shape[0])
        if buffers is None:
            down = cv2.pyrDown(current)
            band = cv2.subtract(current, cv2.pyrUp(down, dstsize=size))
        else:
            down = cv2.pyrDown(current, dst=buffers.downs[k])
            band = cv2.pyrUp(down, dst=buffers.bands[k], dstsize=size)
            bands.run(_minus, band, current)
        out.append(band)
        current = down
    out.append(current)
    return out


def _minus(band: np.ndarray, current: np.ndarray) -> None:
    """``band = current - band`` (the detail the blur took out), in place."""
    cv2.subtract(current, band, dst=band)


def collapse(bands: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`laplacian`."""
    img = bands[-1]
    for band in reversed(bands[:-1]):
        img = cv2.add(cv2.pyrUp(img, dstsize=(band.shape[1], band.shape[0])), band)
    return img


def resize_to(img: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize a map to ``shape`` (h, w): area averaging down, linear up."""
    h, w = shape
    if img.shape[:2] == (h, w):
        return img
    if nearest:
        flags = cv2.INTER_NEAREST
    else:
        flags = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=flags)
