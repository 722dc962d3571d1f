"""Modal dialogs: a yes/no question, a choice from a list, a failed shot's retry / skip /
abort, the key help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static

from rig.tui import messages as msg


class Confirm(ModalScreen[bool]):
    """A question with two answers; Esc means no."""

    BINDINGS = [Binding("escape", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button(f"{self.no} (Esc)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class FaultDialog(ModalScreen[str]):
    """A shot failed: the operator picks what happens to it (the run waits)."""

    BINDINGS = [
        Binding("r", "choose('retry')", "Retry"),
        Binding("s", "choose('skip')", "Skip"),
        Binding("a", "choose('abort')", "Abort"),
    ]

    def __init__(self, fault: msg.FaultAsked) -> None:
        super().__init__()
        self.fault = fault

    def compose(self) -> ComposeResult:
        f = self.fault
        with Vertical(classes="dialog"):
            yield Static(f"Shot {f.index} failed ({f.kind})", classes="title")
            yield Static(f.message, classes="question")
            with Horizontal(classes="buttons"):
                for choice in f.choices:
                    yield Button(f"{choice.capitalize()} ({choice[0]})", id=choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(str(event.button.id))

    def action_choose(self, choice: str) -> None:
        if choice in self.fault.choices:
            self.fault.answer(choice)
            self.dismiss(choice)


class Help(ModalScreen[None]):
    """Every key of the screen below and of the app, with what it does."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static("Keys", classes="title")
            yield Static("\n".join(self.lines))
            yield Static("Esc closes this.", classes="hint")


class Choose(ModalScreen[str | None]):
    """Pick one of ``options`` (Enter), or none (Esc)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, options: list[str], current: str | None = None) -> None:
        super().__init__()
        self.title_text, self.options, self.current = title, options, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="title")
            yield OptionList(*self.options, id="options")
            yield Static("Enter picks, Esc cancels", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one("#options", OptionList)
        at = self.options.index(self.current) if self.current in self.options else 0
        options.highlighted = at if self.options else None
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.options[event.option_index])
