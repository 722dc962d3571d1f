"""Synthetic focus stacks with known all-in-focus ground truth (same model as the shared stacks).

``python -m benchmarks.synth OUT --width 6000 --height 4000 --frames 30 --texture mix --seed 1``
writes ``frame_0000.jpg`` ..., ``ground_truth.png``, ``depth.npy`` and ``meta.json`` (the format of
``../shared/data/synthetic/*``).

Image model (fitted to the shared stacks; see ``benchmarks/synth_scene.py`` for the scene):

1. The scene (texture + depth, padded by ``pad`` px) is converted to linear light (power 2.2)
   and blurred by a constant Gaussian lens PSF (``lens_sigma`` px). The ground truth is this
   lens-blurred scene, cropped and encoded back to 8 bits: what a frame in perfect focus
   everywhere would show, so a perfect stacker can reach it (the shared stacks' frames match their
   ``ground_truth.png`` with no further lens blur).
2. Frame *i* is focused at ``focus_depth`` = linspace(-0.02, 1.02). A pixel of depth d gets a
   defocus blur radius ``r = min(R, R * |d - focus_depth|)`` with ``R = max_blur * width``
   (``blur_radius_max_px``). The scene is blurred with anti-aliased disc (pillbox) kernels at a
   fixed set of radii (``blur_levels_px``) and each pixel blends linearly between the two levels
   that bracket its radius (a "gather" model: halos at depth edges come for free). Levels of
   radius >= 8 px are computed on a 2^k-downsampled scene (radius still >= 4 px there) and
   upsampled bilinearly, which keeps 24 MP stacks fast.
3. A similarity warp ``M`` maps ground-truth pixel coordinates to frame pixel coordinates:
   scale ``1 + breathing * i / (n - 1)`` about the image centre ((w-1)/2, (h-1)/2), rotation
   uniform in +-``rotation`` degrees and shift uniform in +-``shift`` px (frame 0 is the identity).
   ``M`` is rounded to 6 decimals and the rounded matrix is what gets rendered (bicubic).
4. Exposure and sensor: linear values times ``gain`` (1 + uniform(+-flicker)), plus Gaussian
   noise of sigma ``read_noise`` in linear light, clipped, back to 8 bits with power 1/2.2, plus
   Gaussian noise of sigma ``noise`` (8-bit units), rounded; JPEG quality 95 (4:2:0). Noise
   through the tone curve makes shadows noisier than mid-tones, as measured on the shared stacks.
   Each frame's noise comes from its own generator, seeded by (seed, frame index).

Frames are rendered one at a time, in 256 px tiles that each compute only the blur levels their
depths need, so memory is a few full-size float buffers (about 1.4 GiB peak RSS at 6000x4000)
whatever the frame count, and a 24 MP frame takes about 5-8 s on two cores.

Not modelled (as in the shared stacks): the texture is one layer draped over the depth map, so
nothing is hidden behind an occluder; and blur gathers: a pixel averages its neighbours whatever
their depth, so a defocused occluder neither spreads over a sharp background behind it nor turns
semi-transparent at its edge (no partial occlusion).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.synth_scene import TEXTURES, Scene, make_scene

VERSION = 1
"""Bumped whenever the output for given parameters changes (cached stacks are then redone)."""
GAMMA = 2.2
FOCUS_RANGE = (-0.02, 1.02)
BASE_LEVELS_PX = (0.0, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5, 7.5, 10.0, 13.5)
TILE = 256


@dataclass(frozen=True)
class SynthParams:
    """Generator parameters; the defaults are those of the shared stacks."""

    width: int = 1600
    height: int = 1067
    frames: int = 20
    texture: str = "mix"
    seed: int = 1
    max_blur: float = 0.008
    """Largest defocus blur radius, as a fraction of the width."""
    lens_sigma: float = 0.7
    """Constant Gaussian lens blur, px."""
    breathing: float = 0.03
    """Magnification gained from first to last frame."""
    shift: float = 3.0
    """Random shift per frame, up to this many px in x and y."""
    rotation: float = 0.2
    """Random rotation per frame, up to this many degrees."""
    flicker: float = 0.02
    """Random exposure gain per frame, 1 +- flicker."""
    noise: float = 1.0
    """Gaussian sensor noise, sigma in 8-bit units."""
    read_noise: float = 0.0007
    """Noise added in linear light before the tone curve (sigma, fraction of full scale): noisy
    shadows, as measured on the shared stacks; 0 for none."""
    quality: int = 95
    image_format: str = "jpg"
    """``jpg`` (as the shared stacks) or ``png`` (lossless, for tests)."""

    @property
    def blur_radius_max_px(self) -> float:
        return self.max_blur * self.width

    @property
    def pad(self) -> int:
        """Scene margin: covers the largest blur plus the largest shift and rotation offset."""
        reach = math.hypot(self.width, self.height) / 2 * math.radians(self.rotation)
        return max(40, math.ceil(self.blur_radius_max_px + self.shift + reach + 8))


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


@dataclass(frozen=True)
class FrameInfo:
    """One frame's entry in ``meta.json``."""

    index: int
    file: str
    focus_depth: float
    scale: float
    rot_deg: float
    tx: float
    ty: float
    gain: float
    M: list[list[float]]


