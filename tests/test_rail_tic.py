"""What only the Pololu Tic has: the binary encodings, CRC-7, device numbers, the status
variables, safe start and the command timeout (keep-alive), error bits, limit switches and
homing. What every rail driver must do is in test_rail_conformance.py."""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import serial
from rail_harness import SLACK_S, TIC, once_moving, raises_within, sent, wait_until

from rig.devices.emulators.tic import TicEmulator, decode32
from rig.devices.rails import tic as tic_module
from rig.devices.rails.tic import (
    NORMAL,
    Command,
    Framing,
    MiscFlag,
    TicDriver,
    TicError,
    crc7,
    decode_status,
    describe_errors,
    encode32,
)
from rig.errors import ControllerRestarted, RailError

SPEED = 20_000  # steps/s; at 1000 steps/mm one step is one micrometre


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def make_emu(stack: contextlib.ExitStack) -> Callable[..., TicEmulator]:
    return lambda **kwargs: stack.enter_context(TIC.running(**kwargs))


@pytest.fixture
def make_tic(stack: contextlib.ExitStack) -> Callable[..., TicDriver]:
    def make(emu: TicEmulator, **kwargs: Any) -> TicDriver:
        driver = TIC.driver(emu, **kwargs)
        stack.callback(driver.close)
        return driver

    return make


@pytest.fixture
def emu(make_emu: Callable[..., TicEmulator]) -> TicEmulator:
    return make_emu()


@pytest.fixture
def tic(emu: TicEmulator, make_tic: Callable[..., TicDriver]) -> TicDriver:
    driver = make_tic(emu)
    driver.connect()
    return driver


# -- encoding ---------------------------------------------------------------------------------


def test_32bit_write_matches_the_documented_example() -> None:
    frame = Framing().write32(Command.SET_TARGET_POSITION, 1234567890)
    assert frame == bytes.fromhex("E0 05 52 02 16 49")


@pytest.mark.parametrize("value", [0, 1, -1, 127, 128, 1234567890, -(2**31), 2**31 - 1, -98765])
def test_32bit_data_round_trips_through_the_emulator_decoder(value: int) -> None:
    data = encode32(value)
    assert len(data) == 5 and all(b < 0x80 for b in data)
    assert decode32(data) == value


def test_negative_values_are_twos_complement() -> None:
    assert encode32(-1) == bytes([0x0F, 0x7F, 0x7F, 0x7F, 0x7F])


def test_quick_7bit_and_block_read_encodings() -> None:
    f = Framing()
    assert f.quick(Command.HALT_AND_HOLD) == b"\x89"
    assert f.write7(Command.GO_HOME, 1) == b"\x97\x01"
    assert f.block_read(0x22, 4) == b"\xa1\x22\x04"
    assert f.block_read(0x00, 14, clear_errors=True) == b"\xa2\x00\x0e"
    for bad in (0, 16):
        with pytest.raises(ValueError):
            f.block_read(0, bad)


def test_pololu_protocol_prefixes_device_and_clears_the_command_msb() -> None:
    f = Framing(device_number=14)
    assert f.quick(Command.ENERGIZE) == b"\xaa\x0e\x05"
    assert f.write32(Command.SET_TARGET_POSITION, 1234567890) == bytes.fromhex(
        "AA 0E 60 05 52 02 16 49"
    )


def test_crc7_matches_pololus_worked_examples() -> None:
    assert crc7(b"\x83\x01") == 0x17  # Tic user's guide, section 9
    assert crc7(bytes.fromhex("D1 01 64 00")) == 0x68  # Motoron guide, same CRC-7
    assert Framing(crc=True).frame(0x83, b"\x01") == b"\x83\x01\x17"
    packet = Framing(device_number=14, crc=True).quick(Command.EXIT_SAFE_START)
    assert packet[:-1] == b"\xaa\x0e\x03" and packet[-1] == crc7(b"\xaa\x0e\x03")


