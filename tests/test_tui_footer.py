"""The footer forgets the keys it no longer shows (Textual's own keeps them: textual#6666)."""

from __future__ import annotations

import asyncio
import gc

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey

from rig.tui.widgets.footer import Footer


class Keys(Screen[None]):
    BINDINGS = [Binding("a", "noop", "A"), Binding("b", "noop", "B"), Binding("c", "noop", "C")]

    def __init__(self, footer: type[TextualFooter]) -> None:
        super().__init__()
        self.footer = footer

    def compose(self) -> ComposeResult:
        yield self.footer()


class Toggle(App[None]):
    BINDINGS = [Binding("t", "toggle", "Toggle")]

    def __init__(self, footer: type[TextualFooter]) -> None:
        super().__init__()
        self.footer = footer

    def on_mount(self) -> None:
        self.push_screen(Keys(self.footer))

    def action_toggle(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()
        else:
            self.push_screen(Keys(self.footer))


def live_footer_keys(footer: type[TextualFooter], toggles: int) -> int:
    """FooterKeys still in memory after ``toggles`` screen switches (each recomposes a footer)."""

    async def drive() -> int:
        app = Toggle(footer)
        async with app.run_test(size=(80, 10)) as pilot:
            for _ in range(toggles):
                await pilot.press("t")
                await pilot.pause()
            await pilot.pause(0.2)
            gc.collect()
            return sum(1 for o in gc.get_objects() if isinstance(o, FooterKey))

    return asyncio.run(drive())


def test_recomposed_footers_leave_no_keys_behind() -> None:
    shown = live_footer_keys(Footer, 2)
    after_many = live_footer_keys(Footer, 40)
    # Two footers of four keys each are on screen; a few more may wait for their removal.
    assert after_many <= shown + 8, (shown, after_many)


def test_textual_footer_still_leaks_so_the_fix_is_still_needed() -> None:
    # When this fails, Textual fixed #6666: drop rig/tui/widgets/footer.py.
    assert live_footer_keys(TextualFooter, 40) > live_footer_keys(TextualFooter, 2) + 40
