"""Focus peaking (pure image math) and the image widgets of the terminal UI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import cv2
import numpy as np
import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from rig.simrig.subject import Subject, SubjectSettings
from rig.tui.peaking import (
    MAGENTA,
    fit,
    fit_size,
    focus_peaking,
    halve_to_fit,
    peaked_preview,
    peaking_mask,
    shrink_mask,
)
from rig.tui.widgets.images import RENDERERS, WORK_SIZE, ImageView, LiveView, renderer_name


def _checkerboard(h: int = 240, w: int = 320, square: int = 8) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return (((x // square + y // square) % 2) * 160 + 40).astype(np.uint8)


def _half_blurred(grey: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Left half as it is, right half Gaussian-blurred (the same frame, out of focus there)."""
    out = grey.copy()
    half = grey.shape[1] // 2
    blurred = cv2.GaussianBlur(grey, (0, 0), sigma)
    out[:, half:] = blurred[:, half:]
    return out


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


def _is_colour(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(rgb == np.asarray(colour, np.uint8), axis=-1)


# ------------------------------------------------------------------------------ focus peaking


def test_marks_land_on_the_sharp_half_of_a_checkerboard() -> None:
    grey = _noisy(_half_blurred(_checkerboard()), 2.0)
    rgb = np.dstack([grey] * 3)
    before = rgb.copy()
    out = focus_peaking(rgb)
    assert np.array_equal(rgb, before), "the input is left alone"
    assert out.shape == rgb.shape and out.dtype == np.uint8
    marked = _is_colour(out, MAGENTA)
    sharp, blurred = marked[:, :160], marked[:, 160:]
    assert sharp.mean() > 0.1
    assert blurred.mean() < 0.01
    assert np.array_equal(marked, peaking_mask(rgb))
    # Unmarked pixels keep the picture.
    assert np.array_equal(out[~marked], rgb[~marked])


def test_marks_follow_the_focus_on_the_simulated_subject() -> None:
    # A stronger defocus than the default, so a 320 px frame shows it clearly.
    subject = Subject(SubjectSettings(width=320, height=240, max_blur=0.03))
    depth = subject.depth_um()
    for position in (2000.0, 3500.0):
        mask = peaking_mask(subject.frame(position))
        in_focus = np.abs(depth - position) < 400.0
        far_off = np.abs(depth - position) > 1200.0
        assert in_focus.mean() > 0.05 and far_off.mean() > 0.05
        assert mask[in_focus].mean() > 5 * mask[far_off].mean(), position
        assert mask[in_focus].mean() > 0.1, position


@pytest.mark.parametrize("sigma", [1.0, 3.0, 8.0])
def test_a_flat_noisy_frame_gets_almost_no_marks(sigma: float) -> None:
    flat = np.full((240, 320), 90.0)
    assert peaking_mask(_noisy(flat, sigma)).mean() < 0.002
    colour = np.full((240, 320, 3), (120.0, 80.0, 60.0))
    assert peaking_mask(_noisy(colour, sigma, seed=1)).mean() < 0.002


def test_a_perfectly_flat_frame_gets_none() -> None:
    assert not peaking_mask(np.full((64, 64, 3), 128, np.uint8)).any()


def test_a_dim_low_contrast_mono_frame_scaled_to_8_bit() -> None:
    # A microscope-like 12-bit frame in uint16: faint texture on a bright level, shot noise.
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.random((240, 320)).astype(np.float32), (0, 0), 1.5)
    texture = (texture - texture.mean()) / texture.std()
    scene = _half_blurred(texture, 3.0)
    raw = np.clip(2000 + 30 * scene + rng.normal(0, 8, scene.shape), 0, 4095).astype(np.uint16)
    lo, hi = np.percentile(raw, [0.5, 99.5])
    mono8 = np.clip((raw - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    out = focus_peaking(mono8, colour=(0, 255, 0))
    assert out.shape == (240, 320, 3)
    marked = _is_colour(out, (0, 255, 0))
    assert marked[:, :160].mean() > 0.03
    assert marked[:, 160:].mean() < 0.1 * marked[:, :160].mean()
    # H x W x 1 reads as mono too.
    assert np.array_equal(peaking_mask(mono8[:, :, None]), peaking_mask(mono8))


def test_strength_marks_more_or_less() -> None:
    frame = Subject(SubjectSettings(width=320, height=240, max_blur=0.03)).frame(2000.0)
    counts = [peaking_mask(frame, strength=s).sum() for s in (0.5, 1.0, 2.0)]
    assert counts[0] < counts[1] < counts[2]
    with pytest.raises(ValueError):
        peaking_mask(frame, strength=0.0)


def test_other_pixel_types_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        focus_peaking(np.zeros((32, 32, 3), np.uint16))
    with pytest.raises(ValueError, match="channels"):
        focus_peaking(np.zeros((32, 32, 4), np.uint8))


# --------------------------------------------------------------------------------- downscale


def test_fit_keeps_the_aspect_and_never_enlarges() -> None:
    assert fit_size(6000, 4000, 160, 90) == (135, 90)
    assert fit_size(6000, 4000, 1600, 1600) == (1600, 1067)
    assert fit_size(320, 240, 1000, 1000) == (320, 240)
    frame = np.full((667, 1001, 3), (10, 200, 30), np.uint8)
    small = fit(frame, 160, 90)
    assert small.shape == (90, 135, 3)
    assert np.array_equal(small[45, 60], [10, 200, 30]), "area averaging keeps a flat colour"
    assert fit(frame, 2000, 2000) is frame, "an image that fits is not copied"
    assert fit(frame[:, :, 0], 100, 100).shape == (67, 100)
    assert fit(frame[:, :, :1], 100, 100).shape == (67, 100, 1)
    assert fit(np.zeros((1, 5000, 3), np.uint8), 100, 100).shape == (1, 100, 3)


def test_halve_to_fit_takes_2x2_means() -> None:
    frame = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    half = halve_to_fit(frame, 2, 2)
    assert half.shape == (2, 2)
    assert half[0, 0] == round((0 + 10 + 40 + 50) / 4)
    assert halve_to_fit(np.zeros((4001, 6001, 3), np.uint8), *WORK_SIZE).shape == (1000, 1500, 3)


def test_a_thin_mark_survives_a_tenfold_shrink_and_sparse_specks_do_not_flood() -> None:
    line = np.zeros((1000, 1000), bool)
    line[500:503, :] = True  # a dilated one-pixel edge
    small = shrink_mask(line, 100, 100)
    assert small[50].all() and small.sum() == 100
    specks = np.random.default_rng(0).random((1000, 1000)) < 0.01
    assert shrink_mask(specks, 100, 100).mean() < 0.05


def test_peaked_preview_is_small_and_marked() -> None:
    grey = _noisy(_half_blurred(_checkerboard(480, 640)), 2.0)
    preview = peaked_preview(grey, 160, 90, colour=(0, 255, 255))
    assert preview.shape == (90, 120, 3)
    marked = _is_colour(preview, (0, 255, 255))
    assert marked[:, :60].mean() > 0.2 and marked[:, 60:].mean() < 0.02
    dimmed = peaked_preview(grey, 160, 90, colour=(255, 255, 255), dim=0.5)
    assert dimmed[~_is_colour(dimmed, (255, 255, 255))].max() <= 128


# ----------------------------------------------------------------------------------- widgets


class _Shows(App[None]):
    def __init__(self, view: ImageView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield self.view


def _screen_text(app: App[Any]) -> str:
    # What the terminal would show, as plain text (the compositor's lines, styles dropped).
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _drawn(view: ImageView) -> np.ndarray:
    image = view.query_one(".image", RENDERERS["halfcell"]).image
    return np.asarray(image)


def _run(
    view: ImageView, test: Callable[[App[None], Pilot[None]], Awaitable[None]], size=(80, 24)
) -> None:
    async def main() -> None:
        app = _Shows(view)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await test(app, pilot)

    asyncio.run(main())


def _frame() -> np.ndarray:
    return np.dstack([_noisy(_half_blurred(_checkerboard()), 2.0)] * 3)


def test_the_placeholder_then_the_frame_and_caption_then_the_placeholder_again() -> None:
    view = ImageView("no live view: the camera offers none", renderer="halfcell")

    async def test(app: App[None], pilot: Pilot[None]) -> None:
        assert "no live view: the camera offers none" in _screen_text(app)
        assert not view.has_image
        view.show(_frame(), "frame 7/20, 1234.5 um")
        await pilot.pause()
        text = _screen_text(app)
        assert "frame 7/20, 1234.5 um" in text
        assert "no live view" not in text
        assert text.count("▀") > 100, "half blocks drawn"
        drawn = _drawn(view)
        assert drawn.shape[1] <= 80 and drawn.shape[0] <= 2 * 24
        view.show_nothing("camera disconnected")
        await pilot.pause()
        text = _screen_text(app)
        assert "camera disconnected" in text and "frame 7/20" not in text
        assert not view.has_image

    _run(view, test)


def test_peaking_toggles_on_the_live_view_and_says_so() -> None:
    view = LiveView(renderer="halfcell", colour=(0, 255, 0))

    async def test(app: App[None], pilot: Pilot[None]) -> None:
        view.show(_frame(), "at 1234.5 um")
        await pilot.pause()
        assert not _is_colour(_drawn(view), (0, 255, 0)).any()
        assert "[peaking]" not in _screen_text(app)
        view.peaking = True
        await pilot.pause()
        marked = _is_colour(_drawn(view), (0, 255, 0))
        half = marked.shape[1] // 2
        assert marked[:, :half].mean() > 0.1 and marked[:, half:].mean() < 0.02
        assert "at 1234.5 um  [peaking]" in _screen_text(app)
        view.peaking = False
        await pilot.pause()
        assert not _is_colour(_drawn(view), (0, 255, 0)).any()

    _run(view, test)


def test_no_colour_keeps_the_text_and_peaks_in_white(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    view = LiveView("no live view yet", renderer="halfcell")

    async def test(app: App[None], pilot: Pilot[None]) -> None:
        assert app.no_color
        assert "no live view yet" in _screen_text(app)
        view.peaking = True
        view.show(_frame(), "at 10.0 um")
        await pilot.pause()
        assert "at 10.0 um  [peaking]" in _screen_text(app)
        assert _is_colour(_drawn(view), (255, 255, 255)).mean() > 0.05

    _run(view, test)


def test_a_big_mono_frame_in_a_small_terminal_and_a_resize() -> None:
    view = ImageView(renderer="halfcell")
    big = np.zeros((4000, 6000), np.uint8)
    big[::40] = 255  # something to see

    async def test(app: App[None], pilot: Pilot[None]) -> None:
        view.show(big, "24 MP")
        await pilot.pause()
        assert view._work is not None
        assert view._work.shape[1] <= WORK_SIZE[0] and view._work.shape[0] <= WORK_SIZE[1]
        assert "24 MP" in _screen_text(app)
        small = _drawn(view).shape
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        await pilot.pause()
        assert _drawn(view).shape[1] > small[1], "redrawn for the larger space"
        assert "24 MP" in _screen_text(app)

    _run(view, test, size=(40, 10))


def test_the_caller_may_reuse_its_buffer() -> None:
    view = ImageView(renderer="halfcell")
    frame = _frame()

    async def test(app: App[None], pilot: Pilot[None]) -> None:
        view.show(frame, "one")
        await pilot.pause()
        before = _drawn(view).shape
        frame[:] = 0
        await pilot.resize_terminal(100, 30)  # a redraw from the kept copy
        await pilot.pause()
        await pilot.pause()
        after = _drawn(view)
        assert after.shape != before and after.max() > 0

    _run(view, test)


def test_renderers() -> None:
    assert renderer_name() in {"sixel", "tgp", "halfcell", "unicode"}
    assert renderer_name("halfcell") == "halfcell"
    with pytest.raises(ValueError, match="renderer"):
        ImageView(renderer="ascii")  # type: ignore[arg-type]
