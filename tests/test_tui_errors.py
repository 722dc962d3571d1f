"""Bad things on disk reach the operator as notifications; the app goes on (no traceback)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rig.profiles import find_profile, load_profile
from rig.session.index import list_sessions
from rig.session.plan import Plan
from rig.session.run import new_session
from rig.tui.screens.dialogs import Choose
from rig.tui.screens.sessions import SessionsScreen
from tests.test_tui import SIZE, from_the_rig, simulated_app, until


def broken_sessions(root: Path) -> Path:
    """One session whose files are garbage; one with no frames at all (returned)."""
    bad = root / "2026-01-01_100000_garbage"
    bad.mkdir(parents=True)
    (bad / "session.toml").write_text("this is [not toml")
    (bad / "journal.jsonl").write_text('{"type": 5}\n')
    profile = load_profile(find_profile("simulated"))
    folder, journal = new_session(profile, Plan.from_start_end_step(0.0, 400.0, 100.0), root)
    journal.close()
    return folder.path


def test_unreadable_sessions_are_listed_as_such_and_a_failed_re_stack_is_told(
    tmp_path: Path,
) -> None:
    root = tmp_path / "captures"
    empty = broken_sessions(root)
    summaries = {s.path: s for s in list_sessions(root)}
    garbage = summaries[root / "2026-01-01_100000_garbage"]
    assert garbage.outcome == "unreadable" and garbage.problem
    assert summaries[empty].resumable

    async def drive() -> None:
        app = simulated_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await from_the_rig(app, pilot, "S", SessionsScreen)
            assert isinstance(screen, SessionsScreen)
            table = screen.query_one("#sessions")
            rows = [s.path for s in screen.sessions]
            table.move_cursor(row=rows.index(root / "2026-01-01_100000_garbage"))
            await pilot.pause()
            assert "unreadable" in str(screen.query_one("#sessions").get_row_at(table.cursor_row))
            await pilot.press("t")  # an unreadable session is not offered for re-stacking
            await pilot.pause()
            assert any("pick a session" in n.message for n in app._notifications)
            # A session with no frames: the background re-stack fails and says so.
            table.move_cursor(row=rows.index(empty))
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, Choose), "the method list")
            app.screen.dismiss("weighted")
            told = lambda: [n for n in app._notifications if n.title == "re-stack failed"]  # noqa: E731
            await until(pilot, lambda: bool(told()), "the re-stack's failure")
            assert "no images found" in told()[-1].message
            assert isinstance(app.screen, SessionsScreen)  # the app goes on
            await pilot.press("escape")
            await pilot.press("q")

    asyncio.run(drive())
