"""A session when things go wrong: pause, abort mid-move, camera faults under each policy, a
full disk, a rail cable pulled mid-move (back at once, back later, back restarted).

In one process: the GRBL emulator on its pty through the real driver, the simulated camera
(the rendered frame, written as a download is), the stacking worker on the frames. The camera
that fails is the real simulated one with a fault put in front of it.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from session_rig import PLANNED, POSITIONS, Rig, profile

from rig.cli import main
from rig.devices.motion import Rail
from rig.devices.rails.registry import make_driver
from rig.errors import CameraError
from rig.profiles import Profile
from rig.profiles.schema import RailSection
from rig.session.capture import SessionStopped, ShotFault, State
from rig.session.folder import SessionFolder
from rig.session.journal import next_missing
from rig.simrig.camera import SimulatedCamera
from stacking.io import read_image


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = Rig(tmp_path, profile(**getattr(request, "param", {})))
    yield r
    r.close()


class Failing:
    """The simulated camera, failing the shots listed (by capture call, from 1)."""

    def __init__(self, camera: SimulatedCamera, fail: set[int], error: Exception) -> None:
        self.camera, self.fail, self.error, self.calls = camera, fail, error, 0

    def capture(self, folder: Path) -> list[Path]:
        self.calls += 1
        if self.calls in self.fail:
            raise self.error
        return self.camera.capture(folder)


def same_as_offline(rig: Rig, result: Any) -> None:
    """The session's stack is what 'stackrig stack' makes of the frames on disk."""
    offline = rig.tmp / "offline.tif"
    assert main(["stack", str(rig.folder.frames), "-o", str(offline), "--quiet"]) == 0
    a = read_image(result.outcome.outputs.image).pixels.astype(np.float64)
    b = read_image(offline).pixels.astype(np.float64)
    assert np.abs(a - b).max() <= 1.0 * (257 if a.max() > 255 else 1)


def test_pause_waits_at_a_shot_boundary_until_resumed(rig: Rig) -> None:
    states: list[State] = []
    sessions: list[Any] = []

    def on_state(state: State) -> None:
        states.append(state)
        if state is State.PAUSED:  # the operator looks, then resumes from another thread
            threading.Timer(0.2, sessions[0].resume).start()

    def on_shot(shot: Any) -> None:
        if shot.index == 2:
            sessions[0].pause()

    result = rig.shoot(on_shot=on_shot, on_session=sessions.append, on_state=on_state)
    assert states == [State.RUNNING, State.PAUSED, State.RUNNING, State.FINISHING, State.DONE]
    kinds = [e.type for e in rig.events()]
    assert kinds.index("session_paused") > kinds.index("file_saved")
    assert kinds.count("session_paused") == kinds.count("session_resumed") == 1
    assert result.shot == POSITIONS and len(rig.frames()) == POSITIONS


def test_abort_while_paused_stops_resumably(rig: Rig) -> None:
    sessions: list[Any] = []

    def on_state(state: State) -> None:
        if state is State.PAUSED:
            threading.Timer(0.1, sessions[0].abort).start()

    with pytest.raises(SessionStopped) as stopped:
        rig.shoot(
            on_shot=lambda shot: sessions[0].pause() if shot.index == 3 else None,
            on_session=sessions.append,
            on_state=on_state,
        )
    assert stopped.value.outcome == "aborted" and len(rig.frames()) == 3
    result = rig.resume()
    assert (result.shot, result.restacked) == (POSITIONS - 3, 3)


def test_stop_now_stops_the_rail_mid_move_and_the_session_with_it(rig: Rig) -> None:
    """Esc in the TUI: the move under way is cut short, no shot is taken there."""
    rig.rail.settings = rig.profile.motion_settings()
    sessions: list[Any] = []
    slow = RailSection(protocol="grbl", speed_mm_s=0.2, settle_s=0.0)  # 160 um takes 0.8 s
    rig.rail.close()
    rig.rail = Rail(make_driver(slow, rig.sim.port), Profile(name="x", rail=slow).motion_settings())
    rig.rail.connect()

    def on_shot(shot: Any) -> None:
        if shot.index == 2:
            threading.Timer(0.3, sessions[0].stop_now).start()

    with pytest.raises(SessionStopped) as stopped:
        rig.shoot(on_shot=on_shot, on_session=sessions.append)
    assert stopped.value.outcome == "aborted"
    assert len(rig.frames()) == 2
    here = rig.sim.carriage_um()
    assert 160.0 < here < 320.0  # stopped between shot 2's and shot 3's positions
    assert rig.rail.position_um() == pytest.approx(here, abs=4.0)  # and it says so
    assert "fault" not in [e.type for e in rig.events()]  # asked for: not a fault


