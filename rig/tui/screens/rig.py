"""The Rig screen: where the focus is, what the camera sees, and the keys that move it.

Jog in fine and coarse steps (the plan's step and ten of them), mark the stack's start and end
at the current position, go back to either, zero, unlock; space or Esc stops motion at once.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, Static

from rig.tui import messages as msg
from rig.tui.screens.dialogs import Choose
from rig.tui.widgets.footer import Footer
from rig.tui.widgets.images import LiveView, Renderer


class RigScreen(Screen[None]):
    BINDINGS = [
        Binding("left", "jog(-1)", "Jog -"),
        Binding("right", "jog(1)", "Jog +"),
        Binding("shift+left,comma", "jog(-10)", "Coarse -", show=False),
        Binding("shift+right,full_stop", "jog(10)", "Coarse +", show=False),
        Binding("space,escape", "stop", "Stop"),
        Binding("s", "mark('start')", "Set start"),
        Binding("e", "mark('end')", "Set end"),
        Binding("g", "go('start')", "Go start", show=False),
        Binding("G", "go('end')", "Go end", show=False),
        Binding("z", "zero", "Zero"),
        Binding("u", "unlock", "Unlock", show=False),
        Binding("f", "peaking", "Peaking", show=False),
        Binding("l", "look", "Live view", show=False),
        Binding("p", "app.plan", "Plan"),
        Binding("S", "app.sessions", "Sessions"),
        Binding("P", "app.profiles", "Profiles"),
        Binding("c", "camera", "Camera settings"),
    ]

    def __init__(self, step_um: float, images: Renderer = "auto") -> None:
        super().__init__()
        self.step_um, self.images = step_um, images
        self.here: float | None = None
        self.referenced = False  # as the last status said
        self.marks: dict[str, float] = {}
        self.camera_settings: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            # What the operator needs at every size first: where the rail is and the keys
            # (STOP among them); what connecting said last, cut off first on a small terminal.
            with Vertical(id="rig-side"):
                yield Static("", id="rail")
                yield Static("", id="doctor")
                yield Static("start, end: not set yet (s, e)", id="marks")
                yield Static(self._keys(), id="jog-keys")
                yield Static("", id="camera")
                yield Static("connecting ...", id="devices")
            yield LiveView(renderer=self.images, id="live")
        yield Footer()

    def _keys(self) -> str:
        fine, coarse = self.step_um, 10 * self.step_um
        return (
            f"<- -> jog {fine:g} um; shift or , . jog {coarse:g} um\n"
            "s / e set start / end here; g / G go there\n"
            "z zero here, u unlock, f focus peaking\n"
            "space or Esc: STOP"
        )

    # -- what the owner thread said -------------------------------------------------------------

    def show_devices(self, connected: msg.Connected) -> None:
        lines = [*connected.said, connected.axis] if connected.axis else connected.said
        self.query_one("#devices", Static).update("\n".join(lines))
        self.query_one("#jog-keys", Static).update(self._keys())  # the profile's step

    def show_diagnosis(self, d: msg.Diagnosis) -> None:
        """A device missing or refused: what connecting said and what the doctor found."""
        lines = [f"the {d.device} is not connected: {d.error}", "stackrig doctor says:"]
        lines += d.findings or ["  nothing more to check: see the line above"]
        doctor = self.query_one("#doctor", Static)
        doctor.update("\n".join(lines))
        doctor.display = True
        self.query_one("#devices", Static).update("")  # no longer "connecting ..."

    def show_status(self, status: msg.RailStatus) -> None:
        self.here = status.position_um
        self.referenced = status.referenced
        at = "position unknown" if status.position_um is None else f"{status.position_um:.1f} um"
        text = f"rail: moving from {at}" if status.moving else f"rail: {at}, idle"
        if not status.referenced:
            text += ", NOT REFERENCED: zero (z) or home it"
        self.query_one("#rail", Static).update(text)

    def show_camera(self, state: msg.CameraState) -> None:
        self.camera_settings = state.settings
        lines = [f"camera: {state.summary}"]
        lines += [f"  {v.name} = {v.value}" + (" (fixed)" if v.readonly else "")
                  for v in state.settings]  # fmt: skip
        self.query_one("#camera", Static).update("\n".join([*lines, "  c changes them"]))

    def show_frame(self, frame: msg.LiveFrame) -> None:
        live = self.query_one("#live", LiveView)
        if frame.frame is None:
            live.show_nothing(frame.why or "no live view")
        else:
            where = "" if self.here is None else f"at {self.here:.1f} um"
            live.show(frame.frame, where)

    # -- keys -----------------------------------------------------------------------------------

    def action_jog(self, steps: int) -> None:
        self._owner().jog(steps * self.step_um)

    def action_stop(self) -> None:
        self._owner().stop()
        self.notify("stop sent", timeout=2)

    def action_mark(self, end: str) -> None:
        if self.here is None:
            self.notify("the position is not known yet", severity="warning")
            return
        self.marks[end] = self.here
        self.query_one("#marks", Static).update(
            "  ".join(f"{k} {v:.1f} um" for k, v in sorted(self.marks.items(), reverse=True))
        )

    def action_go(self, end: str) -> None:
        if end not in self.marks:
            self.notify(f"no {end} set yet: press {end[0]} at that position", severity="warning")
            return
        self._owner().move_to(self.marks[end])

    def action_zero(self) -> None:
        self._owner().set_zero()
        self.marks.clear()  # marks were relative to the old zero
        self.query_one("#marks", Static).update("zeroed here: start and end cleared")

    def action_camera(self) -> None:
        settable = [v for v in self.camera_settings if not v.readonly and v.choices]
        if not settable:
            self.notify("the camera offers none of these settings to change", severity="warning")
            return
        by_line = {f"{v.name} = {v.value}": v for v in settable}

        def chosen_setting(line: str | None) -> None:
            if line is None:
                return
            v = by_line[line]

            def chosen_value(value: str | None) -> None:
                if value is not None and value != v.value:
                    self._owner().set_camera(v.name, value)

            self.app.push_screen(Choose(v.label or v.name, list(v.choices), str(v.value)),
                                 chosen_value)  # fmt: skip

        self.app.push_screen(Choose("Camera setting", list(by_line)), chosen_setting)

    def action_unlock(self) -> None:
        self._owner().unlock()

    def action_peaking(self) -> None:
        live = self.query_one("#live", LiveView)
        live.peaking = not live.peaking
        self._owner().refresh()

    def action_look(self) -> None:
        self._owner().refresh()

    def _owner(self) -> Any:
        app: Any = self.app
        return app.owner
