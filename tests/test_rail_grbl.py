"""What only GRBL has: its settings, status report forms, alarms, homing and sleep. What every
rail driver must do is in test_rail_conformance.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rail_harness import GRBL

from rig.devices.emulators.base import PtyEmulator
from rig.devices.emulators.grbl import GrblEmulator
from rig.devices.motion import Rail
from rig.devices.rails.grbl import GrblDriver
from rig.errors import ControllerRestarted, RailError


@pytest.fixture
def emulator() -> Iterator[GrblEmulator]:
    with GRBL.running() as emu:
        yield emu


@pytest.fixture
def driver(emulator: GrblEmulator) -> Iterator[GrblDriver]:
    with GRBL.connect(emulator) as drv:
        yield drv


def test_connect_reads_the_settings(driver: GrblDriver) -> None:
    assert driver.settings[102] == 250 and driver.settings[10] == 1


def test_connect_to_something_else_times_out_clearly() -> None:
    class Silent(PtyEmulator):
        def on_bytes(self, data: bytes) -> None:
            self.reply("start\r\necho: Marlin\r\n")

    with Silent() as other:
        drv = GrblDriver(other.path, boot_timeout_s=0.5)
        start = time.monotonic()
        with pytest.raises(RailError, match="answers like GRBL"):
            drv.connect()
        assert time.monotonic() - start < 0.5 + 1.5 + 0.5  # boot timeout + silence + slack
        drv.close()


@pytest.mark.parametrize("wpos", [False, True])
def test_position_with_mpos_or_wpos_reports(wpos: bool) -> None:
    with GRBL.connected(status_wpos=wpos) as bench:
        drv, emu = bench.driver, bench.emu
        drv.move_to(2000.0, 5.0)
        drv.set_zero()
        assert drv.position_um() == pytest.approx(0.0, abs=1)
        drv.move_to(1000.0, 5.0)
        assert drv.position_um() == pytest.approx(1000.0, abs=1)
        assert emu.motion.now(time.monotonic()) == pytest.approx(3.0)  # machine position


def test_garbage_split_across_writes_is_still_cleaned(
    driver: GrblDriver, emulator: GrblEmulator
) -> None:
    emulator.faults.garbage = True
    emulator.faults.split_lines = True
    driver.move_to(700.0, timeout_s=5.0)
    assert driver.position_um() == pytest.approx(700.0, abs=1)


def test_soft_limit_in_firmware_becomes_alarm_2(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.settings[20] = 1
    with pytest.raises(RailError, match="soft limit"):
        driver.move_to(150_000.0, timeout_s=5.0)


def test_jog_beyond_travel_is_error_15(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.settings[20] = 1
    with pytest.raises(RailError, match="exceeds the machine travel"):
        driver.jog(-5000.0)


def test_homing_when_disabled_says_so(driver: GrblDriver) -> None:
    with pytest.raises(RailError, match="homing is not enabled"):
        driver.home(timeout_s=2.0)


def test_homing_enabled_starts_in_alarm_and_homes() -> None:
    with GRBL.running(homing=True) as emu, GRBL.connect(emu) as drv:
        assert not drv.referenced
        with pytest.raises(RailError, match="locked out"):
            drv.move_to(100.0, 2.0)
        drv.home(timeout_s=5.0)
        assert drv.referenced
        drv.move_to(100.0, 2.0)
        assert drv.position_um() == pytest.approx(100.0, abs=1)


def test_targets_between_motor_steps_are_reached_within_a_step(driver: GrblDriver) -> None:
    """$102=250 steps/mm: a step is 4 um, so 1001 um is reached as 1000 um, not an error."""
    driver.move_to(1001.0, timeout_s=5.0)
    assert driver.position_um() == pytest.approx(1000.0, abs=0.01)


def test_a_brown_out_mid_move_is_told_and_unreferences(
    driver: GrblDriver, emulator: GrblEmulator
) -> None:
    driver.set_zero()
    emulator.faults.reset_mid_move = True
    with pytest.raises(ControllerRestarted, match="GRBL restarted by itself"):
        driver.move_to(4000.0, 5.0)
    assert not driver.referenced
    with pytest.raises(RailError, match="not referenced"):
        Rail(driver).move_to(1000.0)


def test_energise_off_sleeps_and_on_wakes(driver: GrblDriver, emulator: GrblEmulator) -> None:
    driver.energise(False)
    assert emulator.state == "Sleep"
    driver.energise(True)
    assert emulator.state == "Idle"
    driver.move_to(100.0, 5.0)
    assert driver.position_um() == pytest.approx(100.0, abs=1)
