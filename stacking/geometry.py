"""Frame geometry (pure): warping into the reference, where a warped frame has data.

Transforms are 3x3 matrices mapping reference pixel coordinates to frame pixel coordinates
(see :mod:`stacking.align`).
"""

from __future__ import annotations

import cv2
import numpy as np

_INSET = 2.0  # px: the bicubic kernel's reach, nearer the edge it mixes in reflected data


def is_identity(transform: np.ndarray) -> bool:
    """True when ``transform`` leaves the frame where it is (no warp, no border)."""
    return bool(np.allclose(transform, np.eye(3), atol=1e-9))


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


def outline(transform: np.ndarray, shape: tuple[int, int], inset: float = _INSET) -> np.ndarray:
    """Where a warped frame has real data, in reference pixels (4 x 2): its edges, ``inset``
    px in (by default as far as bicubic interpolation reaches; -0.5: the frame's own edge, so
    that pixels whose centres it sees are inside)."""
    h, w = shape
    near, far_x, far_y = inset, w - 1 - inset, h - 1 - inset
    corners = np.array([[near, near, 1], [far_x, near, 1], [far_x, far_y, 1], [near, far_y, 1]]).T
    ref = np.linalg.inv(transform) @ corners
    return (ref[:2] / ref[2]).T


def coverage(outline: np.ndarray, full: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """uint8 mask (255 inside) of ``outline`` (in ``full``-size pixels) drawn at ``shape``.

    Pixel centres scale, not pixel corners, so one outline serves every pyramid level.
    """
    sy, sx = shape[0] / full[0], shape[1] / full[1]
    pts = (outline + 0.5) * (sx, sy) - 0.5
    mask = np.zeros(shape, np.uint8)
    bits = 8  # sub-pixel precision of the polygon corners
    cv2.fillConvexPoly(mask, np.round(pts * (1 << bits)).astype(np.int32), 255, cv2.LINE_8, bits)
    return mask


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


def uncrop(
    image: np.ndarray, box: tuple[int, int, int, int] | None, shape: tuple[int, ...]
) -> np.ndarray:
    """An image cropped to ``box`` (x, y, w, h; None: not cropped) back on the full canvas of
    ``shape``, its edges repeated outward: for comparing a cropped result with something in
    the reference frame's geometry, inside a border wider than the crop."""
    if box is None:
        return image
    x, y, w, h = box
    bottom, right = shape[0] - y - h, shape[1] - x - w
    return cv2.copyMakeBorder(image, y, bottom, x, right, cv2.BORDER_REPLICATE)
