"""GRBL driver against the GRBL emulator on a real pty (the real pyserial code opens it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from rig.devices.emulators.grbl import GrblEmulator
from rig.devices.motion import MotionSettings, Rail
from rig.devices.rails.grbl import GrblDriver, describe_alarm
from rig.errors import RailError

FAST = 20.0  # mm/s: moves of a few mm take a fraction of a second


@pytest.fixture
def emulator() -> Iterator[GrblEmulator]:
    with GrblEmulator() as emu:
        yield emu  # type: ignore[misc]


@pytest.fixture
def driver(emulator: GrblEmulator) -> Iterator[GrblDriver]:
    drv = GrblDriver(emulator.path, speed_mm_s=FAST, boot_timeout_s=2.0)
    drv.connect()
    yield drv
    drv.close()


def test_connect_reads_banner_version_and_settings(emulator: GrblEmulator) -> None:
    drv = GrblDriver(emulator.path)
    ident = drv.connect()
    assert "Grbl 1.1h" in ident and "VER:1.1h" in ident
    assert drv.settings[102] == 250 and drv.settings[10] == 1
    drv.close()


def test_connect_to_something_else_times_out_clearly(tmp_path: object) -> None:
    from rig.devices.emulators.base import PtyEmulator

    class Silent(PtyEmulator):
        def on_bytes(self, data: bytes) -> None:
            self.reply("start\r\necho: Marlin\r\n")

    with Silent() as other:
        drv = GrblDriver(other.path, boot_timeout_s=0.5)
        start = time.monotonic()
        with pytest.raises(RailError, match="start-up banner"):
            drv.connect()
        assert time.monotonic() - start < 2.0
        drv.close()


def test_move_waits_for_the_motion_to_finish(driver: GrblDriver, emulator: GrblEmulator) -> None:
    start = time.monotonic()
    driver.move_to(4000.0, timeout_s=5.0)
    elapsed = time.monotonic() - start
    assert elapsed >= 4.0 / FAST * 0.9  # not just queued: the emulated motion took this long
    assert driver.position_um() == pytest.approx(4000.0, abs=1)
    assert not emulator.motion.moving(time.monotonic())


@pytest.mark.parametrize("wpos", [False, True])
def test_position_with_mpos_or_wpos_reports(wpos: bool) -> None:
    with GrblEmulator(status_wpos=wpos) as emu:
        drv = GrblDriver(emu.path, speed_mm_s=FAST)
        drv.connect()
        drv.move_to(2000.0, 5.0)
        drv.set_zero()
        assert drv.position_um() == pytest.approx(0.0, abs=1)
        drv.move_to(1000.0, 5.0)
        assert drv.position_um() == pytest.approx(1000.0, abs=1)
        assert emu.motion.now(time.monotonic()) == pytest.approx(3.0)  # machine position
        drv.close()


@pytest.mark.parametrize("approach", ["positive", "negative"])
def test_backlash_approach_always_from_one_side(emulator: GrblEmulator, approach: str) -> None:
    drv = GrblDriver(emulator.path, speed_mm_s=FAST)
    drv.connect()
    rail = Rail(drv, MotionSettings(backlash_um=200.0, approach=approach))
    for target in (3000.0, 1000.0, 2000.0, 1500.0):
        rail.move_to(target)
        assert rail.position_um() == pytest.approx(target, abs=1)
    sign = 1 if approach == "positive" else -1
    finals = [m for m in emulator.moves if m[1] in (3.0, 1.0, 2.0, 1.5)]
    assert len(finals) == 4
    for start, end in finals:
        assert (end - start) * sign > 0  # every shot position reached moving the same way
    drv.close()


def test_soft_limits_refuse_before_sending(driver: GrblDriver, emulator: GrblEmulator) -> None:
    rail = Rail(driver, MotionSettings(soft_min_um=0.0, soft_max_um=5000.0))
    sent = len(emulator.received)
    with pytest.raises(RailError, match="above the soft limit"):
        rail.move_to(6000.0)
    with pytest.raises(RailError, match="below the soft limit"):
        rail.move_to(-1.0)
    assert len(emulator.received) == sent


def test_stop_from_another_thread_ends_the_wait(driver: GrblDriver, emulator: GrblEmulator) -> None:
    driver.speed_mm_s = 2.0
    threading.Timer(0.3, driver.stop).start()
    start = time.monotonic()
    with pytest.raises(RailError, match="stopped"):
        driver.move_to(8000.0, timeout_s=10.0)
    assert time.monotonic() - start < 2.0
    assert not emulator.motion.moving(time.monotonic())
    assert emulator.motion.now(time.monotonic()) < 8.0


def test_error_lines_become_words(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.faults.error_next = 9
    with pytest.raises(RailError, match=r"locked out.*error:9"):
        driver.move_to(100.0, 5.0)


def test_hard_limit_mid_move_is_an_alarm_in_words(
    driver: GrblDriver, emulator: GrblEmulator
) -> None:
    emulator.faults.alarm_mid_move = True
    with pytest.raises(RailError, match="hard limit switch hit: clear it, then unlock"):
        driver.move_to(4000.0, 5.0)
    assert "unlock" in describe_alarm(1)


def test_reset_mid_move_is_reported_not_success(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.faults.reset_mid_move = True
    with pytest.raises(RailError, match="reset"):
        driver.move_to(4000.0, 5.0)


def test_no_reply_times_out_within_bound(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.faults.no_reply = True
    start = time.monotonic()
    with pytest.raises(RailError, match="did not answer"):
        driver.move_to(1000.0, timeout_s=1.0)
    assert time.monotonic() - start < 1.5


def test_slow_replies_within_bound_still_work(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.faults.slow_reply_s = 0.05
    driver.move_to(500.0, timeout_s=5.0)
    assert driver.position_um() == pytest.approx(500.0, abs=1)


def test_garbage_and_split_lines_are_survived(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.faults.garbage = True
    emulator.faults.split_lines = True
    driver.move_to(700.0, timeout_s=5.0)
    assert driver.position_um() == pytest.approx(700.0, abs=1)


def test_disconnect_mid_move_is_a_clear_error(driver: GrblDriver, emulator: GrblEmulator) -> None:
    emulator.faults.disconnect_after_s = 0.1
    start = time.monotonic()
    with pytest.raises(RailError, match=r"lost the connection|did not answer"):
        driver.move_to(4000.0, timeout_s=3.0)
    assert time.monotonic() - start < 3.5


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
    with GrblEmulator(homing=True) as emu:
        drv = GrblDriver(emu.path, speed_mm_s=FAST)
        drv.connect()
        with pytest.raises(RailError, match="locked out"):
            drv.move_to(100.0, 2.0)
        drv.home(timeout_s=5.0)
        drv.move_to(100.0, 2.0)
        assert drv.position_um() == pytest.approx(100.0, abs=1)
        drv.close()


def test_targets_between_motor_steps_are_reached_within_a_step(
    driver: GrblDriver, emulator: GrblEmulator
) -> None:
    """$102=250 steps/mm: a step is 4 um, so 1001 um is reached as 1000 um, not an error."""
    driver.move_to(1001.0, timeout_s=5.0)
    assert driver.position_um() == pytest.approx(1000.0, abs=0.01)


def test_rail_settles_after_the_move(driver: GrblDriver) -> None:
    rail = Rail(driver, MotionSettings(settle_s=0.3, speed_um_s=FAST * 1000))
    start = time.monotonic()
    rail.move_to(200.0)
    assert time.monotonic() - start >= 0.3 + 0.2 / FAST


def test_rail_stop_from_another_thread(driver: GrblDriver) -> None:
    driver.speed_mm_s = 2.0
    rail = Rail(driver, MotionSettings(backlash_um=100.0, speed_um_s=2000.0))
    threading.Timer(0.3, rail.stop).start()
    with pytest.raises(RailError, match="stopped"):
        rail.move_to(6000.0)


def test_rail_wait_is_bounded_by_the_move_length(
    driver: GrblDriver, emulator: GrblEmulator
) -> None:
    rail = Rail(driver, MotionSettings(speed_um_s=FAST * 1000, timeout_margin_s=0.5))
    emulator.faults.no_reply = True
    bound = rail.timeout_for(1000.0)
    start = time.monotonic()
    with pytest.raises(RailError):
        rail.move_to(1000.0)
    assert time.monotonic() - start < bound + 2.5  # + the position query's own 2 s bound


def test_energise_off_sleeps_and_on_wakes(driver: GrblDriver, emulator: GrblEmulator) -> None:
    driver.energise(False)
    assert emulator.state == "Sleep"
    driver.energise(True)
    assert emulator.state == "Idle"
    driver.move_to(100.0, 5.0)
