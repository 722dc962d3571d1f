"""The profile's [rail] section reaches the drivers: every key a firmware can use arrives at
the driver make_driver builds, and the schema checks the keys with its usual messages."""

from __future__ import annotations

import dataclasses

import pytest

from rig.devices.rails.grbl import GrblDriver
from rig.devices.rails.marlin import MarlinDriver
from rig.devices.rails.registry import make_driver
from rig.devices.rails.sangaboard import SangaboardDriver
from rig.devices.rails.tic import TicDriver
from rig.errors import ProfileError, RailError
from rig.profiles.schema import Problems, RailSection, parse_profile

# Which keys of [rail] go where: make_driver passes the first to the drivers, the profile's
# motion settings carry the second, the rest belong to lens focus and the capture session.
DRIVER_KEYS = {
    "protocol",
    "port",
    "baud_rate",
    "axis",
    "steps_per_mm",
    "speed_mm_s",
    "accel_mm_s2",
    "home_direction",
    "tic_device_number",
    "tic_crc",
}
MOTION_KEYS = {"backlash_um", "approach", "soft_min_um", "soft_max_um", "settle_s", "speed_mm_s"}
OTHER_KEYS = {"return_to_start", "um_per_step", "step_size"}


def test_every_rail_key_has_a_consumer() -> None:
    keys = {f.name for f in dataclasses.fields(RailSection)}
    assert keys == DRIVER_KEYS | MOTION_KEYS | OTHER_KEYS, "wire the new key, then list it here"


def test_grbl_gets_axis_speed_and_baud_rate() -> None:
    rail = RailSection(protocol="grbl", axis="x", speed_mm_s=3.5, baud_rate=250000)
    driver = make_driver(rail)
    assert isinstance(driver, GrblDriver)
    assert (driver.axis, driver.speed_mm_s) == ("X", 3.5)
    assert (driver.link.port, driver.link.baudrate) == ("/dev/stackrig-rail", 250000)


def test_marlin_gets_axis_steps_speed_acceleration_and_baud_rate() -> None:
    rail = RailSection(
        protocol="marlin",
        axis="y",
        steps_per_mm=800.0,
        speed_mm_s=4.0,
        accel_mm_s2=75.0,
        baud_rate=250000,
    )
    driver = make_driver(rail, port="/dev/ttyACM7")
    assert isinstance(driver, MarlinDriver)
    assert (driver.axis, driver.steps_per_mm, driver.speed_mm_s) == ("Y", 800.0, 4.0)
    assert driver.accel_mm_s2 == 75.0
    assert (driver.link.port, driver.link.baudrate) == ("/dev/ttyACM7", 250000)


def test_sangaboard_gets_axis_steps_and_baud_rate() -> None:
    rail = RailSection(protocol="sangaboard", axis="x", steps_per_mm=51813.0, baud_rate=57600)
    driver = make_driver(rail)
    assert isinstance(driver, SangaboardDriver)
    assert driver.axis == "x" and driver.steps_per_um == pytest.approx(51.813)
    assert driver._link.baudrate == 57600


def test_tic_gets_device_number_crc_homing_speed_and_acceleration() -> None:
    rail = RailSection(
        protocol="tic",
        steps_per_mm=1600.0,
        speed_mm_s=2.0,
        accel_mm_s2=10.0,
        home_direction="forward",
        tic_device_number=5,
        tic_crc=True,
        baud_rate=115200,
    )
    driver = make_driver(rail)
    assert isinstance(driver, TicDriver)
    assert (driver.framing.device_number, driver.framing.crc) == (5, True)
    assert driver.home_direction == "forward"
    assert driver.speed_setting == 2.0 * 1600 * 10_000  # microsteps per 10 000 s
    assert driver.accel_setting == 10.0 * 1600 * 100  # microsteps per 100 s^2
    assert driver.link.baudrate == 115200


def test_tic_defaults_speak_the_compact_protocol_at_9600() -> None:
    driver = make_driver(RailSection(protocol="tic", steps_per_mm=1000.0))
    assert isinstance(driver, TicDriver)
    assert (driver.framing.device_number, driver.framing.crc) == (None, False)
    assert driver.accel_setting is None and driver.link.baudrate == 9600


@pytest.mark.parametrize("protocol", ["sangaboard", "tic"])
def test_a_stepping_controller_needs_steps_per_mm(protocol: str) -> None:
    with pytest.raises(RailError, match=f"a {protocol} controller counts steps"):
        make_driver(RailSection(protocol=protocol))


def test_lens_focus_is_not_a_rail_driver() -> None:
    with pytest.raises(RailError, match="choose one of grbl, marlin, sangaboard, tic"):
        make_driver(RailSection(protocol="lens", um_per_step=10.0))


# -- the schema ----------------------------------------------------------------------------


def rail_problems(**rail: object) -> str:
    data = {"schema_version": 2, "name": "r", "rail": rail}
    with pytest.raises(ProfileError) as info:
        parse_profile(data, Problems("r.toml"))
    return str(info.value)


def test_the_new_keys_load_with_their_defaults() -> None:
    profile = parse_profile({"schema_version": 2, "name": "r"}, Problems("r.toml"))
    r = profile.rail
    assert (r.axis, r.home_direction, r.baud_rate) == ("z", "reverse", None)
    assert (r.tic_device_number, r.tic_crc) == (None, False)
    loaded = parse_profile(
        {
            "schema_version": 2,
            "name": "r",
            "rail": {"protocol": "tic", "steps_per_mm": 800.0, "tic_device_number": 14},
        },
        Problems("r.toml"),
    )
    assert loaded.rail.tic_device_number == 14


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("axis", "w", 'rail.axis = "w": must be one of x, y, z'),
        ("axis", "Z", 'rail.axis = "Z": must be one of x, y, z'),
        ("home_direction", "up", 'rail.home_direction = "up": must be one of reverse, forward'),
        ("tic_device_number", 128, "rail.tic_device_number = 128: must be <= 127"),
        ("tic_device_number", 1.5, "rail.tic_device_number = 1.5: must be a whole number"),
        ("tic_crc", "yes", 'rail.tic_crc = "yes": must be true or false'),
        ("baud_rate", 300, "rail.baud_rate = 300: must be >= 1200"),
    ],
)
def test_bad_values_are_named(key: str, value: object, message: str) -> None:
    assert f"r.toml: {message}" in rail_problems(**{key: value})


def test_a_sangaboard_cannot_home_forward() -> None:
    text = rail_problems(protocol="sangaboard", steps_per_mm=1000.0, home_direction="forward")
    assert 'r.toml: rail.home_direction = "forward": a Sangaboard homes to its min' in text
