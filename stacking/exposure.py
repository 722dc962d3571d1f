"""Exposure in linear light.

Cameras write gamma-encoded pixels, but both an exposure change and defocus blur act on
linear light. Means taken in linear light are therefore unchanged by defocus, which makes them
the right place to measure flicker and white-balance drift between differently focused frames.
"""

from __future__ import annotations

import cv2
import numpy as np

# Exponent of the sRGB curve over the range where exposure differences are measured.
ENCODING_GAMMA = 2.2


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """sRGB decoding of float values in 0..1."""
    x = np.clip(encoded, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def encoded_gain(linear_gain: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Multiplier on encoded pixel values equivalent to ``linear_gain`` on linear light."""
    return np.asarray(linear_gain, np.float64) ** (1.0 / ENCODING_GAMMA)


_LUT8 = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)


def linearise(pixels: np.ndarray) -> np.ndarray:
    """Linear-light float32 copy of uint8, uint16 or float (0..1) sRGB pixels."""
    if pixels.dtype == np.uint8:
        return cv2.LUT(pixels, _LUT8)
    if pixels.dtype == np.uint16:
        return srgb_to_linear(pixels.astype(np.float32) / 65535.0)
    return srgb_to_linear(pixels.astype(np.float32))
