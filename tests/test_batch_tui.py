"""The Sessions screen re-stacks the selected sessions through the batch, in the background."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rig.cli import main
from rig.tui.screens.dialogs import Choose
from rig.tui.screens.sessions import SessionsScreen
from tests.test_tui import SIZE, from_the_rig, simulated_app, until


def test_selected_sessions_are_re_stacked_together(tmp_path: Path) -> None:
    out = tmp_path / "captures"
    for _ in range(3):
        assert main(["capture", "--simulate", "--count", "4", "--output", str(out), "-q"]) == 0
    sessions = sorted(out.iterdir(), reverse=True)  # as listed: newest first
    assert len(sessions) == 3

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await from_the_rig(app, pilot, "S", SessionsScreen)
            assert isinstance(screen, SessionsScreen)
            await pilot.press("space", "down", "space")  # the first and the third
            assert screen.selected == {sessions[0], sessions[2]}
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, Choose), "the methods")
            app.screen.dismiss("weighted")
            done = lambda: all((sessions[i] / "stack-weighted.tif").is_file() for i in (0, 2))  # noqa: E731
            await until(pilot, done, "both results")
            await until(pilot, lambda: any("re-stacked" in n.message for n in app._notifications),
                        "the summary")  # fmt: skip
            await pilot.press("escape", "q")

    asyncio.run(drive())
    assert not (sessions[1] / "stack-weighted.tif").exists()  # not selected: left alone
