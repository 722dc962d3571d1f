"""StackEngine: frames in one at a time, the all-in-focus result out at any moment.

Per frame: align to the predecessor -> warp into the reference geometry with exposure
correction -> focus measure -> fold into the streaming fusion. Memory holds the fusion state
and one frame, never the stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import overload

import cv2
import numpy as np

from stacking import accumulate, align, exposure, focus, guided, pyramid
from stacking.errors import FrameMismatchError, NothingToStackError

_FOCUS_FLOOR = 1e-6  # keeps log(focus) finite on perfectly flat areas


@dataclass(frozen=True)
class StackSettings:
    method: str = "pyramid"  # pyramid | weighted | depthmap
    align: str = "similarity"  # none | translation | similarity | affine | homography
    focus_measure: str = "laplacian"  # laplacian | tenengrad | sml
    window: float | None = None  # focus window diameter in px; None: 1.6 % of the diagonal
    sharpness: float = 12.0  # softmax exponent on focus: higher picks the sharpest more strictly
    edge_aware: bool = True  # guided-filter the focus maps so transitions follow object edges
    luminance_only: bool = False  # fuse luminance, carry chroma from the sharpest frame
    crop: bool = False  # crop to the area every accepted frame covers
    sharpen: float = 0.0  # unsharp-mask amount applied to the result (0: off)
    match_exposure: bool = True  # correct exposure flicker and white-balance drift between frames
    exposure_offset: bool = False  # also correct a flare/black-level offset (see AlignSettings)
    focus_side: int = 1024  # resolution (longest side) the focus window is applied at
    detail_side: int = 3072  # focus detail is measured on frames halved down to this size

    def __post_init__(self) -> None:
        if self.method not in accumulate.METHODS:
            raise ValueError(
                f"fusion method {self.method!r}: choose one of {', '.join(accumulate.METHODS)}"
            )
        if self.focus_measure not in focus.MEASURES:
            raise ValueError(
                f"focus measure {self.focus_measure!r}: choose one of {', '.join(focus.MEASURES)}"
            )
        align.AlignSettings(model=self.align)  # validates the model name
        if self.window is not None and self.window < 3:
            raise ValueError(f"focus window {self.window}: must be at least 3 px")
        if self.sharpness <= 0:
            raise ValueError(f"sharpness {self.sharpness}: must be > 0")
        if self.sharpen < 0:
            raise ValueError(f"sharpen {self.sharpen}: must be >= 0")


@dataclass
class FrameReport:
    """What happened to one frame; JSON-ready through :meth:`to_dict`."""

    index: int
    name: str
    accepted: bool
    reason: str | None
    transform: list[list[float]]  # 3x3, reference -> frame pixels
    gain: list[float]  # per channel, linear light, applied to match the reference exposure
    offset: list[float]  # per channel, linear light, added after the gain
    confidence: float
    method: str
    sharpness: float  # mean focus measure of the frame
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def alignment(self) -> align.Alignment:
        return align.Alignment(
            transform=np.array(self.transform, float),
            relative=np.eye(3),
            gain=(self.gain[0], self.gain[1], self.gain[2]),
            offset=(self.offset[0], self.offset[1], self.offset[2]),
            confidence=self.confidence,
            method="given",
            rejected=self.reason if not self.accepted else None,
        )


@dataclass
class StackResult:
    image: np.ndarray  # float32 HxWx3 RGB, 0..1
    depth: np.ndarray  # uint16 HxW: index of the sharpest frame per pixel
    reports: list[FrameReport]
    crop: tuple[int, int, int, int] | None  # (x, y, w, h) applied, or None
    sharpness: float  # mean focus measure of the result

    @property
    def accepted(self) -> list[FrameReport]:
        return [r for r in self.reports if r.accepted]

    @property
    def rejected(self) -> list[FrameReport]:
        return [r for r in self.reports if not r.accepted]


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
            sharpness = self._fuse(index, pixels, result)
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
        return self._compose(self._fusion.image(max_side), max_side)

    def finalize(self) -> StackResult:
        """The final result, depth map and reports. Raises when no frame could be used."""
        if self._fusion is None:
            reasons = "; ".join(f"{r.name}: {r.reason}" for r in self.reports) or "no frames given"
            raise NothingToStackError(f"no frame could be stacked ({reasons})")
        self._fusion.release()
        image = self._compose(self._fusion.image(), None)
        if self.settings.sharpen > 0:
            image = unsharp(image, self.settings.sharpen)
        depth = self._fusion.depth
        box = None
        if self.settings.crop and self._covered is not None:
            box = inner_rectangle(self._covered)
            x, y, w, h = box
            image, depth = image[y : y + h, x : x + w], depth[y : y + h, x : x + w]
        np.clip(image, 0.0, 1.0, out=image)
        sharp = image_sharpness(image, self.settings)
        return StackResult(image, depth, list(self.reports), box, sharp)

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

    def _fuse(self, index: int, pixels: np.ndarray, where: align.Alignment) -> float:
        h, w = pixels.shape[:2]
        t = np.asarray(where.transform, float)
        identity = bool(np.allclose(t, np.eye(3), atol=1e-9))
        warped = pixels if identity else warp(pixels, t)
        border = None if identity else outline(t, (h, w))
        if border is not None:
            mask = accumulate.coverage(border, (h, w), (h, w))
            self._covered = mask if self._covered is None else cv2.bitwise_and(self._covered, mask)
        match = self.settings.match_exposure
        gains = where.gain if match else (1.0, 1.0, 1.0)
        offsets = where.offset if match else (0.0, 0.0, 0.0)
        planes: Sequence[np.ndarray] = _Planes(warped, gains, offsets)
        # Focus only compares frames: a gain close enough to the exposure change will do.
        scale = float(np.mean(gains)) ** (1 / 2.2) / _full_scale(pixels.dtype)
        activity, mean_focus = self._activity(cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY), scale)
        carry = None
        if self.settings.luminance_only:
            planes, carry = _luma_chroma(list(planes))
        if self._fusion is None:
            self._fusion = accumulate.make_fusion(
                self.settings.method, (h, w), len(planes), 0 if carry is None else len(carry)
            )
        self._fusion.update(accumulate.FusionInput(index, planes, activity, border, carry))
        return mean_focus

    def _activity(self, gray: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
        """sharpness * log(focus) at a reduced size, and the frame's mean focus."""
        s = self.settings
        fmap, small = focus.frame_focus(
            gray, scale, s.focus_measure, s.window, s.focus_side, s.detail_side
        )
        mean_focus = float(fmap.mean())
        log_focus = cv2.log(cv2.add(fmap, _FOCUS_FLOOR))
        if s.edge_aware:
            guide = pyramid.resize_to(small, fmap.shape)
            radius = max(2, round(min(fmap.shape) / 200))
            log_focus = guided.guided_filter(guide, log_focus, radius, 1e-3)
        return cv2.multiply(log_focus, s.sharpness), mean_focus

    def _compose(self, planes: Iterator[np.ndarray], max_side: int | None) -> np.ndarray:
        """HxWx3 RGB from the fusion's planes, filled one plane at a time."""
        assert self._fusion is not None
        if self.settings.luminance_only:
            luma = next(planes)
            chroma = [pyramid.resize_to(c, luma.shape) for c in self._fusion.carried]
            return np.asarray(
                cv2.cvtColor(cv2.merge([luma, *chroma]), cv2.COLOR_YCrCb2RGB), np.float32
            )
        image: np.ndarray | None = None
        for c, plane in enumerate(planes):
            if image is None:
                image = np.empty((*plane.shape, 3), np.float32)
            image[..., c] = plane
        assert image is not None
        return image


