"""Exposure matching in linear light: gain, offset, and the per-channel correction."""

from __future__ import annotations

import numpy as np
from helpers import expose, textured_scene, to_u8

from stacking import align, exposure


def _pair_exposure(ref: np.ndarray, other: np.ndarray, with_offset: bool) -> align.Alignment:
    settings = align.AlignSettings(exposure_offset=with_offset, model="none")
    aligner = align.IncrementalAligner(settings)
    aligner.align(*align.work_images(ref, settings), ref.shape)
    return aligner.align(*align.work_images(other, settings), other.shape)


def test_srgb_round_trip() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.abs(exposure.linear_to_srgb(exposure.srgb_to_linear(x)) - x).max() < 1e-5


def test_gain_and_offset_recovered_when_asked() -> None:
    scene = textured_scene(300, 400)
    x = exposure.srgb_to_linear(scene)
    other = exposure.linear_to_srgb((x - 0.02) / 1.05)  # reference = 1.05 * other + 0.02
    got = _pair_exposure(to_u8(scene), to_u8(other), with_offset=True)
    assert np.allclose(got.gain, 1.05, atol=0.02)
    assert np.allclose(got.offset, 0.02, atol=0.005)


def test_offset_left_alone_by_default() -> None:
    scene = textured_scene(300, 400)
    got = _pair_exposure(to_u8(scene), to_u8(expose(scene, 0.9)), with_offset=False)
    assert got.offset == (0.0, 0.0, 0.0)
    assert np.allclose(got.gain, 1 / 0.9, rtol=0.01)


def test_corrected_channel_matches_formula_for_each_dtype() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    want = exposure.linear_to_srgb(exposure.srgb_to_linear(levels / 255.0) * 1.1 + 0.01)
    got8 = exposure.corrected_channel(levels, 1.1, 0.01)
    got16 = exposure.corrected_channel(levels.astype(np.uint16) * 257, 1.1, 0.01)
    gotf = exposure.corrected_channel(levels.astype(np.float32) / 255.0, 1.1, 0.01)
    for got in (got8, got16, gotf):
        assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-4


def test_compose_chains_corrections() -> None:
    outer = (np.array([2.0, 1.0, 1.0]), np.array([0.1, 0.0, 0.0]))
    inner = (np.array([3.0, 1.0, 1.0]), np.array([0.5, 0.0, 0.0]))
    gain, offset = exposure.compose(outer, inner)
    x = 0.2
    assert gain[0] * x + offset[0] == 2.0 * (3.0 * x + 0.5) + 0.1


def test_encoded_slope_is_the_exact_srgb_slope_of_a_gain() -> None:
    """Above the toe a linear gain is affine in sRGB values: differences scale by the slope."""
    e = np.array([0.2, 0.5, 0.8], np.float32)
    corrected = exposure.linear_to_srgb(exposure.srgb_to_linear(e) * 1.1)
    steps = np.diff(corrected) / np.diff(e)
    assert np.allclose(steps, exposure.encoded_slope(1.1), rtol=1e-4)
