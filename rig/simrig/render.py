"""Depth-dependent defocus of a scene, and the sensor that records it (pure numpy / OpenCV).

Shared by the simulated rig (``--simulate``) and the benchmark's stack generator
(``benchmarks/synth.py``, which documents the image model in full): a pixel of depth d seen with
focus at f gets a disc blur of radius ``R * |d - f|`` (capped at R), gathered from a fixed set of
precomputed blur levels it blends between; large levels are computed on a downsampled scene.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from rig.simrig.scene import Scene

GAMMA = 2.2
BASE_LEVELS_PX = (0.0, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5, 7.5, 10.0, 13.5)
TILE = 256


def blur_levels(radius_max: float) -> list[float]:
    """Blur radii (px) to precompute: the shared stacks' list, extended by x1.35 steps (rounded to
    0.5 px) and cut after the first radius >= ``radius_max`` (two levels at least)."""
    levels = list(BASE_LEVELS_PX)
    while levels[-1] < radius_max:
        levels.append(round(levels[-1] * 1.35 * 2) / 2)
    for i, r in enumerate(levels):
        if r >= radius_max:
            return levels[: max(i + 1, 2)]
    return levels


@functools.lru_cache(maxsize=64)
def disc_kernel(radius: float) -> np.ndarray:
    """Anti-aliased disc (pillbox) of ``radius`` px, 8x8 supersampled, summing to 1."""
    if radius <= 0:
        return np.ones((1, 1), np.float32)
    half = math.ceil(radius)
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    offsets = (np.arange(8, dtype=np.float32) + 0.5) / 8 - 0.5
    k = np.zeros_like(x)
    for dy in offsets:
        for dx in offsets:
            k += (x + dx) ** 2 + (y + dy) ** 2 <= radius * radius
    return k / k.sum()


def level_scale(radius: float) -> int:
    """Downsampling factor for a blur level: the largest power of two keeping radius/s >= 4."""
    return 1 if radius < 8 else 2 ** math.floor(math.log2(radius / 4))


class DefocusRenderer:
    """Renders the linear-light, depth-dependent defocus of a scene for any focus depth."""

    def __init__(
        self, linear: np.ndarray, depth: np.ndarray, levels: list[float], radius_max: float
    ) -> None:
        self.linear = linear  # float32 HxWx3, linear light
        self.depth = depth
        self.levels = np.asarray(levels, np.float32)
        self.radius_max = radius_max
        h, w = self.depth.shape
        self.lowres: dict[int, tuple[float, float, np.ndarray]] = {}
        for k, r in enumerate(levels):
            s = level_scale(r)
            if s == 1:
                continue
            sw, sh = math.ceil(w / s), math.ceil(h / s)
            small = cv2.resize(self.linear, (sw, sh), interpolation=cv2.INTER_AREA)
            kern = disc_kernel(r * sw / w)
            blurred = cv2.filter2D(small, -1, kern, borderType=cv2.BORDER_REFLECT)
            self.lowres[k] = (w / sw, h / sh, blurred)

    def _level_tile(self, k: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The tile [y0:y1, x0:x1] of the scene blurred to level ``k``."""
        h, w = self.depth.shape
        if k in self.lowres:
            sx, sy, small = self.lowres[k]
            j0 = max(int((y0 + 0.5) / sy - 0.5) - 2, 0)
            j1 = min(int((y1 + 0.5) / sy - 0.5) + 3, small.shape[0])
            i0 = max(int((x0 + 0.5) / sx - 0.5) - 2, 0)
            i1 = min(int((x1 + 0.5) / sx - 0.5) + 3, small.shape[1])
            m = np.array(
                [
                    [1 / sx, 0, (x0 + 0.5) / sx - 0.5 - i0],
                    [0, 1 / sy, (y0 + 0.5) / sy - 0.5 - j0],
                ],
                np.float32,
            )
            return cv2.warpAffine(
                small[j0:j1, i0:i1],
                m,
                (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        r = float(self.levels[k])
        if r == 0:
            return self.linear[y0:y1, x0:x1]
        margin = math.ceil(r) + 1
        a, b = max(y0 - margin, 0), min(y1 + margin, h)
        c, d = max(x0 - margin, 0), min(x1 + margin, w)
        src = self.linear[a:b, c:d]
        out = cv2.filter2D(src, -1, disc_kernel(r), borderType=cv2.BORDER_REFLECT)
        return out[y0 - a : y1 - a, x0 - c : x1 - c]

    def render(self, focus_depth: float) -> np.ndarray:
        """The whole padded scene defocused for ``focus_depth`` (float32, linear light).

        Works tile by tile, so each tile only computes the few levels its depths need."""
        h, w = self.depth.shape
        out = np.empty_like(self.linear)
        top = len(self.levels) - 2
        zero = np.float32(0)
        for y0 in range(0, h, TILE):
            for x0 in range(0, w, TILE):
                y1, x1 = min(y0 + TILE, h), min(x0 + TILE, w)
                r = np.abs(self.depth[y0:y1, x0:x1] - np.float32(focus_depth))
                r *= np.float32(self.radius_max)
                np.minimum(r, self.radius_max, out=r)
                idx = np.clip(np.searchsorted(self.levels, r, side="right") - 1, 0, top)
                lo, hi = self.levels[idx], self.levels[idx + 1]
                t = (r - lo) / (hi - lo)  # weight of level idx + 1; level idx gets 1 - t
                acc = out[y0:y1, x0:x1]
                acc[:] = 0
                for k in range(int(idx.min()), int(idx.max()) + 2):
                    weight = np.where(idx == k, 1 - t, np.where(idx == k - 1, t, zero))
                    if not weight.any():
                        continue
                    acc += weight[..., None] * self._level_tile(k, y0, y1, x0, x1)
        return out


def scene_linear(scene: Scene, lens_sigma: float) -> np.ndarray:
    """The padded scene in linear light (float32), blurred by the lens PSF."""
    lut = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)
    linear = lut[scene.rgb]
    if lens_sigma > 0:
        cv2.GaussianBlur(linear, (0, 0), lens_sigma, dst=linear)
    return linear


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear light [0, 1] to 8-bit (power 1/2.2, rounded)."""
    return np.rint(np.clip(linear, 0, 1) ** (1 / GAMMA) * 255).astype(np.uint8)


def encode_frame(
    linear: np.ndarray,
    matrix: np.ndarray,
    size: tuple[int, int],
    gain: float,
    noise: float,
    read_noise: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Warp the padded linear image with ``matrix`` (padded scene -> frame) to ``size`` (w, h),
    apply ``gain``, add linear-light noise (sigma ``read_noise``), clip to [0, 1], encode with
    power 1/2.2, add 8-bit noise (sigma ``noise``) and round. Returns uint8 RGB.

    Noise through the tone curve makes shadows noisier than mid-tones: with the defaults, after
    JPEG, about 3 levels at black, 2.4 around level 15 and 1.0 from about 40 up, as in the shared
    stacks. ``rng=None`` adds no noise."""
    img = cv2.warpAffine(linear, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    out = np.empty(img.shape, np.uint8)
    for y0 in range(0, img.shape[0], 512):
        part = img[y0 : y0 + 512]
        part *= np.float32(gain)
        if rng is not None and read_noise > 0:
            part += rng.standard_normal(part.shape, dtype=np.float32) * np.float32(read_noise)
        np.clip(part, 0, 1, out=part)
        np.power(part, np.float32(1 / GAMMA), out=part)
        part *= 255
        if rng is not None and noise > 0:
            part += rng.standard_normal(part.shape, dtype=np.float32) * np.float32(noise)
        np.rint(part, out=part)
        np.clip(part, 0, 255, out=part)
        out[y0 : y0 + 512] = part
    return out


MONO_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""Linear-light luminance of a mono sensor without a colour filter (Rec. 709 primaries)."""


def encode_mono(
    linear: np.ndarray,
    matrix: np.ndarray,
    size: tuple[int, int],
    gain: float,
    bits: int,
    fill: float,
    read_noise_dn: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """A mono scientific camera's frame: linear (no tone curve) luminance of the warped scene,
    times ``gain``, scaled so that white is ``fill`` of the ``bits``-bit range, with shot noise
    (Poisson-like, one electron per DN) and Gaussian read noise of ``read_noise_dn``, rounded
    and clipped to the ``bits`` range. Returns uint16 H x W (the 16-bit container such cameras
    write, values in 0 .. 2**bits - 1)."""
    img = cv2.warpAffine(linear, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    top = float(2**bits - 1)
    luma = cv2.transform(img, MONO_WEIGHTS[None, :])
    luma *= np.float32(gain * fill * top)
    if rng is not None:
        shot = np.sqrt(np.maximum(luma, 0.0))
        luma += rng.standard_normal(luma.shape, dtype=np.float32) * shot
        luma += rng.standard_normal(luma.shape, dtype=np.float32) * np.float32(read_noise_dn)
    return np.clip(np.rint(luma), 0, top).astype(np.uint16)


def local_motion(
    linear: np.ndarray, centre: tuple[float, float], radius: float, shift: tuple[float, float]
) -> np.ndarray:
    """``linear`` with a soft round region (Gaussian falloff of ``radius`` px around ``centre``)
    moved by ``shift`` (dx, dy) px and the rest still: a specimen that crept while the stack was
    shot, which no global alignment can undo."""
    h, w = linear.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bump = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / np.float32(2 * radius**2))
    map_x = xx - np.float32(shift[0]) * bump
    map_y = yy - np.float32(shift[1]) * bump
    return cv2.remap(linear, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def padded_matrix(m: list[list[float]], pad: int) -> np.ndarray:
    """``M`` (GT pixel -> frame pixel) rewritten for a source padded by ``pad`` pixels."""
    a = np.asarray(m, np.float64)
    out = a.copy()
    out[:, 2] = a[:, 2] - a[:, :2] @ np.array([pad, pad], np.float64)
    return out