def status_reply(**overrides: int) -> bytes:
    v = {"op": NORMAL, "misc": 1, "errors": 0, "occurred": 0, "planning": 1, "target": -5}
    v.update(overrides)
    header = struct.pack(
        "<BBHIxBi", v["op"], v["misc"], v["errors"], v["occurred"], v["planning"], v["target"]
    )
    velocity = v.get("velocity", -2_000_000)
    return struct.pack("<ii", -70000, velocity) + struct.pack("<HI", 12000, 4242) + header


def test_decode_status_reads_little_endian_fields() -> None:
    status = decode_status(status_reply(errors=TicError.COMMAND_TIMEOUT))
    assert (status.position, status.target, status.vin_mv, status.uptime_ms) == (
        -70000,
        -5,
        12000,
        4242,
    )
    assert status.velocity == -2_000_000 and not status.still
    assert status.operation_state == NORMAL and status.error_status == TicError.COMMAND_TIMEOUT
    assert decode_status(status_reply(velocity=0)).still


@pytest.mark.parametrize(
    "reply",
    [
        status_reply(op=3),
        status_reply(planning=7),
        b"\x00\xfe#%" + status_reply()[:-4],  # noise in front shifts every field
        status_reply()[:-1],
    ],
)
def test_decode_status_rejects_what_a_tic_cannot_send(reply: bytes) -> None:
    with pytest.raises(ValueError):
        decode_status(reply)


def test_errors_are_named_with_what_to_do() -> None:
    text = describe_errors(TicError.SAFE_START_VIOLATION | TicError.MOTOR_DRIVER_ERROR)
    assert "safe start violation (resume it: the driver re-sends exit safe start" in text
    assert "motor driver error (check the motor wiring" in text
    assert describe_errors(1 << 9) == "error bit 9 (see the Tic user's guide)"


# -- connecting -------------------------------------------------------------------------------


def test_connect_resumes_the_tic(emu: TicEmulator, tic: TicDriver) -> None:
    assert emu.operation_state == NORMAL and emu.energized
    assert Command.ENERGIZE in sent(emu) and Command.EXIT_SAFE_START in sent(emu)


def test_connect_sets_max_speed_and_acceleration(
    emu: TicEmulator, make_tic: Callable[..., TicDriver]
) -> None:
    make_tic(emu, max_speed_steps_s=5000, max_accel_steps_s2=20000).connect()
    assert emu.speed == 5000
    assert emu.written[Command.SET_ACCEL_MAX] == emu.written[Command.SET_DECEL_MAX] == 2_000_000


def test_wrong_device_number_gets_no_answer(
    make_emu: Callable[..., TicEmulator], make_tic: Callable[..., TicDriver]
) -> None:
    emu = make_emu(device_number=14)
    raises_within(1.5, "no Tic answered", make_tic(emu, device_number=3).connect)


def test_pololu_protocol_with_crc_moves(
    make_emu: Callable[..., TicEmulator], make_tic: Callable[..., TicDriver]
) -> None:
    emu = make_emu(device_number=5, crc=True)
    tic = make_tic(emu, device_number=5, crc=True)
    tic.connect()
    tic.move_to(1500, timeout_s=2)
    assert emu.position == 1500 and tic.position_um() == 1500


def test_crc_mismatch_gets_no_answer(
    make_emu: Callable[..., TicEmulator], make_tic: Callable[..., TicDriver]
) -> None:
    emu = make_emu(crc=True)
    raises_within(1.5, "no Tic answered", make_tic(emu, crc=False).connect)


def test_bad_crc_sets_the_serial_error_and_is_ignored(make_emu: Callable[..., TicEmulator]) -> None:
    emu = make_emu(crc=True)
    f = Framing(crc=True)
    with serial.Serial(emu.path, timeout=1) as port:
        port.write(f.quick(Command.EXIT_SAFE_START))
        target = bytearray(f.write32(Command.SET_TARGET_POSITION, 500))
        target[-1] ^= 0x01
        port.write(bytes(target))
        port.write(f.block_read(0x00, 14))
        op, _, errors = struct.unpack("<BBH", port.read(14)[:4])
    assert errors & TicError.SERIAL_ERROR and op != NORMAL
    assert emu.target == 0 and not emu.moving


