"""Coverage verdict: end frames that win a noticeable share of the detail mean a stack cut short."""

from __future__ import annotations

import json
from functools import cache

import cv2
import numpy as np
import pytest

from rig.simrig.subject import Subject, SubjectSettings
from stacking import accumulate, coverage, depthmap
from stacking.engine import StackEngine, StackSettings
from stacking.errors import StackingError
from stacking.report import Coverage, stack_coverage
from stacking.settings import METHODS

H, W = 120, 160
SHARPNESS = 12.0


def ramp(near: float, far: float, frames: int) -> np.ndarray:
    """Best-frame map of a subject tilted from ``near`` to ``far`` (in steps, frame 0 at 0).

    Detail beyond an end is sharpest in that end frame, as in a real stack.
    """
    depth = np.broadcast_to(np.linspace(near, far, W), (H, W))
    return np.clip(np.rint(depth), 0, frames - 1).astype(np.uint16)


def everywhere() -> np.ndarray:
    return np.ones((H, W), bool)


# -- the pure function ---------------------------------------------------------------------


def test_a_stack_that_runs_past_both_ends_is_covered() -> None:
    c = coverage.judge(ramp(1.6, 10.4, 12), everywhere(), range(12))
    assert c.judged and c.covered
    assert (c.extend_first, c.extend_last) == (0, 0)
    assert c.first_share == c.last_share == 0.0
    assert c.verdict.startswith("covered")


def test_a_stack_starting_right_at_the_subject_is_covered() -> None:
    # The end frame keeps its own half-step slice of the subject: a small share, no alarm.
    c = coverage.judge(ramp(0.0, 30.0, 31), everywhere(), range(31))
    assert c.covered and 0 < c.first_share < coverage.END_SHARE


def test_subject_beyond_the_first_end_names_it_and_the_steps() -> None:
    # The subject starts 4 steps before the first frame.
    c = coverage.judge(ramp(-4.0, 9.0, 12), everywhere(), range(12))
    assert c.judged and not c.covered
    assert c.extend_last == 0
    assert c.extend_first == 4
    assert c.first_share > 0.3
    assert "first frame" in c.verdict and "about 4 steps" in c.verdict


def test_subject_beyond_the_last_end_names_it() -> None:
    c = coverage.judge(ramp(1.6, 14.0, 12), everywhere(), range(12))
    assert c.extend_first == 0 and c.extend_last == 3
    assert "last frame" in c.verdict and "about 3 steps" in c.verdict


def test_both_ends_short() -> None:
    c = coverage.judge(ramp(-3.0, 12.0, 10), everywhere(), range(10))
    assert c.extend_first >= 2 and c.extend_last >= 2
    assert "both ends" in c.verdict


def test_ends_follow_the_order_frames_were_added_not_their_numbers() -> None:
    index = ramp(-4.0, 9.0, 12)
    backwards = coverage.judge(index, everywhere(), list(range(11, -1, -1)))
    assert backwards.extend_last == 4 and backwards.extend_first == 0


def test_rejected_frames_are_skipped() -> None:
    # Frames 0 and 5 were rejected: the first frame fused (1) is the first end.
    index = ramp(-4.0, 9.0, 12)
    index[index == 0] = 1
    index[index == 5] = 4
    c = coverage.judge(index, everywhere(), [1, 2, 3, 4, 6, 7, 8, 9, 10, 11])
    assert c.frames == 10 and c.extend_first > 0 and c.extend_last == 0