def test_a_camera_fault_is_retried_once_then_the_run_goes_on(rig: Rig) -> None:
    camera = Failing(rig.camera, {3}, CameraError("the camera did not answer"))
    result = rig.shoot(camera=camera)
    assert result.shot == POSITIONS and len(rig.frames()) == POSITIONS
    events = rig.events()
    fault = next(e for e in events if e.type == "fault")
    decision = next(e for e in events if e.type == "decision")
    assert (fault["index"], fault["kind"], decision["choice"]) == (3, "camera", "retry")
    assert decision["by"] == "policy"
    same_as_offline(rig, result)


@pytest.mark.parametrize("rig", [{"on_fault": "skip"}], indirect=True)
def test_policy_skip_leaves_a_failing_shot_out_and_a_resume_does_not_retake_it(rig: Rig) -> None:
    camera = Failing(rig.camera, {3, 4}, CameraError("the camera did not answer"))
    result = rig.shoot(camera=camera)
    assert result.shot == POSITIONS - 1
    assert not any(name.startswith("0003_") for name in rig.frames())
    choices = [e["choice"] for e in rig.events() if e.type == "decision"]
    assert choices == ["retry", "skip"]
    state = rig.journal.state()
    assert state.skipped == {3} and next_missing(PLANNED, state) == []


@pytest.mark.parametrize("rig", [{"on_fault": "stop"}], indirect=True)
def test_policy_stop_stops_at_the_first_fault_resumably(rig: Rig) -> None:
    camera = Failing(rig.camera, {2}, CameraError("the camera did not answer"))
    with pytest.raises(SessionStopped, match="shot 2 failed: the camera did not answer") as e:
        rig.shoot(camera=camera)
    assert e.value.outcome == "failed" and rig.frames()[0].startswith("0001_")
    assert rig.resume().shot == POSITIONS - 1


def test_an_operator_decision_is_journaled_as_the_operators(rig: Rig) -> None:
    asked: list[ShotFault] = []

    def operator(fault: ShotFault) -> str:
        asked.append(fault)
        return "skip"

    camera = Failing(rig.camera, {2}, CameraError("lens cap on?"))
    rig.shoot(camera=camera, decide=operator, decided_by="operator")
    assert [(f.index, f.kind, f.attempt) for f in asked] == [(2, "camera", 1)]
    assert asked[0].choices == ("retry", "skip", "abort")
    assert [e["by"] for e in rig.events() if e.type == "decision"] == ["operator"]


def test_a_disk_running_full_stops_between_shots_and_the_session_resumes(rig: Rig) -> None:
    plenty, shots = 10**12, []
    result_free = [plenty]

    def on_shot(shot: Any) -> None:
        shots.append(shot)
        if shot.index == 3:
            result_free[0] = 50 * 1024 * 1024  # less than a shot and the margin

    with pytest.raises(SessionStopped, match="full") as stopped:
        rig.shoot(on_shot=on_shot, free_bytes=lambda path: result_free[0])
    assert stopped.value.outcome == "disk" and len(rig.frames()) == 3
    fault = next(e for e in rig.events() if e.type == "fault")
    assert fault["kind"] == "disk" and "free space, then resume" in fault["message"]
    result = rig.resume(free_bytes=lambda path: plenty)
    assert (result.shot, result.restacked) == (3, 3) and len(rig.frames()) == POSITIONS
    same_as_offline(rig, result)


def test_a_download_failing_for_space_stops_as_a_full_disk_not_a_camera_fault(rig: Rig) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    error = CameraError("could not save DSC_0002.JPG: free disk space")
    error.__cause__ = full
    with pytest.raises(SessionStopped) as stopped:
        rig.shoot(camera=Failing(rig.camera, {2}, error))
    assert stopped.value.outcome == "disk"
    assert [e["kind"] for e in rig.events() if e.type == "fault"] == ["disk"]


