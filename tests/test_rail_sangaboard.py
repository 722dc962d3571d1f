"""What only the Sangaboard has: firmware versions, the board command, blocking moves in
EEPROM, integer steps on three axes, endstops and homing, late lines, unconfirmed stops. What
every rail driver must do is in test_rail_conformance.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
from rail_harness import SANGABOARD, STEPS_PER_MM_SANGABOARD, once_moving, sent

from rig.devices.emulators.sangaboard import SangaboardEmulator
from rig.devices.motion import Rail
from rig.devices.rails.sangaboard import SangaboardDriver
from rig.errors import RailError

Connect = Callable[..., tuple[SangaboardEmulator, SangaboardDriver]]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Start an emulator with the given settings and connect a driver to it."""
    with contextlib.ExitStack() as stack:

        def make(
            steps_per_mm: float = STEPS_PER_MM_SANGABOARD, **emulator: object
        ) -> tuple[SangaboardEmulator, SangaboardDriver]:
            emu = stack.enter_context(SANGABOARD.running(**emulator))
            driver = stack.enter_context(SANGABOARD.connect(emu, steps_per_mm=steps_per_mm))
            return emu, driver

        yield make


def z(emu: SangaboardEmulator) -> int:
    return emu.position()[2]


# -- identity ------------------------------------------------------------------------------


def test_connect_identifies_firmware_v1(connect: Connect) -> None:
    emu, driver = connect()
    assert driver.firmware == (1, 0, 4)
    assert b"version\n" in sent(emu)


def test_connect_v05_without_board_command_and_moves(connect: Connect) -> None:
    emu, driver = connect(
        version_reply="Sangaboard Firmware v0.5", board_reply=None, done_reply="done"
    )
    assert driver.firmware == (0, 5)
    driver.move_to(100.0, timeout_s=2.0)
    assert z(emu) == 200
    assert b"blocking_moves" not in sent(emu)  # a v1 command only


@pytest.mark.parametrize(
    ("answer", "named"),
    [("Grbl 1.1h ['$' for help]", "Grbl 1.1h"), ("Sangaboard Firmware v0.3", "v0.3")],
)
def test_connect_refuses_what_is_not_a_supported_sangaboard(answer: str, named: str) -> None:
    with SANGABOARD.running(version_reply=answer) as emu:
        driver = SANGABOARD.driver(emu)
        with pytest.raises(RailError, match=named):
            driver.connect()
        with pytest.raises(RailError, match=r"not connected"):
            driver.position_um()


def test_connect_turns_blocking_moves_back_on(connect: Connect) -> None:
    emu, driver = connect(blocking=False)
    assert emu.blocking
    driver.move_to(250.0, timeout_s=2.0)
    assert z(emu) == 500


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"axis"):
        SangaboardDriver("/dev/null", axis="w", steps_per_mm=1.0)
    with pytest.raises(ValueError, match=r"steps_per_mm"):
        SangaboardDriver("/dev/null", steps_per_mm=0.0)


# -- motion --------------------------------------------------------------------------------


def test_moves_land_on_the_nearest_step(connect: Connect) -> None:
    emu, driver = connect()
    driver.move_to(500.0, timeout_s=3.0)
    assert emu.moves[-1].end == (0, 0, 1000)
    driver.move_to(-20.25, timeout_s=3.0)  # rounds to the nearest step
    assert z(emu) == -40


def test_other_axes_are_left_alone(connect: Connect) -> None:
    emu, _ = connect()
    with SANGABOARD.connect(emu, axis="x") as driver:
        driver.move_to(10.0, timeout_s=2.0)
        assert emu.position() == (20, 0, 0)
        assert b"mrx 20\n" in sent(emu)


def test_rounding_does_not_accumulate(connect: Connect) -> None:
    emu, driver = connect(steps_per_mm=1000.0)  # 1 step per micrometre
    rail = Rail(driver)
    for _ in range(40):
        rail.move_by(0.3)  # each alone rounds to 0 steps
    assert z(emu) == 12
    assert driver.position_um() == pytest.approx(12.0)


def test_stop_ends_the_wait_even_unconfirmed(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=2000.0)

    def stop_silently() -> None:
        emu.faults.no_reply = True  # "Move aborted" never arrives
        driver.stop()

    once_moving(emu, SANGABOARD, stop_silently)
    start = time.monotonic()
    with pytest.raises(RailError, match=r"stopped"):
        driver.move_to(2500.0, timeout_s=10.0)
    assert time.monotonic() - start < 1.5


def test_early_done_is_not_success(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=4000.0)
    emu.blocking = False  # firmware that answers before the motion has finished
    with pytest.raises(RailError, match=r"instead of 500.00 um"):
        driver.move_to(500.0, timeout_s=2.0)


def test_stop_when_idle_leaves_no_stray_answer(connect: Connect) -> None:
    emu, driver = connect()
    driver.move_to(10.0, timeout_s=2.0)
    driver.stop()
    assert driver.position_um() == 10.0
    driver.move_to(20.0, timeout_s=2.0)
    assert z(emu) == 40