# -- moving -----------------------------------------------------------------------------------


def test_a_move_longer_than_the_command_timeout_keeps_it_alive(
    emu: TicEmulator, tic: TicDriver
) -> None:
    assert emu.command_timeout_s == 1.0
    tic.move_to(1.3 * SPEED, timeout_s=3)  # 1.3 s: without keep-alives the Tic stops at 1 s
    assert emu.position == 1.3 * SPEED
    assert sent(emu).count(Command.RESET_COMMAND_TIMEOUT) > 10


def test_jog_returns_at_once_relative_to_the_current_position(
    emu: TicEmulator, tic: TicDriver
) -> None:
    tic.move_to(1000, timeout_s=2)
    start = time.monotonic()
    tic.jog(-3000)
    assert time.monotonic() - start < 3000 / SPEED / 2  # did not wait for the motion
    wait_until(lambda: emu.moves[-1:] == [(1000, -2000)])


def test_a_move_that_overruns_its_timeout_is_halted(emu: TicEmulator, tic: TicDriver) -> None:
    raises_within(0.8, "did not finish within 0.2 s", lambda: tic.move_to(SPEED, timeout_s=0.2))
    wait_until(lambda: not emu.moving)
    assert emu.position < SPEED


def test_a_target_changed_by_another_program_is_not_success(
    emu: TicEmulator, tic: TicDriver
) -> None:
    def other_program() -> None:
        with serial.Serial(emu.path) as port:
            port.write(Framing().write32(Command.SET_TARGET_POSITION, 300))

    once_moving(emu, TIC, other_program)
    raises_within(1.0, "overridden", lambda: tic.move_to(10_000, timeout_s=3))


def test_home_runs_to_the_switch_and_calls_it_zero(emu: TicEmulator, tic: TicDriver) -> None:
    tic.move_to(500, timeout_s=2)
    tic.home(timeout_s=2)
    assert tic.position_um() == 0 and not emu.uncertain and emu.homing is None
    tic.move_to(200, timeout_s=2)
    assert emu.position == 200


def test_home_without_a_switch_fails_within_its_timeout(
    make_emu: Callable[..., TicEmulator], make_tic: Callable[..., TicDriver]
) -> None:
    emu = make_emu(reverse_switch_at=None)
    tic = make_tic(emu)
    tic.connect()
    raises_within(1.0, "did not finish within 0.3 s", lambda: tic.home(timeout_s=0.3))
    wait_until(lambda: not emu.moving)
    assert emu.homing is None


def test_energise_releases_and_holds_the_motor(emu: TicEmulator, tic: TicDriver) -> None:
    tic.energise(False)
    wait_until(lambda: not emu.energized)
    with pytest.raises(RailError, match="intentionally de-energized"):
        tic.move_to(100, timeout_s=1)
    tic.energise(True)
    assert emu.energized and emu.operation_state == NORMAL
    tic.move_to(100, timeout_s=1)
    assert emu.position == 100


# -- faults: each one a clear RailError in time, or a correct recovery -------------------------


def test_limit_switch_mid_move_is_latched_until_moving_away(
    emu: TicEmulator, tic: TicDriver
) -> None:
    emu.faults.alarm_mid_move = True
    raises_within(1.0, "forward limit switch is active", lambda: tic.move_to(4000, 3))
    assert emu.limit == MiscFlag.FORWARD_LIMIT  # where it stopped: see the conformance suite
    assert emu.moves == []
    tic.move_to(0, timeout_s=2)  # away from the switch still works
    assert emu.position == 0