def test_a_cable_pulled_mid_move_and_put_back_carries_on_from_that_shot(rig: Rig) -> None:
    """The operator plugs the cable back in and answers retry: the link is opened again, the
    controller (powered on its own) kept its position, the shot is taken, the run goes on."""
    asked: list[ShotFault] = []

    def operator(fault: ShotFault) -> str:
        asked.append(fault)
        rig.sim.replug()
        return "retry"

    def on_shot(shot: Any) -> None:
        if shot.index == 3:
            assert rig.sim.emulator is not None
            rig.sim.emulator.faults.disconnect_after_s = 0.005  # during the next move

    result = rig.shoot(on_shot=on_shot, decide=operator)
    assert [(f.index, f.kind) for f in asked] == [(4, "rail")]
    assert "lost the connection" in asked[0].message
    kinds = [e.type for e in rig.events()]
    assert "rail_reconnected" in kinds
    assert result.shot == POSITIONS and len(rig.frames()) == POSITIONS
    reached = {e["index"]: e["position_um"] for e in rig.events() if e.type == "position_reached"}
    assert [reached[i + 1] for i in range(POSITIONS)] == pytest.approx(PLANNED, abs=4.0)
    same_as_offline(rig, result)


def test_a_cable_pulled_and_back_only_later_resumes_every_position_once(rig: Rig) -> None:
    """Headless: the retry finds no port, the run stops resumably; with the cable back, the
    resume shoots what is missing, each position once, and stacks the same as offline."""

    def on_shot(shot: Any) -> None:
        if shot.index == 2:
            rig.sim.unplug()

    with pytest.raises(SessionStopped) as stopped:
        rig.shoot(on_shot=on_shot)
    assert stopped.value.outcome == "failed" and len(rig.frames()) == 2
    rig.sim.replug()
    rig.rail.close()
    rig.rail = rig.connect()
    assert rig.rail.referenced  # the controller kept power: the zero still holds
    result = rig.resume()
    assert (result.shot, result.restacked) == (POSITIONS - 2, 2)
    names = rig.frames()
    assert [n[:4] for n in names] == [f"{i:04d}" for i in range(1, POSITIONS + 1)]
    saved = [e["name"] for e in rig.events() if e.type == "file_saved"]
    assert sorted(saved) == names  # each saved once, none lost
    same_as_offline(rig, result)


def test_a_rail_that_comes_back_restarted_pauses_the_run_for_the_operator(rig: Rig) -> None:
    def back_restarted(fault: ShotFault) -> str:
        if fault.kind == "rail":
            assert rig.sim.emulator is not None
            rig.sim.replug()
            rig.sim.emulator.hardware_reset()  # USB-powered board: replugging restarts it
            return "retry"
        return "abort"  # headless: nobody to re-reference it

    def on_shot(shot: Any) -> None:
        if shot.index == 2:
            rig.sim.unplug()

    with pytest.raises(SessionStopped, match="not referenced") as stopped:
        rig.shoot(on_shot=on_shot, decide=back_restarted)
    assert stopped.value.outcome == "paused" and len(rig.frames()) == 2
    kinds = [e["kind"] for e in rig.events() if e.type == "fault"]
    assert kinds == ["rail", "rail restarted"]


@pytest.mark.parametrize("rig", [{"shots_per_position": 2}], indirect=True)
def test_several_shots_per_position_all_reach_the_stack(rig: Rig) -> None:
    result = rig.shoot()
    names = rig.frames()
    assert len(names) == 2 * POSITIONS and result.shot == 2 * POSITIONS
    positions = [n.split("_", 1)[1] for n in names]
    assert positions[0::2] == positions[1::2]  # pairs at one position
    assert len(result.outcome.result.accepted) == 2 * POSITIONS
    same_as_offline(rig, result)


def test_the_folder_holds_the_frames_and_nothing_else_after_faults(rig: Rig) -> None:
    camera = Failing(rig.camera, {2}, CameraError("the camera did not answer"))
    rig.shoot(camera=camera)
    incoming = SessionFolder(rig.folder.path).incoming
    assert not incoming.exists() or not any(incoming.iterdir())
