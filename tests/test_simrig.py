"""The simulated rig's subject: focus follows the rail position, and the truth is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

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
    decoded = cv2.imdecode(np.frombuffer(subject.jpeg(100.0), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (240, 320, 3)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 64 px"):
        Subject(SubjectSettings(width=10))
