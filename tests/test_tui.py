"""The terminal UI driven as an operator drives it (Textual's Pilot), on the simulated rig:
the GRBL emulator through the real driver, libgphoto2's virtual camera in its camera process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from rig.profiles import find_profile, load_profile
from rig.session.journal import read_journal
from rig.tui.app import StackrigApp
from rig.tui.screens.dialogs import Confirm
from rig.tui.screens.run import RunScreen

SIZE = (120, 40)


def simulated_app(tmp: Path) -> StackrigApp:
    profile = load_profile(find_profile("simulated"))
    return StackrigApp(profile, "all", tmp / "captures")


async def until(pilot: object, ok: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not ok():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def from_the_rig(app: StackrigApp, pilot: object, key: str, screen: type) -> object:
    """Once the rig is connected: press ``key`` and wait for ``screen`` to come up; it."""
    await until(pilot, lambda: app.rig_screen.here is not None, "the rail's position")
    await pilot.press(key)  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, screen), screen.__name__)
    return app.screen


def screen_text(app: StackrigApp) -> str:
    return "\n".join(
        str(getattr(w, "renderable", "") or getattr(w, "content", ""))
        for w in app.screen.query("Static")
    )


async def plan_and_start(app: StackrigApp, pilot: object, count: int) -> None:
    await until(pilot, lambda: app.rig_screen.here is not None, "the rail's position")
    await pilot.press("p")  # type: ignore[attr-defined]
    await until(pilot, lambda: app.screen.query("#count"), "the plan screen")
    await pilot.click("#count")  # type: ignore[attr-defined]
    await pilot.press(*str(count))  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
    assert f"{count} frames" in screen_text(app)
    await pilot.press("ctrl+s")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")


def session_folder(tmp: Path) -> Path:
    (folder,) = (tmp / "captures").iterdir()
    return folder


def test_a_simulated_shoot_from_the_plan_to_a_finished_stack(tmp_path: Path) -> None:
    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await plan_and_start(app, pilot, 6)
            run = app.screen
            assert isinstance(run, RunScreen)
            await until(pilot, lambda: run.finished, "the end of the shoot")
            text = screen_text(app)
            assert "session: done" in text and "stacked 6 frames" in text
            assert "coverage:" in text
            assert len(run.sharpness) == len(run.alignment) == 6  # the plots: one per frame
            assert not run.rejected
            assert run.map_picture is not None  # the final coverage map arrived
            await pilot.press("m")
            await pilot.pause()
            assert "coverage map: sharpest frame per place" in screen_text(app)
            await pilot.press("m")
            await pilot.pause()
            assert "the stack so far" in screen_text(app)
            await pilot.press("r")
            await until(pilot, lambda: app.screen is app.rig_screen, "the rig screen again")
            await pilot.press("q")
        folder = session_folder(tmp_path)
        assert len(list((folder / "frames").glob("*.jpg"))) == 6
        assert (folder / "stack.tif").is_file()
        events = read_journal(folder / "journal.jsonl")
        assert events[-1].type == "session_finished" and events[-1]["outcome"] == "done"

    asyncio.run(drive())


def test_pause_resume_then_abort_leaves_a_resumable_session(tmp_path: Path) -> None:
    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await plan_and_start(app, pilot, 30)
            run = app.screen
            assert isinstance(run, RunScreen)
            await until(pilot, lambda: run.done >= 2, "two shots")
            await pilot.press("p")
            await until(pilot, lambda: run.state == "paused", "the pause")
            paused_at = run.done
            await pilot.pause(0.5)
            assert run.done == paused_at  # nothing shot while paused
            await pilot.press("p")
            await until(pilot, lambda: run.state == "running", "the resume")
            await until(pilot, lambda: run.done > paused_at, "a shot after resuming")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, Confirm), "the abort question")
            await pilot.press("y")
            await until(pilot, lambda: run.finished, "the abort")
            assert "session: aborted" in screen_text(app)
            assert "capture --resume" in screen_text(app)
            await pilot.press("q")
        events = [e.type for e in read_journal(session_folder(tmp_path) / "journal.jsonl")]
        assert "session_paused" in events and "session_resumed" in events
        assert events[-1] == "session_finished"

    asyncio.run(drive())


@pytest.mark.parametrize("key", ["q", "ctrl+q"])
def test_quit_during_a_shoot_asks_first_and_stops_the_rail(tmp_path: Path, key: str) -> None:
    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await plan_and_start(app, pilot, 40)
            run = app.screen
            assert isinstance(run, RunScreen)
            await until(pilot, lambda: run.done >= 1, "a shot")
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, Confirm), "the quit question")
            await pilot.press("escape")  # no: the shoot goes on
            await until(pilot, lambda: app.screen is run, "the run screen again")
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, Confirm), "the quit question")
            await pilot.press("y")
        events = read_journal(session_folder(tmp_path) / "journal.jsonl")
        assert events[-1].type == "session_finished" and events[-1]["outcome"] == "aborted"

    asyncio.run(drive())


def test_a_rail_fault_mid_run_is_answered_with_retry(tmp_path: Path) -> None:
    """The rail's cable is pulled during a move: the run waits on the fault dialog; the
    operator plugs it back and presses r; the link is opened again and the run goes on."""
    from rig.tui.screens.dialogs import FaultDialog

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await plan_and_start(app, pilot, 8)
            run = app.screen
            assert isinstance(run, RunScreen)
            await until(pilot, lambda: run.done >= 2, "two shots")
            rig = app.owner.devices.simulated
            rig.emulator.faults.disconnect_after_s = 0.005  # during the next move
            await until(pilot, lambda: isinstance(app.screen, FaultDialog), "the fault dialog")
            dialog = app.screen
            assert isinstance(dialog, FaultDialog) and dialog.fault.kind == "rail"
            assert "lost the connection" in dialog.fault.message
            rig.replug()
            await pilot.press("r")
            await until(pilot, lambda: run.finished, "the end of the shoot")
            assert "session: done" in screen_text(app)
            await pilot.press("q")
        events = read_journal(session_folder(tmp_path) / "journal.jsonl")
        decisions = [(e["choice"], e["by"]) for e in events if e.type == "decision"]
        assert decisions == [("retry", "operator")]
        assert "rail_reconnected" in [e.type for e in events]
        frames = list((session_folder(tmp_path) / "frames").glob("*.jpg"))
        assert len(frames) == 8

    asyncio.run(drive())


def test_resume_an_interrupted_session_from_the_sessions_screen_then_extend_it(
    tmp_path: Path,
) -> None:
    from rig.tui.screens.sessions import SessionsScreen

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await plan_and_start(app, pilot, 30)
            run = app.screen
            assert isinstance(run, RunScreen)
            await until(pilot, lambda: run.done >= 2, "two shots")
            await pilot.press("a", "y")
            await until(pilot, lambda: run.finished, "the abort")
            await pilot.press("r")
            await until(pilot, lambda: app.screen is app.rig_screen, "the rig screen")
            await pilot.press("S")
            await until(pilot, lambda: isinstance(app.screen, SessionsScreen), "the sessions")
            sessions = app.screen
            assert isinstance(sessions, SessionsScreen)
            (only,) = sessions.sessions
            assert only.outcome == "aborted" and only.resumable and only.planned == 30
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            resumed = app.screen
            assert isinstance(resumed, RunScreen) and resumed is not run
            await until(pilot, lambda: resumed.finished, "the resumed shoot", timeout_s=120)
            assert "session: done" in screen_text(app)
            assert resumed.done == 30 - only.saved  # only the missing shots
            ended = resumed.ended_with
            assert ended is not None and ended.extend == {"last": ended.extend["last"]}
            await pilot.press("x")  # the verdict said the last end stops short
            await until(pilot, lambda: app.screen is not resumed, "the extension's run")
            extension = app.screen
            assert isinstance(extension, RunScreen)
            await until(pilot, lambda: extension.finished, "the extension", timeout_s=120)
            assert extension.done == ended.extend["last"]
            await pilot.press("q")
        names = sorted(p.name for p in (session_folder(tmp_path) / "frames").glob("*.jpg"))
        assert [int(n[:4]) for n in names] == list(range(1, len(names) + 1))  # each once
        assert len(names) == 30 + ended.extend["last"]

    asyncio.run(drive())


@pytest.mark.parametrize("no_color", [False, True])
def test_every_screen_reads_at_80x24_with_or_without_colour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_color: bool
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    from rig.tui.screens.plan import PlanScreen
    from rig.tui.screens.sessions import SessionsScreen

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.rig_screen.here is not None, "the rail's position")
            text = screen_text(app)
            assert "rail: 0.0 um, idle" in text and "STOP" in text
            assert "focus: grbl on the simulated controller" in text and "backlash" in text
            await pilot.press("question_mark")
            await pilot.pause()
            assert "Set start" in screen_text(app) and "Quit" in screen_text(app)
            await pilot.press("escape")
            commands = [c.title for c in app.get_system_commands(app.screen)]
            assert {"Plan", "Zero", "Set start", "Sessions", "Quit"} <= set(commands)
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan screen")
            assert "depth of field" in screen_text(app)
            await pilot.press("escape")
            await pilot.press("S")
            await until(pilot, lambda: isinstance(app.screen, SessionsScreen), "sessions")
            assert "no sessions yet" in screen_text(app)
            await pilot.press("escape", "q")

    asyncio.run(drive())


def test_a_camera_setting_is_changed_from_its_own_choices(tmp_path: Path) -> None:
    """The Rig screen lists the camera's settings; c, a setting, a value: the camera has it."""
    from rig.tui.screens.dialogs import Choose

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.rig_screen.camera_settings, "the camera's settings")
            assert "camera: Nikon DSC D750" in screen_text(app)
            assert "capturetarget = Internal RAM" in screen_text(app)
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, Choose), "the settings list")
            await pilot.press("down", "down", "enter")  # shutterspeed, f-number, capturetarget
            await until(pilot, lambda: "Capture Target" in screen_text(app), "its choices")
            await pilot.press("down", "enter")  # Memory card
            await until(
                pilot,
                lambda: "capturetarget = Memory card" in screen_text(app),
                "the camera's new value",
            )
            await pilot.press("q")

    asyncio.run(drive())


