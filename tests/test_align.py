"""The aligner recovers known motion and rejects what it must, with a reason."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import expose, render, similarity, textured_scene, to_u8

from stacking import align


def _align_pair(ref: np.ndarray, moved: np.ndarray, model: str = "similarity") -> align.Alignment:
    settings = align.AlignSettings(model=model)
    aligner = align.IncrementalAligner(settings)
    first = aligner.align(*align.work_images(ref, settings), ref.shape)
    assert first.method == "reference" and first.rejected is None
    return aligner.align(*align.work_images(moved, settings), moved.shape)


def _corner_error(found: np.ndarray, truth: np.ndarray, shape: tuple[int, ...]) -> float:
    h, w = shape[:2]
    pts = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    return float(np.abs((found @ pts)[:2] - (truth @ pts)[:2]).max())


@pytest.mark.parametrize(
    ("scale", "degrees", "tx", "ty"),
    [(1.0, 0.0, 3.4, -2.2), (1.02, 0.0, 0.0, 0.0), (1.0, 0.8, 0.0, 0.0), (1.015, -0.5, 1.7, 2.9)],
)
def test_recovers_known_similarity(scale: float, degrees: float, tx: float, ty: float) -> None:
    scene = textured_scene(360, 480)
    truth = similarity(scale, degrees, tx, ty, (240, 180))
    got = _align_pair(to_u8(scene), to_u8(render(scene, truth)))
    assert got.rejected is None
    assert _corner_error(got.transform, truth, scene.shape) < 0.15


def test_translation_model_keeps_pure_shift() -> None:
    scene = textured_scene()
    truth = similarity(1.0, 0.0, -4.5, 1.25, (160, 120))
    got = _align_pair(to_u8(scene), to_u8(render(scene, truth)), model="translation")
    assert np.allclose(got.transform[:2, :2], np.eye(2))
    assert np.allclose(got.transform[:2, 2], [-4.5, 1.25], atol=0.1)


def test_chained_frames_compose_back_to_reference() -> None:
    scene = textured_scene(300, 400)
    settings = align.AlignSettings()
    aligner = align.IncrementalAligner(settings)
    steps = [similarity(1.004**i, 0.1 * i, 0.8 * i, -0.5 * i, (200, 150)) for i in range(6)]
    for truth in steps:
        frame = to_u8(render(scene, truth))
        got = aligner.align(*align.work_images(frame, settings), frame.shape)
        assert got.rejected is None
        assert _corner_error(got.transform, truth, scene.shape) < 0.2


def test_exposure_and_white_balance_gain_recovered() -> None:
    scene = textured_scene()
    dimmer = expose(scene, np.array([0.9, 0.95, 0.85]))
    got = _align_pair(to_u8(scene), to_u8(dimmer))
    # Gains are in linear light, where exposure acts.
    assert np.allclose(got.gain, [1 / 0.9, 1 / 0.95, 1 / 0.85], rtol=0.01)


def test_blank_frame_rejected() -> None:
    scene = textured_scene()
    blank = np.full_like(to_u8(scene), 40)
    got = _align_pair(to_u8(scene), blank)
    assert got.rejected is not None and got.rejected.startswith("mostly blank")


def test_unrelated_frame_does_not_converge() -> None:
    got = _align_pair(to_u8(textured_scene(seed=1)), to_u8(textured_scene(seed=99)))
    assert got.rejected is not None and "did not converge" in got.rejected


def test_implausible_step_out_of_bounds() -> None:
    scene = textured_scene(360, 480)
    truth = similarity(1.12, 0.0, 0.0, 0.0, (240, 180))  # 12 % zoom between neighbours
    got = _align_pair(to_u8(scene), to_u8(render(scene, truth)))
    assert got.rejected is not None and got.rejected.startswith("transform out of bounds")


def test_check_step_names_each_bound() -> None:
    settings = align.AlignSettings()
    shape = (400, 600)
    assert align.check_step(np.eye(3), shape, settings) is None
    assert "scale" in str(align.check_step(similarity(1.2, 0, 0, 0, (300, 200)), shape, settings))
    assert "rotated" in str(align.check_step(similarity(1, 10, 0, 0, (300, 200)), shape, settings))
    assert "moved" in str(align.check_step(similarity(1, 0, 200, 0, (300, 200)), shape, settings))


def test_unknown_model_named_in_error() -> None:
    with pytest.raises(ValueError, match="choose one of none, translation"):
        align.AlignSettings(model="rigid")


def test_sharp_against_blurred_neighbour() -> None:
    """Defocus between neighbours does not throw the estimate off."""
    scene = textured_scene(360, 480)
    truth = similarity(1.01, 0.2, 2.3, -1.6, (240, 180))
    blurred = cv2.GaussianBlur(render(scene, truth), (0, 0), 3.0)
    got = _align_pair(to_u8(scene), to_u8(blurred))
    assert got.rejected is None
    assert _corner_error(got.transform, truth, scene.shape) < 0.3


def test_keypoints_find_what_ecc_cannot() -> None:
    """A jump too big for ECC from its seed is found by keypoint matching."""
    scene = textured_scene(480, 640, seed=3)
    truth = similarity(1.0, 3.0, 60.0, -36.0, (320, 240))
    settings = align.AlignSettings()
    gray_a, _ = align.work_images(to_u8(scene), settings)
    gray_b, _ = align.work_images(to_u8(render(scene, truth)), settings)
    alone = align.ecc_pyramid(gray_a, gray_b, settings, np.eye(3))
    assert alone is None or alone[1] < settings.min_correlation  # ECC alone is lost here
    found = align.estimate_motion(gray_a, gray_b, settings, np.eye(3))
    assert found is not None and found[2] == "features"
    assert _corner_error(found[0], truth, scene.shape) < 0.3


def test_ecc_where_too_few_keypoints_match() -> None:
    """A smooth, featureless specimen gives SIFT too little to match: ECC aligns it."""
    rng = np.random.default_rng(8)
    scene = cv2.GaussianBlur(rng.random((480, 640)).astype(np.float32), (0, 0), 30)
    scene = np.dstack([(scene - scene.min()) / (scene.max() - scene.min())] * 3)
    truth = similarity(1.0, 0.1, 1.5, -0.8, (320, 240))
    settings = align.AlignSettings()
    gray_a, _ = align.work_images(to_u8(scene), settings)
    gray_b, _ = align.work_images(to_u8(render(scene, truth)), settings)
    few = align.match_motion(align.Features.of(gray_a), align.Features.of(gray_b), "similarity")
    assert few is None or few[2] < align.MIN_INLIERS
    found = align.estimate_motion(gray_a, gray_b, settings, np.eye(3))
    assert found is not None and found[2] == "ecc"
    assert _corner_error(found[0], truth, scene.shape) < 0.3


def test_blankness_follows_the_data_not_its_container() -> None:
    from stacking.align import is_mostly_blank

    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.random((480, 640)).astype(np.float32), (0, 0), 3)
    scene = (scene - scene.min()) / (scene.max() - scene.min())
    noise = rng.normal(0, 0.002, scene.shape).astype(np.float32)
    assert not is_mostly_blank(scene + noise, 0.005)
    # The same frame as 12-bit data in a 16-bit file, or a dim specimen: still textured.
    assert not is_mostly_blank(scene / 16 + noise / 16, 0.005)
    # A lens cap: black with sensor noise. A grey card: flat with noise. Both are blank.
    assert is_mostly_blank(np.abs(rng.normal(0, 0.01, scene.shape)).astype(np.float32), 0.005)
    assert is_mostly_blank((0.5 + noise).astype(np.float32), 0.005)
    assert is_mostly_blank(np.zeros_like(scene), 0.005)
