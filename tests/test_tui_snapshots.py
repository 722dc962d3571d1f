"""Snapshots of each screen at a fixed size on the simulated rig, pictures drawn with half
blocks (pinned, so the terminal does not decide). Update after a deliberate change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the SVGs it writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rig.profiles import find_profile, load_profile
from rig.simrig.subject import Subject, SubjectSettings
from rig.tui import messages as msg
from rig.tui.app import StackrigApp
from rig.tui.screens.run import RunScreen
from stacking.engine import StackEngine, StackSettings

SIZE = (100, 34)
ROOT = Path("/nonexistent/stackrig-snapshots")  # never written: nothing is shot here


def app() -> StackrigApp:
    return StackrigApp(load_profile(find_profile("simulated")), "all", ROOT, images="halfcell")


def connected(then: list[str]) -> Callable[[Any], Awaitable[None]]:
    """Wait until the rig is connected and its live view and camera are shown, then press."""

    async def run_before(pilot: Any) -> None:
        a = pilot.app
        for _ in range(600):
            screen = a.rig_screen
            if screen.here is not None and screen.camera_settings:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)  # the live view's first frame
        for key in then:
            await pilot.press(key)
            await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize(
    "keys",
    [[], ["question_mark"], ["p"], ["S"], ["P"]],
    ids=["rig", "help", "plan", "sessions", "profiles"],
)
def test_screen(snap_compare: Any, keys: list[str]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=connected(keys))


def finished_run(keys: list[str]) -> Callable[[Any], Awaitable[None]]:
    """The Run screen as the owner thread leaves it after an 8-shot shoot of the simulated
    subject: its own messages, with fixed times and folder (a real shoot's vary), the stack and
    the coverage map made by the engine from the subject's frames."""

    async def run_before(pilot: Any) -> None:
        await connected([])(pilot)
        a = pilot.app
        a.run_screen = RunScreen(a.images)
        await a.switch_screen(a.run_screen)
        folder = "/captures/2026-12-01_120000_simulated-rig"
        subject = Subject(SubjectSettings(width=320, height=240, depth_um=2000.0, max_blur=0.03))
        engine = StackEngine(StackSettings(align="none"))  # no iterative fit: same pixels anywhere
        posts: list[Any] = [msg.SessionStarted(folder, 8), msg.StateChanged("running")]
        for k, z in enumerate(np.linspace(-300.0, 2300.0, 8)):
            name = f"{k + 1:04d}_z{z:+.1f}um.jpg"
            report = engine.add(subject.frame(float(z), k), name)
            posts.append(msg.ShotSaved(k + 1, float(z), [name], 0.45))
            posts.append(msg.FrameStacked(name, True, "", report.sharpness, report.confidence))
        c = engine.coverage()
        posts += [
            msg.StateChanged("finishing"),
            msg.StackPreview(engine.snapshot(), 8),
            msg.CoverageNow(c.verdict, c.covered, engine.coverage_map()),
            msg.SessionEnded(
                "done", f"stacked 8 frames -> {folder}/stack.tif (1.20 s after the last frame)",
                folder, [], {},
            ),
        ]  # fmt: skip
        for m in posts:
            a.post_message(m)
        await pilot.pause(0.5)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize("keys", [[], ["m"]], ids=["run", "run-coverage-map"])
def test_run_screen(snap_compare: Any, keys: list[str]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=finished_run(keys))
