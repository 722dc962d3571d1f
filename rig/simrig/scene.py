"""The scene behind the synthetic focus stacks: an all-in-focus texture and a depth map.

The shared stacks (``../shared/data/synthetic``) were made from one flat texture draped over a depth
map, and this module rebuilds that model:

* **Depth** (0 near, 1 far): a smooth background (a tilted plane plus a few broad Gaussian bumps and
  some low-frequency noise, rescaled to about [0.2..0.35, 0.95..1] and skewed towards the near
  end by a power 1.1..1.6, median about 0.5 as in the shared maps) with hard-edged occluders in
  front of it: two or three polygons, each a tilted plane at depth 0.12..0.45, and one disc at depth
  0 drawn last (nearest). Depth edges are not anti-aliased, as in the shared ``depth.npy``.
* **Texture**: independent of the depth (the texture runs straight across depth edges, as in the
  shared stacks), one of

  - ``procedural``: a cloudy colour field (multi-octave value noise), two or three layers of
    camouflage-like patches (thresholded noise, rough edges), filled discs, rings, zig-zag lines
    and text, plus pixel-scale specks, hairlines and grain;
  - ``photos``: a grid of tiles cut from the sample photographs bundled inside the installed
    scikit-image wheel (astronaut, cat, coffee, Hubble deep field, retina, rocket, ...; the same
    pictures the shared ``s2_photos`` stack shows). They are read straight from the package folder,
    never downloaded. Without scikit-image the tiles fall back to ``leaves``;
  - ``leaves``: a "dead leaves" image (occluding discs with a power-law size distribution, radius
    density ~ r^-3, in a few related hues), the classic model of natural-image statistics (scale
    invariance, 1/f spectrum, sharp occlusion edges), with smooth shading and grain: a
    natural-looking texture made from nothing;
  - ``mix``: a checkerboard of photo tiles and small procedural tiles (like ``s1_mix``).

Layout sizes (shapes, patches, photo tiles) are given for the shared stacks' 1067-pixel height and
scale with the canvas, while specks, hairlines and grain stay at pixel scale, so a 24 MP scene still
has detail down to single pixels. Photo tiles stay near the photos' own resolution (about 640 px),
so a larger canvas holds more of them rather than blurrier ones.
"""

from __future__ import annotations

import importlib.util
import string
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REFERENCE_HEIGHT = 1067
"""Canvas height for which the layout sizes below are given (the shared stacks' height)."""

TEXTURES = ("mix", "photos", "procedural", "leaves", "tissue")

PHOTO_FILES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "color.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
"""Colour photographs shipped inside the scikit-image wheel (``skimage/data``)."""

PHOTO_TILE_PX = 640
"""Target photo tile size: close to the photos' own resolution, so tiles are not upscaled much."""


@dataclass(frozen=True)
class Scene:
    """A padded scene: ``rgb`` (uint8 RGB) and ``depth`` (float32, 0 near .. 1 far), same size.

    The ground truth is ``rgb[pad:pad+height, pad:pad+width]``; the pad lets blur and warp read
    real content beyond the frame edges.
    """

    rgb: np.ndarray
    depth: np.ndarray
    pad: int


def make_scene(width: int, height: int, pad: int, texture: str, rng: np.random.Generator) -> Scene:
    """Build the texture and depth map for a ``width`` x ``height`` frame, padded by ``pad`` px."""
    if texture not in TEXTURES:
        raise ValueError(f"unknown texture {texture!r}; choose one of {', '.join(TEXTURES)}")
    h, w = height + 2 * pad, width + 2 * pad
    if texture == "procedural":
        rgb = procedural_texture(h, w, rng)
    elif texture == "leaves":
        rgb = leaves_texture(h, w, rng)
    elif texture == "tissue":
        rgb = tissue_texture(h, w, rng)
    else:
        rgb = tiled_texture(h, w, rng, with_procedural=texture == "mix")
    depth = depth_map(width, height, pad, rng)
    return Scene(rgb=rgb, depth=depth, pad=pad)


# --------------------------------------------------------------------------------------- noise


