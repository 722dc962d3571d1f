"""The GRBL driver against the real GRBL 1.1h firmware on a simulated Uno (tests/grbl_sim.py).

The truth about the carriage is the step count from the firmware's own STEP pulses, never
what the driver says. GRBL's default settings throughout (250 steps/mm, 10 mm/s^2), as a new
user has them: a stop from 5 mm/s then takes about half a second to decelerate.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from grbl_sim import STEPS_PER_MM, GrblSim
from helpers import stackrig_process

from rig.devices.motion import MotionSettings, Rail
from rig.devices.rails.grbl import GrblDriver
from rig.errors import ControllerRestarted, RailError

UM_PER_STEP = 1000.0 / STEPS_PER_MM


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrblSim]:
    with GrblSim(tmp_path_factory.mktemp("grbl")) as running:
        yield running


@pytest.fixture
def grbl(sim: GrblSim) -> Iterator[GrblDriver]:
    """A connected driver on an Idle, unlocked, zeroed controller (whatever the test before
    left behind), with hard limits off."""
    driver = GrblDriver(str(sim.link), speed_mm_s=5.0)
    driver.connect()
    driver.unlock()
    driver._send("$21=0")
    driver.set_zero()
    yield driver
    driver.close()


class Truth:
    """Where the firmware's pulses put the carriage, relative to where the test began."""

    def __init__(self, sim: GrblSim) -> None:
        self.sim, self.origin = sim, sim.steps()

    def um(self) -> float:
        return (self.sim.steps() - self.origin) * UM_PER_STEP

    def still(self, seconds: float = 0.15) -> bool:
        before = self.sim.steps()
        self.sim.wait_sim(seconds)
        return self.sim.steps() == before


def _stop_past(driver: GrblDriver, truth: Truth, um: float) -> threading.Thread:
    """stop() from another thread once the carriage has truly passed ``um`` (the simulation
    may run slower than the wall clock on a loaded machine: time is no measure)."""

    def stop() -> None:
        deadline = time.monotonic() + 10.0
        while truth.um() < um and time.monotonic() < deadline:
            time.sleep(0.01)
        driver.stop()

    thread = threading.Thread(target=stop)
    thread.start()
    return thread


def test_move_returns_only_when_the_pulses_have_ended(sim: GrblSim, grbl: GrblDriver) -> None:
    truth = Truth(sim)
    grbl.move_to(500.0, timeout_s=5.0)
    returned_at = sim.sim_s()
    assert truth.um() == pytest.approx(500.0, abs=UM_PER_STEP)
    assert grbl.position_um() == pytest.approx(truth.um(), abs=1.0)
    _, last_pulse, _ = sim.last_burst()
    assert last_pulse <= returned_at
    assert truth.still()


def test_stop_mid_move_leaves_no_alarm_and_the_true_position(
    sim: GrblSim, grbl: GrblDriver
) -> None:
    truth = Truth(sim)
    stopper = _stop_past(grbl, truth, 500.0)
    with pytest.raises(RailError, match="stopped on request"):
        grbl.move_to(5000.0, timeout_s=10.0)
    stopper.join()
    assert truth.still()
    state, position = grbl.status()
    assert state == "Idle"  # not Alarm: the reset came after Hold:0
    assert position * 1000.0 == pytest.approx(truth.um(), abs=1.0)
    assert 500.0 < truth.um() < 4000.0  # it decelerated from about 3 mm/s: ~0.5 mm more
    assert grbl.referenced  # the zero survives a reset at a standstill
    grbl.move_to(100.0, timeout_s=10.0)  # no error:9: the rail was left unlocked
    assert truth.um() == pytest.approx(100.0, abs=UM_PER_STEP)


def test_stop_during_a_jog_cancels_it(sim: GrblSim, grbl: GrblDriver) -> None:
    truth = Truth(sim)
    grbl.jog(5000.0)
    _stop_past(grbl, truth, 200.0).join()
    assert truth.still()
    assert grbl.status()[0] == "Idle"
    assert 200.0 < truth.um() < 4000.0
    assert grbl.position_um() == pytest.approx(truth.um(), abs=1.0)


def test_stop_on_an_idle_rail_is_quick_and_harmless(sim: GrblSim, grbl: GrblDriver) -> None:
    start = time.monotonic()
    grbl.stop()
    assert time.monotonic() - start < 0.2
    grbl.move_to(40.0, timeout_s=5.0)
    assert grbl.position_um() == pytest.approx(40.0, abs=UM_PER_STEP)


def test_zero_survives_a_reconnect(sim: GrblSim, grbl: GrblDriver) -> None:
    truth = Truth(sim)
    grbl.move_to(800.0, timeout_s=5.0)
    grbl.set_zero()
    grbl.close()
    again = GrblDriver(str(sim.link))
    again.connect()  # must not reset: a reset would lose nothing here, but G92 would go
    try:
        assert again.referenced
        assert again.position_um() == pytest.approx(0.0, abs=1.0)
        again.move_to(-800.0, timeout_s=5.0)
        assert truth.um() == pytest.approx(0.0, abs=UM_PER_STEP)
    finally:
        again.close()


def test_a_timed_out_move_is_stopped(sim: GrblSim, grbl: GrblDriver) -> None:
    truth = Truth(sim)
    with pytest.raises(RailError, match="did not finish within"):
        grbl.move_to(8000.0, timeout_s=0.5)
    assert truth.still()
    assert truth.um() < 8000.0
    assert grbl.status()[0] == "Idle"


