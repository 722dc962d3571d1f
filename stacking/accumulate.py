"""Streaming fusion: each method folds frames in one at a time with memory independent of N.

All methods weight frame i at a pixel by ``exp(a_i)``, where ``a_i = sharpness * log(focus_i)``
(a softmax over frames: ``focus_i ** sharpness / sum_j focus_j ** sharpness``). The sums are kept
exactly in streaming form with a running per-pixel maximum ``m`` (log-sum-exp rescaling), so no
weight ever overflows or underflows and the result does not depend on frame order.

- ``pyramid``: Laplacian pyramid blending; every level's coefficients are combined with the
  softmax of that level's activity (a sharp softmax: in practice the most active frame wins
  each coefficient, while flat areas, where no frame stands out, fall back to a weighted mean
  instead of collecting noise); the base level is the focus-weighted average.
- ``weighted``: the same softmax at full resolution, with edge-aware smoothed weights.
- ``depthmap``: per-pixel selection of the sharpest frame, colour carried from it, with
  inconsistent or low-activity pixels falling back to the weighted mean.

Every method also tracks the depth map (index of the sharpest frame per pixel) and can carry
extra planes (chroma) from the sharpest frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from stacking import bands, pyramid
from stacking.geometry import coverage
from stacking.settings import METHODS

_UNSEEN = -1e20  # running max before any frame covered a pixel
_OUTSIDE = -1e30  # activity of a pixel a frame does not cover: weight exactly 0


@dataclass
class FusionInput:
    """One frame in the reference geometry, ready to fuse."""

    index: int
    # Fused channels, float32 HxW each. A sequence, so a frame can produce each plane only
    # when it is needed and memory holds one float plane at a time.
    planes: Sequence[np.ndarray]
    activity: np.ndarray  # sharpness * log(focus), float32 at any resolution
    # Polygon (N x 2, full-size reference pixels) inside which the frame has data; None: all.
    outline: np.ndarray | None = None
    carry: list[np.ndarray] | None = None  # planes taken from the sharpest frame (chroma)


def _weigh(
    old: np.ndarray, activity: np.ndarray, peak: np.ndarray, den: np.ndarray, new_best: np.ndarray
) -> None:
    """A band of :meth:`SoftmaxSum.weigh`: ``old`` becomes the rescale, ``activity`` the weight."""
    cv2.compare(activity, old, cv2.CMP_GT, dst=new_best)
    cv2.max(old, activity, dst=peak)
    cv2.exp(cv2.subtract(old, peak, dst=old), dst=old)
    cv2.exp(cv2.subtract(activity, peak, dst=activity), dst=activity)
    cv2.multiply(den, old, dst=den)
    cv2.add(den, activity, dst=den)


def _accumulate(
    num: np.ndarray, rescale: np.ndarray, weight: np.ndarray, values: np.ndarray
) -> None:
    cv2.multiply(num, rescale, dst=num)
    cv2.accumulateProduct(values, weight, num)


def _divide(num: np.ndarray, den: np.ndarray, out: np.ndarray) -> None:
    cv2.divide(num, den, dst=out)


def _at_least_tiny(den: np.ndarray) -> None:
    cv2.max(den, 1e-30, dst=den)


def _add_into(total: np.ndarray, more: np.ndarray) -> None:
    cv2.add(total, more, dst=total)


def _mark_best(index: int, depth: np.ndarray, new_best: np.ndarray) -> None:
    # Masked OpenCV ops: a numpy boolean assignment over 24 MP costs several times more.
    cv2.subtract(depth, depth, dst=depth, mask=new_best)
    cv2.add(depth, index, dst=depth, mask=new_best)


def _copy_where(dst: np.ndarray, values: np.ndarray, mask: np.ndarray) -> None:
    cv2.copyTo(values, mask, dst)


class SoftmaxSum:
    """Running ``sum_i exp(a_i) * v_i`` and ``sum_i exp(a_i)`` over frames, kept exact."""

    def __init__(self, shape: tuple[int, int], channels: int) -> None:
        self.peak = np.full(shape, _UNSEEN, np.float32)
        self.den = np.zeros(shape, np.float32)
        self.num = np.zeros((channels, *shape), np.float32)
        # Reused buffer (no page faults per frame); None once released, made again on demand.
        self._spare: np.ndarray | None = np.empty(shape, np.float32)

    def weigh(self, activity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fold one frame's activity in; returns (rescale, weight, new-best mask).

        ``activity`` is consumed (overwritten by the weight). The rescale buffer stays valid
        until the next call.
        """
        old = self.peak
        if self._spare is None:
            self._spare = np.empty_like(old)
        peak, new_best = self._spare, np.empty(old.shape, np.uint8)
        bands.run(_weigh, old, activity, peak, self.den, new_best)
        # The old peak's buffer now holds the rescale; it becomes the next call's spare.
        self.peak, self._spare = peak, old
        return old, activity, new_best

    def add(
        self, channel: int, rescale: np.ndarray, weight: np.ndarray, values: np.ndarray
    ) -> None:
        bands.run(_accumulate, self.num[channel], rescale, weight, values)

    def mean(self) -> Iterator[np.ndarray]:
        self.guard_den()
        return (self.quotient(c) for c in range(len(self.num)))

    def guard_den(self) -> None:
        """Keep ``den`` off zero, once before a round of :meth:`quotient`.

        ``den`` is at least 1 wherever a frame covered the pixel (the winner adds exp(0)) and 0
        where none has; there ``num`` is 0 too, and 0 / 1e-30 is the 0 wanted. Folding more
        frames in is unaffected: an unseen pixel's ``den`` is rescaled by exp(-1e20) = 0.
        """
        bands.run(_at_least_tiny, self.den)

    def quotient(self, channel: int) -> np.ndarray:
        """One channel's weighted mean, ``num / den``, in a new array (after :meth:`guard_den`)."""
        out = np.empty_like(self.den)
        bands.run(_divide, self.num[channel], self.den, out)
        return out

    def release(self) -> None:
        self._spare = None