def test_reset_mid_move_loses_the_position_until_rezeroed(emu: TicEmulator, tic: TicDriver) -> None:
    emu.faults.reset_mid_move = True
    raises_within(1.0, "the Tic reset", lambda: tic.move_to(4000, 3))
    assert emu.uncertain and emu.error_status & TicError.SAFE_START_VIOLATION
    with pytest.raises(RailError, match="absolute positions are lost"):
        tic.move_to(100, timeout_s=2)
    tic.set_zero()
    tic.move_to(100, timeout_s=2)
    assert emu.position == 100


def test_driver_error_mid_move(emu: TicEmulator, tic: TicDriver) -> None:
    def fail() -> None:
        emu.faults.error_next = 1  # bit 1: motor driver error

    once_moving(emu, TIC, fail)
    raises_within(1.0, "motor driver error", lambda: tic.move_to(SPEED, 3))
    assert not emu.energized and not emu.moving
    with pytest.raises(RailError, match="motor driver error"):
        tic.move_to(0, timeout_s=2)


def test_command_timeout_when_the_host_goes_silent_then_recovery(
    make_emu: Callable[..., TicEmulator], make_tic: Callable[..., TicDriver]
) -> None:
    emu = make_emu(command_timeout_s=0.3)
    tic = make_tic(emu)
    tic.connect()
    tic.jog(10_000)  # 0.5 s of travel, and the host says nothing
    wait_until(lambda: bool(emu.error_status & TicError.COMMAND_TIMEOUT) and not emu.moving)
    stopped_at = emu.position
    assert 0 < stopped_at < 10_000 and tic.position_um() == stopped_at
    tic.move_to(10_000, timeout_s=2)  # the operator's next move resumes the Tic
    assert emu.position == 10_000 and tic.position_um() == 10_000


# -- referenced: the Tic's "position uncertain" flag ------------------------------------------

DECELERATE = Framing().write32(Command.SET_TARGET_VELOCITY, 0)


def test_referenced_is_the_tics_position_uncertain_flag(emu: TicEmulator, tic: TicDriver) -> None:
    assert not tic.referenced and emu.uncertain  # powered up: the count means nothing yet
    tic.set_zero()
    assert tic.referenced and not emu.uncertain
    tic.close()
    tic.connect()  # it survives a reconnect: the Tic keeps the flag, and did not restart
    assert tic.referenced
    tic.energise(False)  # de-energised, the motor may be pushed: the Tic flags it
    assert not tic.referenced
    tic.energise(True)
    tic.position_um()
    assert not tic.referenced and emu.uncertain
    tic.home(timeout_s=2.0)
    assert tic.referenced


def test_a_reset_command_from_elsewhere_unreferences_without_a_restart(
    emu: TicEmulator, tic: TicDriver
) -> None:
    tic.set_zero()
    tic.move_to(500, timeout_s=2)
    with serial.Serial(emu.path) as port:
        port.write(bytes([Command.RESET]))  # e.g. the Tic Control Center
    wait_until(lambda: emu.uncertain)
    assert tic.position_um() == 500  # the count is kept; the uptime ran on: no restart raised
    assert not tic.referenced


def test_a_restart_is_controller_restarted_and_settings_are_sent_again(
    emu: TicEmulator, make_tic: Callable[..., TicDriver]
) -> None:
    tic = make_tic(emu, max_speed_steps_s=SPEED / 2)
    tic.connect()
    tic.set_zero()
    emu.faults.reset_mid_move = True
    with pytest.raises(ControllerRestarted, match="the Tic reset"):
        tic.move_to(4000, timeout_s=3)
    assert not tic.referenced and emu.speed == SPEED  # its own stored setting is back
    tic.set_zero()
    tic.move_to(100, timeout_s=2)
    assert emu.speed == SPEED / 2 and emu.position == 100


# -- stopping --------------------------------------------------------------------------------


