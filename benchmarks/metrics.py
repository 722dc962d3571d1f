"""Image quality against a known all-in-focus ground truth.

Definition (what ``score`` returns):

1. Both images become H x W x 3 uint8 RGB. Float input (any float dtype, nominally [0, 1]) is
   converted with ``clip(round(x * 255), 0, 255)``; uint16 with ``round(x / 257)``; uint8 as is.
2. Both are cropped to the same central window: ``b = round(border * H)`` rows and
   ``round(border * W)`` columns are dropped at each side (``border=0.05``: 5 % per side, so the
   central 90 % x 90 %), which keeps alignment borders and reflected padding out of the score.
3. PSNR, in dB, over all pixels and all three channels at once:
   ``10 * log10(255^2 / mean((a - b)^2))`` (``inf`` for identical crops).
4. SSIM: ``skimage.metrics.structural_similarity(a, b, channel_axis=2, data_range=255)`` with
   its defaults (7x7 uniform window, K1=0.01, K2=0.03, mean over the channels' SSIM maps).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """RGB uint8 from uint8, uint16 or float [0, 1] pixels (rounded, clipped)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.rint(image / 257.0).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported pixel type {image.dtype}")


def central_crop(image: np.ndarray, border: float) -> np.ndarray:
    """Drop ``border`` (a fraction) of the height and width at each side."""
    if not 0 <= border < 0.5:
        raise ValueError(f"border {border}: must be in [0, 0.5)")
    h, w = image.shape[:2]
    by, bx = round(border * h), round(border * w)
    return image[by : h - by, bx : w - bx]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images over all pixels and channels (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def score(
    result_rgb: np.ndarray, ground_truth_rgb: np.ndarray, border: float = 0.05
) -> tuple[float, float]:
    """(PSNR dB, SSIM) of ``result_rgb`` against ``ground_truth_rgb``; see the module docstring.

    Both must have the same height and width (the result in the ground truth's geometry)."""
    from skimage.metrics import structural_similarity  # optional: the ``bench`` extra

    a, b = to_uint8(result_rgb), to_uint8(ground_truth_rgb)
    if a.shape != b.shape:
        raise ValueError(f"result is {a.shape[1]}x{a.shape[0]}, truth {b.shape[1]}x{b.shape[0]}")
    a, b = central_crop(a, border), central_crop(b, border)
    ssim = float(structural_similarity(a, b, channel_axis=2, data_range=255))
    return psnr(a, b), ssim


# ------------------------------------------------------------------ where stackers go wrong


def halo_zone(depth: np.ndarray, reach_px: float) -> np.ndarray:
    """Where halos live: pixels within ``reach_px`` of a depth step (a jump of more than 0.05
    of the depth range between neighbours), as a bool mask. Defocus spreads across such steps,
    so a stacker that picks the wrong frame there leaves a glow or a doubled edge."""
    gx = cv2.Sobel(depth.astype(np.float32), cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(depth.astype(np.float32), cv2.CV_32F, 0, 1, ksize=3) / 8
    steps = (cv2.magnitude(gx, gy) > 0.05).astype(np.uint8)
    r = max(1, round(reach_px))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(steps, kernel) > 0


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images over the pixels where ``mask`` is set (all channels)."""
    diff = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def high_pass(rgb8: np.ndarray) -> np.ndarray:
    """Fine detail of an RGB uint8 image: grey minus its Gaussian blur (sigma 1.5 px)."""
    gray = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return gray - cv2.GaussianBlur(gray, (0, 0), 1.5)


def detail(image_rgb8: np.ndarray, truth_rgb8: np.ndarray) -> float:
    """How much of the truth's fine detail ``image`` carries, in the truth's geometry: the gain
    of its high-pass projected onto the truth's, ``<hp(image), hp(truth)> / <hp(truth)^2>``.

    1.0: all of it; below 1: softer; noise and halos, uncorrelated with the truth's detail, do
    not raise it (they show in PSNR instead)."""
    hi, ht = high_pass(image_rgb8), high_pass(truth_rgb8)
    return float(np.sum(hi * ht, dtype=np.float64) / max(np.sum(ht * ht, dtype=np.float64), 1e-9))
