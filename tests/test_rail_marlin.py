"""Marlin driver against the Marlin emulator on a real pty: protocol, motion, every fault."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator

import pytest

from rig.devices.emulators.marlin import (
    ERROR_CHECKSUM,
    ERROR_KILL,
    ERROR_LINE_NUMBER,
    MarlinEmulator,
)
from rig.devices.motion import MotionSettings, Rail
from rig.devices.protocols import FocusDriver
from rig.devices.rails.marlin import MarlinDriver, frame, parse_position
from rig.errors import RailError

SPEED = 20.0  # mm/s: moves of a few mm take a fraction of a second


def started(**options: object) -> MarlinEmulator:
    emu = MarlinEmulator(keepalive_s=0.05, feed_mm_s=SPEED, **options)  # type: ignore[arg-type]
    emu.start()
    return emu


def driver_for(emu: MarlinEmulator, **options: object) -> MarlinDriver:
    settings: dict[str, object] = {
        "speed_mm_s": SPEED,
        "reply_timeout_s": 0.5,
        "connect_timeout_s": 1.5,
        "hello_interval_s": 0.2,
    }
    settings.update(options)
    return MarlinDriver(emu.path, **settings)  # type: ignore[arg-type]


@pytest.fixture
def emu() -> Iterator[MarlinEmulator]:
    emulator = started()
    yield emulator
    emulator.close()


@pytest.fixture
def driver(emu: MarlinEmulator) -> Iterator[MarlinDriver]:
    drv = driver_for(emu)
    drv.connect()
    yield drv
    drv.close()


def sent(emu: MarlinEmulator) -> str:
    return b"".join(emu.received).decode("ascii", errors="replace")


def raises_within(limit_s: float, match: str, call: object, *args: object) -> RailError:
    """``call(*args)`` must raise a RailError matching ``match`` in under ``limit_s``."""
    t0 = time.monotonic()
    with pytest.raises(RailError, match=match) as caught:
        call(*args)  # type: ignore[operator]
    assert time.monotonic() - t0 < limit_s
    return caught.value


# -- pure parts ------------------------------------------------------------------------------


def test_frame_carries_the_xor_of_everything_before_the_star() -> None:
    line = frame(7, "G1 Z1.5000 F1200")
    body, checksum = line.rstrip(b"\n").split(b"*")
    assert body == b"N7 G1 Z1.5000 F1200"
    assert int(checksum) == functools.reduce(lambda a, b: a ^ b, body)


@pytest.mark.parametrize(
    ("line", "axis", "value"),
    [
        ("X:0.00 Y:127.00 Z:145.00 E:0.00 Count X: 0 Y:10160 Z:116000", "Z", 145.0),
        ("X:0.00 Y:0.00 Z:1.50 E:0.00 Count X:0 Y:0 Z:1200", "Z", 1.5),
        ("X:-2.25 Y:0.00 Z:1.50 E:0.00 Count X:  -900 Y:0 Z:1200", "X", -2.25),
        ("echo:busy: processing", "Z", None),
    ],
)
def test_m114_is_read_before_count(line: str, axis: str, value: float | None) -> None:
    assert parse_position(line, axis) == value


# -- connecting ------------------------------------------------------------------------------


def test_connect_identifies_and_sets_up(emu: MarlinEmulator) -> None:
    drv = driver_for(emu, steps_per_mm=800.0, accel_mm_s2=50.0)
    assert isinstance(drv, FocusDriver)
    assert drv.connect() == "Marlin 2.1.2.4 on Focus Rail"
    wire = sent(emu)
    for command in ("M115", "M92 Z800", "M201 Z50", "G21", "G90", "M114"):
        assert command in wire
    assert emu.steps_per_mm == 800.0
    assert drv.capabilities["EMERGENCY_PARSER"] is True
    drv.close()


@pytest.mark.parametrize("options", [{"boot_s": 0.4}, {"banner": False}])
def test_connect_with_and_without_a_reset_on_open(options: dict[str, object]) -> None:
    # boot_s: the board resets when the port opens, drops the first hellos, then says start.
    emu = started(**options)
    try:
        drv = driver_for(emu)
        assert drv.connect().startswith("Marlin")
        assert drv.position_um() == 0.0
        drv.close()
    finally:
        emu.close()


def test_connect_refuses_other_firmware() -> None:
    emu = started(firmware_name="Smoothieware 1.0")
    try:
        drv = driver_for(emu)
        raises_within(1.0, "Smoothieware.*not Marlin", drv.connect)
        assert not drv.link.is_open
    finally:
        emu.close()


# -- moving ----------------------------------------------------------------------------------


def test_move_returns_only_when_motion_is_over(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    t0 = time.monotonic()
    driver.move_to(4000.0, timeout_s=2.0)
    assert time.monotonic() - t0 >= 4.0 / SPEED * 0.9  # busy keepalives came meanwhile
    assert not emu.moving()
    assert emu.position_mm() == pytest.approx(4.0)
    assert driver.position_um() == 4000.0
    driver.move_to(1234.5, timeout_s=2.0)  # finer than M114's 0.01 mm, confirmed by it
    assert driver.position_um() == 1234.5


def test_rail_approaches_from_the_configured_side(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    rail = Rail(driver, MotionSettings(backlash_um=200.0, approach="positive"))
    rail.move_to(2000.0)
    rail.move_to(1000.0)  # arriving from above: overshoot to 800, come back up
    rail.move_to(1500.0)  # already arriving upwards: straight there
    flat = [mm for move in emu.moves for mm in move]
    assert flat == pytest.approx([0.0, 2.0, 2.0, 0.8, 0.8, 1.0, 1.0, 1.5])
    assert rail.position_um() == 1500.0


def test_rail_soft_limits_send_nothing(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    rail = Rail(driver, MotionSettings(soft_min_um=0.0, soft_max_um=5000.0))
    before = len(emu.received)
    with pytest.raises(RailError, match="above the soft limit"):
        rail.move_to(6000.0)
    assert len(emu.received) == before


def test_marlin_clamping_at_its_endstops_is_an_error() -> None:
    emu = started(max_mm=3.0)
    try:
        drv = driver_for(emu)
        drv.connect()
        raises_within(1.0, "instead of 5.000 mm.*soft endstops", drv.move_to, 5000.0, 1.0)
        assert emu.position_mm() == pytest.approx(3.0)
    finally:
        emu.close()


def test_home_jog_zero_and_energise(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    driver.move_to(3000.0, timeout_s=2.0)
    driver.set_zero()
    assert driver.position_um() == 0.0
    driver.home(timeout_s=2.0)  # the emulated endstop is 3 mm below the new zero
    assert emu.position_mm() == 0.0
    driver.jog(500.0)  # returns at once; the carriage arrives a moment later
    deadline = time.monotonic() + 1.0
    while emu.moving() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emu.position_mm() == pytest.approx(0.5)
    driver.move_to(1000.0, timeout_s=2.0)  # absolute again after the jog
    assert emu.position_mm() == pytest.approx(1.0)
    driver.energise(True)
    assert emu.energised
    driver.energise(False)
    assert not emu.energised


def test_home_is_bounded(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    driver.move_to(10_000.0, timeout_s=2.0)
    raises_within(0.5, "still busy with G28", driver.home, 0.2)


# -- stopping --------------------------------------------------------------------------------


def stop_soon(driver: MarlinDriver, after_s: float) -> threading.Thread:
    def later() -> None:
        time.sleep(after_s)
        driver.stop()

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def test_stop_from_another_thread_ends_the_wait(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    thread = stop_soon(driver, 0.1)
    raises_within(0.5, "stopped on request", driver.move_to, 20_000.0, 5.0)
    thread.join()
    assert not emu.moving()
    halted = emu.position_mm()
    assert 0.5 < halted < 10.0
    # The quickstop's own late ok must not be taken for the next command's.
    assert driver.position_um() == pytest.approx(halted * 1000.0, abs=5.0)
    driver.move_to(1000.0, timeout_s=2.0)
    assert driver.position_um() == 1000.0


def test_stop_without_emergency_parser_still_fails_the_move() -> None:
    emu = started(emergency_parser=False)
    try:
        drv = driver_for(emu)
        assert "no emergency parser" in drv.connect()
        thread = stop_soon(drv, 0.05)
        raises_within(1.0, "stopped on request", drv.move_to, 3000.0, 2.0)
        thread.join()
        assert drv.position_um() == pytest.approx(3000.0)  # Marlin finished the move first
    finally:
        emu.close()


# -- faults ----------------------------------------------------------------------------------


def test_no_reply_at_connect() -> None:
    emu = started()
    emu.faults.no_reply = True
    try:
        raises_within(2.0, "no answer from a Marlin", driver_for(emu).connect)
    finally:
        emu.close()


def test_no_reply_during_a_move(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.no_reply = True
    raises_within(0.8, "did not answer G1", driver.move_to, 1000.0, 0.5)


def test_slow_replies_within_the_bound(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.slow_reply_s = 0.02
    driver.move_to(1000.0, timeout_s=2.0)
    assert driver.position_um() == 1000.0


def test_slow_replies_over_the_bound(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.slow_reply_s = 0.7
    raises_within(0.8, "did not answer M114", driver.position_um)


def test_garbage_is_never_read_as_an_answer(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.garbage = True
    raises_within(0.8, "unreadable bytes.*baud rate", driver.position_um)


def test_garbage_at_connect() -> None:
    emu = started()
    emu.faults.garbage = True
    try:
        raises_within(2.0, "unreadable bytes", driver_for(emu).connect)
    finally:
        emu.close()


def test_split_lines_are_joined(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.split_lines = True
    driver.move_to(2000.0, timeout_s=2.0)
    assert driver.position_um() == 2000.0


@pytest.mark.parametrize("code", [ERROR_CHECKSUM, ERROR_LINE_NUMBER])
def test_rejected_line_is_resent(emu: MarlinEmulator, driver: MarlinDriver, code: int) -> None:
    emu.faults.error_next = code
    driver.move_to(2000.0, timeout_s=2.0)
    assert emu.position_mm() == pytest.approx(2.0)
    assert driver.position_um() == 2000.0
    assert sent(emu).count("G1 Z2.0000") == 2


def test_line_that_never_gets_through(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.corrupt_lines = 10
    raises_within(0.5, "rejected G1.*4 times", driver.move_to, 2000.0, 2.0)
    assert emu.moves == []


def test_disconnect_mid_move(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.disconnect_after_s = 0.1
    raises_within(1.0, "lost the connection", driver.move_to, 10_000.0, 2.0)


def test_endstop_hit_mid_move(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.alarm_mid_move = True
    raises_within(1.0, "hit a limit switch.*home or re-zero", driver.move_to, 4000.0, 2.0)
    assert emu.position_mm() == pytest.approx(2.0, abs=0.1)


def test_reset_mid_move(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.reset_mid_move = True
    raises_within(1.0, "restarted.*position is lost", driver.move_to, 4000.0, 2.0)
    assert not driver.link.is_open
    driver.connect()
    assert driver.position_um() == 0.0  # what the rebooted board believes


def test_unknown_command_is_named() -> None:
    emu = started(unsupported=("M17",))
    try:
        drv = driver_for(emu)
        drv.connect()
        raises_within(0.5, "does not know M17", drv.energise, True)
        drv.move_to(1000.0, timeout_s=2.0)  # still in step afterwards
        assert drv.position_um() == 1000.0
    finally:
        emu.close()


def test_kill_mid_session(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.error_next = ERROR_KILL
    raises_within(0.5, r"Marlin halted \(kill\): reset the board", driver.move_to, 1000.0, 2.0)
    assert not driver.link.is_open
