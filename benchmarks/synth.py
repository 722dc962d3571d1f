"""Synthetic focus stacks with known all-in-focus ground truth (same model as the shared stacks).

``python -m benchmarks.synth OUT --width 6000 --height 4000 --frames 30 --texture mix --seed 1``
writes ``frame_0000.jpg`` ..., ``ground_truth.png``, ``depth.npy`` and ``meta.json`` (the format of
``../shared/data/synthetic/*``).

Image model (fitted to the shared stacks; scene: ``rig/simrig/scene.py``;
optics: ``rig/simrig/render.py``, both shared with ``--simulate``):

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
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from rig.simrig.render import (
    GAMMA,
    MONO_WEIGHTS,
    DefocusRenderer,
    blur_levels,
    encode_frame,
    encode_mono,
    linear_to_srgb8,
    local_motion,
    padded_matrix,
    scene_linear,
)
from rig.simrig.scene import TEXTURES, make_scene

VERSION = 1
"""Bumped whenever the output for given parameters changes (cached stacks are then redone)."""
FOCUS_RANGE = (-0.02, 1.02)


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
    """``jpg`` (as the shared stacks) or ``png`` (lossless, for tests); mono frames are TIFF."""
    sensor: str = "rgb8"
    """``rgb8``: a colour camera (sRGB tone curve, 8 bits, ``noise`` / ``read_noise``);
    ``mono12``: a mono scientific camera, linear 12-bit values in 16-bit TIFFs (``mono_fill``,
    ``mono_read_noise``, shot noise)."""
    mono_fill: float = 0.35
    """mono12: the share of the 12-bit range a white scene point reaches (a dim specimen)."""
    mono_read_noise: float = 3.0
    """mono12: read noise, sigma in DN."""
    first_gain: float | None = None
    """The first frame's exposure gain instead of a random one (a dark first frame: 0.85)."""
    motion: float = 0.0
    """A round part of the specimen creeps this many px by the last frame (0: none)."""

    @property
    def blur_radius_max_px(self) -> float:
        return self.max_blur * self.width

    @property
    def pad(self) -> int:
        """Scene margin: covers the largest blur plus the largest shift and rotation offset."""
        reach = math.hypot(self.width, self.height) / 2 * math.radians(self.rotation)
        return max(40, math.ceil(self.blur_radius_max_px + self.shift + reach + 8))


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
    suffix = "tif" if params.sensor == "mono12" else params.image_format
    plan = []
    for i in range(n):
        scale = 1.0 + params.breathing * (i / (n - 1) if n > 1 else 0.0)
        jitter = i > 0
        rot = rng.uniform(-params.rotation, params.rotation) if jitter else 0.0
        tx = rng.uniform(-params.shift, params.shift) if jitter else 0.0
        ty = rng.uniform(-params.shift, params.shift) if jitter else 0.0
        gain = 1.0 + rng.uniform(-params.flicker, params.flicker)
        if i == 0 and params.first_gain is not None:
            gain = params.first_gain
        a = np.radians(rot)
        lin = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        t = np.array([cx, cy]) - lin @ np.array([cx, cy]) + np.array([tx, ty])
        m = np.round(np.hstack([lin, t[:, None]]), 6)
        plan.append(
            FrameInfo(
                index=i,
                file=f"frame_{i:04d}.{suffix}",
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


def _write_rgb(path: Path, rgb: np.ndarray, quality: int) -> None:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if path.suffix == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    else:  # fast, light compression: 24 MP at the default level takes seconds
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"cannot write {path}")


MONO_BITS = 12
SENSORS = ("rgb8", "mono12")


def _write_mono(path: Path, dn: np.ndarray) -> None:
    if path.suffix == ".png":
        if not cv2.imwrite(str(path), dn):
            raise OSError(f"cannot write {path}")
    else:  # uncompressed, as scientific cameras write them
        tifffile.imwrite(path, dn, photometric="minisblack")


def _motion_path(
    params: SynthParams, rng: np.random.Generator
) -> tuple[tuple[float, float], float, tuple[float, float]]:
    """(centre in frame px, radius px, full shift dx/dy px) of the creeping region."""
    w, h = params.width, params.height
    centre = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
    angle = rng.uniform(0, 2 * np.pi)
    shift = (params.motion * np.cos(angle), params.motion * np.sin(angle))
    return centre, 0.12 * min(w, h), shift


def generate(params: SynthParams, out: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Render a whole stack into ``out`` (created if needed) and return its metadata."""
    if params.texture not in TEXTURES:
        raise ValueError(f"unknown texture {params.texture!r}")
    if params.sensor not in SENSORS:
        raise ValueError(f"unknown sensor {params.sensor!r}")
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(params.seed)
    pad = params.pad
    scene = make_scene(params.width, params.height, pad, params.texture, rng)
    plan = frame_plan(params, rng)
    motion = _motion_path(params, rng) if params.motion > 0 else None
    linear = scene_linear(scene, params.lens_sigma)
    crop = (slice(pad, pad + params.height), slice(pad, pad + params.width))
    mono = params.sensor == "mono12"
    if mono:  # the noiseless mono frame in perfect focus, in the frames' DN
        white = params.mono_fill * (2**MONO_BITS - 1)
        luma = cv2.transform(np.ascontiguousarray(linear[crop]), MONO_WEIGHTS[None, :]) * white
        _write_mono(out / "ground_truth.png", np.clip(np.rint(luma), 0, 65535).astype(np.uint16))
    else:
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
        if motion is not None:
            (cx, cy), radius, (dx, dy) = motion
            t = info.index / max(params.frames - 1, 1)
            defocused = local_motion(defocused, (cx + pad, cy + pad), radius, (t * dx, t * dy))
        frame_rng = np.random.default_rng([params.seed, info.index])
        matrix, size = padded_matrix(info.M, pad), (params.width, params.height)
        if mono:
            dn = encode_mono(
                defocused, matrix, size, info.gain, MONO_BITS, params.mono_fill,
                params.mono_read_noise, frame_rng,
            )  # fmt: skip
            _write_mono(out / info.file, dn)
        else:
            rgb = encode_frame(
                defocused, matrix, size, info.gain, params.noise, params.read_noise, frame_rng
            )
            _write_rgb(out / info.file, rgb, params.quality)
        del defocused
        if progress:
            progress(f"{info.file} {time.perf_counter() - t0:.1f} s")
    meta = {
        "out": str(out),
        "generator": f"benchmarks.synth v{VERSION}",
        **{k: v for k, v in asdict(params).items()},
        "pad": pad,
        "gamma": 1.0 if mono else GAMMA,
        "white_dn": params.mono_fill * (2**MONO_BITS - 1) if mono else None,
        "motion_region": None
        if motion is None
        else {"centre": list(motion[0]), "radius": motion[1], "shift": list(motion[2])},
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
    p.add_argument("--sensor", choices=SENSORS, default=d.sensor)
    p.add_argument("--mono-fill", type=float, default=d.mono_fill, help="mono12: white level")
    p.add_argument("--mono-read-noise", type=float, default=d.mono_read_noise, help="mono12: DN")
    p.add_argument("--first-gain", type=float, default=d.first_gain, help="frame 0's exposure")
    p.add_argument("--motion", type=float, default=d.motion, help="px a region creeps by")
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
