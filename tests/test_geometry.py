"""Frame geometry: warps undo known motion, outlines and masks land where the data is."""

from __future__ import annotations

import numpy as np
from helpers import textured_scene

from stacking import geometry


def _shift(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def test_warp_undoes_a_known_shift() -> None:
    scene = textured_scene(120, 160)
    frame = np.zeros_like(scene)
    frame[3:, 5:] = scene[:-3, :-5]  # the scene moved 5 px right, 3 px down
    back = geometry.warp(frame, _shift(5, 3))
    assert np.abs(back[10:-10, 10:-10] - scene[10:-10, 10:-10]).max() < 1e-5


def test_warp_takes_the_perspective_path_for_a_homography() -> None:
    scene = textured_scene(120, 160)
    scaled = 2.0 * _shift(5, 3)  # the same motion, as a homography not normalised to h33 = 1
    affine, perspective = geometry.warp(scene, _shift(5, 3)), geometry.warp(scene, scaled)
    assert np.abs(affine - perspective)[10:-10, 10:-10].max() < 1e-4


def test_outline_is_the_inset_frame_moved_back() -> None:
    h, w = 100, 160
    corners = np.array([[2, 2], [w - 3, 2], [w - 3, h - 3], [2, h - 3]], float)
    assert np.allclose(geometry.outline(np.eye(3), (h, w)), corners)
    assert np.allclose(geometry.outline(_shift(5, -4), (h, w)), corners - [5, -4])


def test_coverage_fills_the_outline_at_any_level() -> None:
    h, w = 100, 160
    border = geometry.outline(_shift(10, 0), (h, w))  # frame data from x = -8 to w - 13
    full = geometry.coverage(border, (h, w), (h, w))
    assert full.dtype == np.uint8 and set(np.unique(full)) == {0, 255}
    assert full[50, : w - 13].all() and not full[50, w - 12 :].any()
    half = geometry.coverage(border, (h, w), (h // 2, w // 2))
    assert half.shape == (h // 2, w // 2) and half[25, : w // 2 - 8].all()


def test_inner_rectangle_of_a_known_mask() -> None:
    mask = np.zeros((60, 90), np.uint8)
    mask[10:50, 20:70] = 255
    assert geometry.inner_rectangle(mask) == (20, 10, 50, 40)
    mask[10, 20] = 0  # one missing corner pixel costs one row or column
    x, y, w, h = geometry.inner_rectangle(mask)
    assert mask[y : y + h, x : x + w].all() and w * h in (49 * 40, 50 * 39)


def test_inner_rectangle_of_an_empty_mask_is_everything() -> None:
    assert geometry.inner_rectangle(np.zeros((30, 40), np.uint8)) == (0, 0, 40, 30)


def test_identity_means_no_warp() -> None:
    assert geometry.is_identity(np.eye(3))
    assert not geometry.is_identity(_shift(0.01, 0))
