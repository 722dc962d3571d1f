"""Row bands: the same result as one call over the whole image, failures passed on."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from stacking import bands


def _weigh(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    cv2.exp(cv2.subtract(a, b), dst=out)


@pytest.mark.parametrize("height", [1, 7, 1001, 2048])
def test_bands_give_the_whole_image_result(height: int) -> None:
    rng = np.random.default_rng(height)
    a, b = (rng.random((height, 1500), np.float32) for _ in range(2))
    out = np.zeros_like(a)
    bands.run(_weigh, a, b, out)
    np.testing.assert_array_equal(out, cv2.exp(cv2.subtract(a, b)))


def test_large_images_are_split_and_small_ones_are_not() -> None:
    assert bands.count(1000) == 1
    expected = min(cv2.getNumThreads(), os.cpu_count() or 1)
    assert bands.count(24_000_000) == max(1, expected)


def test_a_failing_band_raises_after_every_band_has_finished() -> None:
    seen: list[int] = []

    def work(rows: np.ndarray) -> None:
        seen.append(len(rows))
        if rows[0, 0] > 0:
            raise ValueError("band failed")

    image = np.ones((4000, 1000), np.float32)  # every band fails, the first on this thread
    with pytest.raises(ValueError, match="band failed"):
        bands.run(work, image)
    assert sum(seen) == len(image)
