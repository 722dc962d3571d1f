"""What only the Sangaboard has: firmware versions, the board command, blocking moves in
EEPROM, integer steps on three axes, endstops and homing, late lines, unconfirmed stops. What
every rail driver must do is in test_rail_conformance.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
from rail_harness import (
    SANGABOARD,
    STEPS_PER_MM_SANGABOARD,
    once_moving,
    raises_within,
    sent,
    wait_until,
)

from rig.devices.emulators.sangaboard import SangaboardEmulator
from rig.devices.motion import Rail
from rig.devices.rails.sangaboard import SangaboardDriver
from rig.errors import ControllerRestarted, RailError

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


def test_stop_ends_the_wait_even_unconfirmed() -> None:
    with (
        SANGABOARD.running(steps_per_s=2000.0) as emu,
        SANGABOARD.connect(emu, reply_timeout_s=0.3) as driver,
    ):
        _stop_unconfirmed(emu, driver)


def _stop_unconfirmed(emu: SangaboardEmulator, driver: SangaboardDriver) -> None:
    outcome: list[BaseException | None] = []

    def stop_silently() -> None:
        emu.faults.no_reply = True  # "Move aborted" never arrives
        try:
            driver.stop()
            outcome.append(None)
        except RailError as exc:
            outcome.append(exc)

    stopper = once_moving(emu, SANGABOARD, stop_silently)
    start = time.monotonic()
    with pytest.raises(RailError, match=r"stopped"):
        driver.move_to(2500.0, timeout_s=10.0)
    assert time.monotonic() - start < 1.5
    stopper.join(timeout=3.0)
    # The stop itself cannot confirm that the stage rests (moving? goes unanswered): it says so.
    assert len(outcome) == 1 and isinstance(outcome[0], RailError)
    assert "did not answer 'moving?' in time" in str(outcome[0])
    assert not emu._busy()  # the driver's second stop reached it


def test_early_done_is_not_success(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=4000.0)
    emu.blocking = False  # firmware that answers before the motion has finished
    with pytest.raises(RailError, match=r"instead of 500.00 um"):
        driver.move_to(500.0, timeout_s=2.0)


def test_stop_when_idle_leaves_no_stray_answer(connect: Connect) -> None:
    emu, driver = connect()
    driver.move_to(10.0, timeout_s=2.0)
    mark = len(sent(emu))
    start = time.monotonic()
    driver.stop()
    assert time.monotonic() - start < 0.1  # at once
    assert sent(emu)[mark:] == b"moving?\n"  # asked, and nothing that could change it
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
    # The v1 firmware goes on to its next homing phase after a stop: the driver stops each
    # one as it starts, so none of the 2000-step retreats runs anywhere near its end.
    emu, driver = connect(endstop_min=-20000, steps_per_s=2000.0, home_retreat_steps=2000)
    stopper = once_moving(emu, SANGABOARD, driver.stop)
    with pytest.raises(RailError, match=r"stopped"):
        driver.home(timeout_s=20.0)
    stopper.join(timeout=2.0)
    assert stopper.at is not None and time.monotonic() - stopper.at < 0.7
    assert not emu._busy()  # stop returned with the stage at rest
    halted = z(emu)
    time.sleep(0.05)
    assert z(emu) == halted and abs(halted) < 200
    assert emu.z_moves()[-1][1] == halted


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
            identity = driver.connect()
            assert identity.startswith("Sangaboard v0.5.5 (Sangaboard Firmware v1.0.4)")
            # A second version line, unasked, while connecting: the board was starting up.
            assert driver.restarted_on_open == stray.startswith("Sangaboard Firmware")
            driver.set_zero()
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


# -- referenced, restarts ------------------------------------------------------------------


def test_referenced_only_after_zero_or_home(connect: Connect) -> None:
    _, driver = connect(endstop_min=-600)
    assert not driver.referenced  # nothing the board keeps says it was zeroed
    driver.set_zero()
    assert driver.referenced
    driver.close()
    driver.connect()  # no restart seen, still: unknown since when
    assert not driver.referenced and not driver.restarted_on_open
    driver.home(timeout_s=5.0)
    assert driver.referenced


def test_board_that_resets_when_the_port_opens() -> None:
    # A Nano: DTR resets it on every open; the bootloader drops the first 'version'.
    with SANGABOARD.running(reset_on_open=True, boot_s=0.4) as emu:
        driver = SANGABOARD.driver(emu, connect_timeout_s=2.0)
        try:
            identity = driver.connect()
            assert identity.startswith("Sangaboard v0.5.5 (Sangaboard Firmware v1.0.4)")
            assert "started up as the port opened" in identity and driver.restarted_on_open
            assert not driver.referenced and emu.restarts == 2
            assert sent(emu).count(b"version\n") >= 2  # asked again after the silence
            driver.set_zero()
            driver.move_to(5.0, timeout_s=2.0)
            assert z(emu) == 10
        finally:
            driver.close()


def test_restart_while_idle_is_caught_by_the_next_call(connect: Connect) -> None:
    emu, driver = connect()
    driver.set_zero()
    driver.move_to(50.0, timeout_s=2.0)
    emu.restart()  # a power glitch between two shots: the count goes back to the last zero
    wait_until(lambda: emu.restarts == 2)
    time.sleep(0.02)  # the start-up line is on its way
    with pytest.raises(ControllerRestarted, match=r"restarted before 'p\?' \(while idle\)"):
        driver.move_to(60.0, timeout_s=2.0)
    assert not driver.referenced and b"mrz" not in sent(emu).split(b"mrz 100\n", 1)[1]
    assert driver.position_um() == 0.0  # what the board believes now
    driver.set_zero()
    driver.move_to(10.0, timeout_s=2.0)
    assert driver.referenced and z(emu) == 20


def test_restart_mid_move_is_controller_restarted(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=4000.0)
    driver.set_zero()
    emu.faults.reset_mid_move = True
    with pytest.raises(ControllerRestarted, match=r"restarted during 'mrz 1200'"):
        driver.move_to(600.0, timeout_s=3.0)
    assert not driver.referenced


# -- stopping ------------------------------------------------------------------------------


def test_stop_from_another_thread_returns_with_the_stage_at_rest(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=2000.0)
    driver.set_zero()
    returned: list[bool] = []

    def stop() -> None:
        driver.stop()
        returned.append(emu._busy())

    stopper = once_moving(emu, SANGABOARD, stop)
    with pytest.raises(RailError, match=r"stopped on request"):
        driver.move_to(2500.0, timeout_s=10.0)
    stopper.join(timeout=2.0)
    assert returned == [False]
    assert sent(emu).count(b"stop\n") == 1 and driver.referenced  # position kept
    here = z(emu)
    assert 0 < here < 5000 and driver.position_um() == here / 2
    driver.move_to(100.0, timeout_s=3.0)  # nothing latched: the next move just runs
    assert z(emu) == 200


def test_old_firmware_cannot_interrupt_a_move(connect: Connect) -> None:
    emu, driver = connect(
        version_reply="Sangaboard Firmware v0.5", board_reply=None, done_reply="done"
    )
    stopper = once_moving(emu, SANGABOARD, driver.stop)
    with pytest.raises(RailError, match=r"stopped on request"):
        driver.move_to(400.0, timeout_s=3.0)  # 0.8 s of motion
    stopper.join(timeout=3.0)
    assert z(emu) == 800  # the move ran to its end: v0.x moves inside the command handler
    assert b"stop" not in sent(emu) and b"moving?" not in sent(emu)
    driver.move_to(0.0, timeout_s=3.0)
    assert z(emu) == 0


def test_a_failed_wait_stops_the_stage(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=1000.0)
    once_moving(emu, SANGABOARD, lambda: emu.reply(b"\xfe\x00noise\r\n"))  # line noise
    with pytest.raises(RailError, match=r"garbled reply to 'mrz 2000'"):
        driver.move_to(1000.0, timeout_s=5.0)  # 2 s of motion
    wait_until(lambda: not emu._busy(), timeout_s=0.5)  # told to stop, not left running
    assert z(emu) < 500


def test_unlock_says_there_is_nothing_to_clear(connect: Connect) -> None:
    emu, driver = connect()
    emu.blocking = False  # another program switched the board to non-blocking moves
    text = driver.unlock()
    assert "no alarm or lock" in text and "turned them on" in text
    assert "not referenced" in text and emu.blocking
    driver.set_zero()
    assert driver.unlock().endswith("the position is kept")


def test_the_first_query_of_a_move_respects_its_timeout(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.slow_reply_s = 0.8  # within the 1 s reply timeout, beyond the move's 0.3 s
    raises_within(0.3 + 0.2, r"did not answer 'p\?' in time", lambda: driver.move_to(5.0, 0.3))


def test_home_forward_is_refused() -> None:
    with pytest.raises(ValueError, match=r"min switches only"):
        SangaboardDriver("/dev/null", steps_per_mm=1.0, home_direction="forward")