def test_the_estimate_is_capped_at_the_stack_length() -> None:
    # A detached near part far beyond the first end: nothing next to that end to scale by.
    index = ramp(3.0, 7.0, 8)
    index[:, : W * 3 // 4] = 0
    c = coverage.judge(index, everywhere(), range(8))
    assert 1 <= c.extend_first <= 8


def test_a_flat_image_is_no_false_alarm() -> None:
    # Flat: every frame sees noise, the winner is chance (or the unresampled reference),
    # and the best frame stands out from the average by noise only.
    rng = np.random.default_rng(1)
    winners = rng.integers(0, 12, (H, W)).astype(np.uint16)
    winners[rng.random((H, W)) < 0.5] = 0  # the reference's sharper noise
    contrast = rng.uniform(0.1, 0.45, (H, W)) * SHARPNESS
    c = coverage.judge(winners, coverage.textured(contrast, SHARPNESS), range(12))
    assert not c.judged and c.extend_first == c.extend_last == 0
    assert "too little detail" in c.verdict


def test_a_mostly_flat_image_judges_by_its_detail_only() -> None:
    rng = np.random.default_rng(2)
    index = rng.integers(0, 12, (H, W)).astype(np.uint16)
    index[:, : W // 2] = 0  # flat half: the reference wins its noise
    contrast = rng.uniform(0.1, 0.45, (H, W)) * SHARPNESS
    subject = ramp(1.6, 10.4, 12)
    index[:, W // 2 :] = subject[:, W // 2 :]
    contrast[:, W // 2 :] = 1.0 * SHARPNESS
    c = coverage.judge(index, coverage.textured(contrast, SHARPNESS), range(12))
    assert c.covered and 0.4 < c.textured < 0.6


def test_noisy_winners_around_the_true_depth_stay_covered() -> None:
    rng = np.random.default_rng(3)
    index = ramp(2.0, 9.0, 12).astype(int) + rng.integers(-1, 2, (H, W))
    c = coverage.judge(index.astype(np.uint16), everywhere(), range(12))
    assert c.covered and c.first_share == c.last_share == 0.0


def test_an_end_frame_that_only_ties_its_neighbour_counts_for_the_neighbour() -> None:
    # A stack starting right at a large near plane: the first frame and its neighbour are
    # both in focus there, and the first wins by a hair (or by the reference's unresampled
    # pixels). Only where it clearly leads does it count as detail beyond the end.
    index = ramp(0.0, 10.4, 12)
    index[:, : W // 4] = 0
    assert not coverage.judge(index, everywhere(), range(12)).covered
    lead = np.full((H, W), 0.02 * SHARPNESS)  # 2% sharper: a tie
    clear = coverage.clearly_sharpest(lead, SHARPNESS)
    c = coverage.judge(index, everywhere(), range(12), clear, None)
    assert c.covered and c.first_share == 0.0
    lead[:, : W // 8] = 0.3 * SHARPNESS  # beyond the end, focus still falls off steeply
    c = coverage.judge(index, everywhere(), range(12), coverage.clearly_sharpest(lead, SHARPNESS))
    assert c.extend_first > 0 and 0.1 < c.first_share < 0.15


def test_the_trace_keeps_peak_mean_and_the_end_frames_leads() -> None:
    rng = np.random.default_rng(4)
    activity = rng.normal(0, 5, (6, 30, 40)).astype(np.float32)
    trace = accumulate.ActivityTrace()
    assert trace.contrast() is None and trace.leads() is None
    for k, a in enumerate(activity):
        trace.add(a)
        seen = activity[: k + 1]
        contrast = trace.contrast()
        assert contrast is not None
        np.testing.assert_allclose(contrast, seen.max(0) - seen.mean(0), atol=1e-4)
    leads = trace.leads()
    assert leads is not None
    np.testing.assert_allclose(leads[0], activity[0] - activity[1:].max(0), atol=1e-5)
    np.testing.assert_allclose(leads[1], activity[-1] - activity[:-1].max(0), atol=1e-5)


def test_too_few_frames_or_none_are_not_judged() -> None:
    for frames in range(coverage.MIN_FRAMES):
        c = coverage.judge(ramp(-4.0, 9.0, 12), everywhere(), range(frames))
        assert not c.judged and not c.covered and "too few frames" in c.verdict
    empty = coverage.judge(np.zeros((0, 0), np.uint16), np.zeros((0, 0), bool), range(6))
    assert not empty.judged


def test_coverage_round_trips_through_json() -> None:
    c = coverage.judge(ramp(-4.0, 9.0, 12), everywhere(), range(12))
    document = json.loads(json.dumps({"frames": [], "coverage": c.to_dict()}))
    assert stack_coverage(document, "r.stack.json") == c
    assert stack_coverage({"frames": []}, "old.stack.json") is None  # written before it
    for key, value in (("first_share", 1.5), ("extend_last", -1), ("verdict", None)):
        damaged = {**c.to_dict(), key: value}
        with pytest.raises(StackingError, match=key):
            Coverage.from_dict(damaged, "r.stack.json")
    with pytest.raises(StackingError, match="missing judged"):
        Coverage.from_dict({k: v for k, v in c.to_dict().items() if k != "judged"})


# -- the engine, on the simulated subject ----------------------------------------------------

# 320x240 with the defocus of a 1200 px frame (max_blur 0.008 at 1200 px is ~10 px).
SUBJECT = SubjectSettings(width=320, height=240, depth_um=2000.0, max_blur=0.03)
# 21 positions from 300 um in front of the subject to 300 um behind it.
POSITIONS = np.arange(-300.0, 2301.0, 130.0)
THIRD = len(POSITIONS) // 3


@cache
def frames() -> tuple[np.ndarray, ...]:
    subject = Subject(SUBJECT)
    return tuple(subject.frame(p, k) for k, p in enumerate(POSITIONS))


def stack(
    which: slice, method: str = "pyramid", mono: bool = False, live: bool = False
) -> tuple[StackEngine, Coverage]:
    engine = StackEngine(StackSettings(method=method))
    for frame in frames()[which]:
        if mono:
            frame = np.repeat(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        assert engine.add(frame).accepted
        if live:
            engine.coverage()
    return engine, engine.coverage()


CASES = {"whole depth": slice(None), "first third dropped": slice(THIRD, None)}
CASES["last third dropped"] = slice(None, -THIRD)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_engine_verdict_on_the_simulated_subject(case: str, method: str) -> None:
    _, c = stack(CASES[case], method)
    assert c.judged and c.textured > 0.3
    if case == "whole depth":
        assert c.covered and c.first_share < 0.01 and c.last_share < 0.01
        return
    # The estimate assumes the detail per step seen near the end goes on; this subject thins
    # out towards its front and back, so it asks for fewer steps than were dropped.
    short, fine = ("first", "last") if case.startswith("first") else ("last", "first")
    assert 1 <= getattr(c, f"extend_{short}") <= THIRD
    assert getattr(c, f"extend_{fine}") == 0
    assert getattr(c, f"{short}_share") > 0.1
    assert f"the {short} frame" in c.verdict and "stops short" in c.verdict


def test_engine_verdict_is_the_same_for_mono_frames() -> None:
    for which in CASES.values():
        colour, mono = stack(which)[1], stack(which, mono=True)[1]
        assert (mono.extend_first, mono.extend_last) == (colour.extend_first, colour.extend_last)


def test_asking_live_changes_nothing_and_finalize_carries_it() -> None:
    quiet, c = stack(CASES["first third dropped"])
    asked, live = stack(CASES["first third dropped"], live=True)
    assert live == c
    a, b = quiet.finalize(), asked.finalize()
    assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
    assert b.coverage == c


def test_live_verdicts_while_frames_arrive() -> None:
    engine = StackEngine(StackSettings())
    assert not engine.coverage().judged  # no frame yet
    seen = []
    for frame in frames():
        engine.add(frame)
        seen.append(engine.coverage())
    assert all(not c.judged for c in seen[: coverage.MIN_FRAMES - 1])
    # Mid-run the last frame so far holds what is still to come; at the end nothing is left.
    assert any(c.extend_last for c in seen)
    assert seen[-1].covered


def test_a_flat_surround_does_not_make_the_reference_win() -> None:
    """Fresh sensor noise on a featureless background, the subject in a window: the first
    frame (the reference, never resampled) has the sharpest noise, and must not count."""
    rng = np.random.default_rng(5)
    engine = StackEngine(StackSettings())
    for frame in frames():
        flat = np.clip(np.rint(150 + rng.normal(0, 3, frame.shape)), 0, 255).astype(np.uint8)
        flat[60:180, 100:220] = frame[60:180, 100:220]
        assert engine.add(flat).accepted
    c = engine.coverage()
    assert c.covered and c.textured < 0.25


def test_the_coverage_map_spans_the_colours_of_a_covered_stack_and_greys_flat_areas() -> None:
    assert StackEngine().coverage_map() is None
    whole, _ = stack(CASES["whole depth"])
    short, _ = stack(CASES["first third dropped"])
    maps = {}
    for name, engine in (("whole", whole), ("short", short)):
        picture = engine.coverage_map()
        assert picture is not None and picture.dtype == np.uint8 and picture.shape[2] == 3
        detail = np.any(picture != depthmap.NO_DETAIL, axis=2)
        assert 0.3 < detail.mean() < 1.0  # the subject judged, its flat surround grey
        maps[name] = picture[detail]
    # Each colour is a frame's place in the order: the whole stack's detail runs from the
    # first frame's blue to the last's red; the short one's front piles up on its first frame.
    first, last = depthmap.PALETTE[0], depthmap.PALETTE[255]
    share = {k: float(np.all(v == first, axis=1).mean()) for k, v in maps.items()}
    assert share["short"] > 0.1 > share["whole"]
    assert np.all(maps["whole"] == last, axis=1).mean() < 0.1