def frame_plan(params: SynthParams, rng: np.random.Generator) -> list[FrameInfo]:
    """Focus, magnification, jitter and gain of every frame, with ``M`` (GT -> frame pixels)."""
    n = params.frames
    focus = np.linspace(*FOCUS_RANGE, n) if n > 1 else np.array([FOCUS_RANGE[0]])
    cx, cy = (params.width - 1) / 2, (params.height - 1) / 2
    plan = []
    for i in range(n):
        scale = 1.0 + params.breathing * (i / (n - 1) if n > 1 else 0.0)
        jitter = i > 0
        rot = rng.uniform(-params.rotation, params.rotation) if jitter else 0.0
        tx = rng.uniform(-params.shift, params.shift) if jitter else 0.0
        ty = rng.uniform(-params.shift, params.shift) if jitter else 0.0
        gain = 1.0 + rng.uniform(-params.flicker, params.flicker)
        a = np.radians(rot)
        lin = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        t = np.array([cx, cy]) - lin @ np.array([cx, cy]) + np.array([tx, ty])
        m = np.round(np.hstack([lin, t[:, None]]), 6)
        plan.append(
            FrameInfo(
                index=i,
                file=f"frame_{i:04d}.{params.image_format}",
                focus_depth=float(focus[i]),
                scale=float(scale),
                rot_deg=float(rot),
                tx=float(tx),
                ty=float(ty),
                gain=float(gain),
                M=(m + 0.0).tolist(),
            )
        )
    return plan


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


def padded_matrix(m: list[list[float]], pad: int) -> np.ndarray:
    """``M`` (GT pixel -> frame pixel) rewritten for a source padded by ``pad`` pixels."""
    a = np.asarray(m, np.float64)
    out = a.copy()
    out[:, 2] = a[:, 2] - a[:, :2] @ np.array([pad, pad], np.float64)
    return out


def _write_rgb(path: Path, rgb: np.ndarray, quality: int) -> None:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if path.suffix == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    else:  # fast, light compression: 24 MP at the default level takes seconds
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"cannot write {path}")


def generate(params: SynthParams, out: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Render a whole stack into ``out`` (created if needed) and return its metadata."""
    if params.texture not in TEXTURES:
        raise ValueError(f"unknown texture {params.texture!r}")
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(params.seed)
    pad = params.pad
    scene = make_scene(params.width, params.height, pad, params.texture, rng)
    plan = frame_plan(params, rng)
    linear = scene_linear(scene, params.lens_sigma)
    crop = (slice(pad, pad + params.height), slice(pad, pad + params.width))
    _write_rgb(out / "ground_truth.png", linear_to_srgb8(linear[crop]), 0)
    np.save(out / "depth.npy", np.ascontiguousarray(scene.depth[crop], dtype=np.float32))
    t_scene = time.perf_counter()
    radius_max = params.blur_radius_max_px
    levels = blur_levels(radius_max)
    renderer = DefocusRenderer(linear, scene.depth, levels, radius_max)
    del scene
    t_levels = time.perf_counter()
    if progress:
        progress(f"scene {t_scene - t_start:.1f} s, blur levels {t_levels - t_scene:.1f} s")
    for info in plan:
        t0 = time.perf_counter()
        defocused = renderer.render(info.focus_depth)
        frame_rng = np.random.default_rng([params.seed, info.index])
        rgb = encode_frame(
            defocused,
            padded_matrix(info.M, pad),
            (params.width, params.height),
            info.gain,
            params.noise,
            params.read_noise,
            frame_rng,
        )
        del defocused
        _write_rgb(out / info.file, rgb, params.quality)
        if progress:
            progress(f"{info.file} {time.perf_counter() - t0:.1f} s")
    meta = {
        "out": str(out),
        "generator": f"benchmarks.synth v{VERSION}",
        **{k: v for k, v in asdict(params).items()},
        "pad": pad,
        "gamma": GAMMA,
        "blur_radius_max_px": radius_max,
        "blur_levels_px": levels,
        "seconds": {
            "scene": round(t_scene - t_start, 1),
            "levels": round(t_levels - t_scene, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "frames": [asdict(f) for f in plan],
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.synth", description=__doc__.split("\n")[0]
    )
    p.add_argument("out", type=Path, help="output folder")
    d = SynthParams()
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--frames", type=int, default=d.frames)
    p.add_argument("--texture", choices=TEXTURES, default=d.texture)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-blur", type=float, default=d.max_blur, help="fraction of the width")
    p.add_argument("--lens-sigma", type=float, default=d.lens_sigma, help="px")
    p.add_argument("--breathing", type=float, default=d.breathing)
    p.add_argument("--shift", type=float, default=d.shift, help="px")
    p.add_argument("--rotation", type=float, default=d.rotation, help="degrees")
    p.add_argument("--flicker", type=float, default=d.flicker)
    p.add_argument("--noise", type=float, default=d.noise, help="sigma, 8-bit units")
    p.add_argument("--read-noise", type=float, default=d.read_noise, help="sigma, linear light")
    p.add_argument("--quality", type=int, default=d.quality, help="JPEG quality")
    p.add_argument("--format", dest="image_format", choices=("jpg", "png"), default="jpg")
    p.add_argument("-q", "--quiet", action="store_true")
    args = vars(p.parse_args(argv))
    out, quiet = args.pop("out"), args.pop("quiet")
    params = SynthParams(**args)
    meta = generate(params, out, progress=None if quiet else lambda s: print(s, file=sys.stderr))
    if not quiet:
        print(f"wrote {params.frames} frames to {out} in {meta['seconds']['total']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
