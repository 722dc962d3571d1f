"""The Sessions screen: past shoots under the captures folder, with how each ended; resume an
interrupted one, extend a finished one as its coverage verdict suggested, or re-stack the
selected ones (space selects) with another method in the background, through the batch code
(rig.jobs.batch: one worker process per session, as many at once as the machine allows)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from rig.errors import RigError
from rig.session.index import SessionSummary, list_sessions
from rig.session.journal import read_journal
from rig.tui.screens.dialogs import Choose
from rig.tui.widgets.footer import Footer
from stacking.settings import METHODS

log = logging.getLogger("stackrig.tui")


class SessionsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "resume", "Resume"),
        Binding("x", "extend", "Extend as suggested"),
        Binding("space", "select", "Select"),
        Binding("t", "restack", "Re-stack"),
        Binding("f5", "reload", "Reload", show=False),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.sessions: list[SessionSummary] = []
        self.selected: set[Path] = set()  # to re-stack together

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"sessions in {self.root}", id="root")
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static("", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.add_columns(" ", "session", "profile", "shots", "result")
        self.action_reload()

    def action_reload(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.clear()
        try:
            self.sessions = list_sessions(self.root)
        except RigError as exc:
            self.sessions = []
            self.notify(str(exc), title="sessions", severity="error")
        for s in self.sessions:
            result = s.outcome if not s.problem else f"unreadable: {s.problem}"
            mark = "*" if s.path in self.selected else " "
            table.add_row(mark, s.name, s.profile, f"{s.saved}/{s.planned}", result)
        if not self.sessions:
            self.query_one("#detail", Static).update("no sessions yet: shoot one from the plan (p)")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        s = self._selected()
        if s is None:
            return
        extend = _suggested(s.path)
        lines = [str(s.path)]
        if s.resumable:
            lines.append(f"r resumes it: {s.planned - s.saved} shots missing")
        if extend:
            lines.append(
                "x extends it as its coverage verdict suggested: "
                + ", ".join(f"{n} at the {end} end" for end, n in extend.items())
            )
        self.query_one("#detail", Static).update("\n".join(lines))

    def _selected(self) -> SessionSummary | None:
        row = self.query_one("#sessions", DataTable).cursor_row
        return self.sessions[row] if 0 <= row < len(self.sessions) else None

    def action_resume(self) -> None:
        s = self._selected()
        if s is None or not s.resumable:
            self.notify("pick a session that did not finish", severity="warning")
            return
        app: Any = self.app
        app.resume_session(s.path, {})

    def action_extend(self) -> None:
        s = self._selected()
        extend = _suggested(s.path) if s is not None else {}
        if s is None or not extend:
            self.notify("that session's verdict suggested no extension", severity="warning")
            return
        app: Any = self.app
        app.resume_session(s.path, extend)

    def action_select(self) -> None:
        """Select the highlighted session for re-stacking, or leave it out again."""
        s = self._selected()
        if s is None or s.problem:
            return
        self.selected ^= {s.path}
        table = self.query_one("#sessions", DataTable)
        row = table.cursor_row
        table.update_cell_at(Coordinate(row, 0), "*" if s.path in self.selected else " ")
        table.move_cursor(row=min(row + 1, len(self.sessions) - 1))

    def action_restack(self) -> None:
        """Stack the selected sessions' frames (or the highlighted one's) again with another
        method, in the background, beside each stack (``stack-METHOD.tif``), reusing each
        session's alignments."""
        chosen_paths = [s.path for s in self.sessions if s.path in self.selected]
        s = self._selected()
        if not chosen_paths and s is not None and not s.problem:
            chosen_paths = [s.path]
        if not chosen_paths:
            self.notify("pick a session to re-stack", severity="warning")
            return

        def chosen(method: str | None) -> None:
            if method is not None:
                self.app.run_worker(lambda: self._restack(chosen_paths, method), thread=True)

        self.app.push_screen(Choose("Re-stack with", list(METHODS)), chosen)

    def _restack(self, paths: list[Path], method: str) -> None:
        """On a worker thread: the app is told how it goes through call_from_thread."""
        from rig.jobs import batch
        from rig.jobs.batch_find import Stack, session_stack
        from rig.jobs.batch_task import FAILED, StackDone
        from rig.session.folder import SessionFolder, read_session_file
        from stacking.errors import StackingError

        app = self.app

        def settings(stack: Stack) -> Any:
            profile = read_session_file(SessionFolder.open(stack.folder)).profile()
            return replace(profile.stack_settings(), method=method)

        def progress(done: StackDone) -> None:
            app.call_from_thread(app.notify, f"re-stack: {done.name.split('/')[-1]} {done.status}")

        try:
            options = batch.Options(image_name=f"stack-{method}.tif", reuse_alignment=True)
            plan = batch.check(batch.plan([session_stack(p) for p in paths], settings, options))
            ran = batch.run(plan, batch.Where(), progress if len(paths) > 1 else None)
        except (RigError, StackingError) as exc:
            app.call_from_thread(app.notify, str(exc), title="re-stack failed", severity="error")
            return
        except Exception as exc:  # a bug: one line here, the traceback in the log
            log.exception("re-stack of %s failed", ", ".join(map(str, paths)))
            app.call_from_thread(app.notify, f"internal error: {exc} (details in the log)",
                                 title="re-stack failed", severity="error")  # fmt: skip
            return
        for d in ran.done:
            if d.status == FAILED:
                app.call_from_thread(app.notify, f"{d.name.split('/')[-1]}: {d.reason}",
                                     title="re-stack failed", severity="error")  # fmt: skip
        written = [d.result for d in ran.done if d.result]
        if written:
            app.call_from_thread(app.notify, "re-stacked -> " + ", ".join(map(str, written)))


def _suggested(path: Path) -> dict[str, int]:
    """The extension the session's last verdict suggested (none for an unfinished one)."""
    try:
        events = read_journal(path / "journal.jsonl")
    except (RigError, OSError, ValueError):  # a damaged journal suggests nothing
        return {}
    ends = [e for e in events if e.type == "session_finished"]
    coverage = ends[-1].get("coverage") if ends else None
    if not isinstance(coverage, dict) or ends[-1].get("outcome") != "done":
        return {}
    pairs = (("first", coverage.get("extend_first")), ("last", coverage.get("extend_last")))
    return {end: int(n) for end, n in pairs if isinstance(n, int) and n > 0}
