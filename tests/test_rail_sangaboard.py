"""The Sangaboard driver against its emulator on a real pty: protocol, motion, every fault."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rig.devices.emulators.sangaboard import SangaboardEmulator
from rig.devices.motion import MotionSettings, Rail
from rig.devices.protocols import FocusDriver
from rig.devices.rails.sangaboard import SangaboardDriver
from rig.errors import RailError

STEPS_PER_MM = 2000.0  # 2 steps per micrometre
BOOT_S = 0.02  # the emulator prints its start-up line first, like a board plugged in earlier
FAST = 20000.0  # emulated steps per second: a 1000-step move takes 50 ms


@contextlib.contextmanager
def running(**settings: object) -> Iterator[SangaboardEmulator]:
    emu = SangaboardEmulator(**settings)  # type: ignore[arg-type]
    emu.start()
    time.sleep(BOOT_S)
    try:
        yield emu
    finally:
        emu.close()


Connect = Callable[..., tuple[SangaboardEmulator, SangaboardDriver]]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Start an emulator with the given settings and connect a driver to it."""
    with contextlib.ExitStack() as stack:

        def make(
            steps_per_mm: float = STEPS_PER_MM, **emulator: object
        ) -> tuple[SangaboardEmulator, SangaboardDriver]:
            emulator.setdefault("steps_per_s", FAST)
            emu = stack.enter_context(running(**emulator))
            driver = SangaboardDriver(emu.path, steps_per_mm=steps_per_mm)
            stack.callback(driver.close)  # runs before the emulator closes
            driver.connect()
            return emu, driver

        yield make


def z(emu: SangaboardEmulator) -> int:
    return emu.position()[2]


# -- identity ------------------------------------------------------------------------------


def test_connect_identifies_firmware_v1(connect: Connect) -> None:
    emu, driver = connect()
    assert isinstance(driver, FocusDriver)
    assert driver.firmware == (1, 0, 4)
    assert b"version\n" in b"".join(emu.received)


def test_connect_returns_board_and_version() -> None:
    with running() as emu:
        driver = SangaboardDriver(emu.path, steps_per_mm=STEPS_PER_MM)
        try:
            assert driver.connect() == "Sangaboard v0.5.5 (Sangaboard Firmware v1.0.4)"
        finally:
            driver.close()


def test_connect_v05_without_board_command_and_moves(connect: Connect) -> None:
    emu, driver = connect(
        version_reply="Sangaboard Firmware v0.5", board_reply=None, done_reply="done"
    )
    assert driver.firmware == (0, 5)
    driver.move_to(100.0, timeout_s=2.0)
    assert z(emu) == 200
    assert b"blocking_moves" not in b"".join(emu.received)  # a v1 command only


@pytest.mark.parametrize(
    ("answer", "named"),
    [("Grbl 1.1h ['$' for help]", "Grbl 1.1h"), ("Sangaboard Firmware v0.3", "v0.3")],
)
def test_connect_refuses_what_is_not_a_supported_sangaboard(answer: str, named: str) -> None:
    with running(version_reply=answer) as emu:
        driver = SangaboardDriver(emu.path, steps_per_mm=STEPS_PER_MM)
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


def test_move_to_waits_for_the_motion_and_lands_on_target(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=4000.0)
    start = time.monotonic()
    driver.move_to(500.0, timeout_s=3.0)  # 1000 steps: 0.25 s of motion
    elapsed = time.monotonic() - start
    assert elapsed >= 0.24
    assert z(emu) == 1000
    assert driver.position_um() == 500.0
    assert emu.moves[-1].end == (0, 0, 1000)
    driver.move_to(-20.25, timeout_s=3.0)  # rounds to the nearest step
    assert z(emu) == -40


