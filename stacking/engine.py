"""StackEngine: frames in one at a time, the all-in-focus result out at any moment.

Per frame: align to the predecessor -> warp into the reference geometry with exposure
correction -> focus measure -> fold into the streaming fusion. Memory holds the fusion state
and one frame, never the stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np

from stacking import (
    accumulate,
    align,
    bands,
    colour,
    coverage,
    depthmap,
    exposure,
    focus,
    geometry,
)
from stacking.dtypes import full_scale
from stacking.errors import FrameMismatchError, NothingToStackError
from stacking.report import Coverage, FrameReport
from stacking.settings import StackSettings

__all__ = ["Coverage", "FrameReport", "StackEngine", "StackResult", "StackSettings"]

# Below this share of the sharpest frame's sharpness the result is called softer than it: the
# focus measure of a good stack is at or above its best frame's; 5 % leaves room for the noise
# a stack averages away, which the measure partly counts as detail.
SOFTER_THAN_BEST = 0.95
# The first frame's exposure is kept when the stack's typical one is this close (a flicker of
# half a percent is below what anyone sees, and rescaling would change every pixel for it).
EXPOSURE_TOLERANCE = 0.005


@dataclass
class StackResult:
    image: np.ndarray  # float32 HxWx3 RGB, 0..1
    depth: np.ndarray  # uint16 HxW: index of the sharpest frame per pixel
    reports: list[FrameReport]
    crop: tuple[int, int, int, int] | None  # (x, y, w, h) applied, or None: nothing cropped
    sharpness: float  # mean focus measure of the result
    coverage: Coverage  # does the stack reach the subject's front and back
    # linear-light gain per channel from the first frame's exposure to the stack's typical one
    # (its median frame's), applied to the result; None: within EXPOSURE_TOLERANCE
    exposure_scale: tuple[float, float, float] | None = None

    @property
    def accepted(self) -> list[FrameReport]:
        return [r for r in self.reports if r.accepted]

    @property
    def rejected(self) -> list[FrameReport]:
        return [r for r in self.reports if not r.accepted]

    @property
    def softness(self) -> str | None:
        """Said loudly when the result is softer than its own sharpest frame, else None.

        A stack takes every place from the frame sharpest there, so it must measure at least
        as sharp as any one frame (same focus measure, same scale). Less means the fusion
        blended detail away: frames out of register (a subject that moved, a focus order that
        goes back and forth), or noise steering the weights.
        """
        frames = self.accepted
        if len(frames) < 2 or self.sharpness <= 0:
            return None
        best = max(frames, key=lambda r: r.sharpness)
        if self.sharpness >= SOFTER_THAN_BEST * best.sharpness:
            return None
        return (
            f"the result is softer than its sharpest frame ({best.name}: sharpness "
            f"{self.sharpness:.4g} against {best.sharpness:.4g}, "
            f"{self.sharpness / best.sharpness:.2f}x): detail was blended away. Likely "
            "causes: frames out of register (the subject moved, or the focus went back and "
            "forth: check the frame order), or noise steering the weights. Try --method "
            "depthmap, --align affine, or leave out the frames that moved"
        )


@dataclass
class StackEngine:
    settings: StackSettings = field(default_factory=StackSettings)

    def __post_init__(self) -> None:
        self._align_settings = align.AlignSettings(
            model=self.settings.align, exposure_offset=self.settings.exposure_offset
        )
        self._aligner = align.IncrementalAligner(self._align_settings)
        self._fusion: accumulate.Fusion | None = None
        self._shape: tuple[int, ...] | None = None  # the reference frame sets it
        self._covered: np.ndarray | None = None  # uint8 mask every accepted frame covers
        # (the mask it was found in, box or None when nothing is cropped)
        self._crop: tuple[np.ndarray, tuple[int, int, int, int] | None] | None = None
        self.reports: list[FrameReport] = []

    @property
    def frames_fused(self) -> int:
        return self._fusion.frames if self._fusion else 0

    def add(
        self, pixels: np.ndarray, name: str = "", given: align.Alignment | None = None
    ) -> FrameReport:
        """Fold one RGB frame (uint8, uint16 or float32 0..1) into the stack.

        ``given`` reuses a known alignment (a re-stack) instead of estimating one. A rejected
        frame is reported and never blended.
        """
        start = time.perf_counter()
        self._check_frame(pixels)
        index = len(self.reports)
        gray, colour = align.work_images(pixels, self._align_settings)
        if given is None:
            result = self._aligner.align(gray, colour, pixels.shape)
        else:
            result = given
            if given.rejected is None:
                self._aligner.accept_given(gray, colour, given)
        sharpness = 0.0
        if result.rejected is None:
            self._fuse(index, pixels, result)
            # On the exposure the frame is matched to: one mean gain, as in the focus maps.
            gain = float(np.mean(result.gain)) if self.settings.match_exposure else 1.0
            slope = exposure.encoded_slope(gain)
            sharpness = slope * focus.work_sharpness(gray, self.settings.focus_measure)
        report = FrameReport(
            index=index,
            name=name or f"frame {index + 1}",
            accepted=result.rejected is None,
            reason=result.rejected,
            transform=np.asarray(result.transform, float).round(6).tolist(),
            gain=[round(float(g), 6) for g in result.gain],
            offset=[round(float(o), 6) for o in result.offset],
            confidence=round(float(result.confidence), 4),
            method=result.method,
            sharpness=sharpness,
            seconds=round(time.perf_counter() - start, 4),
        )
        self.reports.append(report)
        return report

    def snapshot(self, max_side: int | None = None) -> np.ndarray | None:
        """The stack so far (HxWx3 float32), shrunk to ``max_side`` for a cheap preview."""
        if self._fusion is None:
            return None
        image = self._compose(self._fusion.image(max_side))
        self._to_typical_exposure(image, self.typical_exposure())
        return image

    def typical_exposure(self) -> tuple[float, float, float] | None:
        """Per channel, the linear-light gain from the first frame's exposure (which every
        frame is matched to) to the stack's typical one: the median frame's. None when exposure
        is not matched, or the two are within EXPOSURE_TOLERANCE.

        A flickering stack whose first frame came out dark would otherwise be as dark as that
        one frame. The median, not the mean: one frame with a missed flash does not pull it.
        """
        gains = [r.gain for r in self.reports if r.accepted]
        if not self.settings.match_exposure or len(gains) < 3:
            return None
        # A frame's gain maps it onto the first frame; its exposure relative to it is 1 / gain.
        typical = np.median(1.0 / np.asarray(gains, float), axis=0)
        if np.all(np.abs(typical - 1.0) < EXPOSURE_TOLERANCE):
            return None
        r, g, b = (float(v) for v in typical)
        return r, g, b

    @staticmethod
    def _to_typical_exposure(image: np.ndarray, scale: tuple[float, float, float] | None) -> None:
        if scale is None:
            return
        # Exact in encoded values above sRGB's toe (exposure.encoded_affine): no decoding.
        (ar, br), (ag, bg), (ab, bb) = (exposure.encoded_affine(g) for g in scale)
        bands.run(partial(_affine3, (ar, ag, ab, 0.0), (br, bg, bb, 0.0)), image)

    def finalize(self) -> StackResult:
        """The final result, depth map and reports. Raises when no frame could be used."""
        if self._fusion is None:
            reasons = "; ".join(f"{r.name}: {r.reason}" for r in self.reports) or "no frames given"
            raise NothingToStackError(f"no frame could be stacked ({reasons})")
        s = self.settings
        self._fusion.release()
        image = self._compose(self._fusion.image())
        scale = self.typical_exposure()
        self._to_typical_exposure(image, scale)
        if s.sharpen > 0:
            image = colour.unsharp(image, s.sharpen)
        box = self._crop_box()
        depth = self.depth_map()
        if box is not None:
            x, y, w, h = box
            image = image[y : y + h, x : x + w]
        bands.run(_clip_unit, image)
        sharp = focus.work_sharpness(align.work_gray(image, self._align_settings), s.focus_measure)
        return StackResult(image, depth, list(self.reports), box, sharp, self.coverage(), scale)

    def depth_map(self) -> np.ndarray:
        """The final depth map (cropped as the result will be), before :meth:`finalize`.

        It no longer changes once the last frame is in, so it can be written while the image
        is finalized.
        """
        if self._fusion is None:
            raise NothingToStackError("no frame has been stacked yet")
        depth = self._fusion.depth
        box = self._crop_box()
        if box is None:
            return depth
        x, y, w, h = box
        return depth[y : y + h, x : x + w]

    def _crop_box(self) -> tuple[int, int, int, int] | None:
        if not self.settings.crop or self._covered is None:
            return None
        if self._crop is None or self._crop[0] is not self._covered:
            box = geometry.inner_rectangle(self._covered)
            h, w = self._covered.shape
            self._crop = (self._covered, None if box == (0, 0, w, h) else box)
        return self._crop[1]

    def coverage(self) -> Coverage:
        """Whether the frames so far reach the subject's front and back (cheap: any time).

        Judged at the focus maps' reduced size, where the activity trace lives: the verdict
        needs shares of the image, not pixels, and 24 MP would cost far more for nothing.
        """
        order = [r.index for r in self.reports if r.accepted]
        fusion = self._fusion
        contrast = fusion.trace.contrast() if fusion is not None else None
        if fusion is None or contrast is None:
            return coverage.judge(np.zeros((0, 0), np.uint16), np.zeros((0, 0), bool), order)
        sharpness = self.settings.sharpness
        size = (contrast.shape[1], contrast.shape[0])
        index = cv2.resize(fusion.depth, size, interpolation=cv2.INTER_NEAREST)
        mask = coverage.textured(contrast, sharpness)
        if self._covered is not None:
            mask &= cv2.resize(self._covered, size, interpolation=cv2.INTER_NEAREST) > 0
        leads = fusion.trace.leads()
        if leads is None:
            return coverage.judge(index, mask, order)
        first, last = (coverage.clearly_sharpest(lead, sharpness) for lead in leads)
        return coverage.judge(index, mask, order, first, last)

    def coverage_map(self) -> np.ndarray | None:
        """Which frame is the sharpest where, as a picture (RGB uint8, the focus maps' size).

        Turbo colours from the first frame fused (blue) to the latest (red), dark grey where
        no frame has detail to judge by. None before any frame. What the coverage verdict
        reads, for people: a stack that reaches the subject's front and back shows the whole
        colour range on the subject, not a band of one end's colour along it.
        """
        fusion = self._fusion
        contrast = fusion.trace.contrast() if fusion is not None else None
        if fusion is None or contrast is None:
            return None
        size = (contrast.shape[1], contrast.shape[0])
        index = cv2.resize(fusion.depth, size, interpolation=cv2.INTER_NEAREST)
        # Frame indices count rejected frames too; the colours span the fused ones' order.
        order = np.zeros(max(r.index for r in self.reports) + 1, np.uint16)
        fused = [r.index for r in self.reports if r.accepted]
        order[fused] = np.arange(len(fused), dtype=np.uint16)
        picture = depthmap.render_depth(order[index], len(fused))
        picture[~coverage.textured(contrast, self.settings.sharpness)] = depthmap.NO_DETAIL
        return picture

    # -- internals -------------------------------------------------------------------------

    def _check_frame(self, pixels: np.ndarray) -> None:
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise FrameMismatchError(f"expected an RGB frame (H x W x 3), got shape {pixels.shape}")
        if self._shape is None:
            self._shape = pixels.shape
            return
        shape = self._shape
        if pixels.shape != shape:
            raise FrameMismatchError(
                f"frame is {pixels.shape[1]}x{pixels.shape[0]} but the stack is "
                f"{shape[1]}x{shape[0]}: every frame of a stack must have the same size"
            )

    def _fuse(self, index: int, pixels: np.ndarray, where: align.Alignment) -> None:
        s = self.settings
        h, w = pixels.shape[:2]
        t = np.asarray(where.transform, float)
        warped, border = pixels, None
        if not geometry.is_identity(t):
            warped, border = geometry.warp(pixels, t), geometry.outline(t, (h, w))
            # The crop keeps what every frame sees, to its edge: the 2 px the warp fills by
            # reflection are fused from the frames that have them, not cut for sub-pixel jitter.
            seen = geometry.outline(t, (h, w), inset=-0.5)
            mask = geometry.coverage(seen, (h, w), (h, w))
            self._covered = mask if self._covered is None else cv2.bitwise_and(self._covered, mask)
        gains = where.gain if s.match_exposure else (1.0, 1.0, 1.0)
        offsets = where.offset if s.match_exposure else (0.0, 0.0, 0.0)
        planes: Sequence[np.ndarray] = colour.Planes(warped, gains, offsets)
        # Focus is measured on the uncorrected gray, scaled by the correction's slope (free,
        # unlike a corrected copy); one mean gain, as channels drift apart a few % at most.
        scale = exposure.encoded_slope(float(np.mean(gains))) / full_scale(pixels.dtype)
        activity = self._measure(warped, scale)
        carry = None
        if s.luminance_only:
            planes, carry = colour.luma_chroma(list(planes))
        if self._fusion is None:
            self._fusion = accumulate.make_fusion(
                s.method, (h, w), len(planes), 0 if carry is None else len(carry)
            )
        self._fusion.update(accumulate.FusionInput(index, planes, activity, border, carry))

    def _measure(self, frame: np.ndarray, scale: float) -> np.ndarray:
        """The activity (softmax exponent) of a warped frame.

        A method of its own so that its gray copies are freed before fusion allocates.
        """
        s = self.settings
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        fmap, small = focus.frame_focus(
            gray, scale, s.focus_measure, s.window, s.focus_side, s.detail_side
        )
        return focus.activity(fmap, small, s.sharpness, s.edge_aware)

    def _compose(self, planes: Iterator[np.ndarray]) -> np.ndarray:
        """HxWx3 RGB from the fusion's planes (with the carried chroma when luminance-only)."""
        assert self._fusion is not None
        chroma = self._fusion.carried if self.settings.luminance_only else None
        return colour.to_rgb(planes, chroma)


def _affine3(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float], image: np.ndarray
) -> None:
    """``image = a * image + b`` per channel, in place (H x W x 3 float32)."""
    cv2.multiply(image, a, dst=image)
    cv2.add(image, b, dst=image)


def _clip_unit(image: np.ndarray) -> None:
    np.clip(image, 0.0, 1.0, out=image)
