"""What every rail driver must do, each against its own emulator on a real pty.

Parametrised over the firmwares of the registry; where a firmware's driver legitimately
behaves otherwise, rail_harness.py says so in that firmware's attributes. The tests of what
only one firmware has (framing, checksums, CRC-7, keep-alives, version checks, parsers) live
in test_rail_<firmware>.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rail_harness import (
    FIRMWARES,
    SLACK_S,
    SPEED_UM_S,
    Bench,
    Firmware,
    once_moving,
    raises_within,
    sent,
    wait_until,
)

from rig.devices.motion import MotionSettings, Rail
from rig.devices.protocols import FocusDriver
from rig.devices.rails.registry import PROTOCOLS, make_driver, make_emulator
from rig.errors import RailError
from rig.profiles.schema import RailSection

Fw = Firmware[Any, Any]


@pytest.fixture(params=FIRMWARES, ids=repr)
def fw(request: pytest.FixtureRequest) -> Fw:
    return request.param


@pytest.fixture
def bench(fw: Fw) -> Iterator[Bench[Any, Any]]:
    with fw.connected() as connected:
        yield connected


def seconds(distance_um: float) -> float:
    """How long the emulated carriage takes for ``distance_um``."""
    return abs(distance_um) / SPEED_UM_S


def exactly(value: float) -> Any:
    return pytest.approx(value, abs=1e-6)


def test_every_registered_protocol_is_covered() -> None:
    assert sorted(fw.name for fw in FIRMWARES) == sorted(PROTOCOLS)


# -- connecting -------------------------------------------------------------------------------


def test_connect_identifies_the_controller(fw: Fw) -> None:
    """Built as the CLI builds them: the registry's emulator and driver, default settings."""
    with make_emulator(fw.name) as emu, fw.running() as ours:
        assert type(emu) is type(ours)  # the harness runs the same emulator, only faster
        driver = make_driver(RailSection(protocol=fw.name, steps_per_mm=fw.steps_per_mm), emu.path)
        try:
            assert isinstance(driver, FocusDriver) and driver.name == fw.name
            assert re.fullmatch(fw.identity, driver.connect()), fw.identity
            assert driver.position_um() == 0.0
        finally:
            driver.close()


def test_connect_to_a_silent_controller_fails_in_time(fw: Fw) -> None:
    with fw.running() as emu:
        emu.faults.no_reply = True
        driver = fw.driver(emu)
        try:
            raises_within(fw.connect_timeout_s + SLACK_S, fw.silent_connect, driver.connect)
        finally:
            driver.close()


# -- moving -----------------------------------------------------------------------------------


def test_move_returns_once_the_motion_has_ended(fw: Fw, bench: Bench[Any, Any]) -> None:
    start = time.monotonic()
    bench.driver.move_to(4000.0, timeout_s=10.0)
    elapsed = time.monotonic() - start
    assert not fw.moving(bench.emu)  # finished, not just queued or under way
    assert fw.position_um(bench.emu) == exactly(4000.0)
    assert seconds(4000.0) * 0.99 <= elapsed < seconds(4000.0) + SLACK_S  # and not much later
    assert bench.driver.position_um() == exactly(4000.0)
    assert fw.settled_moves(bench.emu, 1) == [pytest.approx((0.0, 4000.0), abs=1e-6)]


def test_positions_read_back_after_set_zero(fw: Fw, bench: Bench[Any, Any]) -> None:
    driver = bench.driver
    driver.move_to(2000.0, timeout_s=5.0)
    driver.set_zero()
    assert driver.position_um() == exactly(0.0)
    assert fw.position_um(bench.emu) == exactly(0.0)
    driver.move_to(1000.0, timeout_s=5.0)
    assert driver.position_um() == exactly(1000.0)
    assert fw.position_um(bench.emu) == exactly(1000.0)


