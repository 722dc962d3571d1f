"""The Profiles screen driven as an operator drives it, in a small host app (no rig needed).

conftest points STACKRIG_HOME at a fresh folder per test, so user profiles land there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from rig import profiles
from rig.errors import ProfileError
from rig.profiles import Profile, find_profile, load_profile, save_profile, with_overrides
from rig.tui.screens.dialogs import Confirm
from rig.tui.screens.profiles import (
    BY_PATH,
    FIELDS,
    NamePrompt,
    ProfileEditor,
    ProfilesScreen,
    check_texts,
    from_text,
    texts_of,
    to_text,
)

SIZE = (80, 24)


class Host(App[None]):
    """Holds the profile in use, as StackrigApp does."""

    def __init__(self, profile: Profile, path: Path | None = None) -> None:
        super().__init__()
        self.profile, self.path = profile, path

    def on_mount(self) -> None:
        self.push_screen(ProfilesScreen(self.profile, self.path))


class HostThatSwitches(Host):
    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self.used: list[Profile] = []

    def use_profile(self, profile: Profile, path: Path | None = None) -> None:
        self.used.append(profile)
        self.profile = profile


def simulated() -> Profile:
    return load_profile(find_profile("simulated"))


def drive(app: Host, steps: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await steps(pilot)

    asyncio.run(go())


def text(app: App[Any], selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


async def select(pilot: Pilot[None], name: str) -> ProfilesScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ProfilesScreen)
    index = [r.entry.name for r in screen.rows].index(name)
    screen.query_one("#pf-table", DataTable).move_cursor(row=index)
    await pilot.pause()
    return screen


async def edit(pilot: Pilot[None], name: str) -> ProfileEditor:
    await select(pilot, name)
    await pilot.press("e")
    await pilot.pause()
    editor = pilot.app.screen
    assert isinstance(editor, ProfileEditor)
    return editor


async def set_field(pilot: Pilot[None], path: str, value: str) -> None:
    pilot.app.screen.query_one(f"#{BY_PATH[path].widget_id}", Input).value = value
    await pilot.pause()


async def answer_name(pilot: Pilot[None], name: str) -> None:
    await pilot.pause()
    prompt = pilot.app.screen
    assert isinstance(prompt, NamePrompt)
    prompt.query_one("#name", Input).value = name
    await pilot.press("enter")
    await pilot.pause()


def schema_line(key: str, value: Any) -> str:
    """The schema's own message for one bad value, without the file name in front."""
    with pytest.raises(ProfileError) as caught:
        with_overrides(simulated(), {key: value}, "x.toml")
    (line,) = str(caught.value).splitlines()
    return line.removeprefix("x.toml: ")


def user_copy(name: str) -> Path:
    target = profiles.user_path(name)
    save_profile(simulated(), target)
    return target


# -- the text a field shows and what it stands for ---------------------------------------------


def test_every_key_round_trips_through_its_field_text() -> None:
    texts, dropped = texts_of(profiles.profile_to_dict(simulated()))
    assert not dropped
    checked = check_texts(texts, "simulated.toml")
    assert checked.profile is not None and not checked.problems
    assert profiles.profile_to_dict(checked.profile) == profiles.profile_to_dict(simulated())
    for field in FIELDS:  # defaults too ("" and None show as an empty field: left out)
        shown = to_text(field, field.default)
        if shown:
            assert from_text(field, shown) == field.default


def test_a_problem_lands_under_its_field_in_the_schemas_words() -> None:
    texts, _ = texts_of(profiles.profile_to_dict(simulated()))
    texts |= {"rail.speed_mm_s": "fast", "camera.settings": "{ iso = 100 }", "name": ""}
    checked = check_texts(texts, "simulated.toml")
    assert checked.profile is None
    assert checked.problems["rail.speed_mm_s"] == [schema_line("rail.speed_mm_s", "fast")]
    assert checked.problems["camera.settings"] == [
        'camera.settings.iso = 100: must be a string in quotes, e.g. "100"'
    ]
    assert checked.problems["name"] == ['name = "": must not be empty: give the profile a name']


# -- the screen ---------------------------------------------------------------------------------


def test_the_list_shows_the_shipped_profiles_and_the_one_in_use() -> None:
    shipped = sorted(p.stem for p in profiles.shipped_dir().glob("*.toml"))

    async def steps(pilot: Pilot[None]) -> None:
        screen = await select(pilot, "simulated")
        assert sorted(r.entry.name for r in screen.rows) == shipped
        table = screen.query_one("#pf-table", DataTable)
        row = table.get_row_at(table.cursor_row)
        assert row == ["*", "simulated", "shipped", "in use"]
        assert "shipped with stackrig, read-only" in text(pilot.app, "#pf-info")
        assert "[rail]" in text(pilot.app, "#pf-text")  # the file itself, brackets and all
        assert 'protocol = "grbl"' in text(pilot.app, "#pf-text")
        await select(pilot, "sangaboard-20x")
        assert 'protocol = "sangaboard"' in text(pilot.app, "#pf-text")

    drive(Host(simulated()), steps)


def test_an_invalid_value_shows_the_schemas_message_next_to_it_and_is_not_saved() -> None:
    path = user_copy("bench")
    before = path.read_bytes()

    async def steps(pilot: Pilot[None]) -> None:
        editor = await edit(pilot, "bench")
        await set_field(pilot, "rail.speed_mm_s", "500")
        expected = schema_line("rail.speed_mm_s", 500)
        assert expected == "rail.speed_mm_s = 500: must be <= 200"
        assert editor.problem_text("rail.speed_mm_s") == f"! {expected}"
        assert editor.problem_text("rail.settle_s") == ""
        assert "1 problem" in text(pilot.app, "#pe-status")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.screen is editor  # nothing asked, nothing saved
        await set_field(pilot, "rail.speed_mm_s", "fast")
        assert (
            editor.problem_text("rail.speed_mm_s") == '! rail.speed_mm_s = "fast": must be a number'
        )

    drive(Host(simulated()), steps)
    assert path.read_bytes() == before


