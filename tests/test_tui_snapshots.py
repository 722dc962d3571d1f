"""Snapshots of each screen at a fixed size on the simulated rig, pictures drawn with half
blocks (pinned, so the terminal does not decide). Update after a deliberate change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the SVGs it writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from rig.profiles import find_profile, load_profile
from rig.tui.app import StackrigApp

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
    [[], ["question_mark"], ["p"], ["S"]],
    ids=["rig", "help", "plan", "sessions"],
)
def test_screen(snap_compare: Any, keys: list[str]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=connected(keys))