def test_jog_is_a_short_blocking_move(connect: Connect) -> None:
    emu, driver = connect()
    driver.jog(5.0)
    driver.jog(-1.5)
    assert z(emu) == 7
    assert driver.position_um() == 3.5


def test_set_zero_and_release(connect: Connect) -> None:
    emu, driver = connect()
    driver.move_to(30.0, timeout_s=2.0)
    driver.set_zero()
    assert driver.position_um() == 0.0
    assert emu.energised
    driver.energise(False)
    assert not emu.energised
    driver.energise(True)  # nothing to send: the next move energises
    driver.move_to(1.0, timeout_s=2.0)
    assert emu.energised and z(emu) == 2


def test_home_without_endstops_module_is_refused(connect: Connect) -> None:
    emu, driver = connect()
    with pytest.raises(RailError, match=r"no endstops module: set zero by hand"):
        driver.home(timeout_s=2.0)
    assert b"home_min" not in sent(emu)


def test_home_with_endstops_finds_the_min_switch(connect: Connect) -> None:
    emu, driver = connect(endstop_min=-600, home_retreat_steps=100)
    driver.move_to(100.0, timeout_s=2.0)
    driver.home(timeout_s=5.0)
    assert b"home_min 4\n" in sent(emu)
    assert z(emu) == 100  # the switch is 0, then the firmware backs off
    assert driver.position_um() == 50.0


def test_home_needs_min_endstops(connect: Connect) -> None:
    emu, driver = connect(endstop_min=-600)
    emu.endstops_line = "Endstops: max"
    with pytest.raises(RailError, match=r"no min endstops \('Endstops: max'\)"):
        driver.home(timeout_s=2.0)
    assert b"home_min" not in sent(emu)


def test_stop_during_homing(connect: Connect) -> None:
    emu, driver = connect(endstop_min=-20000, steps_per_s=2000.0)  # a 10 s seek
    stopper = once_moving(emu, SANGABOARD, driver.stop)
    with pytest.raises(RailError, match=r"stopped"):
        driver.home(timeout_s=20.0)
    stopper.join(timeout=2.0)
    assert stopper.at is not None and time.monotonic() - stopper.at < 0.7
    halted = z(emu)
    time.sleep(0.05)
    assert z(emu) == halted < 0


def test_move_onto_the_min_switch_is_an_error(connect: Connect) -> None:
    emu, driver = connect(endstop_min=-100)
    with pytest.raises(RailError, match=r"endstop"):
        driver.move_to(-200.0, timeout_s=2.0)
    assert z(emu) == 0  # the firmware calls the switch 0


@pytest.mark.parametrize(
    ("command", "stray"),
    [
        ("version", "done."),
        ("version", "Move aborted"),
        ("board", "Sangaboard Firmware v1.0.4"),
        ("blocking_moves?", "stopped"),
        ("p?", "Endstop hit:-3"),
    ],
)
def test_late_lines_are_not_taken_as_answers(command: str, stray: str) -> None:
    with SANGABOARD.running() as emu:
        emu.stray_before[command] = stray
        driver = SANGABOARD.driver(emu)
        try:
            assert driver.connect() == "Sangaboard v0.5.5 (Sangaboard Firmware v1.0.4)"
            driver.move_to(10.0, timeout_s=2.0)
            assert driver.position_um() == 10.0
        finally:
            driver.close()
        assert command not in emu.stray_before  # the stray line was sent


# -- faults --------------------------------------------------------------------------------


def test_lost_completion_times_out_and_stops_the_stage(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=1000.0)
    once_moving(emu, SANGABOARD, lambda: setattr(emu.faults, "no_reply", True))
    start = time.monotonic()
    with pytest.raises(RailError, match=r"did not finish 'mrz 2000' in time"):
        driver.move_to(1000.0, timeout_s=0.6)  # 2 s of motion
    assert time.monotonic() - start < 1.0
    time.sleep(0.05)
    halted = z(emu)
    assert halted < 2000
    time.sleep(0.1)
    assert z(emu) == halted  # the driver told the stage to stop


def test_garbled_position_stops_the_move_before_it_starts(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.garbage = True
    with pytest.raises(RailError, match=r"garbled reply to 'p\?'"):
        driver.move_to(10.0, timeout_s=2.0)
    assert z(emu) == 0 and b"mrz" not in sent(emu)


def test_reset_mid_move_reverts_to_the_saved_zero(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=4000.0)
    driver.move_to(100.0, timeout_s=2.0)
    emu.faults.reset_mid_move = True
    with pytest.raises(RailError, match=r"restarted.*position is lost"):
        driver.move_to(600.0, timeout_s=3.0)
    assert z(emu) == 0  # back to what was saved at the last zero
    driver.move_to(10.0, timeout_s=2.0)  # usable again after the reset
    assert z(emu) == 20
