"""Exposure in linear light.

Cameras write gamma-encoded pixels, but both an exposure change and defocus blur act on
linear light. Statistics taken in linear light are therefore unchanged by defocus, which makes
it the right place to measure flicker, white-balance drift and flare (offset) between
differently focused frames, and to correct them.

A correction maps a frame's linear light ``x`` onto the reference's: ``gain * x + offset``,
per channel.
"""

from __future__ import annotations

import cv2
import numpy as np

from stacking.dtypes import full_scale, levels


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """sRGB decoding of float values in 0..1."""
    x = np.clip(encoded, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB encoding of linear values (clipped to 0..1)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def encoded_slope(gain: float) -> float:
    """How much a linear-light ``gain`` scales differences between sRGB-encoded values.

    Above sRGB's linear toe, ``linear_to_srgb(gain * srgb_to_linear(e))`` is exactly
    ``gain ** (1 / 2.4) * (e + 0.055) - 0.055``: affine in ``e``. So a gradient (what every
    focus measure takes) scales by ``gain ** (1 / 2.4)`` with no per-pixel work. Left out:
    the toe (e < 0.04, where the slope is ``gain``) and highlights the gain clips; they hold
    little detail, and following them exactly would take a corrected copy of every frame.
    """
    return float(gain) ** (1 / 2.4)


def encoded_affine(gain: float) -> tuple[float, float]:
    """(a, b) with ``linear_to_srgb(gain * srgb_to_linear(e)) == a * e + b`` above sRGB's toe
    (see :func:`encoded_slope`): a linear-light gain on encoded pixels, in one cheap pass."""
    a = encoded_slope(gain)
    return a, 0.055 * (a - 1.0)


_LUT8 = srgb_to_linear(levels(np.uint8))


def linearise(pixels: np.ndarray) -> np.ndarray:
    """Linear-light float32 copy of uint8, uint16 or float (0..1) sRGB pixels."""
    if pixels.dtype == np.uint8:
        return cv2.LUT(pixels, _LUT8)
    if pixels.dtype.kind == "f":
        return srgb_to_linear(pixels.astype(np.float32))
    return srgb_to_linear(pixels.astype(np.float32) / full_scale(pixels.dtype))


def ratio_of_means(reference: np.ndarray, frame: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-channel gain with ``gain * frame ~ reference`` over ``valid`` (linear light)."""
    mask = valid.astype(np.uint8)
    r = np.array(cv2.mean(reference, mask)[:3])
    f = np.array(cv2.mean(frame, mask)[:3])
    gain = np.where(f > 1e-6, r / np.maximum(f, 1e-6), 1.0)
    # Flicker and white-balance drift are a few percent; anything far off is a scene change.
    return np.clip(gain, 0.5, 2.0)


def fit(
    reference: np.ndarray, frame: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (gain, offset) with ``gain * frame + offset ~ reference`` (linear light).

    Both images are small, aligned and strongly low-passed by the caller, so a least-squares
    line through pixel pairs sees brightness, not detail. Where the scene has too little
    brightness range for a line to be trusted, the offset stays 0 and the gain is the ratio of
    means (which blur cannot bias).
    """
    gains, offsets = np.ones(3), np.zeros(3)
    for c in range(3):
        r = reference[..., c][valid].astype(np.float64)
        f = frame[..., c][valid].astype(np.float64)
        if r.size < 16 or f.mean() <= 1e-6:
            continue
        spread = f.std()
        if spread > 0.05 * f.mean() + 1e-4:
            gain, offset = np.polyfit(f, r, 1)
            # A real exposure change has a positive gain and a small flare offset.
            if 0.5 <= gain <= 2.0 and abs(offset) <= 0.05:
                gains[c], offsets[c] = gain, offset
                continue
        gains[c] = np.clip(r.mean() / f.mean(), 0.5, 2.0)
    return gains, offsets


def compose(
    outer: tuple[np.ndarray, np.ndarray], inner: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The correction ``outer(inner(x))``."""
    (g1, o1), (g2, o2) = outer, inner
    return g1 * g2, g1 * o2 + o1


def corrected_channel(channel: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """A channel (uint8, uint16 or float 0..1, sRGB) corrected in linear light, as float32 0..1."""
    if channel.dtype.kind == "f":
        return linear_to_srgb(srgb_to_linear(channel) * gain + offset)
    # Integer samples: correct every level once, then look the channel up.
    table = linear_to_srgb(srgb_to_linear(levels(channel.dtype)) * gain + offset)
    if channel.dtype == np.uint8:
        return cv2.LUT(channel, table)
    return np.take(table, channel)