def fbm(
    h: int, w: int, rng: np.random.Generator, sizes: list[float], channels: int = 1
) -> np.ndarray:
    """Multi-octave value noise: for each feature size L (px), Gaussian noise on a grid of pitch L,
    upsampled bicubically, weighted by L**0.5. Returns float32 (h, w[, channels]), zero mean, unit
    standard deviation."""
    acc = np.zeros((h, w, channels) if channels > 1 else (h, w), np.float32)
    for size in sizes:
        size = max(float(size), 1.0)
        gh, gw = max(int(h / size) + 3, 4), max(int(w / size) + 3, 4)
        grid = rng.standard_normal((gh, gw, channels) if channels > 1 else (gh, gw))
        layer = cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        acc += np.float32(size**0.5) * layer.reshape(acc.shape)
    acc -= acc.mean()
    acc /= max(float(acc.std()), 1e-6)
    return acc


def _random_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.45, 1.0)) -> np.ndarray:
    """A random RGB colour (float32, 0..255) with saturation in ``sat`` and value 0.45..1."""
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(0.45, 1.0) * 255]]], np.uint8
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _grain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel-scale luminance grain (float32, unit std): white noise blurred by 0.6 px."""
    g = rng.standard_normal((h, w), dtype=np.float32)
    g = cv2.GaussianBlur(g, (0, 0), 0.6)
    g /= max(float(g.std()), 1e-6)
    return g


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- procedural texture


def procedural_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Cloudy colour field, camouflage patches, discs, rings, zig-zags, text, specks and grain."""
    u = max(min(h, w) / REFERENCE_HEIGHT, 0.2)
    grain = _grain(h, w, rng)

    # cloudy colour background: three noise fields mixed into random colour directions
    cloud = fbm(h, w, rng, [u * s for s in (200, 100, 50, 25, 12)] + [4.0, 2.0], channels=3)
    mix = rng.normal(0.0, 1.0, (3, 3)).astype(np.float32)
    mix /= np.linalg.norm(mix, axis=1, keepdims=True)
    img = cloud.reshape(-1, 3) @ (mix * 42.0)
    img = img.reshape(h, w, 3)
    img += rng.uniform(90, 170, 3).astype(np.float32)
    img += 5.0 * grain[..., None]

    # camouflage patches: thresholded noise with rough (multi-octave) edges
    for _ in range(int(rng.integers(2, 4))):
        field = fbm(h, w, rng, [u * s for s in (140, 70, 35, 17, 8)] + [4.0])
        level = np.quantile(field[::7, ::7], rng.uniform(0.6, 0.82))
        mask = field > level
        colour = _random_colour(rng)
        shift = int(rng.integers(1, 50))
        patch = colour + 9.0 * np.roll(grain, shift, axis=1)[..., None]
        img[mask] = patch[mask]
        del field, mask, patch

    canvas = _to_uint8(img)
    del img
    _draw_shapes(canvas, rng, u)
    _draw_fine_detail(canvas, rng)
    out = canvas.astype(np.float32)
    out += 3.0 * grain[..., None]
    return _to_uint8(out)


def _draw_shapes(canvas: np.ndarray, rng: np.random.Generator, u: float) -> None:
    """Discs, rings, zig-zag lines and text, sized in layout units ``u`` (in place)."""
    h, w = canvas.shape[:2]
    density = h * w / (u * u * 1600 * REFERENCE_HEIGHT)

    def colour() -> tuple[int, ...]:
        return tuple(int(c) for c in _random_colour(rng))

    def point() -> tuple[int, int]:
        return int(rng.uniform(0, w)), int(rng.uniform(0, h))

    for _ in range(int(110 * density)):
        r = max(1, round(u * np.exp(rng.uniform(np.log(3), np.log(40)))))
        cv2.circle(canvas, point(), r, colour(), -1, cv2.LINE_AA)
    for _ in range(int(35 * density)):
        r = max(2, round(u * rng.uniform(8, 40)))
        t = max(1, round(u * rng.uniform(1, 3.5)))
        cv2.circle(canvas, point(), r, colour(), t, cv2.LINE_AA)
    for _ in range(int(50 * density)):
        n = int(rng.integers(3, 9))
        steps = rng.normal(0, u * 22, (n, 2)).cumsum(axis=0) + np.array(point())
        t = max(1, round(u * rng.uniform(0.7, 3)))
        cv2.polylines(canvas, [steps.astype(np.int32)], False, colour(), t, cv2.LINE_AA)
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)
    for _ in range(int(18 * density)):
        text = "".join(rng.choice(list(string.ascii_uppercase), int(rng.integers(4, 13))))
        scale = u * rng.uniform(0.45, 1.3)
        t = max(1, round(scale * 1.8))
        dark = tuple(int(c * 0.35) for c in _random_colour(rng))
        font = fonts[int(rng.integers(0, 2))]
        cv2.putText(canvas, text, point(), font, scale, dark, t, cv2.LINE_AA)


