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


def test_work_sharpness_ranks_sharp_above_blurred() -> None:
    sharp = cv2.cvtColor(textured_scene(120, 160), cv2.COLOR_RGB2GRAY)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    assert focus.work_sharpness(sharp, "laplacian") > 2 * focus.work_sharpness(blurred, "laplacian")


def test_sensor_noise_does_not_count_as_sharpness() -> None:
    """A dim, noisy frame (shot noise varying across it) measures as sharp as the clean image
    it is a noisy copy of; the plain mean focus calls it more than twice as sharp."""
    rng = np.random.default_rng(4)
    gray = cv2.cvtColor(textured_scene(240, 320), cv2.COLOR_RGB2GRAY)
    clean = cv2.GaussianBlur(gray, (0, 0), 0.7) * np.float32(0.1)  # a tenth of the range
    shot = np.sqrt(clean) * np.float32(0.005)
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * shot
    raw = focus.focus_map(noisy, "laplacian").mean() / focus.focus_map(clean, "laplacian").mean()
    assert raw > 2.0  # what the noise does to the plain measure
    for measure in ("laplacian", "tenengrad"):
        got = focus.work_sharpness(noisy, measure) / focus.work_sharpness(clean, measure)
        assert 0.95 < got < 1.05, measure
