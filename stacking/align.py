"""Incremental frame alignment.

Each frame is aligned to its predecessor (the last accepted frame), starting from the
predecessor's own relative transform, and the result is composed back to the reference
(the first frame). Transforms are 3x3 matrices mapping reference pixel coordinates to frame
pixel coordinates, so ``cv2.warpAffine(frame, T[:2], ..., flags=WARP_INVERSE_MAP)`` brings a
frame into the reference geometry.

Neighbouring frames differ little in focus, which is what makes the chain work even though
the first and last frames of a stack may share almost no sharp detail. Each step is found from
SIFT keypoints matched with RANSAC first, and by ECC where too few keypoints match (a
featureless microscope field) or the frames are thumbnails (``KEYPOINT_SIDE``). ECC fits every
pixel, and where defocus changes between two frames, edges bleed and look moved, so its small
per-step bias adds up along the chain (1.05 px by the middle of one 20-frame synthetic stack,
0.28 px from keypoints; 31.8 against 39.0 dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from stacking import exposure
from stacking.dtypes import full_scale
from stacking.focus import noise_sigma
from stacking.report import FrameReport
from stacking.settings import MODELS

# Sobel gradient (0..1 images) that stands out from sensor noise and JPEG noise.
_TEXTURE_GRADIENT = 0.03  # of the data's own white (data_level)

_ECC_MOTION = {
    "translation": cv2.MOTION_TRANSLATION,
    # ECC has no similarity model: fit affine, then project onto the closest similarity.
    "similarity": cv2.MOTION_AFFINE,
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}


@dataclass(frozen=True)
class AlignSettings:
    model: str = "similarity"
    work_side: int = 1024  # longest side (px) of the image ECC refines on
    min_side: int = 128  # coarsest pyramid level for ECC
    max_scale_step: float = 0.06  # |scale change| between neighbours
    max_rotation_step_deg: float = 3.0
    max_shift_step: float = 0.08  # fraction of the image diagonal between neighbours
    min_correlation: float = 0.6  # ECC correlation below this means "did not converge"
    blank_texture: float = 0.005  # fraction of textured pixels below which a frame is blank
    # Also fit a flare/black-level offset between frames. Off by default: with frames focused
    # differently the fit picks up defocus as much as flare (-0.1 dB on the synthetic stacks).
    exposure_offset: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"alignment model {self.model!r}: choose one of {', '.join(MODELS)}")


@dataclass(frozen=True)
class Alignment:
    """How one frame maps onto the reference, or why it could not be aligned."""

    transform: np.ndarray  # 3x3, reference -> frame pixel coordinates
    relative: np.ndarray  # 3x3, predecessor -> frame pixel coordinates
    gain: tuple[float, float, float]  # per-channel linear-light gain matching the reference
    offset: tuple[float, float, float]  # per-channel linear-light offset (flare, black level)
    confidence: float  # ECC correlation (0..1) or RANSAC inlier ratio for the feature fallback
    method: str  # "reference", "ecc", "features", "none", "given"
    rejected: str | None = None  # reason, when the frame must not be blended

    @classmethod
    def from_report(cls, report: FrameReport) -> Alignment:
        """A re-stack: the alignment an earlier run found for this frame."""
        g, o = report.gain, report.offset
        return cls(
            transform=np.array(report.transform, float),
            relative=np.eye(3),
            gain=(g[0], g[1], g[2]),
            offset=(o[0], o[1], o[2]),
            confidence=report.confidence,
            method="given",
            rejected=report.reason if not report.accepted else None,
        )


@dataclass
class _Predecessor:
    gray: np.ndarray  # work-size grayscale
    colour: np.ndarray  # tiny colour image for exposure matching
    transform: np.ndarray
    relative: np.ndarray
    exposure: tuple[np.ndarray, np.ndarray]  # (gain, offset) onto the reference
    features: Features | None = None  # its keypoints, once found (each frame's are found once)


@dataclass
class IncrementalAligner:
    """Aligns frames one at a time; keeps only the predecessor's small images."""

    settings: AlignSettings = field(default_factory=AlignSettings)
    _prev: _Predecessor | None = None

    def align(self, gray: np.ndarray, colour: np.ndarray, full_shape: tuple[int, ...]) -> Alignment:
        """Align one frame given as a work-size grayscale and a tiny colour copy (float32 0..1).

        ``full_shape`` is the frame's full size; transforms are returned in full-size pixels.
        Build the inputs with :func:`work_images`.
        """
        scale = (gray.shape[1] / full_shape[1], gray.shape[0] / full_shape[0])
        colour_scale = (colour.shape[1] / full_shape[1], colour.shape[0] / full_shape[0])
        if is_mostly_blank(gray, self.settings.blank_texture):
            return _rejection("mostly blank: no texture to align or stack", self._prev)
        if self._prev is None:
            eye = np.eye(3)
            self._prev = _Predecessor(gray, colour, eye, eye, (np.ones(3), np.zeros(3)))
            return Alignment(eye, eye, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), 1.0, "reference")

        prev = self._prev
        features = None
        if self.settings.model == "none":
            relative_small, confidence, method = np.eye(3), 1.0, "none"
        else:
            seed = _to_work(prev.relative, scale)
            pair = None
            if keypoints_lead(gray):  # found once per frame, kept for its successor
                if prev.features is None:
                    prev.features = Features.of(prev.gray)
                features = Features.of(gray)
                pair = (prev.features, features)
            found = estimate_motion(prev.gray, gray, self.settings, seed, pair)
            if found is None:
                return _rejection(
                    "alignment did not converge (ECC and feature matching failed)", prev
                )
            relative_small, confidence, method = found
        relative = _from_work(relative_small, scale)
        reason = check_step(relative, full_shape, self.settings)
        if reason is not None:
            return _rejection(reason, prev, relative, confidence, method)
        transform = relative @ prev.transform
        step = relative_exposure(
            prev.colour, colour, _to_work(relative, colour_scale), self.settings.exposure_offset
        )
        gain, offset = exposure.compose(prev.exposure, step)
        self._prev = _Predecessor(gray, colour, transform, relative, (gain, offset), features)
        return Alignment(transform, relative, _triple(gain), _triple(offset), confidence, method)

    def accept_given(self, gray: np.ndarray, colour: np.ndarray, given: Alignment) -> None:
        """Record a frame whose alignment is already known (re-stack from a saved report)."""
        prev_t = self._prev.transform if self._prev else np.eye(3)
        relative = given.transform @ np.linalg.inv(prev_t)
        known = (np.asarray(given.gain, float), np.asarray(given.offset, float))
        self._prev = _Predecessor(gray, colour, given.transform, relative, known)


