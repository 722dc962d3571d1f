"""StackEngine: fusion picks the sharp parts, streams exactly, reports every frame."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers import (
    SHARED,
    expose,
    focus_stack,
    render,
    similarity,
    textured_scene,
    to_u8,
)

from stacking import accumulate, focus, geometry
from stacking.engine import FrameReport, StackEngine, StackResult, StackSettings
from stacking.errors import FrameMismatchError, NothingToStackError
from stacking.geometry import inner_rectangle


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def _interior(img: np.ndarray, border: int = 12) -> np.ndarray:
    return img[border:-border, border:-border]


@pytest.mark.parametrize("method", accumulate.METHODS)
def test_every_method_recovers_the_sharp_scene(method: str) -> None:
    scene = textured_scene()
    frames, bands = focus_stack(scene)
    engine = StackEngine(StackSettings(method=method, align="none"))
    for f in frames:
        assert engine.add(f).accepted
    result = engine.finalize()
    blurred = cv2.GaussianBlur(scene, (0, 0), 4.0)
    assert (
        _psnr(_interior(result.image), _interior(scene))
        > _psnr(_interior(blurred), _interior(scene)) + 8
    )
    # The depth map names the in-focus band away from band edges.
    inner = np.abs((np.arange(scene.shape[1]) * 5 / scene.shape[1]) % 1 - 0.5) < 0.25
    agree = (result.depth == bands)[:, inner]
    assert agree.mean() > 0.9


@pytest.mark.parametrize("method", accumulate.METHODS)
def test_streaming_equals_any_order(method: str) -> None:
    """The streaming sums are exact: feeding frames in another order gives the same result."""
    frames, _ = focus_stack(textured_scene(), 4)
    results = []
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        engine = StackEngine(StackSettings(method=method, align="none", match_exposure=False))
        for i in order:
            engine.add(frames[i])
        results.append(engine.finalize().image)
    # depthmap selects one frame: where two frames tie, the first seen wins, so allow a little.
    tolerance = 1e-4 if method != "depthmap" else 1e-2
    assert np.abs(results[0] - results[1]).max() < tolerance


def test_weighted_streaming_equals_batch_softmax() -> None:
    """The running log-sum-exp sums equal the softmax computed on the full list at once."""
    frames, _ = focus_stack(textured_scene(), 4)
    s = StackSettings(method="weighted", align="none", match_exposure=False)
    engine = StackEngine(s)
    activities = []
    for f in frames:
        engine.add(f)
        gray = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        fmap, small = focus.frame_focus(
            gray, 1.0, s.focus_measure, s.window, s.focus_side, s.detail_side
        )
        activity = focus.activity(fmap, small, s.sharpness, s.edge_aware)
        activities.append(cv2.resize(activity, gray.shape[::-1], interpolation=cv2.INTER_LINEAR))
    a = np.stack(activities).astype(np.float64)
    w = np.exp(a - a.max(axis=0))
    batch = (w[..., None] * np.stack(frames)).sum(axis=0) / w.sum(axis=0)[..., None]
    assert np.abs(engine.finalize().image - batch).max() < 1e-4


def test_snapshot_available_after_each_frame_and_small() -> None:
    frames, _ = focus_stack(textured_scene(480, 640), 3)
    engine = StackEngine(StackSettings(align="none"))
    assert engine.snapshot() is None
    for f in frames:
        engine.add(f)
        preview = engine.snapshot(max_side=160)
        assert preview is not None and max(preview.shape[:2]) <= 160 and preview.shape[2] == 3
    full = engine.snapshot()
    assert full is not None and full.shape == frames[0].shape


def test_aligned_stack_with_magnification_and_gain() -> None:
    """Frames that zoom, shift and flicker are aligned and exposure-matched to the first."""
    scene = textured_scene(360, 480)
    frames, _ = focus_stack(scene, 5)
    engine = StackEngine(StackSettings())
    truths = []
    for i, f in enumerate(frames):
        t = similarity(1 + 0.004 * i, 0.05 * i, 0.7 * i, -0.4 * i, (240, 180))
        gain = 1 + 0.02 * (-1) ** i
        truths.append(t)
        report = engine.add(to_u8(expose(render(f, t), gain)))
        assert report.accepted, report.reason
        # The first frame sets the exposure every other frame is matched to.
        assert report.gain[1] == pytest.approx(1.02 / gain, rel=0.01)
    result = engine.finalize()
    for report, t in zip(result.reports, truths, strict=True):
        assert np.abs(np.array(report.transform) - t)[:2, 2].max() < 0.3
    image = geometry.uncrop(result.image, result.crop, scene.shape)
    assert _psnr(_interior(image, 30), _interior(scene, 30)) > 28


def test_rejected_frame_is_reported_and_not_blended() -> None:
    scene = textured_scene()
    frames, _ = focus_stack(scene, 3)
    engine = StackEngine(StackSettings(align="none"))
    engine.add(frames[0])
    bad = engine.add(np.zeros_like(frames[0]))
    assert not bad.accepted and bad.reason is not None and "blank" in bad.reason
    before = engine.snapshot()
    engine.add(frames[1])
    engine.add(frames[2])
    result = engine.finalize()
    assert [r.accepted for r in result.reports] == [True, False, True, True]
    assert engine.frames_fused == 3
    assert before is not None and result.image.mean() > 0.2  # no black frame mixed in


def test_mismatched_frame_size_is_a_clear_error() -> None:
    engine = StackEngine()
    engine.add(to_u8(textured_scene(240, 320)))
    with pytest.raises(FrameMismatchError, match="same size"):
        engine.add(to_u8(textured_scene(200, 320)))


def test_finalize_with_nothing_usable_says_why() -> None:
    engine = StackEngine()
    engine.add(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(NothingToStackError, match="mostly blank"):
        engine.finalize()


def test_crop_to_common_area() -> None:
    scene = textured_scene(300, 400)
    engine = StackEngine(StackSettings(crop=True))
    for i in range(3):
        engine.add(to_u8(render(scene, similarity(1 + 0.01 * i, 0, 2.0 * i, 1.0 * i, (200, 150)))))
    result = engine.finalize()
    assert result.crop is not None
    _, _, w, h = result.crop
    assert result.image.shape[:2] == (h, w) and 0 < w < 400 and 0 < h < 300


def _breathing_frames(scene: np.ndarray, zoom: float) -> list[np.ndarray]:
    """Frames zooming in by ``zoom`` in all, widest view first."""
    h, w = scene.shape[:2]
    steps = [1 + (zoom - 1) * i / 3 for i in range(4)]
    return [to_u8(render(scene, similarity(z, 0, 0, 0, ((w - 1) / 2, (h - 1) / 2)))) for z in steps]


def test_the_default_crop_is_the_same_picture_whichever_end_comes_first() -> None:
    """Magnification change leaves a border that only the widest views see; the default
    result is the area every frame sees, so the frame order does not change what it shows."""
    scene = textured_scene(300, 400)
    frames = _breathing_frames(scene, 1.08)
    results = []
    for order in (frames, frames[::-1]):
        engine = StackEngine()
        assert all(engine.add(f).accepted for f in order)
        results.append(engine.finalize())
    wide_first, narrow_first = results
    # Widest view first: cut to the narrowest view (1/1.08 of the frame, less the 2 px the
    # warp cannot interpolate at each edge) ...
    assert wide_first.crop is not None
    _, _, w, h = wide_first.crop
    assert w == pytest.approx(400 / 1.08, abs=6) and h == pytest.approx(300 / 1.08, abs=6)
    # ... which is all of the narrowest-first result, nothing to crop.
    assert narrow_first.crop is None and narrow_first.image.shape == scene.shape
    # The same picture: the wide-first result brought into the narrowest frame's geometry.
    to_narrow = np.array(wide_first.reports[-1].transform)
    wide = geometry.uncrop(wide_first.image, wide_first.crop, scene.shape)
    seen = cv2.warpAffine(wide, np.linalg.inv(to_narrow)[:2], (400, 300),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)  # fmt: skip
    assert _psnr(_interior(seen, 8), _interior(narrow_first.image, 8)) > 30


def test_no_crop_keeps_the_border_only_the_widest_views_see() -> None:
    scene = textured_scene(300, 400)
    engine = StackEngine(StackSettings(crop=False))
    for f in _breathing_frames(scene, 1.08):
        assert engine.add(f).accepted
    result = engine.finalize()
    assert result.crop is None and result.image.shape == scene.shape
    # The border is the first frame's (the only one that sees the outermost pixels), no glow.
    assert _psnr(result.image[:6, 20:-20], scene[:6, 20:-20]) > 30


def test_inner_rectangle_lies_inside_mask() -> None:
    mask = np.zeros((100, 120), np.uint8)
    cv2.fillConvexPoly(mask, np.array([[10, 5], [110, 12], [104, 95], [4, 88]]), 255)
    x, y, w, h = inner_rectangle(mask)
    assert mask[y : y + h, x : x + w].all() and w * h > 0.7 * np.count_nonzero(mask)


def test_luminance_only_and_sharpen_options() -> None:
    frames, _ = focus_stack(textured_scene(), 3)
    plain = StackEngine(StackSettings(align="none"))
    luma = StackEngine(StackSettings(align="none", luminance_only=True, sharpen=0.5))
    for f in frames:
        plain.add(f)
        luma.add(f)
    a, b = plain.finalize(), luma.finalize()
    assert b.image.shape == a.image.shape
    assert np.abs(a.image - b.image).mean() < 0.05
    assert b.sharpness > a.sharpness  # sharpening raised the focus measure


def test_invalid_settings_name_the_choices() -> None:
    with pytest.raises(ValueError, match="pyramid, weighted, depthmap"):
        StackSettings(method="median")
    with pytest.raises(ValueError, match="laplacian, tenengrad, sml"):
        StackSettings(focus_measure="fft")


def test_memory_does_not_grow_with_frames() -> None:
    """The engine keeps fusion state and one frame: its arrays do not grow with N."""
    frames, _ = focus_stack(textured_scene(), 2)
    engine = StackEngine(StackSettings(align="none"))
    engine.add(frames[0])
    fusion = engine._fusion
    assert fusion is not None

    def footprint(obj: object) -> int:
        if isinstance(obj, np.ndarray):
            return obj.nbytes
        if isinstance(obj, list):
            return sum(footprint(o) for o in obj)
        if hasattr(obj, "__dict__"):
            return sum(footprint(v) for v in vars(obj).values())
        return 0

    size = footprint(fusion)
    assert size > 0
    for i in range(20):
        engine.add(frames[i % 2])
    assert footprint(fusion) == size


QUALITY_FLOOR_DB = {"s1_mix": 35.0, "s2_photos": 38.0, "s3_proc": 32.0}


@pytest.mark.parametrize("stack", sorted(QUALITY_FLOOR_DB))
def test_quality_floor_on_shared_synthetic(stack: str) -> None:
    folder = SHARED / "data" / "synthetic" / stack
    if not folder.is_dir():
        pytest.fail(f"shared data missing: {folder} (CI runs with ../shared beside the repo)")
    meta = json.loads((folder / "meta.json").read_text())
    engine = StackEngine()
    for frame in meta["frames"]:
        bgr = cv2.imread(str(folder / frame["file"]))
        assert engine.add(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).accepted
    result = engine.finalize()
    gt = cv2.cvtColor(cv2.imread(str(folder / "ground_truth.png")), cv2.COLOR_BGR2RGB)
    h, w = gt.shape[:2]
    by, bx = int(h * 0.05), int(w * 0.05)
    got = np.round(geometry.uncrop(result.image, result.crop, gt.shape) * 255)[
        by : h - by, bx : w - bx
    ]
    psnr = _psnr(got / 255, gt[by : h - by, bx : w - bx] / 255)
    assert psnr > QUALITY_FLOOR_DB[stack]


@pytest.mark.parametrize("model", ["none", "translation", "similarity", "affine", "homography"])
@pytest.mark.parametrize("measure", ["laplacian", "tenengrad", "sml"])
def test_every_model_and_measure_stacks(model: str, measure: str) -> None:
    scene = textured_scene(240, 320)
    frames, _ = focus_stack(scene, 3)
    engine = StackEngine(StackSettings(align=model, focus_measure=measure))
    for i, f in enumerate(frames):
        shift = similarity(1 + 0.003 * i, 0.0, 0.6 * i, 0.4 * i, (160, 120))
        assert engine.add(to_u8(render(f, shift))).accepted
    result = engine.finalize()
    assert np.isfinite(result.image).all()
    image = geometry.uncrop(result.image, result.crop, scene.shape)
    assert image.shape == scene.shape
    blurred = cv2.GaussianBlur(scene, (0, 0), 4.0)
    assert _psnr(_interior(image, 20), _interior(scene, 20)) > _psnr(
        _interior(blurred, 20), _interior(scene, 20)
    )


def _result(sharpness: float, frames: list[float]) -> StackResult:
    eye = np.eye(3).tolist()
    reports = [
        FrameReport(i, f"f{i}.jpg", True, None, eye, [1.0] * 3, [0.0] * 3, 1.0, "ecc", s, 0.1)
        for i, s in enumerate(frames)
    ]
    empty = np.zeros((2, 2, 3), np.float32)
    return StackResult(empty, np.zeros((2, 2), np.uint16), reports, None, sharpness,
                       StackEngine().coverage())  # fmt: skip


def test_a_result_softer_than_its_sharpest_frame_is_said_loudly() -> None:
    soft = _result(0.5, [0.3, 0.8, 0.4]).softness
    assert soft is not None and "f1.jpg" in soft and "softer than its sharpest frame" in soft
    assert "0.62x" in soft and "--method depthmap" in soft
    assert _result(0.79, [0.3, 0.8, 0.4]).softness is None  # within the noise allowance
    assert _result(0.9, [0.3, 0.8, 0.4]).softness is None


def test_a_good_stack_is_at_least_as_sharp_as_its_sharpest_frame() -> None:
    frames, _ = focus_stack(textured_scene(), 6)
    engine = StackEngine()
    for f in frames:
        engine.add(f)
    result = engine.finalize()
    assert result.softness is None
    assert result.sharpness >= max(r.sharpness for r in result.accepted)


def test_the_result_has_the_stacks_typical_exposure_not_the_first_frames() -> None:
    scene = textured_scene(240, 320)
    frames, _ = focus_stack(scene, 5)
    gains = [0.8, 1.0, 1.02, 0.98, 1.0]  # the first frame came out dark (a weak flash)
    engine = StackEngine(StackSettings(align="none"))
    for f, g in zip(frames, gains, strict=True):
        assert engine.add(to_u8(expose(f, g))).accepted
    preview = engine.snapshot(160)
    result = engine.finalize()
    assert result.exposure_scale is not None
    assert result.exposure_scale[1] == pytest.approx(1.0 / 0.8, rel=0.02)
    typical = expose(scene, 1.0)
    # Brightness as the typical frame's (within 2 %), not the dark first frame's (-20 %).
    assert float(result.image.mean()) == pytest.approx(float(typical.mean()), rel=0.02)
    assert preview is not None
    assert float(preview.mean()) == pytest.approx(float(typical.mean()), rel=0.03)
    assert _psnr(_interior(result.image), _interior(typical)) > 28


def test_a_steady_stack_keeps_the_first_frames_exposure_exactly() -> None:
    frames, _ = focus_stack(textured_scene(240, 320), 5)
    engine = StackEngine(StackSettings(align="none"))
    for f in frames:
        engine.add(to_u8(f))
    assert engine.finalize().exposure_scale is None
