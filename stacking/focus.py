"""Focus measures: how sharp each part of a frame is.

Every measure returns an amplitude-like map (same units as the image gradient, not squared),
so one softmax sharpness setting means the same for all of them. The window is applied at a
reduced resolution: the map is smooth by construction, and a 24 MP frame would otherwise spend
most of its time in one large blur.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stacking import guided, pyramid
from stacking.settings import MEASURES

FOCUS_FLOOR = 1e-6  # keeps log(focus) finite on perfectly flat areas


def default_window(shape: tuple[int, ...]) -> float:
    """Window diameter in pixels that suits the frame size (about 1.6 % of the diagonal).

    Defocus blur and detail both scale with resolution, so the window does too.
    """
    h, w = shape[:2]
    return max(7.0, 0.016 * math.hypot(w, h))


def reduce_gray(gray: np.ndarray, scale: float, detail_side: int) -> tuple[np.ndarray, float]:
    """Halve ``gray`` (any dtype) until its longest side is at most ``detail_side``.

    Returns the float32 image times ``scale`` and the size factor applied. At 24 MP the
    finest pixel-level detail is mostly noise and compression; half size measures focus just
    as well at a quarter of the cost.
    """
    factor = 1.0
    while detail_side and max(gray.shape[:2]) > detail_side:
        gray = cv2.pyrDown(gray)
        factor /= 2
    return cv2.multiply(gray, scale, dtype=cv2.CV_32F), factor


def detail(gray: np.ndarray, measure: str) -> np.ndarray:
    """Per-pixel detail of a float32 grayscale image, before windowing."""
    if measure == "laplacian":
        lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=1)
        # The Laplacian has zero local mean, so the windowed mean of L^2 is its variance.
        return cv2.multiply(lap, lap)
    if measure == "tenengrad":
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        return cv2.add(cv2.multiply(gx, gx), cv2.multiply(gy, gy))
    if measure == "sml":
        kx = np.array([[-1, 2, -1]], np.float32)
        mx = cv2.absdiff(cv2.filter2D(gray, -1, kx), 0)
        my = cv2.absdiff(cv2.filter2D(gray, -1, kx.T), 0)
        return cv2.add(mx, my)
    raise ValueError(f"focus measure {measure!r}: choose one of {', '.join(MEASURES)}")


def _is_squared(measure: str) -> bool:
    return measure in ("laplacian", "tenengrad")


def focus_map(
    gray: np.ndarray, measure: str = "laplacian", window: float | None = None, work_side: int = 0
) -> np.ndarray:
    """Windowed focus measure of ``gray``.

    Returns the map at a reduced size whose longest side is about ``work_side`` (the full size
    when 0); callers resize it to the resolution they need. The window is a Gaussian whose
    diameter (4 sigma) is ``window`` pixels of the full-size image.
    """
    d = windowed(detail(gray, measure), window, work_side)
    if _is_squared(measure):
        d = cv2.sqrt(cv2.max(d, 0.0))
    return d


def windowed(d: np.ndarray, window: float | None, work_side: int) -> np.ndarray:
    """``d`` averaged over a Gaussian window of ``window`` px (None: the default for its size),
    at a size whose longest side is about ``work_side`` (0: full size)."""
    window = default_window(d.shape) if window is None else float(window)
    h, w = d.shape[:2]
    factor = 1.0
    if work_side and max(h, w) > work_side:
        # Never shrink so far that the window falls under ~2 px at the working size.
        factor = max(work_side / max(h, w), min(1.0, 8.0 / window))
        d = cv2.resize(
            d, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA
        )
    sigma = max(0.5, window * factor / 4.0)
    return cv2.GaussianBlur(d, (0, 0), sigma)


def frame_focus(
    gray: np.ndarray,
    scale: float,
    measure: str,
    window: float | None,
    focus_side: int,
    detail_side: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(focus map, the reduced float gray it was measured on) of a full-size gray frame.

    ``window`` is in full-size pixels (None: :func:`default_window`); ``scale`` turns the
    gray's values into 0..1 (and applies any exposure gain).
    """
    window = default_window(gray.shape) if window is None else window
    small, factor = reduce_gray(gray, scale, detail_side)
    return focus_map(small, measure, window * factor, focus_side), small


# Variance that white noise of unit deviation leaves in each squared measure's detail image:
# the Laplacian's (ksize 1) taps square-sum to 1+1+1+1+16; two 3x3 Sobels to 12 each.
_NOISE_GAIN = {"laplacian": 20.0, "tenengrad": 24.0}


_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_NOISE_TAPS = 36.0  # the kernel's squared taps: its response to unit white noise has this variance


def noise_sigma(gray: np.ndarray) -> float:
    """Sensor noise (standard deviation) of an image, from its finest-scale residual.

    Immerkaer's operator cancels smooth structure; the median of its response, unlike the
    mean, is not pulled up by the edges it leaves. For Gaussian noise the response has six
    times the noise's deviation, and its median absolute value 0.6745 of that.
    """
    response = cv2.filter2D(gray, cv2.CV_32F, _NOISE_KERNEL)
    return float(np.median(np.abs(response))) / (6.0 * 0.6745)


def activity(fmap: np.ndarray, guide: np.ndarray, sharpness: float, edge_aware: bool) -> np.ndarray:
    """``sharpness * log(focus)``: the softmax exponent fusion weighs a frame by (see accumulate).

    ``guide`` is the gray :func:`frame_focus` measured on. With ``edge_aware`` the log focus is
    guided-filtered so that transitions between frames follow object edges, not the window.
    """
    log_focus = cv2.log(cv2.add(fmap, FOCUS_FLOOR))
    if edge_aware:
        small = pyramid.resize_to(guide, fmap.shape)
        radius = max(2, round(min(fmap.shape) / 200))  # scales with the map
        log_focus = guided.guided_filter(small, log_focus, radius, 1e-3)
    return cv2.multiply(log_focus, sharpness)


def work_sharpness(gray: np.ndarray, measure: str) -> float:
    """How sharp a frame or result is, as one figure: the mean focus of its work-size grayscale
    (``align.work_gray``, default window) with its sensor noise taken out, so that a noisy frame
    and the stack, which averages that noise away, compare.

    A squared measure's noise share is the noise's local variance (Immerkaer's residual, which
    cancels smooth structure, windowed as the map is) times the operator's tap gain; noise
    varies across a frame (shot noise), so it is taken out where it is. Without this, a dim,
    noisy frame (a 12-bit microscope camera's) measures sharper than the clean stack made from
    it. Frames are measured as they came, before any warp: interpolation smooths their pixel
    noise unevenly, which the noise estimate could not follow; the result is not warped either.
    """
    fmap = focus_map(gray, measure)
    gain = _NOISE_GAIN.get(measure)
    if gain is None:  # sml: not a squared measure, noise does not add to it in quadrature
        return float(fmap.mean())
    residual = cv2.filter2D(gray, cv2.CV_32F, _NOISE_KERNEL)
    noise = windowed(cv2.multiply(residual, residual, scale=gain / _NOISE_TAPS), None, 0)
    signal = cv2.subtract(cv2.multiply(fmap, fmap), noise)
    return float(cv2.sqrt(cv2.max(signal, 0.0)).mean())
