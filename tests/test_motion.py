"""Motion policy (pure parts): approach path, limits, wait bounds, settings validation."""

from __future__ import annotations

import pytest

from rig.devices.motion import DEFAULT_TRAVEL_UM, MotionSettings, Rail
from rig.errors import RailError


class _NoDriver:
    """Policy only: anything that would talk to a controller fails the test."""

    name = "none"
    referenced = True


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


class _Counting:
    """A driver that records the moves it is asked for and stands where the last one ended."""

    name = "counting"

    def __init__(self, referenced: bool = True) -> None:
        self.referenced = referenced
        self.at = 0.0
        self.moves: list[float] = []
        self.queries = 0

    def position_um(self) -> float:
        self.queries += 1
        return self.at

    def move_to(self, target_um: float, timeout_s: float) -> None:
        self.moves.append(target_um)
        self.at = target_um

    def jog(self, delta_um: float) -> None:
        self.at += delta_um


@pytest.mark.parametrize("target", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_targets_are_refused(target: float) -> None:
    driver = _Counting()
    rail = Rail(driver)  # type: ignore[arg-type]
    for move in (rail.move_to, rail.move_by, rail.jog):
        with pytest.raises(RailError, match="not a number"):
            move(target)
    assert driver.moves == []


def test_without_soft_limits_a_move_is_bounded_by_the_default_travel() -> None:
    driver = _Counting()
    rail = Rail(driver)  # type: ignore[arg-type]
    with pytest.raises(RailError, match=r"no soft limits are set.*default travel of 100 mm"):
        rail.move_to(DEFAULT_TRAVEL_UM + 1.0)
    with pytest.raises(RailError, match="default travel"):
        rail.jog(-DEFAULT_TRAVEL_UM - 1.0)
    rail.move_to(DEFAULT_TRAVEL_UM)  # exactly the bound is fine
    assert driver.moves == [DEFAULT_TRAVEL_UM]


def test_an_unreferenced_rail_refuses_absolute_moves_but_moves_relative() -> None:
    driver = _Counting(referenced=False)
    rail = Rail(driver, MotionSettings(soft_min_um=0.0, soft_max_um=1000.0))  # type: ignore[arg-type]
    with pytest.raises(RailError, match=r"not referenced.*zero here"):
        rail.move_to(500.0)
    rail.move_by(-300.0)  # the soft limits mean nothing until zeroed: the travel bound holds
    assert driver.moves == [-300.0]
    with pytest.raises(RailError, match=r"the position is not referenced.*default travel"):
        rail.move_by(DEFAULT_TRAVEL_UM + 1.0)


def test_consecutive_moves_ask_the_controller_once() -> None:
    driver = _Counting()
    rail = Rail(driver, MotionSettings(backlash_um=20.0))  # type: ignore[arg-type]
    for target in (100.0, 200.0, 300.0, 250.0):
        rail.move_to(target)
    assert driver.queries == 1  # the first start only: later ones begin where the last ended
    assert driver.moves == [100.0, 200.0, 300.0, 230.0, 250.0]
    rail.jog(10.0)  # anything else that moves forgets the position
    rail.move_to(300.0)
    assert driver.queries == 3  # the jog's own check, then the move after it