@pytest.mark.parametrize(
    ("approach", "expected"),
    [
        (
            "positive",
            [(0, 3000), (3000, 800), (800, 1000), (1000, 2000), (2000, 1300), (1300, 1500)],
        ),
        (
            "negative",
            [(0, 3200), (3200, 3000), (3000, 1000), (1000, 2200), (2200, 2000), (2000, 1500)],
        ),
    ],
)
def test_backlash_every_target_is_reached_from_one_side(
    fw: Fw, bench: Bench[Any, Any], approach: str, expected: list[tuple[int, int]]
) -> None:
    rail = Rail(bench.driver, MotionSettings(backlash_um=200.0, approach=approach))
    for target in (3000.0, 1000.0, 2000.0, 1500.0):
        rail.move_to(target)
        assert rail.position_um() == exactly(target)
    moves = fw.settled_moves(bench.emu, len(expected))
    assert moves == [pytest.approx(move, abs=1e-3) for move in expected]


def test_soft_limits_refuse_before_any_motion_is_sent(fw: Fw, bench: Bench[Any, Any]) -> None:
    emu, driver = bench.emu, bench.driver
    rail = Rail(driver, MotionSettings(soft_min_um=0.0, soft_max_um=5000.0, backlash_um=200.0))
    before = sent(emu)
    with pytest.raises(RailError, match=r"6000\.0 um is above the soft limit 5000\.0 um"):
        rail.move_to(6000.0)
    with pytest.raises(RailError, match=r"-1\.0 um is below the soft limit 0\.0 um"):
        rail.move_to(-1.0)
    assert sent(emu) == before  # the driver was not even asked where it is
    rail.move_to(1000.0)
    mark = len(sent(emu))
    with pytest.raises(RailError, match=r"backlash overshoot -100\.0 um is below the soft limit"):
        rail.move_to(100.0)  # from above, it would overshoot to -100
    assert driver.position_um() == exactly(1000.0)  # a round trip: all sent has arrived
    assert fw.motion_commands(sent(emu)[mark:]) == 0
    assert fw.motion_commands(sent(emu)) == 1  # the move to 1000 um, nothing else ever
    assert fw.position_um(emu) == exactly(1000.0)


def test_rail_settles_after_the_motion(bench: Bench[Any, Any]) -> None:
    rail = Rail(bench.driver, MotionSettings(settle_s=0.3, speed_um_s=SPEED_UM_S))
    start = time.monotonic()
    rail.move_to(2000.0)
    assert time.monotonic() - start >= 0.3 + seconds(2000.0)


# -- stopping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["driver", "rail"])
def test_stop_from_another_thread_ends_the_move(fw: Fw, bench: Bench[Any, Any], via: str) -> None:
    emu, driver = bench.emu, bench.driver
    target = 40_000.0  # 2 s of motion
    # Through a rail approaching from above: it overshoots to 40 200 um first, then comes down.
    rail = Rail(driver, MotionSettings(backlash_um=200.0, approach="negative"))
    stopper = once_moving(emu, fw, rail.stop if via == "rail" else driver.stop)
    with pytest.raises(RailError, match="stopped"):
        rail.move_to(target) if via == "rail" else driver.move_to(target, timeout_s=10.0)
    stopped = time.monotonic()
    stopper.join(timeout=5.0)
    assert stopper.at is not None and stopped - stopper.at < fw.stop_pause_s + SLACK_S
    wait_until(lambda: not fw.moving(emu))
    halted = fw.position_um(emu)
    assert 0.0 < halted < target  # really halted mid-move: the first leg, for a rail
    assert driver.position_um() == pytest.approx(halted, abs=fw.readback_um)  # truthful
    assert fw.stop_sent in sent(emu)
    assert fw.motion_commands(sent(emu)) == 1  # nor did the driver or rail go on afterwards
    driver.move_to(1000.0, timeout_s=5.0)  # and the next move works
    assert driver.position_um() == exactly(1000.0)
    assert fw.position_um(emu) == exactly(1000.0)


# -- faults -----------------------------------------------------------------------------------


def test_disconnect_mid_move_is_a_clear_error_in_time(fw: Fw, bench: Bench[Any, Any]) -> None:
    bench.emu.faults.disconnect_after_s = 0.1
    raises_within(
        0.1 + SLACK_S,
        "lost the connection to the .* check the cable and power",
        lambda: bench.driver.move_to(20_000.0, timeout_s=5.0),
    )
    with pytest.raises(RailError, match="not connected: connect first"):
        bench.driver.position_um()


