"""The stackrig app: the rig, the plan, the run, over one thread that owns the devices.

The app is a view: key presses become requests to :class:`~rig.tui.owner.RigOwner`, and what
the devices and the session do comes back as messages (``rig.tui.messages``), which the app
hands to the screen that shows it. Nothing here blocks on a device.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen

from rig.profiles import Profile
from rig.session.plan import Plan, step_for
from rig.tui import messages as msg
from rig.tui.owner import RigOwner
from rig.tui.screens.dialogs import Confirm, FaultDialog, Help
from rig.tui.screens.plan import PlanScreen
from rig.tui.screens.profiles import ProfilesScreen
from rig.tui.screens.rig import RigScreen
from rig.tui.screens.run import RunScreen
from rig.tui.screens.sessions import SessionsScreen
from rig.tui.widgets.images import Renderer


class StackrigApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "stackrig"
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("q,ctrl+q", "quit_app", "Quit"),
    ]

    def __init__(
        self,
        profile: Profile,
        simulate: str | None,
        captures_root: Path,
        *,
        images: Renderer = "auto",  # how pictures are drawn; tests pin "halfcell"
        profile_path: Path | None = None,  # the file the profile came from, if any
    ) -> None:
        super().__init__()
        self.profile, self.simulate, self.captures_root = profile, simulate, captures_root
        self.profile_path = profile_path
        self.images = images
        self.owner = RigOwner(profile, simulate, self.post_message)
        self.rig_screen = RigScreen(_step(profile), images)
        self.run_screen: RunScreen | None = None
        self.sub_title = profile.name + (" (simulated)" if simulate else "")
        self.crashed: Exception | None = None  # a bug that ended the app, if one did

    def _handle_exception(self, error: Exception) -> None:
        """A bug in a handler. Textual would print its traceback over the operator's terminal
        and exit: here the rail is stopped and the app exits; ``run_app`` then hands the error
        to the command, which says it in one line and writes the traceback to the log."""
        if self.is_headless:  # tests: Textual's own handling re-raises it to the test
            super()._handle_exception(error)
            return
        if self.crashed is None:
            self.crashed = error
            self.owner.stop()
            self.exit(return_code=1)

    def on_mount(self) -> None:
        self.push_screen(self.rig_screen)
        self.owner.start()
        # Everything alive once the first screen is up (modules, Textual, the screens) lives
        # as long as the app: out of the collector's way, so that a full collection, which
        # stops every thread, walks only what came after.
        self.call_after_refresh(gc.freeze)

    # -- messages from the owner thread ---------------------------------------------------------

    def on_connected(self, m: msg.Connected) -> None:
        self._later(self.rig_screen.show_devices, m)

    def on_diagnosis(self, m: msg.Diagnosis) -> None:
        self._later(self.rig_screen.show_diagnosis, m)

    def on_note(self, m: msg.Note) -> None:
        self.notify(m.text, timeout=8)

    def on_failed(self, m: msg.Failed) -> None:
        self.notify(f"{m.doing}: {m.error}", title="could not do that", severity="error",
                    timeout=12)  # fmt: skip

    def on_rail_status(self, m: msg.RailStatus) -> None:
        self._later(self.rig_screen.show_status, m)

    def on_camera_state(self, m: msg.CameraState) -> None:
        self._later(self.rig_screen.show_camera, m)

    def on_live_frame(self, m: msg.LiveFrame) -> None:
        self._later(self.rig_screen.show_frame, m)

    def on_session_started(self, m: msg.SessionStarted) -> None:
        self._later(self._run().session_started, m)

    def on_shot_saved(self, m: msg.ShotSaved) -> None:
        self._later(self._run().shot_saved, m)

    def on_frame_stacked(self, m: msg.FrameStacked) -> None:
        self._later(self._run().frame_stacked, m)

    def on_state_changed(self, m: msg.StateChanged) -> None:
        self._later(self._run().state_changed, m)

    def on_stack_preview(self, m: msg.StackPreview) -> None:
        self._later(self._run().preview, m)

    def on_coverage_now(self, m: msg.CoverageNow) -> None:
        self._later(self._run().coverage, m)

    def on_fault_asked(self, m: msg.FaultAsked) -> None:
        self.push_screen(FaultDialog(m))

    def on_session_ended(self, m: msg.SessionEnded) -> None:
        self._later(self._run().ended, m)
        severity: Literal["information", "warning"] = (
            "information" if m.outcome == "done" else "warning"
        )
        self.notify(m.message, title=f"shoot {m.outcome}", severity=severity, timeout=15)
        self.owner.refresh()

    # -- actions --------------------------------------------------------------------------------

    def action_plan(self) -> None:
        screen = self.rig_screen
        self.push_screen(
            PlanScreen(
                self.profile, dict(screen.marks), screen.here, screen.referenced, self.captures_root
            )
        )

    def start_shoot(self, plan: Plan) -> None:
        if self._to_run_screen():
            self.owner.shoot(plan, self.captures_root)

    def resume_session(self, path: Path, extend: dict[str, int]) -> None:
        if self._to_run_screen():
            self.owner.resume(path, extend)

    def _to_run_screen(self) -> bool:
        if self.owner.busy:
            self.notify("a shoot is running already", severity="warning")
            return False
        self.run_screen = RunScreen(self.images)
        self.switch_screen(self.run_screen)
        return True

    def action_sessions(self) -> None:
        self.push_screen(SessionsScreen(self.captures_root))

    def action_back_to_rig(self) -> None:
        if self.owner.busy:
            self.notify("the shoot is running: pause or abort it first", severity="warning")
            return
        while len(self.screen_stack) > 2:  # the default screen, then the rig
            self.pop_screen()
        if self.screen is not self.rig_screen:
            self.switch_screen(self.rig_screen)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """A palette entry (ctrl+p) for every action of the screen shown, then the app's."""
        yield from super().get_system_commands(screen)
        for b in [*screen.BINDINGS, *self.BINDINGS]:
            if not isinstance(b, Binding) or not b.description:
                continue
            action = b.action
            target: Any = self if action.startswith("app.") else screen
            name = action.removeprefix("app.")
            yield SystemCommand(
                b.description,
                f"key: {self._keys(b)}",
                lambda t=target, a=name: self.run_action(a, t),
            )

    def action_profiles(self) -> None:
        self.push_screen(ProfilesScreen(self.profile, self.profile_path))

    def use_profile(self, profile: Profile, path: Path | None = None) -> bool:
        """Work with another rig profile (from ``path``, if a file): the devices are closed and
        opened as it says."""
        if self.owner.busy:
            self.notify("a shoot is running: finish or abort it first", severity="warning")
            return False
        self.owner.close()
        self.profile, self.profile_path = profile, path
        self.sub_title = profile.name + (" (simulated)" if self.simulate else "")
        self.rig_screen.step_um = _step(profile)
        self.owner = RigOwner(profile, self.simulate, self.post_message)
        self.owner.start()
        self.notify(f"using {profile.name}: connecting ...")
        return True

    def action_help(self) -> None:
        lines = [
            f"{self._keys(b):>18}  {b.description}"
            for b in [*self.screen.BINDINGS, *self.BINDINGS]
            if isinstance(b, Binding) and b.description
        ]
        self.push_screen(Help(lines))

    def _keys(self, binding: Binding) -> str:
        keys = binding.key.split(",")
        return " / ".join(self.get_key_display(Binding(k.strip(), "")) for k in keys)

    def action_quit_app(self) -> None:
        if not self.owner.busy:
            self._quit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._quit()

        self.push_screen(
            Confirm(
                "A shoot is running. Stop the rail and quit? It can be resumed later.",
                "Stop and quit",
                "Go on",
            ),
            answer,
        )

    def _quit(self) -> None:
        self.owner.close()
        self.exit()

    def _later(self, show: Any, m: Any) -> None:
        """After the next refresh: the screen it goes to may be mounting still; every message
        takes this one road, so their order holds. One for a screen that was closed since
        (the run screen after going back to the rig) is dropped."""

        def deliver() -> None:
            with contextlib.suppress(NoMatches):
                show(m)

        self.call_after_refresh(deliver)

    def _run(self) -> RunScreen:
        if self.run_screen is None:
            self.run_screen = RunScreen(self.images)
        return self.run_screen


def _step(profile: Profile) -> float:
    try:
        return step_for(profile)
    except ValueError:
        return 100.0  # no optics to suggest a step: a jog still needs one


def run_app(
    profile: Profile, simulate: str | None, captures_root: Path, profile_path: Path | None
) -> None:
    app = StackrigApp(profile, simulate, captures_root, profile_path=profile_path)
    try:
        app.run()
    finally:
        app.owner.close()  # however the app ended: the rail stopped, a session left resumable
    if app.crashed is not None:
        # The command's own handler says it in one line and logs the traceback.
        raise app.crashed