def test_a_valid_edit_of_a_user_profile_is_saved_in_place() -> None:
    path = user_copy("bench")

    async def steps(pilot: Pilot[None]) -> None:
        await edit(pilot, "bench")
        await set_field(pilot, "rail.speed_mm_s", "5")
        await set_field(pilot, "plan.step_um", "")  # empty: the key is left out
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "no changes" in text(pilot.app, "#pe-status")
        await pilot.press("escape")  # nothing unsaved: no question
        await pilot.pause()
        assert isinstance(pilot.app.screen, ProfilesScreen)

    drive(Host(simulated()), steps)
    saved = load_profile(path)
    assert saved.rail.speed_mm_s == 5.0 and saved.plan.step_um is None
    assert path.with_name("bench.toml.bak").is_file()


def test_a_shipped_profile_is_saved_as_a_user_copy_and_never_written() -> None:
    shipped = profiles.shipped_dir() / "simulated.toml"
    before = (shipped.read_bytes(), shipped.stat().st_mtime_ns)

    async def steps(pilot: Pilot[None]) -> None:
        editor = await edit(pilot, "simulated")
        await set_field(pilot, "rail.speed_mm_s", "7")
        await pilot.press("ctrl+s")
        await answer_name(pilot, "my sim")
        assert pilot.app.screen is editor and not editor.entry.shipped
        assert editor.entry.path == profiles.user_path("my-sim")
        await pilot.press("escape")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, ProfilesScreen)
        chosen = screen.selected()
        assert chosen is not None and chosen.entry.path == profiles.user_path("my-sim")

    drive(Host(simulated()), steps)
    copy = load_profile(profiles.user_path("my-sim"))
    assert copy.rail.speed_mm_s == 7.0 and copy.name == "my sim"
    assert (shipped.read_bytes(), shipped.stat().st_mtime_ns) == before


def test_leaving_with_unsaved_edits_asks_first() -> None:
    path = user_copy("bench")
    before = path.read_bytes()

    async def steps(pilot: Pilot[None]) -> None:
        editor = await edit(pilot, "bench")
        await set_field(pilot, "optics.magnification", "2")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(pilot.app.screen, Confirm)
        await pilot.press("escape")  # stay
        await pilot.pause()
        assert pilot.app.screen is editor
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("y")  # leave
        await pilot.pause()
        assert isinstance(pilot.app.screen, ProfilesScreen)

    drive(Host(simulated()), steps)
    assert path.read_bytes() == before


def test_saving_the_setup_in_use_under_a_taken_name_asks_first() -> None:
    path = user_copy("bench")
    before = path.read_bytes()
    in_use = with_overrides(simulated(), {"rail.speed_mm_s": 3.0})  # changed this session

    async def steps(pilot: Pilot[None]) -> None:
        screen = await select(pilot, "simulated")
        assert "in use, changed" in text(pilot.app, "#pf-info")
        await pilot.press("s")
        await answer_name(pilot, "bench")
        assert isinstance(pilot.app.screen, Confirm)
        await pilot.press("escape")  # keep the old one
        await pilot.pause()
        assert path.read_bytes() == before
        await pilot.press("s")
        await answer_name(pilot, "bench")
        await pilot.press("y")
        await pilot.pause()
        assert pilot.app.screen is screen
        await pilot.press("s")
        await answer_name(pilot, "fresh")  # a new name: no question
        assert pilot.app.screen is screen

    drive(Host(in_use, find_profile("simulated")), steps)
    assert load_profile(path).rail.speed_mm_s == 3.0
    assert load_profile(profiles.user_path("fresh")).rail.speed_mm_s == 3.0


def test_use_this_profile_goes_to_the_app_only_when_it_can_switch() -> None:
    async def steps(pilot: Pilot[None]) -> None:
        screen = await select(pilot, "sangaboard-20x")
        await pilot.press("u")
        await pilot.pause()
        app = pilot.app
        if isinstance(app, HostThatSwitches):
            assert [p.name for p in app.used] == ["20x objective on the Sangaboard stage"]
            assert screen.in_use is not None
            assert screen.rows[screen.in_use].entry.name == "sangaboard-20x"
        else:
            assert screen.rows[screen.in_use or 0].entry.name == "simulated"

    drive(Host(simulated()), steps)
    drive(HostThatSwitches(simulated()), steps)


def test_an_invalid_user_file_opens_with_its_problems_under_the_fields() -> None:
    path = profiles.user_path("broken")
    text_in = (profiles.shipped_dir() / "simulated.toml").read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_in.replace("speed_mm_s = 20.0", "speed_mm_s = -1"), encoding="utf-8")

    async def steps(pilot: Pilot[None]) -> None:
        screen = await select(pilot, "broken")
        assert screen.rows[0].loaded is None
        assert "not valid" in text(pilot.app, "#pf-info")
        editor = await edit(pilot, "broken")
        assert editor.problem_text("rail.speed_mm_s") == "! rail.speed_mm_s = -1: must be > 0"
        await set_field(pilot, "rail.speed_mm_s", "20")
        await pilot.press("ctrl+s")
        await pilot.pause()

    drive(Host(simulated()), steps)
    assert load_profile(path).rail.speed_mm_s == 20.0