def _draw_fine_detail(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Pixel-scale specks (radius 1-2 px) and 1 px hairlines, density fixed per pixel (in place)."""
    h, w = canvas.shape[:2]
    for _ in range(h * w // 2500):
        c = tuple(int(v) for v in _random_colour(rng, sat=(0.0, 1.0)))
        xy = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.circle(canvas, xy, int(rng.integers(1, 3)), c, -1, cv2.LINE_AA)
    for _ in range(h * w // 40000):
        c = tuple(int(v) for v in _random_colour(rng, sat=(0.0, 1.0)))
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        ang, length = rng.uniform(0, np.pi), rng.uniform(10, 60)
        x1, y1 = x0 + length * np.cos(ang), y0 + length * np.sin(ang)
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), c, 1, cv2.LINE_AA)


# ------------------------------------------------------------------------- dead leaves texture


def leaves_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Dead-leaves image: discs with radius density ~ r^-3 (2 px .. 200 layout units) dropped on
    top of each other until the canvas is covered about five times over, in a few related hues
    (as a natural scene's colours are), then shaded and grained."""
    u = max(min(h, w) / REFERENCE_HEIGHT, 0.2)
    rmin, rmax = 2.0, max(200.0 * u, 8.0)
    mean_area = 2.0 * np.pi * rmin**2 * np.log(rmax / rmin)
    n = int(5.0 * h * w / mean_area)
    a, b = rmin**-2, rmax**-2
    radii = (a - rng.random(n) * (a - b)) ** -0.5
    xs, ys = rng.uniform(-rmax / 2, w + rmax / 2, n), rng.uniform(-rmax / 2, h + rmax / 2, n)
    base_hues = rng.uniform(0, 180, 3)
    hsv = np.stack(
        [
            (base_hues[rng.integers(0, 3, n)] + rng.normal(0, 8, n)) % 180,
            rng.uniform(0.15, 0.75, n) * 255,
            rng.uniform(0.2, 0.95, n) * 255,
        ],
        axis=1,
    ).astype(np.uint8)
    colours = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0].astype(int).tolist()
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[:] = colours[0]
    for x, y, r, c in zip(xs, ys, radii, colours, strict=True):
        cv2.circle(canvas, (int(x), int(y)), round(r), c, -1, cv2.LINE_AA)
    shade = fbm(h, w, rng, [u * s for s in (300, 150, 75)])
    out = canvas.astype(np.float32) * (1.0 + 0.18 * shade)[..., None]
    out += 4.0 * _grain(h, w, rng)[..., None]
    return _to_uint8(out)


# ----------------------------------------------------------------------------- stained tissue


