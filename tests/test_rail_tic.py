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
from rail_harness import TIC, once_moving, raises_within, sent, wait_until

from rig.devices.emulators.tic import TicEmulator, decode32
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
from rig.errors import RailError

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
    return struct.pack("<i", -70000) + struct.pack("<HI", 12000, 4242) + header


def test_decode_status_reads_little_endian_fields() -> None:
    status = decode_status(status_reply(errors=TicError.COMMAND_TIMEOUT))
    assert (status.position, status.target, status.vin_mv, status.uptime_ms) == (
        -70000,
        -5,
        12000,
        4242,
    )
    assert status.operation_state == NORMAL and status.error_status == TicError.COMMAND_TIMEOUT


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