def test_hard_limit_alarm_then_unlock(sim: GrblSim, grbl: GrblDriver) -> None:
    grbl._send("$21=1")
    threading.Timer(0.3, sim.ctl, ("zlimit on",)).start()
    with pytest.raises(RailError, match="ALARM:1"):
        grbl.move_to(5000.0, timeout_s=10.0)
    assert not grbl.referenced
    sim.ctl("zlimit off")
    grbl.close()
    # GRBL now answers nothing until reset: connecting finds it silent and resets it.
    again = GrblDriver(str(sim.link))
    assert "answered nothing" in again.connect()
    try:
        said = again.unlock()
        assert "unlocked" in said and "not referenced" in said
        assert again.status()[0] == "Idle"
        Rail(again).move_by(50.0)
    finally:
        again._send("$21=0")
        again.close()


def test_sleep_then_wake_leaves_it_unlocked_but_unreferenced(grbl: GrblDriver) -> None:
    grbl.energise(False)
    assert grbl.status()[0] == "Sleep"
    grbl.energise(True)
    assert grbl.status()[0] == "Idle"
    assert not grbl.referenced  # the motor was free: the position may have moved
    Rail(grbl).move_by(25.0)


def test_a_restart_mid_move_is_told(sim: GrblSim, grbl: GrblDriver) -> None:
    rail = Rail(grbl)
    threading.Timer(0.3, sim.ctl, ("hwreset",)).start()
    with pytest.raises(ControllerRestarted):
        rail.move_to(3000.0)
    assert not rail.referenced
    with pytest.raises(RailError, match="not referenced"):
        rail.move_to(100.0)


def test_the_cli_stops_the_rail_on_ctrl_c_and_sigterm(sim: GrblSim, grbl: GrblDriver) -> None:
    grbl.close()
    for sig in (signal.SIGINT, signal.SIGTERM):
        truth = Truth(sim)
        port = ["--port", str(sim.link), "--protocol", "grbl"]
        process = stackrig_process("rail", "jog", "20000", *port)
        deadline = time.monotonic() + 10
        while truth.um() < 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(sig)
        out, _ = process.communicate(timeout=15)
        assert process.returncode == 130, out
        assert "the rail was stopped; position:" in out
        assert truth.still()
        assert truth.um() < 20000.0
    grbl.connect()
    assert grbl.status()[0] == "Idle"  # no ALARM:3 left behind


def test_the_cli_unlock_and_stop_commands(sim: GrblSim, grbl: GrblDriver) -> None:
    grbl.close()
    port = ["--port", str(sim.link), "--protocol", "grbl"]
    for action, said in (("stop", "the rail is stopped"), ("unlock", "GRBL was not locked")):
        run = subprocess.run(
            [sys.executable, "-m", "rig.cli", "rail", action, *port],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert run.returncode == 0, run.stderr
        assert said in run.stdout


@pytest.fixture
def uno(tmp_path: Path) -> Iterator[GrblSim]:
    """A board that resets whenever its port opens, as an Uno's DTR line does."""
    with GrblSim(tmp_path / "uno", reset_on_open=True) as running:
        yield running


def test_a_board_that_resets_on_open_is_never_taken_as_referenced(uno: GrblSim) -> None:
    driver = GrblDriver(str(uno.link))
    said = driver.connect()
    assert "restarted as the port opened" in said
    assert not driver.referenced
    rail = Rail(driver)
    rail.set_zero()
    rail.move_to(200.0)
    assert rail.position_um() == pytest.approx(200.0, abs=UM_PER_STEP)
    driver.close()
    driver.connect()  # the board reset again: its count restarted at 0
    try:
        assert not driver.referenced
        with pytest.raises(RailError, match="not referenced"):
            Rail(driver).move_to(0.0)
    finally:
        driver.close()
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "rig.cli",
            "rail",
            "status",
            "--port",
            str(uno.link),
            "--protocol=grbl",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert status.returncode == 0, status.stderr
    assert "position: not referenced" in status.stdout


def test_a_capture_session_journals_the_positions_the_firmware_reached(
    sim: GrblSim, grbl: GrblDriver, tmp_path: Path
) -> None:
    """The session's journal against the firmware's own step count, shot by shot."""
    from datetime import datetime

    from rig.profiles import Profile
    from rig.session.capture import CaptureSession
    from rig.session.folder import create_session_folder, write_session_file
    from rig.session.journal import Journal
    from rig.simrig.camera import SimulatedCamera
    from rig.simrig.subject import Subject, SubjectSettings

    truth = Truth(sim)
    positions = [i * 100.0 for i in range(8)]

    class FirmwareRig:  # what the simulated camera sees: the carriage where the pulses put it
        subject = Subject(SubjectSettings(width=96, height=64))
        last_frame = None  # no scene shown before the shot: the camera renders it

        def carriage_um(self) -> float:
            return truth.um()

    now = datetime.now()
    folder = create_session_folder(tmp_path, "real-grbl", now)
    write_session_file(folder, Profile(name="real-grbl"), {"positions_um": positions}, now)
    journal = Journal.create(folder.journal)
    at_shot: dict[int, float] = {}
    rail = Rail(grbl, MotionSettings(backlash_um=40.0, speed_um_s=5000.0))
    session = CaptureSession(
        folder,
        journal,
        positions,
        rail,
        SimulatedCamera(FirmwareRig()),  # type: ignore[arg-type]
        before_shot=lambda index: at_shot.__setitem__(index, truth.um()),
    )
    session.run(range(1, len(positions) + 1))
    reached = {e["index"]: e["position_um"] for e in journal.events if e.type == "position_reached"}
    assert sorted(reached) == list(range(1, 9))
    for index, position in reached.items():
        assert position == pytest.approx(at_shot[index], abs=1.0)  # the driver told the truth
        assert position == pytest.approx(positions[index - 1], abs=UM_PER_STEP)