def test_other_axes_are_left_alone(connect: Connect) -> None:
    emu, _ = connect()
    driver = SangaboardDriver(emu.path, axis="x", steps_per_mm=STEPS_PER_MM)
    driver.connect()
    try:
        driver.move_to(10.0, timeout_s=2.0)
        assert emu.position() == (20, 0, 0)
        assert b"mrx 20\n" in b"".join(emu.received)
    finally:
        driver.close()


def test_backlash_approach_through_rail(connect: Connect) -> None:
    emu, driver = connect()
    rail = Rail(driver, MotionSettings(backlash_um=50.0, approach="positive"))
    rail.move_to(500.0)
    rail.move_to(200.0)  # from above: overshoot to 150, then come up
    assert emu.z_moves() == [(0, 1000), (1000, 300), (300, 400)]
    rail.move_to(300.0)  # from below already: straight there
    assert emu.z_moves()[-1] == (400, 600)


def test_soft_limits_refuse_before_anything_is_sent(connect: Connect) -> None:
    emu, driver = connect()
    rail = Rail(driver, MotionSettings(soft_min_um=-100.0, soft_max_um=100.0))
    time.sleep(0.05)
    sent = len(emu.received)
    with pytest.raises(RailError, match=r"above the soft limit"):
        rail.move_to(150.0)
    with pytest.raises(RailError, match=r"below the soft limit"):
        rail.move_to(-150.0)
    time.sleep(0.05)
    assert len(emu.received) == sent
    assert z(emu) == 0


def test_rounding_does_not_accumulate(connect: Connect) -> None:
    emu, driver = connect(steps_per_mm=1000.0)  # 1 step per micrometre
    rail = Rail(driver)
    for _ in range(40):
        rail.move_by(0.3)  # each alone rounds to 0 steps
    assert z(emu) == 12
    assert driver.position_um() == pytest.approx(12.0)


def test_stop_from_another_thread_ends_the_wait(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=2000.0)
    threading.Timer(0.2, driver.stop).start()
    start = time.monotonic()
    with pytest.raises(RailError, match=r"stopped"):
        driver.move_to(2500.0, timeout_s=10.0)  # 5000 steps: 2.5 s
    assert time.monotonic() - start < 1.0
    halted = z(emu)
    assert 0 < halted < 5000
    time.sleep(0.05)
    assert z(emu) == halted  # really halted
    assert driver.position_um() == halted / 2  # the late "Move aborted" is not an answer


def test_stop_ends_the_wait_even_unconfirmed(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=2000.0)

    def stop_silently() -> None:
        emu.faults.no_reply = True  # "Move aborted" never arrives
        driver.stop()

    threading.Timer(0.1, stop_silently).start()
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
    assert b"home_min" not in b"".join(emu.received)


def test_home_with_endstops_finds_the_min_switch(connect: Connect) -> None:
    emu, driver = connect(endstop_min=-600, home_retreat_steps=100)
    driver.move_to(100.0, timeout_s=2.0)
    driver.home(timeout_s=5.0)
    assert b"home_min 4\n" in b"".join(emu.received)
    assert z(emu) == 100  # the switch is 0, then the firmware backs off
    assert driver.position_um() == 50.0


def test_home_needs_min_endstops(connect: Connect) -> None:
    emu, driver = connect(endstop_min=-600)
    emu.endstops_line = "Endstops: max"
    with pytest.raises(RailError, match=r"no min endstops \('Endstops: max'\)"):
        driver.home(timeout_s=2.0)
    assert b"home_min" not in b"".join(emu.received)


def test_stop_during_homing(connect: Connect) -> None:
    emu, driver = connect(endstop_min=-20000, steps_per_s=2000.0)  # a 10 s seek
    threading.Timer(0.3, driver.stop).start()
    start = time.monotonic()
    with pytest.raises(RailError, match=r"stopped"):
        driver.home(timeout_s=20.0)
    assert time.monotonic() - start < 1.0
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
    with running(steps_per_s=FAST) as emu:
        emu.stray_before[command] = stray
        driver = SangaboardDriver(emu.path, steps_per_mm=STEPS_PER_MM)
        try:
            assert driver.connect() == "Sangaboard v0.5.5 (Sangaboard Firmware v1.0.4)"
            driver.move_to(10.0, timeout_s=2.0)
            assert driver.position_um() == 10.0
        finally:
            driver.close()
        assert command not in emu.stray_before  # the stray line was sent


