"""The simulated rig's subject: focus follows the rail position, and the truth is known."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rig.simrig.camera_feed import encode_jpeg
from rig.simrig.subject import Subject, SubjectSettings


@pytest.fixture(scope="module")
def subject() -> Subject:
    return Subject(SubjectSettings(width=320, height=240, depth_um=2000.0, near_um=-500.0))


def _sharpness(rgb: np.ndarray, mask: np.ndarray) -> float:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F))[mask].mean())


def test_the_focus_follows_the_rail_position(subject: Subject) -> None:
    depth = subject.depth_um()
    near, far = depth < -500.0 + 0.3 * 2000.0, depth > -500.0 + 0.7 * 2000.0
    assert near.mean() > 0.02 and far.mean() > 0.02
    at_near = subject.frame(-500.0 + 0.1 * 2000.0)
    at_far = subject.frame(-500.0 + 0.9 * 2000.0)
    assert _sharpness(at_near, near) > 1.3 * _sharpness(at_far, near)
    assert _sharpness(at_far, far) > 1.3 * _sharpness(at_near, far)


def test_frames_are_deterministic_per_shot_and_noisy_between_shots(subject: Subject) -> None:
    a, b, c = subject.frame(0.0, shot=3), subject.frame(0.0, shot=3), subject.frame(0.0, shot=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8


def test_truth_and_jpeg(subject: Subject) -> None:
    assert subject.all_in_focus().shape == (240, 320, 3)
    depth = subject.depth_um()
    assert depth.min() >= -500.0 and depth.max() <= 1500.0
    served = encode_jpeg(subject.frame(100.0), 92)
    decoded = cv2.imdecode(np.frombuffer(served, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (240, 320, 3)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 64 px"):
        Subject(SubjectSettings(width=10))


@pytest.mark.parametrize(("protocol", "steps"), [("grbl", None), ("marlin", None), ("tic", 1000.0)])
def test_the_rig_shows_the_frame_at_the_physical_carriage_position(
    tmp_path: Path, protocol: str, steps: float | None
) -> None:
    from rig.devices.motion import Rail
    from rig.devices.rails.registry import make_driver
    from rig.profiles.schema import RailSection
    from rig.simrig.rig import SimulatedRig

    settings = SubjectSettings(width=160, height=120, depth_um=2000.0)
    with SimulatedRig(protocol, tmp_path, settings, steps_per_mm=steps) as rig:
        section = RailSection(protocol=protocol, steps_per_mm=steps, speed_mm_s=20.0)
        rail = Rail(make_driver(section, rig.port))
        rail.connect()
        try:
            rail.set_zero()
            rail.move_to(1200.0)
            assert rig.before_shot(shot=5) == pytest.approx(1200.0, abs=5.0)
        finally:
            rail.close()
        served = cv2.imdecode(np.frombuffer(rig.feed.path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        got = cv2.cvtColor(served, cv2.COLOR_BGR2RGB).astype(int)

        def off(position_um: float) -> float:
            return float(np.abs(got - rig.subject.frame(position_um, shot=5)).mean())

        # Only the JPEG between it and the right frame; the frame at the start is another image.
        assert off(rig.carriage_um()) < 0.6 * off(0.0)
