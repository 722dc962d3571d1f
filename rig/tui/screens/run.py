"""The Run screen: progress, the stack building frame by frame, each frame as it lands, the
coverage so far; pause, resume and abort (asked first); the verdict at the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, ProgressBar, Sparkline, Static

from rig.tui import messages as msg
from rig.tui.screens.dialogs import Confirm
from rig.tui.widgets.footer import Footer
from rig.tui.widgets.images import ImageView, Renderer

_MAP_CAPTION = "coverage map: sharpest frame per place, blue first .. red last, grey no detail (m)"


class RunScreen(Screen[None]):
    BINDINGS = [
        Binding("p", "pause", "Pause / resume"),
        Binding("a", "abort", "Abort"),
        Binding("space,escape", "stop", "Stop now"),
        Binding("m", "toggle_map", "Stack / coverage map"),
        Binding("r", "app.back_to_rig", "Back to the rig", show=False),
        Binding("x", "extend", "Extend as suggested", show=False),
    ]

    def __init__(self, images: Renderer = "auto") -> None:
        super().__init__()
        self.images = images
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.state = "idle"
        self.finished = False
        self.ended_with: msg.SessionEnded | None = None
        self.sharpness: list[float] = []
        self.alignment: list[float] = []
        self.rejected: list[str] = []
        self.showing_map = False  # the big picture: the stack so far, or the coverage map
        self.stack_picture: tuple[np.ndarray, str] | None = None
        self.map_picture: tuple[np.ndarray, str] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="run-side"):
                yield Static("starting ...", id="state")
                yield ProgressBar(total=None, id="progress", show_eta=False)
                yield Static("", id="timing")
                yield Static("", id="coverage")
                yield Static("sharpness per frame", classes="plot-label")
                yield Sparkline([], id="sharpness")
                yield Static("alignment confidence per frame", classes="plot-label")
                yield Sparkline([], id="alignment")
                yield Static("", id="rejected")
                yield DataTable(id="frames", cursor_type="none", zebra_stripes=True)
            yield ImageView(renderer=self.images, id="stack")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#frames", DataTable)
        table.add_columns("shot", "at um", "s", "files")
        self.query_one("#stack", ImageView).show_nothing("the stack appears here as it builds")

    # -- what the session said ------------------------------------------------------------------

    def session_started(self, m: msg.SessionStarted) -> None:
        self.total = m.shots
        self.started = time.monotonic()
        self.query_one("#progress", ProgressBar).update(total=m.shots, progress=0)
        self.sub_title = m.folder

    def shot_saved(self, m: msg.ShotSaved) -> None:
        self.done += 1
        self.query_one("#progress", ProgressBar).update(progress=self.done)
        table = self.query_one("#frames", DataTable)
        table.add_row(str(m.index), f"{m.position_um:.1f}", f"{m.seconds:.2f}", ", ".join(m.files))
        table.scroll_end(animate=False)
        elapsed = time.monotonic() - self.started
        left = self.total - self.done
        eta = elapsed / self.done * left if self.done else 0.0
        self.query_one("#timing", Static).update(
            f"frame {self.done}/{self.total}  elapsed {elapsed:.0f} s  ETA {eta:.0f} s"
        )

    def frame_stacked(self, m: msg.FrameStacked) -> None:
        if m.accepted:
            self.sharpness.append(m.sharpness)
            self.alignment.append(m.confidence)
            self.query_one("#sharpness", Sparkline).data = list(self.sharpness)
            self.query_one("#alignment", Sparkline).data = list(self.alignment)
        else:
            self.rejected.append(f"rejected {m.name}: {m.reason}")
            self.query_one("#rejected", Static).update("\n".join(self.rejected[-5:]))

    def state_changed(self, m: msg.StateChanged) -> None:
        self.state = m.state
        hint = {"paused": " (p resumes)", "running": ""}.get(m.state, "")
        self.query_one("#state", Static).update(f"session: {m.state}{hint}")

    def preview(self, m: msg.StackPreview) -> None:
        rgb8 = np.clip(m.image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        self.stack_picture = (rgb8, f"the stack so far: {m.frames} frames (m: coverage map)")
        if not self.showing_map:
            self._show()

    def coverage(self, m: msg.CoverageNow) -> None:
        self.query_one("#coverage", Static).update(f"coverage: {m.verdict}")
        if m.picture is not None:
            self.map_picture = (m.picture, _MAP_CAPTION)
            if self.showing_map:
                self._show()

    def _show(self) -> None:
        picture = self.map_picture if self.showing_map else self.stack_picture
        view = self.query_one("#stack", ImageView)
        if picture is None:
            view.show_nothing(
                "the coverage map appears with the first preview"
                if self.showing_map
                else "the stack appears here as it builds"
            )
        else:
            view.show(*picture)

    def ended(self, m: msg.SessionEnded) -> None:
        self.finished, self.ended_with = True, m
        lines = [m.message]
        if m.extend:
            lines.append(
                "x extends the run as the verdict suggests: "
                + ", ".join(f"{n} more at the {end} end" for end, n in m.extend.items())
            )
        if m.outcome != "done" and m.folder:
            lines.append(f"the session resumes with: stackrig capture --resume {m.folder}")
        lines.append("r: back to the rig")
        self.query_one("#state", Static).update(f"session: {m.outcome}")
        self.query_one("#timing", Static).update("\n".join(lines))

    # -- keys -----------------------------------------------------------------------------------

    def action_toggle_map(self) -> None:
        self.showing_map = not self.showing_map
        self._show()

    def action_extend(self) -> None:
        m = self.ended_with
        if m is None or not m.extend:
            self.notify("the verdict suggested no extension", severity="warning")
            return
        app: Any = self.app
        app.resume_session(Path(m.folder), m.extend)

    def action_pause(self) -> None:
        session = self._session()
        if session is None:
            return
        if self.state == "paused":
            session.resume()
        else:
            session.pause()
            self.notify("pausing after the shot under way")

    def action_abort(self) -> None:
        if self._session() is None:
            return

        def answer(yes: bool | None) -> None:
            session = self._session()
            if yes and session is not None:
                session.abort()
                self.notify("aborting after the shot under way; the session stays resumable")

        self.app.push_screen(
            Confirm("Abort the shoot after this shot? It can be resumed later.", "Abort", "Go on"),
            answer,
        )

    def action_stop(self) -> None:
        app: Any = self.app
        app.owner.stop()
        self.notify("stopped: the rail was stopped mid-move; the session stays resumable")

    def _session(self) -> Any:
        app: Any = self.app
        return app.owner.session
