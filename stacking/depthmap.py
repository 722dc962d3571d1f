"""Depth-map rendering (pure): frame index per pixel -> a colour picture for people."""

from __future__ import annotations

import cv2
import numpy as np


def render_depth(depth: np.ndarray, frames: int) -> np.ndarray:
    """RGB uint8 rendering of a frame-index map: near (first frame) blue, far red (turbo)."""
    span = max(1, frames - 1)
    levels = np.clip(depth.astype(np.float32) * (255.0 / span), 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