def test_idle_stop_sends_no_motion_command(emu: TicEmulator, tic: TicDriver) -> None:
    tic.set_zero()
    mark = len(sent(emu))
    start = time.monotonic()
    tic.stop()
    assert time.monotonic() - start < 0.2
    assert DECELERATE not in sent(emu)[mark:] and Command.HALT_AND_HOLD not in sent(emu)[mark:]
    assert tic.referenced
    tic.move_to(300, timeout_s=2)
    assert emu.position == 300


def test_stop_decelerates_keeps_the_reference_and_waits_for_standstill(
    make_emu: Callable[..., TicEmulator], make_tic: Callable[..., TicDriver]
) -> None:
    emu = make_emu(accel_steps_s2=40_000.0)
    tic = make_tic(emu)
    tic.connect()
    tic.set_zero()
    still: list[bool] = []
    asked_at: list[int] = []

    def stop() -> None:
        wait_until(lambda: emu.position > 1000)  # about 9000 steps/s: 0.2 s to stop
        asked_at.append(emu.position)
        tic.stop()
        still.append(not emu.moving)

    stopper = once_moving(emu, TIC, stop)
    raises_within(2.0, "stopped on request", lambda: tic.move_to(40_000, timeout_s=5))
    stopper.join(timeout=3.0)
    assert still == [True]
    assert DECELERATE in sent(emu) and Command.HALT_AND_HOLD not in sent(emu)
    assert tic.referenced and not emu.uncertain  # no abrupt halt: the count is trusted
    assert asked_at[0] + 500 < tic.position_um() == emu.position < 40_000  # it decelerated
    tic.move_to(1000, timeout_s=5)
    assert emu.position == 1000


def test_stop_after_a_jog(emu: TicEmulator, tic: TicDriver) -> None:
    tic.set_zero()
    tic.jog(20_000)  # 1 s of travel, returns at once
    wait_until(lambda: emu.moving)
    tic.stop()
    assert not emu.moving and 0 < emu.position < 20_000 and tic.referenced


def test_a_stop_that_does_not_decelerate_in_time_halts(
    make_emu: Callable[..., TicEmulator],
    make_tic: Callable[..., TicDriver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tic_module, "STOP_TIMEOUT_S", 0.1)
    emu = make_emu(accel_steps_s2=8_000.0)
    tic = make_tic(emu)
    tic.connect()
    tic.set_zero()
    tic.jog(100_000)
    wait_until(lambda: emu.position > 500)  # about 2800 steps/s: 0.35 s to stop
    tic.stop()
    assert not emu.moving and Command.HALT_AND_HOLD in sent(emu)
    assert not tic.referenced  # the Tic flags an abrupt stop: steps may be lost


def test_the_first_query_of_a_move_respects_its_timeout(emu: TicEmulator, tic: TicDriver) -> None:
    emu.faults.slow_reply_s = 0.4  # within the 0.5 s reply timeout, beyond the move's 0.2 s
    raises_within(0.2 + SLACK_S, "did not answer", lambda: tic.move_to(100, timeout_s=0.2))


# -- unlock ----------------------------------------------------------------------------------


def test_unlock_clears_a_driver_error_and_says_to_re_reference(
    emu: TicEmulator, tic: TicDriver
) -> None:
    tic.set_zero()
    emu.faults.error_next = 1  # motor driver error: latched, de-energises, position uncertain
    with pytest.raises(RailError, match="motor driver error"):
        tic.move_to(500, timeout_s=2)
    text = tic.unlock()
    assert "cleared the motor driver error" in text and "home or set zero" in text
    assert emu.operation_state == NORMAL and Command.CLEAR_DRIVER_ERROR in sent(emu)
    tic.set_zero()
    tic.move_to(500, timeout_s=2)
    assert emu.position == 500


def test_unlock_of_a_running_tic(emu: TicEmulator, tic: TicDriver) -> None:
    tic.set_zero()
    assert tic.unlock() == "Tic: nothing was locked (it runs normally); the position is kept"
    tic.energise(False)
    text = tic.unlock()
    assert "energised the motor" in text and "position uncertain" in text
    assert emu.energized