def work_gray(frame: np.ndarray, settings: AlignSettings) -> np.ndarray:
    """The work-size grayscale (float32, 0..1 of the frame's container) of an RGB frame."""
    scale = 1.0 / full_scale(frame.dtype)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return _resize(gray, _work_scale(frame.shape, settings.work_side)).astype(np.float32) * scale


def work_images(
    frame: np.ndarray, settings: AlignSettings, colour_side: int = 768
) -> tuple[np.ndarray, np.ndarray]:
    """(work-size grayscale, tiny linear-light colour) float32 copies of an RGB frame.

    The colour copy is for exposure matching: it is decoded to linear light *before* it is
    averaged down (from a sparse sample, which keeps means unbiased and costs little).
    """
    gray = work_gray(frame, settings)
    # Exposure is measured at this size: much smaller and the estimate drifts (~0.2 %/frame
    # at 256 px, measured on the shared synthetic stacks).
    step = max(1, max(frame.shape[:2]) // (2 * colour_side))
    sample = exposure.linearise(frame[::step, ::step])
    colour = cv2.resize(
        sample,
        _size_at(frame.shape, _work_scale(frame.shape, colour_side)),
        interpolation=cv2.INTER_AREA,
    )
    return gray, colour


def _rejection(
    reason: str,
    prev: _Predecessor | None,
    relative: np.ndarray | None = None,
    confidence: float = 0.0,
    method: str = "ecc",
) -> Alignment:
    base = prev.transform if prev else np.eye(3)
    rel = np.eye(3) if relative is None else relative
    return Alignment(
        rel @ base, rel, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), confidence, method, rejected=reason
    )


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _work_scale(shape: tuple[int, ...], side: int) -> tuple[float, float]:
    h, w = shape[:2]
    s = min(1.0, side / max(h, w))
    return (max(1, round(w * s)) / w, max(1, round(h * s)) / h)


