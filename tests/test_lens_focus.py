"""Lens focus stepping: fake cameras that keep the real widgets' rules, one per vendor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from rig.devices.lens_focus import (
    CanonDrive,
    ConfigAccess,
    LensFocusDriver,
    NikonDrive,
    SonyDrive,
)
from rig.devices.motion import MotionSettings, Rail
from rig.devices.protocols import FocusDriver
from rig.errors import CameraError, RailError

Widget = tuple[str, object, list[str], tuple[float, float, float] | None]
# libgphoto2's Canon EOS choices, in the order a recent build lists them.
CANON_CHOICES = ["Near 1", "Near 2", "Far 1", "Far 2", "Near 3", "Far 3", "None"]


class FakeCamera:
    """Settings as a dict; records every accepted set; ``before_set`` runs ahead of each one."""

    def __init__(self, model: str, widgets: dict[str, Widget]) -> None:
        self._model = model
        self.widgets = dict(widgets)
        self.sent: list[tuple[str, object]] = []
        self.before_set: Callable[[str, object], None] = lambda key, value: None

    def keys(self) -> list[str]:
        return list(self.widgets)

    def get(self, key: str) -> Widget:
        return self.widgets[key]

    def set(self, key: str, value: object) -> None:
        self.before_set(key, value)
        self.check(key, value)
        kind, _, choices, span = self.widgets[key]
        self.widgets[key] = (kind, value, choices, span)
        self.sent.append((key, value))

    def check(self, key: str, value: object) -> None:
        """Refuse what the real camera refuses (overridden per vendor)."""

    def model(self) -> str:
        return self._model

    def drives(self) -> list[object]:
        return [value for key, value in self.sent if key != "viewfinder"]


class FakeCanon(FakeCamera):
    """A changed value is what makes libgphoto2 send a drive: Near/Far needs None in between."""

    def __init__(self, model: str = "Canon EOS 80D") -> None:
        super().__init__(
            model,
            {
                "manualfocusdrive": ("radio", "None", CANON_CHOICES, None),
                "viewfinder": ("toggle", 1, [], None),
            },
        )

    def check(self, key: str, value: object) -> None:
        if key != "manualfocusdrive":
            return
        if value not in CANON_CHOICES:
            raise CameraError(f"[-2] Bad parameters: {value!r}")
        current = self.widgets[key][1]
        if value != "None" and current != "None":
            raise CameraError("[-110] value unchanged, no drive sent: set None in between")


class FakeNikon(FakeCamera):
    """Signed motor steps, refused until live view is on (the message libgphoto2 gives)."""

    def __init__(self, model: str = "Nikon DSC D750") -> None:
        super().__init__(
            model,
            {
                "manualfocusdrive": ("range", 0.0, [], (-32767.0, 32767.0, 1.0)),
                "viewfinder": ("toggle", 0, [], None),
            },
        )

    def check(self, key: str, value: object) -> None:
        if key != "manualfocusdrive":
            return
        if self.widgets["viewfinder"][1] != 1:
            raise CameraError("Nikon manual focus works only in LiveView mode.")
        assert isinstance(value, int) and 0 < abs(value) <= 32767, value


class FakeSony(FakeCamera):
    """A range -7..7 that clamps what is outside it (counted, so tests can see lost steps)."""

    def __init__(self, model: str = "Sony ILCE-7RM4") -> None:
        super().__init__(model, {"manualfocus": ("range", 0.0, [], (-7.0, 7.0, 1.0))})
        self.clamped = 0

    def set(self, key: str, value: object) -> None:
        assert isinstance(value, int) and value != 0, "0 is AF/MF hold, not a step"
        if abs(value) > 7:
            self.clamped += 1
            value = max(-7, min(7, value))
        super().set(key, value)


def connected(
    camera: ConfigAccess, *, um_per_step: float = 1.0, settle_s: float = 0.0, step_size: int = 1
) -> LensFocusDriver:
    driver = LensFocusDriver(
        camera, um_per_step=um_per_step, settle_s=settle_s, step_size=step_size
    )
    driver.connect()
    return driver


def live_nikon() -> FakeNikon:
    camera = FakeNikon()
    camera.set("viewfinder", 1)
    return camera


# -- detection -----------------------------------------------------------------------------------


def test_detects_each_mechanism_from_the_widgets() -> None:
    assert isinstance(connected(FakeCanon()).mechanism, CanonDrive)
    assert isinstance(connected(FakeNikon()).mechanism, NikonDrive)
    assert isinstance(connected(FakeSony()).mechanism, SonyDrive)
    driver = LensFocusDriver(FakeSony())
    assert isinstance(driver, FocusDriver)
    assert "manualfocus" in driver.connect()


def test_detection_follows_the_widget_type_not_the_model_name() -> None:
    camera = FakeNikon(model="Canon EOS R5")  # a range manualfocusdrive drives like a Nikon
    assert isinstance(connected(camera).mechanism, NikonDrive)


def test_a_camera_without_focus_control_is_told_to_use_a_rail() -> None:
    camera = FakeCamera("Fujifilm X-T1", {"iso": ("radio", "100", ["100", "200"], None)})
    with pytest.raises(CameraError) as err:
        LensFocusDriver(camera).connect()
    assert str(err.value) == (
        "Fujifilm X-T1 offers no lens focus control through libgphoto2 (no "
        "manualfocusdrive/manualfocus setting): use a focus rail"
    )


def test_a_radio_without_near_far_steps_is_refused() -> None:
    camera = FakeCamera("Odd", {"manualfocusdrive": ("radio", "x", ["Slow", "Fast"], None)})
    with pytest.raises(CameraError, match="not Near/Far steps"):
        LensFocusDriver(camera).connect()


def test_step_sizes_come_from_the_choices_and_the_range() -> None:
    canon = connected(FakeCanon(), step_size=3).mechanism
    assert canon == CanonDrive("manualfocusdrive", "Near 3", "Far 3", "None")
    with pytest.raises(CameraError, match=r"offers \[1, 2, 3\]"):
        connected(FakeCanon(), step_size=4)
    with pytest.raises(CameraError, match=r"step sizes 1\.\.7, not 8"):
        connected(FakeSony(), step_size=8)


# -- commands sent -------------------------------------------------------------------------------


def test_canon_alternates_every_step_with_none() -> None:
    camera = FakeCanon()
    driver = connected(camera)
    driver.move_to(2.0, timeout_s=5)
    driver.move_to(-1.0, timeout_s=5)
    assert camera.drives() == ["Far 1", "None", "Far 1", "None"] + ["Near 1", "None"] * 3
    assert driver.position_um() == -1.0


def test_the_canon_fake_refuses_two_drives_without_none() -> None:
    camera = FakeCanon()
    camera.set("manualfocusdrive", "Near 1")
    with pytest.raises(CameraError, match="None in between"):
        camera.set("manualfocusdrive", "Near 1")


def test_canon_step_size_picks_the_choice() -> None:
    camera = FakeCanon()
    connected(camera, step_size=2).jog(-1.0)
    assert camera.drives() == ["Near 2", "None"]


def test_nikon_sends_signed_steps_in_one_command() -> None:
    camera = live_nikon()
    driver = connected(camera, um_per_step=2.5)
    driver.move_to(250.0, timeout_s=5)
    driver.move_to(200.0, timeout_s=5)
    assert camera.drives() == [100, -20]
    assert driver.position_um() == 200.0


def test_nikon_splits_moves_beyond_the_range_and_scales_by_step_size() -> None:
    camera = live_nikon()
    connected(camera).jog(40_000)
    connected(camera, step_size=10).jog(-4_000)
    assert camera.drives() == [32767, 7233, -32760, -7240]


def test_nikon_outside_live_view_says_what_to_do() -> None:
    camera = FakeNikon()
    driver = connected(camera)
    with pytest.raises(CameraError, match=r"turn on live view \(viewfinder\) first"):
        driver.move_to(5.0, timeout_s=5)
    assert driver.position_um() == 0.0
    camera.set("viewfinder", 1)
    driver.move_to(5.0, timeout_s=5)
    assert camera.drives() == [5]


def test_sony_sends_one_command_of_the_step_size_per_step() -> None:
    camera = FakeSony()
    driver = connected(camera, step_size=3)
    driver.move_to(10.0, timeout_s=5)
    driver.move_to(8.0, timeout_s=5)
    assert camera.drives() == [3] * 10 + [-3, -3]
    assert camera.clamped == 0
    assert driver.position_um() == 8.0


def test_no_command_for_a_move_shorter_than_half_a_step() -> None:
    camera = FakeSony()
    driver = connected(camera, um_per_step=10.0)
    driver.move_to(4.9, timeout_s=5)
    assert camera.drives() == []
    driver.move_to(5.1, timeout_s=5)
    assert camera.drives() == [1]


# -- positions, home, stop, timeouts --------------------------------------------------------------


def test_position_counts_steps_and_set_zero_is_the_reference() -> None:
    driver = connected(FakeSony(), um_per_step=4.0)
    driver.jog(12.0)
    assert driver.position_um() == 12.0
    driver.set_zero()
    driver.jog(-8.0)
    assert driver.position_um() == -8.0
    driver.connect()
    assert driver.position_um() == 0.0


def test_home_is_refused() -> None:
    with pytest.raises(CameraError, match="a lens has no home position: focus on the near end"):
        connected(FakeCanon()).home(timeout_s=5)


def test_moving_before_connect_is_refused() -> None:
    with pytest.raises(CameraError, match="not connected"):
        LensFocusDriver(FakeSony()).move_to(1.0, timeout_s=5)


def test_stop_from_another_thread_ends_the_move_between_steps() -> None:
    camera = FakeCanon()
    driver = connected(camera)

    def stop_on_third_drive(key: str, value: object) -> None:
        if value == "Far 1" and camera.drives().count("Far 1") == 2:
            stopper = threading.Thread(target=driver.stop)
            stopper.start()
            stopper.join()

    camera.before_set = stop_on_third_drive
    with pytest.raises(RailError, match="stopped on request after 3 of 10"):
        driver.move_to(10.0, timeout_s=5)
    assert camera.drives() == ["Far 1", "None"] * 3  # the step under way finished with None
    assert driver.position_um() == 3.0
    camera.before_set = lambda key, value: None
    driver.move_to(4.0, timeout_s=5)  # a new move starts afresh, and Canon accepts it
    assert driver.position_um() == 4.0


def test_stop_cuts_the_settle_short() -> None:
    driver = connected(FakeSony(), settle_s=5.0)
    timer = threading.Timer(0.05, driver.stop)
    timer.start()
    started = time.monotonic()
    with pytest.raises(RailError, match="stopped on request after 1 of 3"):
        driver.move_to(3.0, timeout_s=60)
    assert time.monotonic() - started < 2.0
    timer.join()


def test_a_slow_camera_runs_into_the_timeout() -> None:
    camera = FakeSony()
    camera.before_set = lambda key, value: time.sleep(0.02)
    driver = connected(camera)
    with pytest.raises(RailError, match="did not finish in time"):
        driver.move_to(100.0, timeout_s=0.1)
    assert 0 < driver.position_um() < 100.0
    assert driver.position_um() == len(camera.drives())


def test_energise_and_close_touch_no_camera_setting() -> None:
    camera = FakeCanon()
    driver = connected(camera)
    driver.energise(True)
    driver.energise(False)
    driver.close()
    assert camera.sent == []


# -- motion policy on top -----------------------------------------------------------------------


def test_rail_backlash_overshoots_in_steps() -> None:
    camera = live_nikon()
    driver = connected(camera, um_per_step=10.0)
    rail = Rail(driver, MotionSettings(backlash_um=30.0))
    rail.move_to(100.0)
    rail.move_to(50.0)  # from above: overshoot to 20, then approach 50 from below
    assert camera.drives() == [10, -8, 3]
    assert rail.position_um() == 50.0


def test_rail_backlash_with_canon_keeps_alternating() -> None:
    camera = FakeCanon()
    rail = Rail(connected(camera), MotionSettings(backlash_um=2.0))
    rail.move_by(-1.0)
    assert camera.drives() == ["Near 1", "None"] * 3 + ["Far 1", "None"] * 2
    assert rail.position_um() == -1.0
