"""Plans: positions from start/end/step/count, the profile's [plan], estimates and warnings."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rig.profiles import Profile
from rig.profiles.schema import CameraSection, OpticsSection, PlanSection, RailSection
from rig.session.plan import (
    FRAME_BYTES,
    MAX_POSITIONS,
    SHOT_S,
    SNAP_UM,
    Plan,
    PlanError,
    disk_shortfall,
    estimate,
    frame_size,
    plan_warnings,
)


def rig(**rail: object) -> Profile:
    """A GRBL rail at 1 mm/s, 100 um steps, no backlash or settle unless given."""
    settings = {"speed_mm_s": 1.0, "settle_s": 0.0, **rail}
    return Profile(
        name="t",
        rail=RailSection(**settings),  # type: ignore[arg-type]
        plan=PlanSection(step_um=100.0),
        optics=OpticsSection(magnification=2, f_number=8),  # DOF 316.8 um
    )


# -- constructors ------------------------------------------------------------------------------


def test_start_end_step_keeps_the_step_and_ends_at_the_end() -> None:
    assert Plan.from_start_end_step(0, 1000, 250).positions_um == (0, 250, 500, 750, 1000)
    # Not a whole number of steps: the last step is the short one, and none goes past the end.
    assert Plan.from_start_end_step(0, 1000, 300).positions_um == (0, 300, 600, 900, 1000)
    assert Plan.from_start_end_step(0, 100, 300).positions_um == (0, 100)
    # Float noise does not add a frame a nanometre from the end.
    assert Plan.from_start_end_step(0, 0.3, 0.1).positions_um == (0, 0.1, 0.2, 0.3)


def test_start_above_end_shoots_downwards() -> None:
    plan = Plan.from_start_end_step(1000, 0, 300)
    assert plan.positions_um == (1000, 700, 400, 100, 0)
    assert plan.direction == "negative" and plan.first_um == 1000 and plan.last_um == 0


def test_start_end_count_and_one_point() -> None:
    assert Plan.from_start_end_count(0, 90, 4).positions_um == (0, 30, 60, 90)
    assert Plan.from_start_end_count(0, 1, 4).positions_um == (0, 0.333, 0.667, 1)
    down = Plan.from_start_count(500, 3, 25, "negative")
    assert down.positions_um == (500, 475, 450) and down.direction == "negative"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Plan.from_start_end_step(0, 1000, 0), "give a step > 0"),
        (lambda: Plan.from_start_end_step(0, 1000, -5), "give a step > 0"),
        (lambda: Plan.from_start_end_step(5, 5, 10), "both 5 um"),
        (lambda: Plan.from_start_end_count(0, 100, 1), "2 or more"),
        (lambda: Plan.from_start_count(0, 1, 10), "2 or more"),
        (lambda: Plan.from_start_end_step(0, 1e6, 1), "more than 10000; give a larger step"),
        (lambda: Plan.from_start_end_count(0, 1e6, MAX_POSITIONS + 1), "give a smaller count"),
        (lambda: Plan.from_start_count(0, 5, 10, "up"), "plan.direction"),
        (lambda: Plan((0.0,), shots_per_position=0), "shots per position"),
    ],
)
def test_bad_plans_say_what_to_change(make: object, words: str) -> None:
    with pytest.raises(PlanError, match=words):
        make()  # type: ignore[operator]


@given(
    start=st.floats(-50_000, 50_000),
    span=st.floats(1, 50_000),
    step=st.floats(0.5, 5_000),
    down=st.booleans(),
)
def test_start_end_step_properties(start: float, span: float, step: float, down: bool) -> None:
    end = start - span if down else start + span
    assume(span / step < MAX_POSITIONS - 2)
    p = Plan.from_start_end_step(start, end, step).positions_um
    assert p[0] == round(start, 3) and p[-1] == round(end, 3)
    gaps = [b - a for a, b in itertools.pairwise(p)]
    assert all((g < 0) if down else (g > 0) for g in gaps)  # monotonic, towards the end
    # Never a step longer than asked, but for a last grid point snapped onto the end.
    assert all(abs(g) <= step + 0.002 for g in gaps[:-1])
    assert abs(gaps[-1]) <= step + SNAP_UM + 0.002
    assert all(abs(abs(g) - step) <= 0.002 for g in gaps[:-1])  # evenly spaced but the last


@given(start=st.floats(-1e4, 1e4), step=st.floats(0.1, 1e3), n=st.integers(2, 500))
def test_one_point_properties(start: float, step: float, n: int) -> None:
    plan = Plan.from_start_count(start, n, step, "positive")
    assert plan.count == n and plan.first_um == round(start, 3)
    gaps = [b - a for a, b in itertools.pairwise(plan.positions_um)]
    assert all(abs(g - step) <= 0.002 for g in gaps)


@given(start=st.floats(-1e4, 1e4), span=st.floats(1, 1e4), n=st.integers(2, 500))
def test_start_end_count_properties(start: float, span: float, n: int) -> None:
    p = Plan.from_start_end_count(start, start + span, n).positions_um
    assert len(p) == n and p[0] == round(start, 3) and p[-1] == round(start + span, 3)
    assert all(b > a for a, b in itertools.pairwise(p))


# -- from a profile ----------------------------------------------------------------------------


def test_from_profile_takes_the_rail_and_plan_sections() -> None:
    profile = rig(approach="negative", settle_s=1.5, return_to_start=False)
    profile.plan = PlanSection(step_um=100.0, shots_per_position=2)
    plan = Plan.from_profile(profile, start_um=0, end_um=300)
    assert plan.positions_um == (0, 100, 200, 300) and plan.frames == 8
    assert (plan.approach, plan.settle_s, plan.return_to_start) == ("negative", 1.5, False)
    assert not plan.relative


def test_from_profile_step_and_count_sources() -> None:
    profile = rig()
    assert Plan.from_profile(profile, start_um=0, end_um=200, step_um=50).count == 5
    assert Plan.from_profile(profile, start_um=0, end_um=200, count=3).positions_um == (0, 100, 200)
    no_step = dataclasses.replace(profile, plan=PlanSection())
    suggested = Plan.from_profile(no_step, start_um=0, end_um=1000)  # 0.75 x 316.8 um
    assert suggested.positions_um[1] == pytest.approx(237.6)
    by_count = dataclasses.replace(profile, plan=PlanSection(count=6))
    assert Plan.from_profile(by_count, start_um=0, end_um=100).count == 6


def test_one_point_mode_from_here_or_relative() -> None:
    profile = rig(soft_min_um=0.0, soft_max_um=1000.0)
    profile.plan = PlanSection(mode="start_count", step_um=100.0, count=4, direction="negative")
    relative = Plan.from_profile(profile)
    assert relative.positions_um == (0, -100, -200, -300) and relative.relative
    here = Plan.from_profile(profile, here_um=800, count=3)
    assert here.positions_um == (800, 700, 600) and not here.relative
    with pytest.raises(PlanError, match=r"below rail\.soft_min_um \(0 um\)"):
        Plan.from_profile(profile, here_um=100)


def test_from_profile_refusals_name_the_fix() -> None:
    profile = rig(soft_min_um=0.0, soft_max_um=5000.0)
    with pytest.raises(PlanError, match=r"above rail\.soft_max_um \(5000 um\)"):
        Plan.from_profile(profile, start_um=0, end_um=6000)
    with pytest.raises(PlanError, match="--end needs --start"):
        Plan.from_profile(profile, end_um=100)
    with pytest.raises(PlanError, match="--start needs --end"):
        Plan.from_profile(profile, start_um=100)
    with pytest.raises(PlanError, match="not both"):
        Plan.from_profile(profile, start_um=0, end_um=100, step_um=10, count=5)
    with pytest.raises(PlanError, match="give --start and --end"):
        Plan.from_profile(profile)  # mode start_end with no positions


# -- estimates and warnings --------------------------------------------------------------------


def test_estimate_adds_moves_settle_shots_and_return() -> None:
    profile = rig(settle_s=0.5, backlash_um=50.0)
    plan = Plan.from_profile(profile, start_um=0, end_um=1000)  # 11 positions
    est = estimate(plan, profile, frame_bytes=10_000_000)
    assert est.move_s == pytest.approx(1.0)  # 1000 um at 1 mm/s
    assert est.return_s == pytest.approx((1000 + 2 * 50) / 1000)  # back against the approach
    assert est.settle_s == pytest.approx(11 * 0.5) and est.shots_s == 11 * SHOT_S
    assert est.duration_s == pytest.approx(1.0 + 1.1 + 5.5 + 11 * SHOT_S)
    assert est.frames_bytes == 11 * 10_000_000 and est.frame_source == "given"
    assert est.disk_bytes == est.frames_bytes + est.outputs_bytes > est.frames_bytes
    from_here = estimate(plan, profile, frame_bytes=1, here_um=-1000)
    assert from_here.move_s == pytest.approx(2.0)


def test_frame_size_from_the_image_format() -> None:
    def size(settings: dict[str, str]) -> int:
        return frame_size(Profile(name="t", camera=CameraSection(settings=settings)))[0]

    jpeg, raw, tiff = FRAME_BYTES["jpeg"], FRAME_BYTES["raw"], FRAME_BYTES["tiff"]
    assert size({}) == jpeg
    assert size({"imageformat": "RAW + Large Fine JPEG"}) == raw + jpeg
    assert size({"imagequality": "RAW+JPEG"}) == raw + jpeg
    assert size({"imagequality": "NEF+Fine"}) == raw + jpeg
    assert size({"imageformat": "RAW"}) == raw
    assert size({"imagequality": "NEF (Raw)"}) == raw
    assert size({"imageformat": "Large Fine JPEG"}) == jpeg
    assert size({"imagequality": "TIFF"}) == tiff
    assert size({"imageformat": "something new"}) == jpeg


def test_warnings() -> None:
    profile = rig(soft_min_um=0.0, soft_max_um=10_000.0, backlash_um=100.0)
    coarse = Plan.from_profile(profile, start_um=0, end_um=2000, step_um=400)
    text = " | ".join(plan_warnings(coarse, profile))
    assert "step 400 um is larger than the depth of field 316.8 um" in text
    # Back to the start arrives from the wrong side: its overshoot would pass soft_min_um.
    assert "backlash overshoot -100.0 um is below rail.soft_min_um (0 um)" in text
    down = Plan.from_profile(profile, start_um=1000, end_um=500)
    assert any("every shot overshoots" in w for w in plan_warnings(down, profile))
    two = Plan.from_profile(profile, start_um=500, end_um=600)
    assert any("only 2 positions" in w for w in plan_warnings(two, profile))
    fine = Plan.from_profile(profile, start_um=500, end_um=1500)
    assert plan_warnings(fine, profile) == []
    far = Plan.from_profile(rig(), start_um=0, end_um=200_000, step_um=250)
    assert any("no soft limits" in w for w in plan_warnings(far, rig()))


def test_disk_shortfall_asks_the_nearest_existing_folder_and_names_both_figures(
    tmp_path: Path,
) -> None:
    plan = Plan.from_start_end_step(0.0, 1900.0, 100.0)  # 20 frames
    need = estimate(plan, rig()).disk_bytes
    asked: list[Path] = []

    def free(path: Path) -> int:
        asked.append(path)
        return need - 1

    root = tmp_path / "not" / "yet"
    short = disk_shortfall(plan, rig(), root, free)
    assert asked == [tmp_path]
    assert short is not None and f"{need / 1e9:.1f} GB" in short and str(tmp_path) in short
    assert disk_shortfall(plan, rig(), root, lambda p: need) is None
