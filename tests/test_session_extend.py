"""Extending a session beyond one end of its plan: the extra positions are journaled, shot in
the plan's direction, and stacked in focus order with the frames from before."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from session_rig import Rig, profile

from rig.errors import SessionError
from rig.session.journal import read_journal
from rig.session.plan import Plan
from rig.session.run import extend_session, focus_order
from rig.session.stacker import StackOutcome
from rig.simrig.subject import Subject, SubjectSettings
from stacking import geometry
from stacking.io import read_image

# Enough defocus over the depth that a stack missing its front is visibly worse.
SUBJECT = SubjectSettings(width=320, height=240, depth_um=800.0, max_blur=0.04)


def psnr(outcome: StackOutcome) -> float:
    image = read_image(outcome.outputs.image).pixels.astype(np.float64)
    image = image / 257.0 if image.max() > 255 else image
    truth = Subject(SUBJECT).all_in_focus().astype(np.float64)
    image = geometry.uncrop(image, outcome.result.crop, truth.shape)
    h, w = truth.shape[:2]
    crop = (slice(h // 10, h - h // 10), slice(w // 10, w - w // 10))
    return 10 * math.log10(255.0**2 / float(np.mean((image[crop] - truth[crop]) ** 2)))


def test_focus_order_follows_the_plan_direction_not_the_shot_order() -> None:
    positions = [320.0, 480.0, 640.0, 800.0, 0.0, 160.0]  # 5, 6: an extension before the start
    assert focus_order(positions, range(1, 7)) == [5, 6, 1, 2, 3, 4]
    backwards = [800.0, 640.0, 480.0, 960.0]  # a plan shot downwards, extended before its start
    assert focus_order(backwards, [1, 2, 3, 4]) == [4, 1, 2, 3]
    assert focus_order([0.0, 0.0, 10.0], [3, 2, 1]) == [1, 2, 3]  # repeats keep shot order


def shoot_plan(tmp: Path, plan: Plan, extend_first: int = 0) -> tuple[Rig, float, float]:
    """PSNR of the stack as planned, and after extending (the same when not extended)."""
    rig = Rig(tmp, profile(), plan, SUBJECT)
    shot = rig.shoot()
    first = psnr(shot.outcome)
    if not extend_first:
        assert shot.outcome.result.coverage.covered, shot.outcome.result.coverage.verdict
        assert shot.extension_advice() == []
        return rig, first, first
    # The verdict saw the front missing, and says how to add it.
    coverage = shot.outcome.result.coverage
    assert coverage.extend_first > 0 and not coverage.extend_last, coverage.verdict
    (advice,) = shot.extension_advice()
    assert f"--resume {rig.folder.path} --extend-first" in advice and "beyond 320.0 um" in advice
    added = extend_session(rig.folder, rig.journal, "first", extend_first)
    assert added == [0.0, 160.0]  # outermost first: every move in the plan's direction
    after = rig.resume(finished=True)
    assert (after.shot, after.restacked) == (2, 4)  # nothing shot twice
    return rig, first, psnr(after.outcome)


def test_a_stack_short_at_the_front_is_extended_without_reshooting(tmp_path: Path) -> None:
    full, whole, _ = shoot_plan(tmp_path / "full", Plan.from_start_end_count(0.0, 800.0, 6))
    full.close()
    rig, short, extended = shoot_plan(
        tmp_path / "short", Plan.from_start_end_count(320.0, 800.0, 4), 2
    )
    try:
        names = rig.frames()
        assert names[4:] == ["0005_z+0.0um.jpg", "0006_z+160.0um.jpg"]
        events = read_journal(rig.folder.journal)
        stacked = [e["index"] for e in events if e.type == "frame_stacked"]
        assert stacked[4:] == [5, 6, 1, 2, 3, 4]  # the re-stack went in focus order
    finally:
        rig.close()
    print(f"whole {whole:.2f} dB; short {short:.2f} dB, extended {extended:.2f} dB")
    assert extended > short + 2.0  # the front is in focus now
    assert extended > whole - 0.5  # as good as shooting the whole depth in one go


def test_an_extension_past_a_soft_limit_is_refused_and_not_journaled(tmp_path: Path) -> None:
    prof = profile()
    prof.rail.soft_max_um = 900.0
    rig = Rig(tmp_path, prof, Plan.from_start_end_count(0.0, 800.0, 6))
    try:
        rig.shoot()
        with pytest.raises(SessionError, match=r"above rail\.soft_max_um"):
            extend_session(rig.folder, rig.journal, "last", 2)  # 960, 1120
        assert "session_extended" not in [e.type for e in read_journal(rig.folder.journal)]
        assert extend_session(rig.folder, rig.journal, "first", 1) == [-160.0]
    finally:
        rig.close()
