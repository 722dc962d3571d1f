"""Pyramid helpers: the Laplacian pyramid is exactly invertible, with or without buffers."""

from __future__ import annotations

import numpy as np
from helpers import textured_scene

from stacking import pyramid


def test_laplacian_collapses_back_exactly() -> None:
    img = textured_scene(237, 311)[..., 1].copy()  # odd sizes on purpose
    levels = pyramid.level_count(img.shape)
    bands = pyramid.laplacian(img, levels)
    assert [b.shape for b in bands] == pyramid.level_shapes(img.shape, levels)
    assert np.abs(pyramid.collapse(bands) - img).max() < 1e-5


def test_reused_buffers_give_the_same_bands() -> None:
    img = textured_scene(120, 160)[..., 0].copy()
    levels = pyramid.level_count(img.shape)
    buffers = pyramid.Buffers(pyramid.level_shapes(img.shape, levels))
    fresh = pyramid.laplacian(img, levels)
    reused = pyramid.laplacian(img, levels, buffers)
    for a, b in zip(fresh, reused, strict=True):
        assert np.array_equal(a, b)
