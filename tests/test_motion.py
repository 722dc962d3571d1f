"""Motion policy (pure parts): approach path, limits, wait bounds, settings validation."""

from __future__ import annotations

import pytest

from rig.devices.motion import MotionSettings, Rail
from rig.errors import RailError


class _NoDriver:
    name = "none"


def _rail(**kw: object) -> Rail:
    return Rail(_NoDriver(), MotionSettings(**kw))  # type: ignore[arg-type]


def test_path_overshoots_only_when_arriving_from_the_wrong_side() -> None:
    rail = _rail(backlash_um=50.0, approach="positive")
    assert rail.path(0.0, 100.0) == [100.0]  # moving up: already the approach direction
    assert rail.path(200.0, 100.0) == [50.0, 100.0]  # moving down: overshoot, come back up
    down = _rail(backlash_um=50.0, approach="negative")
    assert down.path(0.0, 100.0) == [150.0, 100.0]
    assert down.path(200.0, 100.0) == [100.0]
    assert _rail().path(200.0, 100.0) == [100.0]  # no backlash setting, no overshoot


def test_overshoot_beyond_soft_limit_is_refused() -> None:
    rail = _rail(backlash_um=50.0, soft_min_um=0.0, soft_max_um=1000.0)
    with pytest.raises(RailError, match=r"backlash overshoot -30\.0 um is below the soft limit"):
        rail.path(500.0, 20.0)


def test_timeout_grows_with_distance() -> None:
    rail = _rail(speed_um_s=1000.0, timeout_margin_s=2.0)
    assert rail.timeout_for(0.0) == 2.0
    assert rail.timeout_for(-3000.0) == pytest.approx(2.0 + 9.0)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"backlash_um": -5.0}, "backlash_um = -5.0: must be >= 0"),
        ({"approach": "up"}, "approach = 'up'"),
        ({"settle_s": -1.0}, "settle_s"),
        ({"speed_um_s": 0.0}, "speed_um_s"),
        ({"soft_min_um": 10.0, "soft_max_um": 5.0}, "minimum must be below the maximum"),
    ],
)
def test_bad_settings_named(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MotionSettings(**kw)  # type: ignore[arg-type]
