"""Depth-map rendering (pure): frame index per pixel -> a colour picture for people."""

from __future__ import annotations

import cv2
import numpy as np

# Turbo, near (first frame) blue to far red: 256 RGB entries.
PALETTE = np.ascontiguousarray(
    cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_TURBO)[
        :, 0, ::-1
    ]
)


# Where no frame has detail to judge by (a coverage picture): dark grey, apart from every colour.
NO_DETAIL = (48, 48, 48)


def depth_levels(depth: np.ndarray, frames: int) -> np.ndarray:
    """uint8 palette index per pixel: the frame index spread over 0..255."""
    span = max(1, frames - 1)
    # Scaled, rounded and saturated in one pass (a float copy costs fifty times more).
    return cv2.convertScaleAbs(depth, alpha=255.0 / span)


def render_depth(depth: np.ndarray, frames: int) -> np.ndarray:
    """RGB uint8 rendering of a frame-index map (the palette looked up)."""
    return PALETTE[depth_levels(depth, frames)]