def test_the_profiles_screen_opens_from_the_rig_with_the_profile_in_use_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rig.tui.screens.profiles import ProfilesScreen

    monkeypatch.setenv("STACKRIG_HOME", str(tmp_path / "home"))

    async def drive() -> None:
        profile_path = find_profile("simulated")
        app = StackrigApp(load_profile(profile_path), "all", tmp_path, profile_path=profile_path)
        async with app.run_test(size=SIZE) as pilot:
            await from_the_rig(app, pilot, "P", ProfilesScreen)
            await pilot.pause(0.3)
            from textual.widgets import DataTable

            table = app.screen.query_one(DataTable)
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            in_use = [r for r in rows if any("in use" in c for c in r)]
            assert len(in_use) == 1 and any("simulated" in c.lower() for c in in_use[0])
            await pilot.press("escape", "q")

    asyncio.run(drive())


def test_a_session_is_re_stacked_with_another_method_in_the_background(tmp_path: Path) -> None:
    from rig.cli import main
    from rig.tui.screens.dialogs import Choose
    from rig.tui.screens.sessions import SessionsScreen

    out = tmp_path / "captures"
    assert main(["capture", "--simulate", "--count", "5", "--output", str(out), "-q"]) == 0
    (session,) = out.iterdir()

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await from_the_rig(app, pilot, "S", SessionsScreen)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, Choose), "the methods")
            await pilot.press("down", "enter")  # weighted
            await until(pilot, lambda: (session / "stack-weighted.tif").is_file(), "the result")
            await pilot.press("escape", "q")

    asyncio.run(drive())
    assert (session / "stack.tif").is_file()  # the session's own stack is left as it was


