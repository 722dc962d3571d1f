"""What only Marlin has: numbered, checksummed lines and Resend, M115 identity, M114 parsing,
clamping at its soft endstops, G28, the emergency parser. What every rail driver must do is in
test_rail_conformance.py."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import pytest
import serial
from rail_harness import MARLIN, SLACK_S, once_moving, raises_within, sent, wait_until

from rig.devices.emulators.marlin import (
    ERROR_CHECKSUM,
    ERROR_KILL,
    ERROR_LINE_NUMBER,
    MarlinEmulator,
)
from rig.devices.rails.marlin import QUICKSTOP_QUIET_S, MarlinDriver, frame, parse_position
from rig.errors import ControllerRestarted, RailError


@pytest.fixture
def emu() -> Iterator[MarlinEmulator]:
    with MARLIN.running() as emulator:
        yield emulator


@pytest.fixture
def driver(emu: MarlinEmulator) -> Iterator[MarlinDriver]:
    with MARLIN.connect(emu) as drv:
        yield drv


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
    with MARLIN.connect(emu, steps_per_mm=800.0, accel_mm_s2=50.0) as drv:
        wire = sent(emu)
        for command in (b"M115", b"M92 Z800", b"M201 Z50", b"G21", b"G90", b"M114"):
            assert command in wire
        assert emu.steps_per_mm == 800.0
        assert drv.capabilities["EMERGENCY_PARSER"] is True


@pytest.mark.parametrize("options", [{"boot_s": 0.4}, {"banner": False}])
def test_connect_with_and_without_a_reset_on_open(options: dict[str, object]) -> None:
    # boot_s: the board resets when the port opens, drops the first hellos, then says start.
    with MARLIN.running(**options) as emu:
        drv = MARLIN.driver(emu)
        assert drv.connect().startswith("Marlin")
        assert drv.position_um() == 0.0
        drv.close()


def test_connect_refuses_other_firmware() -> None:
    with MARLIN.running(firmware_name="Smoothieware 1.0") as emu:
        drv = MARLIN.driver(emu)
        raises_within(1.0, "Smoothieware.*not Marlin", drv.connect)
        assert not drv.link.is_open


def test_garbage_at_connect() -> None:
    with MARLIN.running() as emu:
        emu.faults.garbage = True
        raises_within(2.0, "unreadable bytes", MARLIN.driver(emu).connect)


# -- moving ----------------------------------------------------------------------------------


def test_a_target_finer_than_m114_reads_back_exactly(driver: MarlinDriver) -> None:
    driver.move_to(1234.5, timeout_s=2.0)  # M114 prints 1.23: it confirms, the driver knows
    assert driver.position_um() == 1234.5


def test_marlin_clamping_at_its_endstops_is_an_error() -> None:
    with MARLIN.connected(max_mm=3.0) as bench:
        clamped = "instead of 5.000 mm.*soft endstops"
        raises_within(1.0, clamped, lambda: bench.driver.move_to(5000.0, 1.0))
        assert bench.emu.position_mm() == pytest.approx(3.0)


def test_home_jog_zero_and_energise(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    driver.move_to(3000.0, timeout_s=2.0)
    driver.set_zero()
    assert driver.position_um() == 0.0
    driver.home(timeout_s=2.0)  # the emulated endstop is 3 mm below the new zero
    assert emu.position_mm() == 0.0
    driver.jog(500.0)  # returns at once; the carriage arrives a moment later
    wait_until(lambda: not emu.moving(), timeout_s=1.0)
    assert emu.position_mm() == pytest.approx(0.5)
    driver.move_to(1000.0, timeout_s=2.0)  # absolute again after the jog
    assert emu.position_mm() == pytest.approx(1.0)
    driver.energise(True)
    assert emu.energised
    driver.energise(False)
    assert not emu.energised


def test_home_is_bounded(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    driver.move_to(10_000.0, timeout_s=2.0)
    raises_within(0.5, "still busy with G28", lambda: driver.home(0.2))


def test_stop_without_emergency_parser_still_fails_the_move() -> None:
    with MARLIN.running(emergency_parser=False) as emu:
        drv = MARLIN.driver(emu)
        assert "no emergency parser" in drv.connect()
        stopper = once_moving(emu, MARLIN, drv.stop)
        raises_within(1.0, "stopped on request", lambda: drv.move_to(3000.0, 2.0))
        stopper.join(timeout=2.0)
        assert drv.position_um() == pytest.approx(3000.0)  # Marlin finished the move first
        drv.close()


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [ERROR_CHECKSUM, ERROR_LINE_NUMBER])
def test_rejected_line_is_resent(emu: MarlinEmulator, driver: MarlinDriver, code: int) -> None:
    emu.faults.error_next = code
    driver.move_to(2000.0, timeout_s=2.0)
    assert emu.position_mm() == pytest.approx(2.0)
    assert driver.position_um() == 2000.0
    assert sent(emu).count(b"G1 Z2.0000") == 2


def test_line_that_never_gets_through(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.corrupt_lines = 10
    raises_within(0.5, "rejected G1.*4 times", lambda: driver.move_to(2000.0, 2.0))
    assert emu.moves == []


def test_reset_mid_move_needs_a_new_connect(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    emu.faults.reset_mid_move = True
    raises_within(1.0, "restarted.*position is lost", lambda: driver.move_to(4000.0, 2.0))
    assert not driver.link.is_open
    driver.connect()
    assert driver.position_um() == 0.0  # what the rebooted board believes


def test_unknown_command_is_named() -> None:
    with MARLIN.connected(unsupported=("M17",)) as bench:
        raises_within(0.5, "does not know M17", lambda: bench.driver.energise(True))
        bench.driver.move_to(1000.0, timeout_s=2.0)  # still in step afterwards
        assert bench.driver.position_um() == 1000.0


# -- referenced, restarts ------------------------------------------------------------------


def test_referenced_only_after_zero_or_home(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    assert not driver.referenced  # Marlin keeps nothing a host can read about it
    driver.set_zero()
    assert driver.referenced
    driver.close()
    driver.connect()  # no restart seen, but it may have restarted while the port was shut
    assert not driver.referenced and not driver.restarted_on_open
    driver.home(timeout_s=2.0)
    assert driver.referenced


@pytest.mark.parametrize(
    ("options", "restarted"),
    [({"boot_s": 0.4}, True), ({"reset_on_open": True}, True), ({}, False)],
)
def test_a_restart_on_open_is_named(options: dict[str, object], restarted: bool) -> None:
    with MARLIN.running(**options) as emu:
        drv = MARLIN.driver(emu)
        try:
            identity = drv.connect()
            assert identity.startswith("Marlin 2.1.2.4 on Focus Rail")
            assert drv.restarted_on_open is restarted
            assert ("started up as the port opened" in identity) is restarted
        finally:
            drv.close()


def test_restart_while_idle_is_caught_by_the_next_call(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    driver.set_zero()
    emu.restart()  # the reset button between two shots
    with pytest.raises(ControllerRestarted, match=r"restarted \(printed 'start'\) during M114"):
        driver.position_um()
    assert not driver.referenced and not driver.link.is_open  # M92, M201 ... are gone: connect


def test_restart_mid_move_is_controller_restarted(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    driver.set_zero()
    emu.faults.reset_mid_move = True
    with pytest.raises(ControllerRestarted):
        driver.move_to(4000.0, timeout_s=2.0)
    assert not driver.referenced


def test_an_endstop_hit_loses_the_reference(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    driver.set_zero()
    emu.faults.alarm_mid_move = True
    with pytest.raises(RailError, match="limit switch"):
        driver.move_to(4000.0, timeout_s=2.0)
    assert not driver.referenced
    wait_until(lambda: emu.quickstops == 1)  # the failed move was quickstopped too


# -- stopping ------------------------------------------------------------------------------


def test_idle_stop_sends_nothing(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    driver.move_to(1000.0, timeout_s=2.0)
    mark = len(sent(emu))
    start = time.monotonic()
    driver.stop()
    assert time.monotonic() - start < 0.1 and sent(emu)[mark:] == b""
    assert not emu.refusing_moves()  # no quickstop: the next move is not dropped
    driver.move_to(2000.0, timeout_s=2.0)
    assert emu.position_mm() == pytest.approx(2.0)


def test_stop_after_a_jog_waits_until_marlin_takes_moves_again(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    driver.set_zero()
    driver.jog(10_000.0)  # 0.5 s of motion, returns at once
    wait_until(emu.moving)
    start = time.monotonic()
    driver.stop()
    assert time.monotonic() - start >= QUICKSTOP_QUIET_S * 0.9
    assert emu.quickstops == 1 and not emu.moving() and not emu.refusing_moves()
    halted = emu.position_mm() * 1000.0
    assert 0 < halted < 10_000 and driver.position_um() == pytest.approx(halted, abs=5.0)
    assert driver.referenced  # nothing latched, nothing unhomed
    driver.move_to(1000.0, timeout_s=2.0)  # not dropped: it really moves there
    assert emu.position_mm() == pytest.approx(1.0)


def test_stop_during_a_move_returns_when_marlin_is_ready(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    ready: list[bool] = []

    def stop() -> None:
        driver.stop()
        ready.append(not emu.refusing_moves() and not emu.moving())

    stopper = once_moving(emu, MARLIN, stop)
    raises_within(SLACK_S + 0.2, "stopped on request", lambda: driver.move_to(20_000.0, 5.0))
    stopper.join(timeout=3.0)
    assert ready == [True] and sent(emu).count(b"M410\n") == 1
    driver.move_to(500.0, timeout_s=2.0)
    assert emu.position_mm() == pytest.approx(0.5)


def test_marlin_drops_moves_in_the_second_after_a_quickstop(emu: MarlinEmulator) -> None:
    """What the driver works around, shown on the emulator alone: the move is answered ok
    and M114 reports its target, but the carriage never went."""
    with serial.Serial(emu.path, timeout=1) as port:
        port.write(b"M410\nG1 Z3 F600\nM114\n")
        replies = [port.readline().decode().strip() for _ in range(4)]
    assert replies[:2] == ["ok", "ok"] and replies[2].startswith("X:0.00 Y:0.00 Z:3.00")
    assert emu.position_mm() == 0.0 and not emu.moving()


def test_a_move_that_times_out_is_quickstopped(emu: MarlinEmulator, driver: MarlinDriver) -> None:
    raises_within(0.5, "still busy with M400", lambda: driver.move_to(10_000.0, 0.2))
    wait_until(lambda: emu.quickstops == 1 and not emu.moving())
    halted = emu.position_mm() * 1000.0
    assert driver.position_um() == pytest.approx(halted, abs=5.0)  # waits out the window


def test_the_first_exchange_of_a_move_respects_its_timeout(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    emu.faults.slow_reply_s = 0.4  # within the 0.5 s reply timeout, beyond the move's 0.2 s
    raises_within(0.2 + SLACK_S, "did not answer G1", lambda: driver.move_to(1000.0, 0.2))


# -- unlock --------------------------------------------------------------------------------


def test_unlock_restarts_a_marlin_stopped_by_an_error(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    emu.stopped = True  # e.g. a failed probe deploy: Marlin answers moves but ignores them
    raises_within(1.0, "stopped after an error", lambda: driver.move_to(1000.0, 2.0))
    text = driver.unlock()
    assert "M999" in text and "not referenced" in text and not emu.stopped
    driver.move_to(1000.0, timeout_s=3.0)
    assert emu.position_mm() == pytest.approx(1.0)


def test_unlock_after_a_kill_needs_the_reset_button(
    emu: MarlinEmulator, driver: MarlinDriver
) -> None:
    emu.faults.error_next = ERROR_KILL
    with pytest.raises(RailError, match="halted"):
        driver.move_to(1000.0, timeout_s=1.0)
    with pytest.raises(RailError, match="reset button or a power cycle"):
        driver.unlock()