# -- faults --------------------------------------------------------------------------------


def test_no_reply_times_out(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.no_reply = True
    start = time.monotonic()
    with pytest.raises(RailError, match=r"did not answer 'p\?' in time"):
        driver.move_to(10.0, timeout_s=5.0)
    assert time.monotonic() - start < 1.5


def test_lost_completion_times_out_and_stops_the_stage(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=1000.0)
    threading.Timer(0.1, lambda: setattr(emu.faults, "no_reply", True)).start()
    start = time.monotonic()
    with pytest.raises(RailError, match=r"did not finish 'mrz 2000' in time"):
        driver.move_to(1000.0, timeout_s=0.6)  # 2 s of motion
    assert time.monotonic() - start < 1.0
    time.sleep(0.05)
    halted = z(emu)
    assert halted < 2000
    time.sleep(0.1)
    assert z(emu) == halted  # the driver told the stage to stop


def test_slow_replies_still_work(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.slow_reply_s = 0.2
    driver.move_to(50.0, timeout_s=3.0)
    assert z(emu) == 100
    assert driver.position_um() == 50.0


def test_replies_slower_than_the_timeout_fail(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.slow_reply_s = 1.5
    start = time.monotonic()
    with pytest.raises(RailError, match=r"in time"):
        driver.position_um()
    assert time.monotonic() - start < 1.4


def test_garbage_is_a_clear_error(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.garbage = True
    start = time.monotonic()
    with pytest.raises(RailError, match=r"garbled reply to 'p\?'.*baud rate"):
        driver.move_to(10.0, timeout_s=2.0)
    assert time.monotonic() - start < 0.9  # not a timeout (1 s)
    assert z(emu) == 0


def test_split_lines_are_joined(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.split_lines = True
    driver.move_to(75.0, timeout_s=2.0)
    assert z(emu) == 150
    assert driver.position_um() == 75.0


def test_error_line_names_the_command(connect: Connect) -> None:
    emu, driver = connect()
    emu.faults.error_next = 1
    with pytest.raises(RailError, match=r"refused 'zero'.*Error: command is zero"):
        driver.set_zero()
    driver.move_to(5.0, timeout_s=2.0)  # the next command works again
    assert z(emu) == 10


def test_disconnect_mid_move(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=2000.0)
    emu.faults.disconnect_after_s = 0.1
    start = time.monotonic()
    with pytest.raises(RailError, match=r"lost the connection"):
        driver.move_to(1000.0, timeout_s=5.0)
    assert time.monotonic() - start < 1.0


def test_endstop_mid_move(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=4000.0)
    emu.faults.alarm_mid_move = True
    start = time.monotonic()
    with pytest.raises(RailError, match=r"hit an endstop.*Endstop hit:3"):
        driver.move_to(500.0, timeout_s=3.0)  # 0.25 s; the switch trips half way
    assert time.monotonic() - start < 0.9  # before any wait could have run out
    assert 0 < z(emu) < 1000


def test_reset_mid_move(connect: Connect) -> None:
    emu, driver = connect(steps_per_s=4000.0)
    driver.move_to(100.0, timeout_s=2.0)
    emu.faults.reset_mid_move = True
    with pytest.raises(RailError, match=r"restarted.*position is lost"):
        driver.move_to(600.0, timeout_s=3.0)
    assert z(emu) == 0  # back to what was saved at the last zero
    driver.move_to(10.0, timeout_s=2.0)  # usable again after the reset
    assert z(emu) == 20