def test_the_plan_screen_warns_refuses_a_shoot_the_disk_cannot_hold_and_switches_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    from rig.tui.screens.dialogs import Choose
    from rig.tui.screens.plan import PlanScreen

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10**6))

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await from_the_rig(app, pilot, "p", PlanScreen)
            await pilot.click("#count")
            await pilot.press("9")
            await pilot.pause()
            text = screen_text(app)
            assert "9 frames" in text and "GB free: free space, or shoot fewer frames" in text
            assert "not referenced" not in text  # the simulated rail is zeroed at power-on
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            run = app.screen
            await until(pilot, lambda: run.finished, "the refusal")
            assert "session: refused" in screen_text(app) and "GB free" in screen_text(app)
            assert not (tmp_path / "captures").exists() or not any(
                (tmp_path / "captures").iterdir()
            )  # nothing was made
            await pilot.press("r")
            await until(pilot, lambda: app.screen is app.rig_screen, "the rig screen")
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan screen")
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, Choose), "the profile list")
            choose = app.screen
            assert "grbl-macro-mpe65" in choose.options
            choose.dismiss("grbl-macro-mpe65")
            await until(pilot, lambda: app.profile.name != "Simulated rig", "the other profile")
            assert f"profile: {app.profile.name}" in screen_text(app)
            await until(pilot, lambda: app.rig_screen.here is not None, "the new rig connected")
            await pilot.press("escape")
            await pilot.press("q")

    asyncio.run(drive())


def test_a_rail_that_cannot_be_opened_shows_what_the_doctor_finds(tmp_path: Path) -> None:
    profile = load_profile(find_profile("simulated"))
    profile.rail.port = str(tmp_path / "no-such-port")
    app = StackrigApp(profile, "camera", tmp_path / "captures")  # the rail is real here

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "doctor says" in screen_text(app), "the doctor's findings")
            text = screen_text(app)
            assert "the rail is not connected" in text
            assert f"FAIL rail: no grbl controller on {profile.rail.port}" in text
            assert "fix: connect and power the controller" in text
            await pilot.press("q")

    asyncio.run(drive())