class ActivityTrace:
    """Per pixel, at the activity's own (reduced) resolution: the peak and sum of every frame's
    activity, and how far the first and the latest frame lead all the others.

    What the coverage verdict reads (see :mod:`stacking.coverage`): how far the sharpest frame
    stands out from the stack's average (texture), and where an end frame is clearly the
    sharpest. At the focus map's size its cost per frame does not grow with the frame; every
    buffer is made with the first frame and reused.
    """

    def __init__(self) -> None:
        self.frames = 0
        empty = np.empty((0, 0), np.float32)
        self.peak = self.total = self.first = self.after_first = empty
        self.latest = self.before_latest = empty

    def add(self, activity: np.ndarray) -> None:
        if self.frames == 0:
            self.peak, self.total = activity.copy(), activity.copy()
            self.first, self.latest = activity.copy(), activity.copy()
            self.after_first = np.full_like(activity, _UNSEEN)
            self.before_latest = np.full_like(activity, _UNSEEN)
        else:
            cv2.max(self.after_first, activity, dst=self.after_first)
            # The peak so far becomes the peak before the latest frame; its old buffer is reused.
            self.before_latest, spare = self.peak, self.before_latest
            self.peak = cv2.max(self.before_latest, activity, dst=spare)
            cv2.add(self.total, activity, dst=self.total)
            np.copyto(self.latest, activity)
        self.frames += 1

    def contrast(self) -> np.ndarray | None:
        """Peak minus mean activity per pixel (activity units); None before any frame."""
        if not self.frames:
            return None
        return cv2.addWeighted(self.peak, 1.0, self.total, -1.0 / self.frames, 0.0)

    def leads(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(first frame's, latest frame's) activity minus the best of all the other frames'.

        Positive where that frame is the sharpest. None before the second frame.
        """
        if self.frames < 2:
            return None
        return (
            cv2.subtract(self.first, self.after_first),
            cv2.subtract(self.latest, self.before_latest),
        )


class Fusion:
    """Base: depth map, carried planes and the activity trace, shared by every method."""

    def __init__(self, shape: tuple[int, int], channels: int, carry_channels: int) -> None:
        self.shape = shape
        self.channels = channels
        self.depth = np.zeros(shape, np.uint16)
        self.carried = np.zeros((carry_channels, *shape), np.float32)
        self.trace = ActivityTrace()
        self.frames = 0

    def _track_best(self, frame: FusionInput, new_best: np.ndarray) -> None:
        bands.run(partial(_mark_best, frame.index), self.depth, new_best)
        if frame.carry:
            for plane, values in zip(self.carried, frame.carry, strict=True):
                bands.run(_copy_where, plane, values, new_best)

    def update(self, frame: FusionInput) -> None:
        """Fold one frame in."""
        # Traced before the method folds it, which may overwrite its buffers.
        self.trace.add(frame.activity)
        self._fold(frame)
        self.frames += 1

    def _fold(self, frame: FusionInput) -> None:
        raise NotImplementedError

    def image(self, max_side: int | None = None) -> Iterator[np.ndarray]:
        """Fused planes, one at a time (one in memory); at most ``max_side`` long when given."""
        raise NotImplementedError

    def release(self) -> None:
        """Drop scratch buffers (at the end of a stack); they come back if more frames do."""


def _activity_at(frame: FusionInput, shape: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """The frame's activity at ``shape``, in a fresh array the caller may overwrite."""
    activity = cv2.resize(frame.activity, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    if frame.outline is not None:
        # Only where the frame covers the pixel: borders uncovered by magnification change
        # get their data from the frames that do cover them.
        outside = cv2.bitwise_not(coverage(frame.outline, full, shape))
        cv2.subtract(activity, -_OUTSIDE, dst=activity, mask=outside)
    return activity


def _shrink(planes: Iterable[np.ndarray], max_side: int | None) -> Iterator[np.ndarray]:
    for plane in planes:
        if not max_side or max(plane.shape) <= max_side:
            yield plane
            continue
        h, w = plane.shape
        f = max_side / max(h, w)
        yield pyramid.resize_to(plane, (max(1, round(h * f)), max(1, round(w * f))))


class WeightedFusion(Fusion):
    """Single-scale softmax of the (edge-aware smoothed) focus."""

    def __init__(self, shape: tuple[int, int], channels: int, carry_channels: int) -> None:
        super().__init__(shape, channels, carry_channels)
        self.sums = SoftmaxSum(shape, channels)

    def _fold(self, frame: FusionInput) -> None:
        rescale, weight, new_best = self.sums.weigh(_activity_at(frame, self.shape, self.shape))
        for c, values in enumerate(frame.planes):
            self.sums.add(c, rescale, weight, values)
        self._track_best(frame, new_best)

    def image(self, max_side: int | None = None) -> Iterator[np.ndarray]:
        return _shrink(self.sums.mean(), max_side)

    def release(self) -> None:
        self.sums.release()


class PyramidFusion(Fusion):
    """Laplacian-pyramid blending with per-level, per-coefficient softmax of activity."""

    def __init__(self, shape: tuple[int, int], channels: int, carry_channels: int) -> None:
        super().__init__(shape, channels, carry_channels)
        self.levels = pyramid.level_count(shape)
        shapes = pyramid.level_shapes(shape, self.levels)
        self.sums = [SoftmaxSum(s, channels) for s in shapes]
        self._bands: pyramid.Buffers | None = pyramid.Buffers(shapes)

    def _fold(self, frame: FusionInput) -> None:
        factors = []
        for level, sums in enumerate(self.sums):
            activity = _activity_at(frame, sums.den.shape, self.shape)
            rescale, weight, new_best = sums.weigh(activity)
            factors.append((rescale, weight))
            if level == 0:
                self._track_best(frame, new_best)
        # One channel at a time keeps only one plane's pyramid in memory, in reused buffers.
        for c, values in enumerate(frame.planes):
            if self._bands is None:
                self._bands = pyramid.Buffers(pyramid.level_shapes(self.shape, self.levels))
            detail = pyramid.laplacian(values, self.levels, self._bands)
            for sums, (rescale, weight), band in zip(self.sums, factors, detail, strict=True):
                sums.add(c, rescale, weight, band)

    def image(self, max_side: int | None = None) -> Iterator[np.ndarray]:
        # A preview only needs the levels down to its own size: skip the finer bands.
        first = 0
        if max_side:
            while first < self.levels and max(self.sums[first].den.shape) > max_side:
                first += 1
        return _shrink(self._collapse(self.sums[first:]), max_side)

    def _collapse(self, used: list[SoftmaxSum]) -> Iterator[np.ndarray]:
        for sums in used:
            sums.guard_den()
        for c in range(self.channels):
            # One channel at a time, dividing each level on the way up.
            img = used[-1].quotient(c)
            for sums in used[-2::-1]:
                band = sums.quotient(c)
                up = cv2.pyrUp(img, dstsize=(band.shape[1], band.shape[0]))
                bands.run(_add_into, band, up)
                img = band
            yield img

    def release(self) -> None:
        self._bands = None
        for sums in self.sums:
            sums.release()


class DepthMapFusion(Fusion):
    """Sharpest frame per pixel; inconsistent or featureless pixels use the weighted mean."""

    def __init__(self, shape: tuple[int, int], channels: int, carry_channels: int) -> None:
        super().__init__(shape, channels, carry_channels)
        self.sums = SoftmaxSum(shape, channels)
        self.best = np.zeros((channels, *shape), np.float32)

    def _fold(self, frame: FusionInput) -> None:
        rescale, weight, new_best = self.sums.weigh(_activity_at(frame, self.shape, self.shape))
        for c, values in enumerate(frame.planes):
            self.sums.add(c, rescale, weight, values)
            bands.run(_copy_where, self.best[c], values, new_best)
        self._track_best(frame, new_best)

    def selection_confidence(self) -> np.ndarray:
        """1 where the chosen frame is trusted, 0 where the weighted mean is used instead.

        ``den`` is the softmax partition relative to the winner: near 1 when one frame stands
        out, near the frame count when all are alike (no detail to choose by). A pixel whose
        index disagrees with its neighbourhood's median by more than a frame is an outlier
        (noise won the selection) and is distrusted too.
        """
        decisive = cv2.addWeighted(self.sums.den, -1 / 1.5, self.sums.den, 0.0, 2.0)
        cv2.threshold(decisive, 1.0, 1.0, cv2.THRESH_TRUNC, dst=decisive)
        cv2.threshold(decisive, 0.0, 0.0, cv2.THRESH_TOZERO, dst=decisive)
        jump = cv2.compare(cv2.absdiff(self.depth, cv2.medianBlur(self.depth, 5)), 1, cv2.CMP_GT)
        decisive[jump > 0] = 0.0
        # Smooth the switch so the fallback never leaves a visible seam.
        return cv2.GaussianBlur(decisive, (0, 0), 2.0)

    def image(self, max_side: int | None = None) -> Iterator[np.ndarray]:
        trust = self.selection_confidence()

        def blend() -> Iterator[np.ndarray]:
            for best, mean in zip(self.best, self.sums.mean(), strict=True):
                step = cv2.subtract(best, mean)
                cv2.multiply(step, trust, dst=step)
                yield cv2.add(mean, step, dst=mean)

        return _shrink(blend(), max_side)

    def release(self) -> None:
        self.sums.release()


def make_fusion(method: str, shape: tuple[int, int], channels: int, carry: int) -> Fusion:
    kinds: dict[str, type[Fusion]] = {
        "pyramid": PyramidFusion,
        "weighted": WeightedFusion,
        "depthmap": DepthMapFusion,
    }
    if method not in kinds:
        raise ValueError(f"fusion method {method!r}: choose one of {', '.join(METHODS)}")
    return kinds[method](shape, channels, carry)