def test_error_line_is_a_rail_error_naming_it(fw: Fw, bench: Bench[Any, Any]) -> None:
    fw.inject_error(bench.emu)
    raises_within(SLACK_S, fw.error, lambda: bench.driver.move_to(1000.0, timeout_s=5.0))
    if fw.after_error is None:  # the error was the one command's: the next move works
        bench.driver.move_to(1000.0, timeout_s=5.0)
        assert fw.position_um(bench.emu) == exactly(1000.0)
    else:  # the firmware is left in its error state
        with pytest.raises(RailError, match=fw.after_error):
            bench.driver.move_to(1000.0, timeout_s=5.0)


def test_limit_switch_mid_move(fw: Fw) -> None:
    # Slowly, so that 100 um are 50 ms of the emulator's timing, not 5 ms.
    with fw.connected(speed_mm_s=2.0) as bench:
        bench.emu.faults.alarm_mid_move = True
        bound = 0.5 + SLACK_S  # the 1 mm move takes 0.5 s: no wait may run out
        raises_within(bound, fw.limit, lambda: bench.driver.move_to(1000.0, timeout_s=5.0))
        wait_until(lambda: not fw.moving(bench.emu))
        assert fw.position_um(bench.emu) == pytest.approx(500.0, abs=100.0)  # halfway


def test_reset_mid_move_is_not_success(fw: Fw, bench: Bench[Any, Any]) -> None:
    bench.emu.faults.reset_mid_move = True
    bound = seconds(4000.0) + SLACK_S
    raises_within(bound, fw.reset, lambda: bench.driver.move_to(4000.0, timeout_s=5.0))


def test_rail_wait_is_bounded_by_the_move_length(fw: Fw, bench: Bench[Any, Any]) -> None:
    # The rail believes in ten times the real speed: the 1 s move outlasts its bound of 0.8 s.
    settings = MotionSettings(speed_um_s=10 * SPEED_UM_S, timeout_margin_s=0.5)
    rail = Rail(bench.driver, settings)
    bound = rail.timeout_for(20_000.0)
    start = time.monotonic()
    raises_within(bound + SLACK_S, fw.overrun, lambda: rail.move_to(20_000.0))
    assert time.monotonic() - start >= bound  # it did wait that long


def test_no_reply_fails_within_the_bound(fw: Fw, bench: Bench[Any, Any]) -> None:
    bench.emu.faults.no_reply = True
    timeout = fw.reply_timeout_s  # the first exchange of a move waits this long at the most
    raises_within(timeout + SLACK_S, fw.silent_move, lambda: bench.driver.move_to(1000.0, timeout))


def test_slow_replies_within_the_bound_still_work(fw: Fw, bench: Bench[Any, Any]) -> None:
    bench.emu.faults.slow_reply_s = fw.slow_reply_s
    bench.driver.move_to(2000.0, timeout_s=5.0)
    assert fw.position_um(bench.emu) == exactly(2000.0)
    assert bench.driver.position_um() == exactly(2000.0)


def test_replies_slower_than_the_bound_fail_in_time(fw: Fw, bench: Bench[Any, Any]) -> None:
    bench.emu.faults.slow_reply_s = fw.reply_timeout_s + 0.5
    raises_within(fw.reply_timeout_s + SLACK_S, fw.silent_query, bench.driver.position_um)


def test_line_noise_is_never_taken_for_an_answer(fw: Fw, bench: Bench[Any, Any]) -> None:
    emu, driver = bench.emu, bench.driver
    driver.move_to(1000.0, timeout_s=5.0)
    emu.faults.garbage = True
    if fw.garbage is None:  # the driver reads through the noise
        driver.move_to(700.0, timeout_s=5.0)
        assert driver.position_um() == exactly(700.0)
    else:
        raises_within(fw.garbage_s + SLACK_S, fw.garbage, driver.position_um)
    emu.faults.garbage = False
    driver.move_to(500.0, timeout_s=5.0)  # once the line is clean, the driver works again
    assert driver.position_um() == exactly(500.0)
    assert fw.position_um(emu) == exactly(500.0)


def test_replies_split_across_writes_are_joined(fw: Fw, bench: Bench[Any, Any]) -> None:
    bench.emu.faults.split_lines = True
    bench.driver.move_to(3000.0, timeout_s=5.0)
    assert fw.position_um(bench.emu) == exactly(3000.0)
    assert bench.driver.position_um() == exactly(3000.0)