def _size_at(shape: tuple[int, ...], scale: tuple[float, float]) -> tuple[int, int]:
    h, w = shape[:2]
    return (max(1, round(w * scale[0])), max(1, round(h * scale[1])))


def _resize(img: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    if scale == (1.0, 1.0):
        return img
    return cv2.resize(img, _size_at(img.shape, scale), interpolation=cv2.INTER_AREA)


def _scaling(scale: tuple[float, float]) -> np.ndarray:
    # Pixel centres: x_small + 0.5 = s * (x_full + 0.5).
    sx, sy = scale
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def _to_work(t: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    s = _scaling(scale)
    return s @ t @ np.linalg.inv(s)


def _from_work(t: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    s = _scaling(scale)
    return np.linalg.inv(s) @ t @ s


def is_mostly_blank(gray: np.ndarray, min_fraction: float) -> bool:
    """True when almost no pixel carries texture above the image's own noise.

    The cuts follow the data, not its container: 12-bit values in a 16-bit file, or a dim
    specimen using a tenth of the range, are as textured as the same frame at full range.
    A frame whose whole variation is its noise (a lens cap, a dark field) is blank.
    """
    level = data_level(gray)
    if level <= 0:
        return True
    mag = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    # Below a few grey levels of the data's white (8-bit) is noise or compression, not texture.
    textured = float(np.count_nonzero(mag > 0.04 * level)) / mag.size
    spread = float(gray.std())
    return textured < min_fraction or spread < max(0.004 * level, 3.0 * noise_sigma(gray))


def data_level(gray: np.ndarray) -> float:
    """The data's own white: the 99.9th percentile (a few hot pixels do not count)."""
    return float(np.percentile(gray, 99.9))


def gradient_mask(gray: np.ndarray) -> np.ndarray:
    """Pixels worth aligning on: everything near texture, leaving out featureless areas.

    Featureless background (a black microscope field, a grey card) only adds noise to ECC.
    Restricting ECC to the strongest edges instead biases it: edges that are sharp in one
    frame and blurred in the next do not move together. So the cut is absolute, just above
    sensor noise, and generously grown.
    """
    mag = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    mask = (mag > _TEXTURE_GRADIENT * data_level(gray)).astype(np.uint8) * 255
    grow = max(3, (min(gray.shape) // 50) | 1)
    mask = cv2.dilate(mask, np.ones((grow, grow), np.uint8))
    if np.count_nonzero(mask) < 0.02 * mask.size:
        mask[:] = 255
    return mask


def to_model(t: np.ndarray, model: str) -> np.ndarray:
    """Project a transform onto the degrees of freedom of ``model``."""
    out = np.eye(3)
    if model == "none":
        return out
    if model == "translation":
        out[:2, 2] = t[:2, 2]
    elif model == "similarity":
        a = (t[0, 0] + t[1, 1]) / 2
        b = (t[1, 0] - t[0, 1]) / 2
        out[:2] = [[a, -b, t[0, 2]], [b, a, t[1, 2]]]
    elif model == "affine":
        out[:2] = t[:2]
    else:
        out = t / t[2, 2]
    return out


def estimate_motion(
    template: np.ndarray,
    image: np.ndarray,
    settings: AlignSettings,
    seed: np.ndarray,
    features: tuple[Features, Features] | None = None,
) -> tuple[np.ndarray, float, str] | None:
    """Transform from ``template`` to ``image`` coordinates: keypoints first, ECC where too
    few match, and keypoints to seed ECC when ECC alone is lost (a large jump).

    ``features``: the two images' keypoints when the caller already has them.
    """

    def by_keypoints() -> tuple[np.ndarray, float, int] | None:
        a, b = features or (Features.of(template), Features.of(image))
        return match_motion(a, b, settings.model)

    leads = keypoints_lead(template)
    by_features = by_keypoints() if leads else None
    if by_features is not None and by_features[2] >= MIN_INLIERS:
        return by_features[0], by_features[1], "features"
    found = ecc_pyramid(template, image, settings, seed)
    if found is not None and found[1] >= settings.min_correlation:
        return found[0], found[1], "ecc"
    if not leads:  # thumbnails: keypoints only once ECC is lost
        by_features = by_keypoints()
    if by_features is None:
        return None
    refined = ecc_pyramid(template, image, settings, by_features[0])
    if refined is not None and refined[1] >= settings.min_correlation:
        return refined[0], refined[1], "features+ecc"
    return None


def ecc_pyramid(
    template: np.ndarray,
    image: np.ndarray,
    settings: AlignSettings,
    seed: np.ndarray,
) -> tuple[np.ndarray, float] | None:
    """Coarse-to-fine ECC; returns (transform, correlation) or None when it fails."""
    levels = max(0, int(math.log2(max(template.shape) / settings.min_side)))
    pyr_t, pyr_i = [template], [image]
    for _ in range(levels):
        pyr_t.append(cv2.pyrDown(pyr_t[-1]))
        pyr_i.append(cv2.pyrDown(pyr_i[-1]))
    motion = _ECC_MOTION[settings.model]
    t = seed.copy()
    rho = 0.0
    for level in range(levels, -1, -1):
        sc = _level_scale(template.shape, pyr_t[level].shape)
        guess = _to_work(t, sc)
        warp = (
            guess.astype(np.float32)
            if motion == cv2.MOTION_HOMOGRAPHY
            else guess[:2].astype(np.float32)
        )
        iterations = 60 if level == levels else 25
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
        try:
            rho, warp = cv2.findTransformECC(
                pyr_t[level], pyr_i[level], warp, motion, criteria, gradient_mask(pyr_i[level]), 5
            )
        except cv2.error:
            return None
        full = np.eye(3)
        full[: warp.shape[0]] = warp
        t = to_model(_from_work(full, sc), settings.model)
    if not np.all(np.isfinite(t)):
        return None
    return t, float(rho)


def _level_scale(full: tuple[int, ...], level: tuple[int, ...]) -> tuple[float, float]:
    return (level[1] / full[1], level[0] / full[0])


# Keypoint matches that agree (RANSAC inliers) for a step to be taken from them alone: enough
# that the fit averages their sub-pixel errors; fewer, and ECC (every pixel) is surer.
MIN_INLIERS = 40
# Keypoints lead only on work images at least this long (every camera frame: they are made
# 1024 px). On a thumbnail each keypoint's error is a larger share of the frame and ECC, with
# every pixel, was the better of the two (a 320x240 simulated stack: 27.8 against 25.8 dB).
KEYPOINT_SIDE = 640


def keypoints_lead(gray: np.ndarray) -> bool:
    """Whether keypoints, not ECC, take the first say on this work image (``KEYPOINT_SIDE``)."""
    return max(gray.shape[:2]) >= KEYPOINT_SIDE


@dataclass(frozen=True)
class Features:
    """SIFT keypoints (N x 2 work-size px) and descriptors of one work-size grayscale."""

    points: np.ndarray
    descriptors: np.ndarray | None

    @classmethod
    def of(cls, gray: np.ndarray) -> Features:
        sift = cv2.SIFT_create(nfeatures=2000)  # type: ignore[attr-defined]
        # Stretched to the data's own range: a dim 12-bit frame has as many keypoints as a
        # bright one.
        g8 = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        keypoints, descriptors = sift.detectAndCompute(g8, None)
        points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
        return cls(points, descriptors)


def match_motion(a: Features, b: Features, model: str) -> tuple[np.ndarray, float, int] | None:
    """(transform from ``a``'s image to ``b``'s, inlier ratio, inliers), or None when fewer
    than 8 matches agree."""
    da, db = a.descriptors, b.descriptors
    if da is None or db is None or len(a.points) < 8 or len(b.points) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m for m, n in (p for p in matches if len(p) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < 8:
        return None
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    if model == "homography":
        h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
        if h is None:
            return None
        t = h
    else:
        estimate = cv2.estimateAffine2D if model == "affine" else cv2.estimateAffinePartial2D
        m, inliers = estimate(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if m is None:
            return None
        t = np.vstack([m, [0, 0, 1]])
    count = int(np.count_nonzero(inliers))
    if count < 8:
        return None
    return to_model(t, model), count / len(good), count


def decompose(t: np.ndarray) -> tuple[float, float, float]:
    """(scale, rotation in degrees, translation length) of a transform's affine part."""
    a = t[:2, :2]
    scale = math.sqrt(abs(np.linalg.det(a)))
    rotation = math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
    return scale, rotation, float(np.hypot(t[0, 2], t[1, 2]))


def check_step(relative: np.ndarray, shape: tuple[int, ...], settings: AlignSettings) -> str | None:
    """Reason the step between neighbours is implausible for a focus stack, or None."""
    h, w = shape[:2]
    centre = np.array([w / 2, h / 2, 1.0])
    moved = relative @ centre
    if abs(moved[2]) < 1e-9:
        return "transform out of bounds: degenerate perspective"
    shift = float(np.hypot(*(moved[:2] / moved[2] - centre[:2])))
    scale, rotation, _ = decompose(relative)
    if abs(scale - 1) > settings.max_scale_step:
        change = 100 * (scale - 1)
        return f"transform out of bounds: scale changed by {change:+.1f}% from the previous frame"
    if abs(rotation) > settings.max_rotation_step_deg:
        return f"transform out of bounds: rotated {rotation:+.2f} degrees from the previous frame"
    if shift > settings.max_shift_step * math.hypot(w, h):
        return f"transform out of bounds: moved {shift:.0f} px from the previous frame"
    if relative.shape == (3, 3) and np.abs(relative[2, :2]).max() * max(w, h) > 0.2:
        return "transform out of bounds: perspective change too strong"
    return None


def relative_exposure(
    prev: np.ndarray, cur: np.ndarray, relative: np.ndarray, with_offset: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel linear-light (gain, offset) that maps ``cur`` onto ``prev``.

    ``relative`` maps ``prev`` pixel coordinates to ``cur``'s (both small linear-light images).
    Gain alone is a ratio of means over the overlap, which defocus cannot bias. An offset needs
    a line fitted pixel against pixel, on images low-passed well beyond the defocus difference.
    """
    h, w = prev.shape[:2]
    flags = cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(cur, relative, (w, h), flags=cv2.INTER_LINEAR | flags)
    ones = np.ones(cur.shape[:2], np.uint8)
    valid = cv2.warpPerspective(ones, relative, (w, h), flags=cv2.INTER_NEAREST | flags)
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8))
    if np.count_nonzero(valid) < 0.1 * valid.size:
        return np.ones(3), np.zeros(3)
    if not with_offset:
        return exposure.ratio_of_means(prev, warped, valid > 0), np.zeros(3)
    sigma = max(2.0, 0.04 * max(h, w))
    weight = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), sigma)

    def low_pass(img: np.ndarray) -> np.ndarray:
        masked = img * valid[..., None]
        return cv2.GaussianBlur(masked, (0, 0), sigma) / np.maximum(weight, 1e-6)[..., None]

    inside = weight > 0.999  # the blur saw only covered pixels here
    if np.count_nonzero(inside) < 0.05 * inside.size:
        inside = valid > 0
    return exposure.fit(low_pass(prev), low_pass(warped), inside)