def _full_scale(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    return 1.0


class _Planes(Sequence[np.ndarray]):
    """The float32 channels of a frame, each made only when asked for (one in memory at once)."""

    def __init__(
        self, pixels: np.ndarray, gains: tuple[float, ...], offsets: tuple[float, ...]
    ) -> None:
        self.pixels = pixels
        self.gains = gains
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.gains)

    @overload
    def __getitem__(self, c: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, c: slice) -> Sequence[np.ndarray]: ...
    def __getitem__(self, c: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(c, slice):
            return [self[i] for i in range(len(self))[c]]
        if not 0 <= c < len(self):
            raise IndexError(c)
        channel = cv2.extractChannel(self.pixels, c)
        if self.gains[c] == 1.0 and self.offsets[c] == 0.0:
            return cv2.multiply(channel, 1.0 / _full_scale(channel.dtype), dtype=cv2.CV_32F)
        return exposure.corrected_channel(channel, self.gains[c], self.offsets[c])


def _luma_chroma(rgb: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    y, cr, cb = cv2.split(cv2.cvtColor(cv2.merge(rgb), cv2.COLOR_RGB2YCrCb))
    return [y], [cr, cb]


def warp(pixels: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Bring a frame into the reference geometry (bicubic: keeps fine detail sharp)."""
    h, w = pixels.shape[:2]
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    if np.allclose(transform[2], [0, 0, 1]):
        return cv2.warpAffine(
            pixels, transform[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT
        )
    return cv2.warpPerspective(
        pixels, transform, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT
    )


def outline(transform: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Where a warped frame has real data: its edges, 2 px in, in reference pixels (4 x 2).

    The bicubic kernel reaches 2 px: nearer the edge it mixes in reflected data.
    """
    h, w = shape
    inset = 2.0
    corners = np.array(
        [
            [inset, inset, 1],
            [w - 1 - inset, inset, 1],
            [w - 1 - inset, h - 1 - inset, 1],
            [inset, h - 1 - inset, 1],
        ]
    ).T
    ref = np.linalg.inv(transform) @ corners
    return (ref[:2] / ref[2]).T


def inner_rectangle(mask: np.ndarray) -> tuple[int, int, int, int]:
    """A large axis-aligned (x, y, w, h) rectangle inside the nonzero area of ``mask``."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, mask.shape[1], mask.shape[0])
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    # Shrink the side whose edge has the most uncovered pixels until the box is all covered.
    while top < bottom and left < right:
        edges = {
            "top": np.count_nonzero(mask[top, left : right + 1] == 0),
            "bottom": np.count_nonzero(mask[bottom, left : right + 1] == 0),
            "left": np.count_nonzero(mask[top : bottom + 1, left] == 0),
            "right": np.count_nonzero(mask[top : bottom + 1, right] == 0),
        }
        worst = max(edges, key=lambda k: edges[k])
        if edges[worst] == 0:
            break
        if worst == "top":
            top += 1
        elif worst == "bottom":
            bottom -= 1
        elif worst == "left":
            left += 1
        else:
            right -= 1
    return (int(left), int(top), int(right - left + 1), int(bottom - top + 1))


def unsharp(image: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask: ``image + amount * (image - blur(image))``."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)


def image_sharpness(image: np.ndarray, settings: StackSettings) -> float:
    """Mean focus measure of an RGB float image, comparable with FrameReport.sharpness."""
    s = settings
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    fmap, _ = focus.frame_focus(gray, 1.0, s.focus_measure, s.window, s.focus_side, s.detail_side)
    return float(fmap.mean())
