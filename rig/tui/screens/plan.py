"""The Plan screen: start, end and step (or count), with the depth of field, the estimate and
the warnings before they hurt; Enter starts the shoot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Label, Static

from rig.errors import RigError
from rig.profiles import Profile, find_profile, list_profiles, load_profile
from rig.session.optics import depth_of_field
from rig.session.plan import Plan, disk_shortfall, estimate
from rig.tui.screens.dialogs import Choose
from rig.tui.widgets.footer import Footer


class PlanScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back to the rig"),
        Binding("ctrl+s", "start", "Start the shoot"),
        Binding("ctrl+o", "other_profile", "Other profile"),
    ]

    def __init__(
        self,
        profile: Profile,
        marks: dict[str, float],
        here_um: float | None,
        referenced: bool = True,
        captures_root: Path | None = None,
    ) -> None:
        super().__init__()
        self.profile, self.marks, self.here_um = profile, marks, here_um
        self.referenced, self.captures_root = referenced, captures_root
        self.plan: Plan | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="plan-form"):
            yield Static(_profile_line(self.profile), id="profile")
            yield Static(self._optics(), id="optics")
            for key, label, value in self._fields():
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input(value, id=key, placeholder="-")
            yield Static("", id="estimate")
            yield Static("", id="warnings")
            yield Button("Start the shoot (ctrl+s)", id="go", variant="success")
        yield Footer()

    def _fields(self) -> list[tuple[str, str, str]]:
        start = self.marks.get("start", self.here_um)
        end = self.marks.get("end")
        step = self.profile.plan.step_um

        def text(v: float | None) -> str:
            return "" if v is None else f"{v:g}"

        return [
            ("start", "start um", text(start)),
            ("end", "end um", text(end)),
            ("step", "step um", text(step)),
            ("count", "count", ""),
        ]

    def _optics(self) -> str:
        try:
            dof = depth_of_field(self.profile.optics)
        except ValueError as exc:
            return f"optics: {exc}"
        return f"depth of field {dof.um:.4g} um: suggested step {dof.step_um:.4g} um"

    def on_mount(self) -> None:
        self._replan()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._replan()

    def _number(self, key: str) -> float | None:
        text = self.query_one(f"#{key}", Input).value.strip()
        return float(text) if text else None

    def _replan(self) -> None:
        estimate_view = self.query_one("#estimate", Static)
        warnings_view = self.query_one("#warnings", Static)
        self.plan = None
        try:
            start, end = self._number("start"), self._number("end")
            step, count = self._number("step"), self._number("count")
            self.plan = Plan.from_profile(
                self.profile,
                start_um=start,
                end_um=end,
                step_um=step if count is None else None,
                count=int(count) if count is not None else None,
                here_um=self.here_um,
            )
        except (ValueError, RigError) as exc:
            estimate_view.update(f"no plan yet: {exc}")
            warnings_view.update("")
            return
        e = estimate(self.plan, self.profile, here_um=self.here_um)
        p = self.plan
        estimate_view.update(
            f"{p.frames} frames, {p.first_um:.1f} -> {p.last_um:.1f} um every "
            f"{p.step_um:.4g} um; about {_duration(e.duration_s)}, "
            f"{e.disk_bytes / 1e9:.2f} GB ({e.frame_source})"
        )
        warnings = list(e.warnings)
        if not self.referenced:
            warnings.append("the rail is not referenced: zero it (z) or home it before shooting")
        if self.captures_root is not None:
            short = disk_shortfall(self.plan, self.profile, self.captures_root)
            if short:
                warnings.append(f"{short}: free space, or shoot fewer frames")
        warnings_view.update("\n".join(f"! {w}" for w in warnings))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self.action_start()

    def action_other_profile(self) -> None:
        app: Any = self.app
        names = list(dict.fromkeys(entry.name for entry in list_profiles()))  # user ones first
        current = app.profile_path.stem if app.profile_path is not None else None

        def chosen(name: str | None) -> None:
            if name is None or name == current:
                return
            try:
                profile = load_profile(find_profile(name))
            except RigError as exc:
                self.notify(str(exc), title="that profile cannot be used", severity="error")
                return
            if app.use_profile(profile, find_profile(name)):
                self.profile = profile
                self.query_one("#profile", Static).update(
                    f"profile: {profile.name} (ctrl+o: another)"
                )
                self.query_one("#optics", Static).update(self._optics())
                self._replan()

        self.app.push_screen(Choose("Profile", names, current), chosen)

    def action_start(self) -> None:
        if self.plan is None:
            self.notify("the plan is not complete: see the line above", severity="error")
            return
        app: Any = self.app
        app.start_shoot(self.plan)


def _profile_line(profile: Profile) -> str:
    return f"profile: {profile.name} (ctrl+o: another)"


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"
