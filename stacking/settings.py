"""What the engine can be asked to do, and the names of every choice.

No OpenCV here: profiles, the command line and the TUI read these lists and validate settings
without loading the image libraries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

METHODS = ("pyramid", "weighted", "depthmap")
MODELS = ("none", "translation", "similarity", "affine", "homography")
MEASURES = ("laplacian", "tenengrad", "sml")

# Result files by suffix; the engine's outputs are TIFF (8/16-bit), PNG (8/16-bit) or JPEG.
OUTPUT_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}
# Frames above this many pixels are refused before decoding: the fusion state of a stack
# needs about 70 bytes per pixel, so 200 MP already asks for ~14 GB.
MAX_PIXELS = 200_000_000

MIN_WINDOW = 3.0
MAX_WINDOW = 4000.0  # px; a focus window wider than a few thousand pixels measures nothing local
MAX_SHARPEN = 10.0  # unsharp-mask amount; far past this the result is only halos and noise
MAX_SHARPNESS = 100.0


def choose(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{kind} {value!r}: choose one of {', '.join(allowed)}")
    return value


def in_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` if it is a finite number in [low, high] (or (low, high]), else ValueError."""
    number = float(value)
    above = number > low if low_open else number >= low
    if not math.isfinite(number) or not above or number > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} {value}: must be a number in {bracket}{low:g}, {high:g}]")
    return number


@dataclass(frozen=True)
class StackSettings:
    method: str = "pyramid"  # pyramid | weighted | depthmap
    align: str = "similarity"  # none | translation | similarity | affine | homography
    focus_measure: str = "laplacian"  # laplacian | tenengrad | sml
    window: float | None = None  # focus window diameter in px; None: 1.6 % of the diagonal
    sharpness: float = 12.0  # softmax exponent on focus: higher picks the sharpest more strictly
    edge_aware: bool = True  # guided-filter the focus maps so transitions follow object edges
    luminance_only: bool = False  # fuse luminance, carry chroma from the sharpest frame
    # Crop to the area every accepted frame sees. Magnification change (focus breathing) leaves
    # a border that only the widest-view frames see, so it is only as sharp as they are, and
    # it exists only when a widest-view frame is the reference: the crop is the same picture
    # whichever end of the stack comes first.
    crop: bool = True
    sharpen: float = 0.0  # unsharp-mask amount applied to the result (0: off)
    match_exposure: bool = True  # correct exposure flicker and white-balance drift between frames
    exposure_offset: bool = False  # also correct a flare/black-level offset (see AlignSettings)
    focus_side: int = 1024  # resolution (longest side) the focus window is applied at
    detail_side: int = 3072  # focus detail is measured on frames halved down to this size

    def __post_init__(self) -> None:
        choose("fusion method", self.method, METHODS)
        choose("alignment model", self.align, MODELS)
        choose("focus measure", self.focus_measure, MEASURES)
        if self.window is not None:
            in_range("focus window", self.window, MIN_WINDOW, MAX_WINDOW)
        in_range("sharpness", self.sharpness, 0.0, MAX_SHARPNESS, low_open=True)
        in_range("sharpen", self.sharpen, 0.0, MAX_SHARPEN)
        for name in ("focus_side", "detail_side"):
            in_range(name, getattr(self, name), 0, 1 << 16)  # 0: full size