def tissue_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A stained tissue section under transmitted light (H&E-like): pale, low-contrast pink
    stroma with fibrous streaks, clear gaps, and many small dark-violet nuclei with grainy
    chromatin. Most of the image is soft and faint, as microscope specimens are; the detail that
    tells focus is small (nuclei of 3-8 layout px, 1-2 px chromatin grain)."""
    u = max(min(h, w) / REFERENCE_HEIGHT, 0.2)
    # stroma density: smooth cloud plus streaks along one main direction (stretched noise)
    cloud = fbm(h, w, rng, [u * s for s in (160, 80, 40, 20)])
    sh, sw = max(h // 6, 4), max(w, 4)
    streaks = fbm(sh, sw, rng, [u * s for s in (30, 12, 5)] + [2.0])
    streaks = cv2.resize(streaks, (w, h), interpolation=cv2.INTER_CUBIC)
    centre = (w / 2, h / 2)
    rot = cv2.getRotationMatrix2D(centre, float(rng.uniform(0, 180)), 1.0)
    streaks = cv2.warpAffine(streaks, rot, (w, h), borderMode=cv2.BORDER_REFLECT)
    density = np.clip(0.45 + 0.18 * cloud + 0.12 * streaks, 0.0, 1.0)
    gaps = fbm(h, w, rng, [u * s for s in (90, 45, 22)]) > 1.3  # lumens and tears: no tissue
    density[gaps] *= 0.15
    # Beer-Lambert-like colour: eosin absorbs green, so dense stroma turns pink
    paper = np.array([246, 238, 242], np.float32)
    eosin = np.array([0.06, 0.55, 0.25], np.float32)
    img = paper * np.exp(-density[..., None] * eosin * 1.6)
    # nuclei: haematoxylin (violet) ellipses with grainy chromatin
    canvas = np.zeros((h, w), np.float32)
    count = int(h * w / (900 * u * u))
    for _ in range(count):
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        a = max(1, round(u * rng.uniform(3, 8)))
        b = max(1, round(a * rng.uniform(0.5, 1.0)))
        strength = float(rng.uniform(0.5, 1.0))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(canvas, (x, y), (a, b), angle, 0, 360, strength, -1, cv2.LINE_AA)
    chromatin = 1.0 + 0.35 * _grain(h, w, rng)
    nuclei = np.clip(canvas * chromatin, 0.0, 1.5)
    haem = np.array([0.75, 0.95, 0.35], np.float32)
    img *= np.exp(-nuclei[..., None] * haem * 1.3)
    img += 2.0 * _grain(h, w, rng)[..., None]
    return _to_uint8(img)


# ------------------------------------------------------------------------------ photo tiles


def photo_paths() -> list[Path]:
    """The bundled scikit-image sample photos found on disk (empty without scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [folder / name for name in PHOTO_FILES if (folder / name).is_file()]


def _photo_tile(path: Path, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """``path`` scaled to cover h x w, randomly mirrored and cropped (uint8 RGB)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read sample photo {path}")
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    scale = max(h / img.shape[0], w / img.shape[1])
    size = (max(w, round(img.shape[1] * scale)), max(h, round(img.shape[0] * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    img = cv2.resize(np.ascontiguousarray(img), size, interpolation=interp)
    y0 = int(rng.integers(0, img.shape[0] - h + 1))
    x0 = int(rng.integers(0, img.shape[1] - w + 1))
    return img[y0 : y0 + h, x0 : x0 + w]


def tiled_texture(h: int, w: int, rng: np.random.Generator, with_procedural: bool) -> np.ndarray:
    """A grid of photo tiles (about ``PHOTO_TILE_PX``, at least 2 rows), alternating with small
    procedural tiles in a checkerboard when ``with_procedural``. Falls back to dead-leaves tiles
    when no sample photos are installed."""
    rows = max(2, round(h / PHOTO_TILE_PX))
    cols = max(1, round(w / (h / rows)))
    ys = np.linspace(0, h, rows + 1).round().astype(int)
    xs = np.linspace(0, w, cols + 1).round().astype(int)
    photos = photo_paths()
    used: dict[tuple[int, int], int] = {}
    canvas = np.empty((h, w, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            th, tw = ys[r + 1] - ys[r], xs[c + 1] - xs[c]
            if with_procedural and (r + c) % 2 == 1:
                tile = procedural_texture(th, tw, rng)
            elif photos:
                # a random photo, not one of the (up to 8) tiles nearest above or to the left,
                # so the layout has no period an aligner could lock onto
                near = {
                    used.get((r + dr, c + dc)) for dr in (-2, -1, 0) for dc in (-2, -1, 0, 1, 2)
                }
                choices = [i for i in range(len(photos)) if i not in near] or list(
                    range(len(photos))
                )
                pick = choices[int(rng.integers(0, len(choices)))]
                used[(r, c)] = pick
                tile = _photo_tile(photos[pick], th, tw, rng)
            else:
                tile = leaves_texture(th, tw, rng)
            canvas[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = tile
    return canvas


# -------------------------------------------------------------------------------- depth map


def depth_map(width: int, height: int, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Padded depth map (float32, 0 near .. 1 far): smooth background plus hard-edged occluders."""
    h, w = height + 2 * pad, width + 2 * pad
    # smooth background on a coarse grid (1/8 size), upsampled
    sh, sw = max(h // 8, 8), max(w // 8, 8)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    gx = (xx + 0.5) * (w / sw) - pad  # frame-pixel coordinates of the coarse grid
    gy = (yy + 0.5) * (h / sh) - pad
    m = float(min(width, height))
    theta = rng.uniform(0, 2 * np.pi)
    bg = rng.uniform(0.6, 1.2) * (np.cos(theta) * gx + np.sin(theta) * gy) / m
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(0.12, 0.35) * m
        bg += rng.uniform(-0.6, 0.6) * np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma**2))
    bg += 0.08 * fbm(sh, sw, rng, [sh / 2, sh / 4])
    inner = bg[pad * sh // h : (pad + height) * sh // h, pad * sw // w : (pad + width) * sw // w]
    lo, hi = float(inner.min()), float(inner.max())
    target_lo, target_hi = rng.uniform(0.2, 0.35), rng.uniform(0.95, 1.0)
    unit = np.clip((bg - lo) / max(hi - lo, 1e-6), 0, None) ** rng.uniform(1.1, 1.6)
    bg = target_lo + unit * (target_hi - target_lo)  # skewed near: median depth about 0.5
    depth = cv2.resize(bg.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)

    # occluders: tilted polygons (far to near), then a disc at depth 0
    polys = []
    for _ in range(int(rng.integers(2, 4))):
        centre = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
        radius = rng.uniform(0.12, 0.22) * m
        n = int(rng.choice([3, 4]))
        step = 2 * np.pi / n
        angles = rng.uniform(0, 2 * np.pi) + step * (np.arange(n) + rng.uniform(-0.3, 0.3, n))
        pts = centre + (radius * rng.uniform(0.6, 1.0, n))[:, None] * np.stack(
            [np.cos(angles), np.sin(angles)], axis=1
        )
        d0 = rng.uniform(0.12, 0.45)
        phi = rng.uniform(0, 2 * np.pi)
        slope = rng.uniform(0.0, 0.25) / radius
        polys.append((d0, centre, pts, phi, slope))
    for d0, centre, pts, phi, slope in sorted(polys, key=lambda p: -p[0]):
        _paint_plane(depth, pts + pad, centre + pad, d0, phi, slope)
    centre = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height]) + pad
    radius = rng.uniform(0.09, 0.13) * m
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (round(centre[0]), round(centre[1])), round(radius), 1, -1, cv2.LINE_8)
    depth[mask > 0] = 0.0
    return np.clip(depth, 0.0, 1.0)


def _paint_plane(
    depth: np.ndarray,
    pts: np.ndarray,
    centre: np.ndarray,
    d0: float,
    phi: float,
    slope: float,
) -> None:
    """Overwrite the polygon ``pts`` in ``depth`` with the plane d0 + slope * (p - centre) . dir."""
    h, w = depth.shape
    x0, y0 = np.floor(pts.min(axis=0)).astype(int).clip(0, [w, h])
    x1, y1 = (np.ceil(pts.max(axis=0)).astype(int) + 1).clip(0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(pts - [x0, y0]).astype(np.int32)], 1, cv2.LINE_8)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    plane = d0 + slope * ((xx - centre[0]) * np.cos(phi) + (yy - centre[1]) * np.sin(phi))
    region = depth[y0:y1, x0:x1]
    region[mask > 0] = np.clip(plane, 0.02, 0.95)[mask > 0]
