"""Focus peaking and display downscaling for the live view (pure numpy + OpenCV, no Textual).

Peaking marks the pixels whose local sharpness stands out, so the operator jogging the rail sees
where the focus plane lies. Sharpness is the absolute Laplacian of the luminance after a small
Gaussian blur (so single-pixel sensor noise does not peak). The threshold comes from the frame
itself, never from an absolute level, so dim low-contrast microscope frames and contrasty DSLR
frames both work: a pixel is marked when its sharpness is

* well above the noise (a multiple of the noise sigma, read in the frame's quietest blocks), so a
  flat noisy frame gets almost no marks,
* within reach of the frame's sharpest detail (a fraction of a high percentile), so only the
  in-focus part of a frame with both sharp and blurred areas is marked, and
* among the top few per cent of the frame, so a sharp texture does not drown in colour.

The marks are dilated slightly; :func:`peaked_preview` shrinks the mask to display size keeping
a mark wherever it covers enough of a display pixel, so thin edges survive a downscale to
terminal resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

MAGENTA = (255, 0, 255)

_BLUR_SIGMA = 1.0  # px; enough to flatten 8-bit sensor noise, small enough to keep fine focus
_NOISE_K = 6.0  # marks start this many noise sigmas above zero
_PEAK_PERCENTILE = 99.9  # the frame's "sharpest detail", robust to a few hot pixels
_PEAK_FRACTION = 0.3  # marks reach down to this fraction of the sharpest detail
_MAX_MARKED = 0.06  # at most this fraction of pixels is marked before dilation
_STATS_PIXELS = 100_000  # peak statistics come from a strided sample of about this many pixels
_QUIET_PERCENTILE = 10.0  # the noise is read in the quietest tenth of the frame's blocks


def _check_uint8(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"expected an 8-bit mono (H x W) or colour (H x W x 3) image, got {image.dtype} "
            f"{image.shape}; scale other depths to uint8 first"
        )
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {image.shape[2]}")


def as_rgb(image: np.ndarray) -> np.ndarray:
    """The image as C-contiguous H x W x 3 uint8 (mono is repeated into three channels)."""
    _check_uint8(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)


def luminance(image: np.ndarray) -> np.ndarray:
    """Luminance (Rec. 601 weights) as float32 H x W, in 8-bit units."""
    _check_uint8(image)
    if image.ndim == 3 and image.shape[2] == 3:
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    else:
        grey = image.reshape(image.shape[:2])
    return grey.astype(np.float32)


def sharpness(grey: np.ndarray) -> np.ndarray:
    """Local sharpness: |Laplacian| of the slightly blurred luminance (float32, same shape)."""
    blurred = cv2.GaussianBlur(grey, (0, 0), _BLUR_SIGMA)
    return np.abs(cv2.Laplacian(blurred, cv2.CV_32F, ksize=3))


def _sample(values: np.ndarray) -> np.ndarray:
    # Percentiles of a full 24 MP map cost ~0.3 s; a strided sample gives the same statistics.
    step = max(1, int(np.sqrt(values.size / _STATS_PIXELS)))
    return values[::step, ::step].ravel()


def noise_sigma(sharp: np.ndarray) -> float:
    """The noise level of a sharpness map, as the sigma of the Laplacian it came from.

    Noise is the same all over the frame and detail is not, so the quietest blocks hold noise
    alone: the low percentile of the block means of |L| (mean |x| = 0.798 sigma for Gaussian
    noise). A frame-wide median would be dominated by a dense texture instead.
    """
    h, w = sharp.shape
    block = max(2, min(16, h // 8, w // 8))
    grid = (max(1, w // block), max(1, h // block))
    means = cv2.resize(sharp, grid, interpolation=cv2.INTER_AREA)
    return float(np.percentile(means, _QUIET_PERCENTILE)) / 0.798


def sharpness_threshold(sharp: np.ndarray, strength: float = 1.0) -> float:
    """The sharpness above which a pixel is marked, from the map's own statistics.

    ``strength`` > 1 marks more (all three limits are divided by it), < 1 fewer.
    """
    if strength <= 0:
        raise ValueError(f"strength must be > 0, got {strength}")
    sample = _sample(sharp)
    n = sample.size
    ranks = [int(n * (1.0 - _MAX_MARKED)), min(n - 1, int(n * _PEAK_PERCENTILE / 100.0))]
    cap, peak = np.partition(sample, ranks)[ranks]
    limit = max(_NOISE_K * noise_sigma(sharp), _PEAK_FRACTION * float(peak), float(cap))
    # A perfectly flat frame has no detail at all; nothing may be marked there.
    return max(limit / strength, 1e-3)


def peaking_mask(image: np.ndarray, *, strength: float = 1.0, dilate: int = 1) -> np.ndarray:
    """Boolean H x W mask of the sharpest pixels of an 8-bit mono or RGB frame.

    ``dilate`` px are added around each mark so thin edges stay visible.
    """
    sharp = sharpness(luminance(image))
    mask = (sharp > sharpness_threshold(sharp, strength)).astype(np.uint8)
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        mask = cv2.dilate(mask, kernel)
    return mask.astype(bool)


def overlay(
    image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = MAGENTA
) -> np.ndarray:
    """A new RGB copy of ``image`` with the ``mask`` pixels painted in ``colour``."""
    out = as_rgb(image).copy()
    if mask.shape != out.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the image {out.shape[:2]}")
    out[mask] = np.asarray(colour, np.uint8)
    return out


def focus_peaking(
    rgb8: np.ndarray, *, strength: float = 1.0, colour: tuple[int, int, int] = MAGENTA
) -> np.ndarray:
    """A copy of ``rgb8`` (H x W x 3 or mono H x W, uint8) with its sharpest edges in ``colour``.

    The result is always H x W x 3, since the marks are coloured.
    """
    return overlay(rgb8, peaking_mask(rgb8, strength=strength), colour)


def fit_size(width: int, height: int, max_w: int, max_h: int) -> tuple[int, int]:
    """The (width, height) that fits ``max_w`` x ``max_h`` keeping the aspect; never larger."""
    if max_w < 1 or max_h < 1:
        raise ValueError(f"the box must be at least 1 x 1, got {max_w} x {max_h}")
    scale = min(1.0, max_w / width, max_h / height)
    return max(1, min(max_w, round(width * scale))), max(1, min(max_h, round(height * scale)))


def _halve(image: np.ndarray) -> np.ndarray:
    # INTER_AREA at exactly 2:1 is a cheap 2x2 mean (24 MP to 6 MP: ~4 ms); at other ratios the
    # same call is many times slower (24 MP straight to 160 px: ~70 ms on two cores).
    h, w = image.shape[:2]
    even = image[: h - h % 2, : w - w % 2]
    return cv2.resize(even, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _keep_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    # cv2 drops a trailing single channel; keep the caller's layout.
    return out.reshape((*out.shape[:2], *like.shape[2:]))


def halve_to_fit(rgb8: np.ndarray, max_w: int, max_h: int) -> np.ndarray:
    """``rgb8`` halved (2x2 means) until it fits ``max_w`` x ``max_h``: cheap, no exact size.

    An image that already fits is returned as it is (not copied).
    """
    out = rgb8
    while out.shape[1] > max_w or out.shape[0] > max_h:
        if min(out.shape[:2]) < 2:
            return fit(rgb8, max_w, max_h)
        out = _halve(out)
    return _keep_channels(out, rgb8)


def fit(rgb8: np.ndarray, max_w: int, max_h: int) -> np.ndarray:
    """``rgb8`` downscaled (area averaging) to fit ``max_w`` x ``max_h``, keeping the aspect.

    Never enlarges; an image that already fits is returned as it is (not copied).
    """
    h, w = rgb8.shape[:2]
    new_w, new_h = fit_size(w, h, max_w, max_h)
    if (new_w, new_h) == (w, h):
        return rgb8
    out = rgb8
    while out.shape[1] // 2 >= new_w and out.shape[0] // 2 >= new_h:
        out = _halve(out)
    out = cv2.resize(out, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return _keep_channels(out, rgb8)


def shrink_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """``mask`` at ``width`` x ``height``: a pixel is set when enough of its area was set.

    Plain averaging would fade a thin edge mark to nothing at a 10x downscale, and "any part set"
    would paint whole textured areas; "enough" is about half the width of a dilated 3 px line
    across the pixel, so a line stays a line at every scale.
    """
    if mask.shape == (height, width):
        return mask
    scale = max(mask.shape[1] / width, mask.shape[0] / height)
    need = min(0.5, 1.5 / scale)
    area = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return area >= need


def peaked_preview(
    rgb8: np.ndarray,
    max_w: int,
    max_h: int,
    *,
    strength: float = 1.0,
    colour: tuple[int, int, int] = MAGENTA,
    dim: float = 1.0,
) -> np.ndarray:
    """``rgb8`` fitted to ``max_w`` x ``max_h`` with its peaking marks (found at the input's
    resolution, where the focus differences are) carried down to the small image.

    ``dim`` < 1 darkens the picture under the marks, so white marks still stand out where the
    display has no colour. Always H x W x 3.
    """
    mask = peaking_mask(rgb8, strength=strength)
    small = fit(rgb8, max_w, max_h)
    if dim != 1.0:
        small = cv2.convertScaleAbs(small, alpha=dim)
    h, w = small.shape[:2]
    return overlay(small, shrink_mask(mask, w, h), colour)
