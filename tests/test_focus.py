"""Focus post-processing: activity is sharpness * log(focus); image sharpness ranks images."""

from __future__ import annotations

import cv2
import numpy as np
from helpers import textured_scene

from stacking import focus


def test_activity_is_sharpness_times_log_focus() -> None:
    fmap = np.array([[0.0, 0.01], [0.1, 1.0]], np.float32)
    got = focus.activity(fmap, fmap, 12.0, edge_aware=False)
    assert np.allclose(got, 12.0 * np.log(fmap + focus.FOCUS_FLOOR), rtol=1e-5)
    assert np.isfinite(got).all()  # the floor keeps flat areas finite


def test_edge_aware_activity_keeps_the_map_size_and_order() -> None:
    gray = cv2.cvtColor(textured_scene(120, 160), cv2.COLOR_RGB2GRAY)
    fmap, small = focus.frame_focus(gray, 1.0, "laplacian", None, 64, 0)
    got = focus.activity(fmap, small, 12.0, edge_aware=True)
    assert got.shape == fmap.shape and got.dtype == np.float32
    plain = focus.activity(fmap, small, 12.0, edge_aware=False)
    assert np.corrcoef(got.ravel(), plain.ravel())[0, 1] > 0.9


def test_image_sharpness_ranks_sharp_above_blurred() -> None:
    sharp = textured_scene(120, 160)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    args = ("laplacian", None, 1024, 3072)
    assert focus.image_sharpness(sharp, *args) > 2 * focus.image_sharpness(blurred, *args)
