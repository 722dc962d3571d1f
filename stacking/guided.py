"""Guided filter (He, Sun, Tang 2013): edge-aware smoothing of a map by a guide image."""

from __future__ import annotations

import cv2
import numpy as np


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Smooth ``src`` so its edges follow ``guide``'s; both float32 HxW of the same size.

    ``radius`` is the box radius in pixels, ``eps`` the regulariser in squared guide units:
    guide edges with a variance well above ``eps`` are kept, flatter regions are smoothed.
    """
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide)
    mean_p = box(src)
    var_i = cv2.subtract(box(cv2.multiply(guide, guide)), cv2.multiply(mean_i, mean_i))
    cov_ip = cv2.subtract(box(cv2.multiply(guide, src)), cv2.multiply(mean_i, mean_p))
    a = cv2.divide(cov_ip, cv2.add(var_i, eps))
    b = cv2.subtract(mean_p, cv2.multiply(a, mean_i))
    return cv2.add(cv2.multiply(box(a), guide), box(b)).astype(np.float32)
