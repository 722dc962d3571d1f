"""The synthetic focus-stack generator (benchmarks/synth.py): files, geometry, depth, defocus."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.metrics import score
from benchmarks.synth import SynthParams, generate, main
from rig.simrig.render import blur_levels, disc_kernel

TINY = SynthParams(width=320, height=240, frames=5, texture="procedural", seed=3)
# Clean geometry: no defocus, lens blur, noise or flicker, lossless frames, and a warp large
# enough that a wrong matrix shows.
GEOMETRY = replace(
    TINY,
    max_blur=0.0,
    lens_sigma=0.0,
    noise=0.0,
    read_noise=0.0,
    flicker=0.0,
    breathing=0.08,
    shift=6.0,
    rotation=2.0,
    image_format="png",
)


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _centre_error(a: np.ndarray, b: np.ndarray, border: int = 16) -> float:
    """Mean absolute difference (8-bit levels) away from the borders."""
    inner = (slice(border, -border), slice(border, -border))
    return float(np.abs(a[inner].astype(np.float32) - b[inner].astype(np.float32)).mean())


def _warp_linear(img: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp an 8-bit image in linear light (gamma 2.2, as the generator does), bicubic."""
    linear = (img.astype(np.float32) / 255) ** 2.2
    warped = cv2.warpAffine(linear, m, size, flags=cv2.INTER_CUBIC)
    return np.rint(np.clip(warped, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    assert main([str(out), "--width", "320", "--height", "240", "--frames", "5",
                 "--texture", "procedural", "--seed", "3", "-q"]) == 0  # fmt: skip
    return out


def test_writes_the_shared_layout(tiny_stack: Path) -> None:
    names = {p.name for p in tiny_stack.iterdir()}
    frames = [f"frame_{i:04d}.jpg" for i in range(5)]
    assert names == {*frames, "ground_truth.png", "depth.npy", "meta.json"}
    meta = json.loads((tiny_stack / "meta.json").read_text())
    for key in ("seed", "width", "height", "texture", "max_blur", "lens_sigma", "breathing",
                "shift", "rotation", "flicker", "noise", "pad", "blur_radius_max_px",
                "blur_levels_px"):  # fmt: skip
        assert key in meta, key
    assert [f["file"] for f in meta["frames"]] == frames
    for f in meta["frames"]:
        assert set(f) >= {"index", "focus_depth", "scale", "rot_deg", "tx", "ty", "gain", "M"}
        assert np.asarray(f["M"]).shape == (2, 3)
        assert _rgb(tiny_stack / f["file"]).shape == (240, 320, 3)
    assert _rgb(tiny_stack / "ground_truth.png").shape == (240, 320, 3)
    focus = [f["focus_depth"] for f in meta["frames"]]
    assert focus == sorted(focus) and focus[0] < 0 < 1 < focus[-1]
    assert meta["frames"][0]["M"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_depth_is_a_unit_map_with_occluders(tiny_stack: Path) -> None:
    depth = np.load(tiny_stack / "depth.npy")
    assert depth.shape == (240, 320) and depth.dtype == np.float32
    assert depth.min() >= 0.0 and depth.max() <= 1.0
    assert (depth == 0).mean() > 0.005  # the nearest object, a disc at depth 0
    assert depth.max() > 0.9  # background reaches far
    gy, gx = np.gradient(depth)
    assert (np.hypot(gx, gy) > 0.05).any()  # hard depth edges, not only smooth ramps


def test_same_seed_same_stack(tmp_path: Path) -> None:
    params = replace(TINY, frames=2)
    a = generate(params, tmp_path / "a")
    b = generate(params, tmp_path / "b")
    assert a["frames"] == b["frames"]
    assert np.array_equal(_rgb(tmp_path / "a" / "frame_0001.jpg"),
                          _rgb(tmp_path / "b" / "frame_0001.jpg"))  # fmt: skip


def test_meta_matrix_maps_ground_truth_to_frame(tmp_path: Path) -> None:
    """Warping the ground truth with M gives the frame; the inverse or identity does not."""
    meta = generate(GEOMETRY, tmp_path)
    gt = _rgb(tmp_path / "ground_truth.png")
    size = (GEOMETRY.width, GEOMETRY.height)
    for f in meta["frames"][1:]:
        frame = _rgb(tmp_path / f["file"])
        m = np.asarray(f["M"], np.float64)
        expected = _warp_linear(gt, m, size)
        wrong = _warp_linear(gt, cv2.invertAffineTransform(m), size)
        right_error = _centre_error(frame, expected)
        assert right_error < 0.5, f["file"]
        assert _centre_error(frame, wrong) > 10 * right_error + 5, f["file"]
        assert _centre_error(frame, gt) > 10 * right_error + 5, f["file"]
        # M is the documented similarity about the image centre
        s, a = f["scale"], np.radians(f["rot_deg"])
        c = np.array([(GEOMETRY.width - 1) / 2, (GEOMETRY.height - 1) / 2])
        lin = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        np.testing.assert_allclose(m[:, :2], lin, atol=2e-6)
        np.testing.assert_allclose(m[:, 2], c - lin @ c + [f["tx"], f["ty"]], atol=2e-6)


def test_defocus_follows_depth(tmp_path: Path) -> None:
    """Near pixels are sharp in the first frame and blurred in the last; far pixels the reverse."""
    params = replace(GEOMETRY, frames=3, breathing=0.0, shift=0.0, rotation=0.0, max_blur=0.02)
    generate(params, tmp_path)
    depth = np.load(tmp_path / "depth.npy")
    first, last = (_rgb(tmp_path / f"frame_{i:04d}.png") for i in (0, 2))

    def detail(img: np.ndarray, mask: np.ndarray) -> float:
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        lap = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
        inner = cv2.erode(mask.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        assert inner.sum() > 200
        return float(lap[inner].mean())

    near, far = depth < 0.15, depth > 0.8
    assert detail(first, near) > 2 * detail(last, near)
    assert detail(last, far) > 2 * detail(first, far)


def test_blur_levels_extend_the_shared_list() -> None:
    shared = [0, 0.75, 1, 1.5, 2, 3, 4, 5.5, 7.5, 10, 13.5]
    assert blur_levels(12.8) == shared  # the shared stacks: 1600 px wide, max_blur 0.008
    big = blur_levels(48.0)  # 6000 px wide
    assert big[: len(shared)] == shared and big[-2] < 48.0 <= big[-1]
    for r in (0.75, 3.0, 13.5):
        k = disc_kernel(r)
        assert k.sum() == pytest.approx(1.0, abs=1e-5) and k.shape == (2 * int(np.ceil(r)) + 1,) * 2


def test_metric_is_perfect_only_for_the_truth(tiny_stack: Path) -> None:
    """The metric sees the truth as perfect, and no single (partly blurred) frame as close."""
    gt = _rgb(tiny_stack / "ground_truth.png")
    assert score(gt, gt) == (float("inf"), 1.0)
    assert score(gt.astype(np.float32) / 255, gt) == (float("inf"), 1.0)
    for i in range(5):
        psnr, ssim = score(_rgb(tiny_stack / f"frame_{i:04d}.jpg"), gt)
        assert 10 < psnr < 40 and 0 < ssim < 0.98
