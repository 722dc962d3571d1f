"""Colour planes: lazily corrected channels, luma/chroma and back to RGB."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import textured_scene, to_u8

from stacking import colour, exposure


def test_planes_are_channels_in_zero_to_one_and_corrected_on_demand() -> None:
    frame = to_u8(textured_scene(40, 50))
    planes = colour.Planes(frame, (1.0, 1.1, 1.0), (0.0, 0.0, 0.01))
    assert len(planes) == 3 and len(planes[1:]) == 2
    assert np.allclose(planes[0], frame[..., 0] / 255.0, atol=1e-6)
    want = exposure.corrected_channel(np.ascontiguousarray(frame[..., 1]), 1.1, 0.0)
    assert np.array_equal(planes[1], want)
    assert planes[2].dtype == np.float32
    with pytest.raises(IndexError):
        planes[3]


def test_uint16_planes_use_the_same_scale() -> None:
    frame = to_u8(textured_scene(40, 50))
    planes = colour.Planes(frame.astype(np.uint16) * 257, (1.0,) * 3, (0.0,) * 3)
    assert np.allclose(planes[2], frame[..., 2] / 255.0, atol=1e-6)


def test_luma_chroma_round_trip() -> None:
    rgb = textured_scene(40, 50)
    luma, chroma = colour.luma_chroma([rgb[..., c].copy() for c in range(3)])
    assert len(luma) == 1 and len(chroma) == 2
    # OpenCV rounds the YCrCb coefficients: the round trip is good to a few 1e-4.
    assert np.abs(colour.to_rgb(iter(luma), chroma) - rgb).max() < 1e-3


def test_to_rgb_stacks_planes_and_upsizes_carried_chroma() -> None:
    rgb = textured_scene(40, 50)
    assert np.array_equal(colour.to_rgb(iter([rgb[..., c] for c in range(3)]), None), rgb)
    grey = np.full((40, 50), 0.5, np.float32)
    small = [np.full((20, 25), 0.5, np.float32)] * 2  # neutral chroma at half size
    assert np.allclose(colour.to_rgb(iter([grey]), small), 0.5, atol=1e-6)


def test_unsharp_leaves_flat_areas_and_raises_contrast() -> None:
    flat = np.full((20, 20, 3), 0.4, np.float32)
    assert np.allclose(colour.unsharp(flat, 1.0), 0.4, atol=1e-6)
    edge = flat.copy()
    edge[:, 10:] = 0.6
    sharper = colour.unsharp(edge, 1.0)
    assert sharper[:, 9].max() < 0.4 and sharper[:, 10].min() > 0.6
